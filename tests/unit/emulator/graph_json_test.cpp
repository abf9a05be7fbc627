// The Graph writer (graph_json.h): every generated alert, translated back per graph.md's
// table, is the Defender alert /api/alerts serves; Graph's shape, enums, evolvable-enum
// members and page envelope.
#include "mdecollect/emulator/graph_json.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mdecollect/core/json_writer.h"

namespace mdec::emulator {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::sys_days;

// 2026-03-02T00:00:00Z
const Timestamp kStart = Timestamp(sys_days(std::chrono::year(2026) / 3 / 2));

// Alerts in every state: new ones, and copies advanced once, twice and three times (in
// progress, resolved with classification and determination, comments).
std::vector<Alert> alertsInEveryState(std::uint64_t seed, std::size_t n) {
  AlertGenerator gen(seed, kStart);
  std::vector<Alert> alerts;
  for (std::size_t i = 0; i < n; ++i) {
    Alert a = gen.next();
    alerts.push_back(a);
    Timestamp t = a.last_update_time;
    for (int step = 1; step <= static_cast<int>(i % 4); ++step) {
      t += minutes(7 * step);
      if (!gen.advance(a, t)) break;
      alerts.push_back(a);
    }
  }
  return alerts;
}

std::string graphJson(const Alert& a, bool include_unknown = true) {
  std::string out;
  appendGraphAlertJson(a, include_unknown, out);
  return out;
}

std::string defenderJson(const Alert& a) {
  std::string out;
  appendAlertJson(a, true, out);
  return out;
}

std::string minified(simdjson::dom::element e) { return simdjson::minify(e); }

bool isNull(simdjson::dom::element e) {
  return e.type() == simdjson::dom::element_type::NULL_VALUE;
}

std::string text(simdjson::dom::element e) {
  std::string_view s;
  return e.get(s) == simdjson::SUCCESS ? std::string(s) : std::string("<not a string>");
}

// A flat JSON object as key -> minified value, nulls left out (the mapper drops them).
using Flat = std::map<std::string, std::string>;

std::string pascal(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::string jsonQuoted(std::string_view s) {
  std::string out;
  core::appendString(out, s);
  return out;
}

// graph.md's detectionSource table (Graph -> Defender); other values unchanged.
std::string defenderDetectionSource(const std::string& graph) {
  static const std::map<std::string, std::string> kTable = {
      {"microsoftDefenderForEndpoint", "WindowsDefenderAtp"},
      {"antivirus", "WindowsDefenderAv"},
      {"smartScreen", "WindowsDefenderSmartScreen"},
      {"customTi", "CustomerTI"},
      {"customDetection", "CustomDetection"},
      {"automatedInvestigation", "AutomatedInvestigation"},
      {"microsoft365Defender", "MTP"},
      {"microsoftDefenderForOffice365", "OfficeATP"},
      {"microsoftThreatExperts", "ThreatExperts"},
      {"manual", "Manual"},
  };
  auto it = kTable.find(graph);
  return it == kTable.end() ? graph : it->second;
}

// The Graph evidence type name -> entityType (graph.md).
std::string entityTypeOf(std::string_view odata_type) {
  std::string_view t = odata_type.substr(odata_type.rfind('.') + 1);
  if (t == "registryKeyEvidence" || t == "registryValueEvidence") return "Registry";
  if (t == "deviceEvidence") return "Machine";
  if (t.ends_with("Evidence")) t.remove_suffix(8);
  return pascal(std::string(t));
}

// One Graph evidence element translated per graph.md into the Defender evidence's flat keys.
Flat translateEvidence(simdjson::dom::object e) {
  Flat out;
  auto put = [&out](const std::string& key, simdjson::dom::element v) {
    if (!isNull(v)) out[key] = minified(v);
  };
  auto putFile = [&](simdjson::dom::element file) {
    simdjson::dom::object o;
    if (file.get(o) != simdjson::SUCCESS) return;
    for (auto f : o) {
      const std::string_view k = f.key;
      if (k == "fileName" || k == "filePath" || k == "sha1" || k == "sha256") {
        put(std::string(k), f.value);
      }
    }
  };
  auto putAccount = [&](simdjson::dom::element account) {
    simdjson::dom::object o;
    if (account.get(o) != simdjson::SUCCESS) return;
    for (auto f : o) {
      const std::string_view k = f.key;
      if (k == "azureAdUserId") {
        put("aadUserId", f.value);
      } else if (k == "displayName") {
        put("userDisplayName", f.value);
      } else {
        put(std::string(k), f.value);
      }
    }
  };
  for (auto f : e) {
    const std::string_view k = f.key;
    if (k == "@odata.type") {
      out["entityType"] = jsonQuoted(entityTypeOf(text(f.value)));
    } else if (k == "createdDateTime") {
      put("evidenceCreationTime", f.value);
    } else if (k == "detectionStatus") {
      if (!isNull(f.value)) out["detectionStatus"] = jsonQuoted(pascal(text(f.value)));
    } else if (k == "fileDetails" || k == "imageFile") {
      putFile(f.value);
    } else if (k == "processCreationDateTime") {
      put("processCreationTime", f.value);
    } else if (k == "parentProcessCreationDateTime") {
      put("parentProcessCreationTime", f.value);
    } else if (k == "parentProcessImageFile") {
      simdjson::dom::object o;
      if (f.value.get(o) == simdjson::SUCCESS) {
        put("parentProcessFileName", o["fileName"]);
        put("parentProcessFilePath", o["filePath"]);
      }
    } else if (k == "userAccount") {
      putAccount(f.value);
    } else {
      put(std::string(k), f.value);
    }
  }
  return out;
}

struct Translated {
  Flat alert;
  std::vector<Flat> evidence;
};

// A Graph alert translated per graph.md into the Defender alert's keys.
Translated translate(simdjson::dom::object g) {
  Translated t;
  auto put = [&t](const std::string& key, simdjson::dom::element v) {
    if (!isNull(v)) t.alert[key] = minified(v);
  };
  static const std::map<std::string, std::string> kRenamed = {
      {"threatDisplayName", "threatName"},
      {"createdDateTime", "alertCreationTime"},
      {"lastUpdateDateTime", "lastUpdateTime"},
      {"firstActivityDateTime", "firstEventTime"},
      {"lastActivityDateTime", "lastEventTime"},
      {"resolvedDateTime", "resolvedTime"},
      {"tenantId", "aadTenantId"},
  };
  for (auto f : g) {
    const std::string key(f.key);
    if (key == "status" || key == "classification" || key == "determination" ||
        key == "investigationState") {
      if (!isNull(f.value)) t.alert[key] = jsonQuoted(pascal(text(f.value)));
    } else if (key == "severity") {
      const std::string s = text(f.value);
      t.alert[key] = jsonQuoted(s == "unknown" ? "UnSpecified" : pascal(s));
    } else if (key == "detectionSource") {
      if (!isNull(f.value)) t.alert[key] = jsonQuoted(defenderDetectionSource(text(f.value)));
    } else if (kRenamed.count(key)) {
      put(kRenamed.at(key), f.value);
    } else if (key == "comments") {
      // the mapper drops them
    } else if (key == "evidence") {
      simdjson::dom::array evidence;
      EXPECT_EQ(f.value.get(evidence), simdjson::SUCCESS);
      bool device_seen = false;
      for (simdjson::dom::element e : evidence) {
        simdjson::dom::object o;
        EXPECT_EQ(e.get(o), simdjson::SUCCESS);
        if (!device_seen && text(o["@odata.type"]) == "#microsoft.graph.security.deviceEvidence") {
          device_seen = true;
          put("machineId", o["mdeDeviceId"]);
          put("computerDnsName", o["deviceDnsName"]);
          put("rbacGroupName", o["rbacGroupName"]);
          simdjson::dom::array users;
          if (o["loggedOnUsers"].get(users) == simdjson::SUCCESS && users.size() > 0) {
            simdjson::dom::element u = users.at(0);
            t.alert["relatedUser"] = "{\"userName\":" + minified(u["accountName"]) +
                                     ",\"domainName\":" + minified(u["domainName"]) + "}";
          }
          continue;
        }
        t.evidence.push_back(translateEvidence(o));
      }
    } else {
      put(key, f.value);
    }
  }
  return t;
}

// The Defender alert as served: every key (nulls included, to tell "both carry it" apart).
struct Served {
  std::map<std::string, std::optional<std::string>> alert;
  std::vector<std::map<std::string, std::optional<std::string>>> evidence;
};

Served served(simdjson::dom::object d) {
  Served s;
  for (auto f : d) {
    const std::string key(f.key);
    if (key == "evidence") {
      for (simdjson::dom::element e : simdjson::dom::array(f.value)) {
        std::map<std::string, std::optional<std::string>> flat;
        for (auto ef : simdjson::dom::object(e)) {
          flat[std::string(ef.key)] =
              isNull(ef.value) ? std::nullopt : std::optional<std::string>(minified(ef.value));
        }
        s.evidence.push_back(std::move(flat));
      }
    } else if (key == "incidentId") {
      // The mapper writes it as a string (mapping.md); Graph sends a string.
      s.alert[key] = jsonQuoted(minified(f.value));
    } else {
      s.alert[key] = isNull(f.value) ? std::nullopt : std::optional<std::string>(minified(f.value));
    }
  }
  return s;
}

// Every key both carry agrees: a non-null Defender value is in the translation with the same
// value, and a key the translation has is null or absent on neither side alone.
void expectAgree(const std::map<std::string, std::optional<std::string>>& defender,
                 const Flat& graph, const std::string& where) {
  for (const auto& [key, value] : defender) {
    if (key == "comments" || key == "investigationId") continue;  // not in Graph
    auto it = graph.find(key);
    if (value) {
      ASSERT_NE(it, graph.end()) << where << ": Graph lacks " << key << " = " << *value;
      EXPECT_EQ(it->second, *value) << where << ": " << key;
    } else {
      EXPECT_EQ(it, graph.end()) << where << ": " << key << " is null in Defender, Graph has "
                                 << it->second;
    }
  }
}

TEST(GraphJsonTest, TranslatedBackItIsTheDefenderAlert) {
  const std::vector<Alert> alerts = alertsInEveryState(5, 700);
  simdjson::dom::parser gp;
  simdjson::dom::parser dp;
  std::set<std::string> types;
  std::set<std::string> statuses;
  std::size_t evidence = 0;
  std::size_t resolved = 0;
  for (const Alert& a : alerts) {
    const std::string g = graphJson(a);
    const std::string d = defenderJson(a);
    simdjson::dom::object go;
    simdjson::dom::object dobj;
    ASSERT_EQ(gp.parse(g).get(go), simdjson::SUCCESS) << g.substr(0, 300);
    ASSERT_EQ(dp.parse(d).get(dobj), simdjson::SUCCESS);
    const Translated t = translate(go);
    const Served s = served(dobj);
    const std::string where = a.id + " " + formatApiTime(a.last_update_time);
    expectAgree(s.alert, t.alert, where);
    ASSERT_EQ(t.evidence.size(), s.evidence.size()) << where;
    for (std::size_t i = 0; i < s.evidence.size(); ++i) {
      expectAgree(s.evidence[i], t.evidence[i], where + " evidence " + std::to_string(i));
      types.insert(t.evidence[i].at("entityType"));
      ++evidence;
    }
    statuses.insert(t.alert.at("status"));
    resolved += a.status == Status::kResolved && a.classification ? 1 : 0;
  }
  // The comparison covered every kind of evidence and every status.
  EXPECT_EQ(types, (std::set<std::string>{"\"File\"", "\"Ip\"", "\"Process\"", "\"Registry\"",
                                          "\"Url\"", "\"User\""}));
  EXPECT_EQ(statuses, (std::set<std::string>{"\"InProgress\"", "\"New\"", "\"Resolved\""}));
  EXPECT_GT(evidence, 1000u);
  EXPECT_GT(resolved, 100u);
}

TEST(GraphJsonTest, AlertHasGraphsKeysInOrderAndDeviceEvidenceFirst) {
  const std::vector<Alert> alerts = alertsInEveryState(8, 40);
  simdjson::dom::parser parser;
  const std::vector<std::string> kKeys = {"@odata.type",
                                          "id",
                                          "providerAlertId",
                                          "incidentId",
                                          "status",
                                          "severity",
                                          "classification",
                                          "determination",
                                          "serviceSource",
                                          "detectionSource",
                                          "productName",
                                          "detectorId",
                                          "tenantId",
                                          "title",
                                          "description",
                                          "recommendedActions",
                                          "category",
                                          "assignedTo",
                                          "alertWebUrl",
                                          "incidentWebUrl",
                                          "actorDisplayName",
                                          "threatDisplayName",
                                          "threatFamilyName",
                                          "mitreTechniques",
                                          "createdDateTime",
                                          "lastUpdateDateTime",
                                          "resolvedDateTime",
                                          "firstActivityDateTime",
                                          "lastActivityDateTime",
                                          "investigationState",
                                          "alertPolicyId",
                                          "additionalData",
                                          "customDetails",
                                          "comments",
                                          "evidence",
                                          "systemTags"};
  const std::vector<std::string> kCommon = {
      "@odata.type", "createdDateTime", "verdict", "remediationStatus", "remediationStatusDetails",
      "roles",       "detailedRoles",   "tags"};
  for (const Alert& a : alerts) {
    const std::string g = graphJson(a);
    simdjson::dom::object o;
    ASSERT_EQ(parser.parse(g).get(o), simdjson::SUCCESS);
    std::vector<std::string> keys;
    for (auto f : o) keys.emplace_back(f.key);
    EXPECT_EQ(keys, kKeys);
    EXPECT_EQ(text(o["@odata.type"]), "#microsoft.graph.security.alert");
    EXPECT_EQ(text(o["providerAlertId"]), a.id);
    EXPECT_EQ(text(o["incidentId"]), std::to_string(a.incident_id));
    EXPECT_EQ(text(o["serviceSource"]), "microsoftDefenderForEndpoint");
    EXPECT_EQ(text(o["productName"]), "Microsoft Defender for Endpoint");
    EXPECT_EQ(text(o["alertWebUrl"]),
              "https://security.microsoft.com/alerts/" + a.id + "?tid=" + *a.aad_tenant_id);
    EXPECT_EQ(text(o["incidentWebUrl"]), "https://security.microsoft.com/incidents/" +
                                             std::to_string(a.incident_id) +
                                             "?tid=" + *a.aad_tenant_id);
    EXPECT_FALSE(text(o["recommendedActions"]).empty());
    simdjson::dom::array evidence = o["evidence"];
    ASSERT_EQ(evidence.size(), a.evidence.size() + 1);
    simdjson::dom::object device = evidence.at(0);
    EXPECT_EQ(text(device["@odata.type"]), "#microsoft.graph.security.deviceEvidence");
    EXPECT_EQ(text(device["mdeDeviceId"]), *a.machine_id);
    EXPECT_EQ(text(device["deviceDnsName"]), *a.computer_dns_name);
    EXPECT_EQ(text(device["createdDateTime"]), formatApiTime(a.alert_creation_time));
    EXPECT_LT(text(device["firstSeenDateTime"]), formatApiTime(a.alert_creation_time));
    for (const char* key : {"osPlatform", "version", "healthStatus", "riskScore",
                            "onboardingStatus", "defenderAvStatus"}) {
      EXPECT_FALSE(text(device[key]).empty()) << key;
    }
    std::int64_t build = 0;
    EXPECT_EQ(device["osBuild"].get(build), simdjson::SUCCESS);
    EXPECT_GT(build, 19000);
    simdjson::dom::array users = device["loggedOnUsers"];
    EXPECT_EQ(users.size(), a.related_user ? 1u : 0u);
    if (a.related_user) {
      EXPECT_EQ(text(users.at(0)["accountName"]), a.related_user->user_name);
      EXPECT_EQ(text(users.at(0)["domainName"]), a.related_user->domain_name);
    }
    for (simdjson::dom::element e : evidence) {
      std::vector<std::string> head;
      for (auto f : simdjson::dom::object(e)) {
        if (head.size() < kCommon.size()) head.emplace_back(f.key);
      }
      EXPECT_EQ(head, kCommon);
      EXPECT_TRUE(text(e["@odata.type"]).starts_with("#microsoft.graph.security."));
    }
  }
}

TEST(GraphJsonTest, TypedEvidenceCarriesGraphsTypeFields) {
  const std::vector<Alert> alerts = alertsInEveryState(9, 300);
  simdjson::dom::parser parser;
  std::map<std::string, std::size_t> seen;
  for (const Alert& a : alerts) {
    simdjson::dom::object o;
    ASSERT_EQ(parser.parse(graphJson(a)).get(o), simdjson::SUCCESS);
    simdjson::dom::array evidence = o["evidence"];
    std::size_t i = 0;
    for (simdjson::dom::element e : evidence) {
      if (i++ == 0) continue;
      const Evidence& source = a.evidence[i - 2];
      const std::string type = text(e["@odata.type"]);
      ++seen[type];
      if (type == "#microsoft.graph.security.fileEvidence") {
        simdjson::dom::object file = e["fileDetails"];
        EXPECT_EQ(text(file["fileName"]), *source.file_name);
        EXPECT_EQ(text(file["sha1"]), *source.sha1);
        EXPECT_EQ(text(file["md5"]).size(), 32u);
        std::int64_t size = 0;
        EXPECT_EQ(file["fileSize"].get(size), simdjson::SUCCESS);
        EXPECT_GT(size, 0);
        EXPECT_EQ(text(e["mdeDeviceId"]), *a.machine_id);
      } else if (type == "#microsoft.graph.security.processEvidence") {
        std::int64_t pid = 0;
        EXPECT_EQ(e["processId"].get(pid), simdjson::SUCCESS);
        EXPECT_EQ(pid, *source.process_id);
        EXPECT_EQ(text(e["processCommandLine"]), *source.process_command_line);
        EXPECT_EQ(text(e["imageFile"]["fileName"]), *source.file_name);
        EXPECT_EQ(text(e["processCreationDateTime"]), formatApiTime(*source.process_creation_time));
        simdjson::dom::object parent = e["parentProcessImageFile"];
        EXPECT_EQ(isNull(parent["fileName"]), !source.parent_process_file_name);
      } else if (type == "#microsoft.graph.security.userEvidence") {
        EXPECT_EQ(text(e["userAccount"]["accountName"]), *source.account_name);
        EXPECT_EQ(text(e["userAccount"]["userSid"]), *source.user_sid);
      } else if (type == "#microsoft.graph.security.ipEvidence") {
        EXPECT_EQ(text(e["ipAddress"]), *source.ip_address);
        simdjson::dom::element country = e["countryLetterCode"];
        EXPECT_TRUE(isNull(country) || text(country).size() == 2u);
      } else if (type == "#microsoft.graph.security.urlEvidence") {
        EXPECT_EQ(text(e["url"]), *source.url);
      } else if (type == "#microsoft.graph.security.registryValueEvidence") {
        EXPECT_EQ(text(e["registryValue"]), *source.registry_value);
        EXPECT_EQ(text(e["registryValueType"]), *source.registry_value_type);
        EXPECT_FALSE(text(e["registryValueName"]).empty());
        EXPECT_EQ(text(e["registryHive"]), *source.registry_hive);
      } else if (type == "#microsoft.graph.security.registryKeyEvidence") {
        EXPECT_EQ(text(e["registryKey"]), *source.registry_key);
        EXPECT_FALSE(source.registry_value.has_value());
      } else {
        ADD_FAILURE() << "unexpected evidence type " << type;
      }
    }
  }
  EXPECT_EQ(seen.size(), 7u);
  for (const auto& [type, n] : seen) EXPECT_GT(n, 3u) << type;
}

TEST(GraphJsonTest, EnumsAreGraphsLowerCamelMembers) {
  EXPECT_EQ(graphStatusName(Status::kNew), "new");
  EXPECT_EQ(graphStatusName(Status::kInProgress), "inProgress");
  EXPECT_EQ(graphStatusName(Status::kResolved), "resolved");
  EXPECT_EQ(graphStatusName(Status::kUnknown), "unknown");
  EXPECT_EQ(graphSeverityName(Severity::kUnSpecified), "unknown");
  EXPECT_EQ(graphSeverityName(Severity::kInformational), "informational");
  EXPECT_EQ(graphSeverityName(Severity::kHigh), "high");
  EXPECT_EQ(graphClassificationName(Classification::kTruePositive), "truePositive");
  EXPECT_EQ(graphClassificationName(Classification::kFalsePositive), "falsePositive");
  EXPECT_EQ(graphClassificationName(Classification::kInformationalExpectedActivity),
            "informationalExpectedActivity");
  EXPECT_EQ(lowerCamel("MultiStagedAttack"), "multiStagedAttack");
  EXPECT_EQ(lowerCamel("Apt"), "apt");
  EXPECT_EQ(lowerCamel(""), "");
  EXPECT_EQ(graphDetectionSource("WindowsDefenderAtp"), "microsoftDefenderForEndpoint");
  EXPECT_EQ(graphDetectionSource("WindowsDefenderAv"), "antivirus");
  EXPECT_EQ(graphDetectionSource("WindowsDefenderSmartScreen"), "smartScreen");
  EXPECT_EQ(graphDetectionSource("CustomerTI"), "customTi");
  EXPECT_EQ(graphDetectionSource("MTP"), "microsoft365Defender");
  EXPECT_EQ(graphDetectionSource("microsoftThreatIntelligence"), "microsoftThreatIntelligence");
  EXPECT_TRUE(isNewerGraphMember(GraphEnum::kDetectionSource, "microsoftThreatIntelligence"));
  EXPECT_FALSE(isNewerGraphMember(GraphEnum::kDetectionSource, "antivirus"));
  EXPECT_TRUE(isNewerGraphMember(GraphEnum::kServiceSource, "microsoftDefenderForCloud"));
  EXPECT_FALSE(isNewerGraphMember(GraphEnum::kServiceSource, "microsoftDefenderForEndpoint"));
  EXPECT_TRUE(isGraphEnumMember(GraphEnum::kDetermination, "confirmedUserActivity"));
  EXPECT_FALSE(isGraphEnumMember(GraphEnum::kStatus, "New"));

  // Every value the generator produces is a member of Graph's enum.
  simdjson::dom::parser parser;
  for (const Alert& a : alertsInEveryState(6, 500)) {
    simdjson::dom::object o;
    ASSERT_EQ(parser.parse(graphJson(a)).get(o), simdjson::SUCCESS);
    EXPECT_TRUE(isGraphEnumMember(GraphEnum::kStatus, text(o["status"])));
    EXPECT_TRUE(isGraphEnumMember(GraphEnum::kSeverity, text(o["severity"])));
    EXPECT_TRUE(isGraphEnumMember(GraphEnum::kDetectionSource, text(o["detectionSource"])))
        << text(o["detectionSource"]);
    if (!isNull(o["classification"])) {
      EXPECT_TRUE(isGraphEnumMember(GraphEnum::kClassification, text(o["classification"])));
    }
    if (!isNull(o["determination"])) {
      EXPECT_TRUE(isGraphEnumMember(GraphEnum::kDetermination, text(o["determination"])))
          << text(o["determination"]);
    }
  }
}

TEST(GraphJsonTest, NewerEnumMembersOnlyWhenAskedFor) {
  std::size_t newer = 0;
  std::size_t plain = 0;
  for (const Alert& a : alertsInEveryState(5, 700)) {
    const std::string with = graphJson(a, true);
    const std::string without = graphJson(a, false);
    if (!hasNewerGraphMembers(a)) {
      EXPECT_EQ(with, without);
      ++plain;
      continue;
    }
    ++newer;
    EXPECT_EQ(*a.detection_source, "microsoftThreatIntelligence");
    const std::string member = "\"detectionSource\":\"microsoftThreatIntelligence\"";
    const std::string sentinel = "\"detectionSource\":\"unknownFutureValue\"";
    ASSERT_NE(with.find(member), std::string::npos);
    EXPECT_EQ(with.find(sentinel), std::string::npos);
    EXPECT_EQ(without.find(member), std::string::npos);
    // The sentinel replaces the member and nothing else changes.
    std::string expected = with;
    expected.replace(expected.find(member), member.size(), sentinel);
    EXPECT_EQ(without, expected);
  }
  EXPECT_GT(newer, 5u);
  EXPECT_GT(plain, 500u);
}

TEST(GraphJsonTest, DeterministicBytes) {
  const std::vector<Alert> a = alertsInEveryState(11, 50);
  const std::vector<Alert> b = alertsInEveryState(11, 50);
  std::string pa;
  std::string pb;
  appendGraphPageJson(a, kGraphAlertsOdataContext, true, pa);
  appendGraphPageJson(b, kGraphAlertsOdataContext, true, pb);
  EXPECT_EQ(pa, pb);
  EXPECT_GT(pa.size(), 50u * 3000u);
  // The same alert again gives the same bytes.
  EXPECT_EQ(graphJson(a[3]), graphJson(a[3]));
}

TEST(GraphJsonTest, PageEnvelope) {
  const std::vector<Alert> alerts = alertsInEveryState(12, 5);
  simdjson::dom::parser parser;
  std::string page;
  appendGraphPageJson(alerts, kGraphAlertsOdataContext, true, page,
                      "https://graph.microsoft.com/v1.0/security/alerts_v2?$skiptoken=abc", 42);
  simdjson::dom::object o;
  ASSERT_EQ(parser.parse(page).get(o), simdjson::SUCCESS);
  std::vector<std::string> keys;
  for (auto f : o) keys.emplace_back(f.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"@odata.context", "@odata.count", "@odata.nextLink",
                                            "value"}));
  EXPECT_EQ(text(o["@odata.context"]), kGraphAlertsOdataContext);
  std::int64_t count = 0;
  EXPECT_EQ(o["@odata.count"].get(count), simdjson::SUCCESS);
  EXPECT_EQ(count, 42);
  EXPECT_EQ(simdjson::dom::array(o["value"]).size(), alerts.size());

  std::string plain;
  appendGraphPageJson({}, kGraphAlertsOdataContext, false, plain);
  EXPECT_EQ(plain,
            "{\"@odata.context\":\"" + std::string(kGraphAlertsOdataContext) + "\",\"value\":[]}");
}

TEST(GraphJsonTest, HandWrittenAlertWithNullsAndHardText) {
  Alert a;
  a.id = "da0_1";
  a.incident_id = 7;
  a.severity = Severity::kUnSpecified;
  a.status = Status::kUnknown;
  a.alert_creation_time = kStart;
  a.last_update_time = kStart + hours(1);
  a.title = "quote \" backslash \\ newline \n tab \t bell \x07 end";
  Evidence e;
  e.entity_type = "Mailbox";  // not one the generator makes
  e.account_name = "ann";
  e.detection_status = "Detected";
  a.evidence.push_back(e);
  const std::string g = graphJson(a, false);
  simdjson::dom::parser parser;
  simdjson::dom::object o;
  ASSERT_EQ(parser.parse(g).get(o), simdjson::SUCCESS) << g;
  EXPECT_EQ(text(o["title"]), *a.title);
  EXPECT_EQ(text(o["severity"]), "unknown");
  EXPECT_EQ(text(o["status"]), "unknown");
  EXPECT_TRUE(isNull(o["detectionSource"]));
  EXPECT_TRUE(isNull(o["tenantId"]));
  EXPECT_EQ(text(o["alertWebUrl"]), "https://security.microsoft.com/alerts/da0_1");
  // No machine: no deviceEvidence; the evidence keeps its flat keys.
  simdjson::dom::array evidence = o["evidence"];
  ASSERT_EQ(evidence.size(), 1u);
  EXPECT_EQ(text(evidence.at(0)["@odata.type"]), "#microsoft.graph.security.mailboxEvidence");
  EXPECT_EQ(text(evidence.at(0)["accountName"]), "ann");
  EXPECT_EQ(text(evidence.at(0)["detectionStatus"]), "detected");
  EXPECT_TRUE(isNull(evidence.at(0)["createdDateTime"]));
}

}  // namespace
}  // namespace mdec::emulator
