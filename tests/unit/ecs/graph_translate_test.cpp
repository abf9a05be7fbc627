// The Graph alerts_v2 -> Defender for Endpoint alert translation (/work/shared/spec/graph.md),
// one rule at a time, and mapGraphLine: Graph lines through the translation and the mapper.
#include "mdecollect/ecs/graph_translate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ecs/line_scanner.h"
#include "mdecollect/ecs/mapper.h"
#include "support/json_compare.h"

namespace {

using mdec::ecs::documentId;
using mdec::ecs::GraphTranslator;
using mdec::ecs::kLinePadding;
using mdec::ecs::LineContext;
using mdec::ecs::LineStats;
using mdec::ecs::mapGraphLine;
using mdec::ecs::MapOptions;
using mdec::ecs::Mapper;
using mdec::testing::CollectedDocument;
using mdec::testing::CollectingSink;
using mdec::testing::diffJson;
using mdec::testing::joinLines;
using mdec::testing::JsonDoc;
using Strings = std::vector<std::string>;

constexpr char kNow[] = "2030-01-02T03:04:05.678Z";
constexpr char kAlertId[] = "da638671234567890123_-1234567890";
constexpr char kCreated[] = "2026-11-20T08:00:00.51Z";
constexpr char kLastUpdate[] = "2026-11-20T09:15:42.3366667Z";
constexpr char kFirstActivity[] = "2026-11-20T07:58:12.0000001Z";
constexpr char kLastActivity[] = "2026-11-20T07:59:59.9Z";
constexpr char kEvidenceCreated[] = "2026-11-20T08:00:01.1233333Z";
constexpr char kDeviceId[] = "9f0e1d2c3b4a59687766554433221100ffeeddcc";
constexpr char kTenant[] = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e";
constexpr char kSha1[] = "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8";
constexpr char kSha256[] = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
constexpr char kMd5[] = "0cc175b9c0f1b6a831c399e269772661";
constexpr char kMd[] = "microsoft.defender_endpoint";

std::string md(std::string_view key) { return std::string(kMd) + "." + std::string(key); }

// ---------------------------------------------------------------------------------------------
// Building Graph alerts

// A JSON object whose members keep their order; values are raw JSON text.
class Obj {
 public:
  Obj& raw(std::string_view key, std::string json) {
    for (auto& field : fields_) {
      if (field.first == key) {
        field.second = std::move(json);
        return *this;
      }
    }
    fields_.emplace_back(std::string(key), std::move(json));
    return *this;
  }
  Obj& str(std::string_view key, std::string_view value) {
    return raw(key, "\"" + std::string(value) + "\"");
  }
  Obj& num(std::string_view key, std::int64_t value) { return raw(key, std::to_string(value)); }
  Obj& null(std::string_view key) { return raw(key, "null"); }
  Obj& obj(std::string_view key, const Obj& value) { return raw(key, value.json()); }
  Obj& erase(std::string_view key) {
    std::erase_if(fields_, [&](const auto& field) { return field.first == key; });
    return *this;
  }
  Obj& evidence(const std::vector<Obj>& items) {
    std::string json = "[";
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i > 0) json += ",";
      json += items[i].json();
    }
    return raw("evidence", json + "]");
  }

  std::string json() const {
    std::string out = "{";
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      if (i > 0) out += ",";
      out += "\"" + fields_[i].first + "\":" + fields_[i].second;
    }
    return out + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// A Graph alert with every top-level key alerts_v2 sends (the fixture's second alert), no
// evidence.
Obj graphAlert() {
  Obj a;
  a.str("id", kAlertId)
      .str("providerAlertId", "638671234567890123_-1234567890")
      .str("incidentId", "9042")
      .str("status", "inProgress")
      .str("severity", "high")
      .str("classification", "truePositive")
      .str("determination", "multiStagedAttack")
      .str("serviceSource", "microsoftDefenderForEndpoint")
      .str("detectionSource", "microsoftDefenderForEndpoint")
      .str("productName", "Microsoft Defender for Endpoint")
      .str("detectorId", "3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8")
      .str("tenantId", kTenant)
      .str("title", "Suspicious DLL side-loading")
      .str("description", "A signed binary loaded a DLL from an unusual path.")
      .str("recommendedActions", "Isolate the device.")
      .str("category", "DefenseEvasion")
      .str("assignedTo", "soc@fabrikam.com")
      .str("alertWebUrl", "https://security.microsoft.com/alerts/x")
      .str("incidentWebUrl", "https://security.microsoft.com/incidents/9042")
      .null("actorDisplayName")
      .str("threatDisplayName", "Sideloader")
      .str("threatFamilyName", "Sideload")
      .raw("mitreTechniques", R"(["T1574.002"])")
      .str("createdDateTime", kCreated)
      .str("lastUpdateDateTime", kLastUpdate)
      .null("resolvedDateTime")
      .str("firstActivityDateTime", kFirstActivity)
      .str("lastActivityDateTime", kLastActivity)
      .null("alertPolicyId")
      .null("additionalData")
      .raw("categories", R"(["DefenseEvasion"])")
      .raw("systemTags", "[]")
      .raw("comments", "[]");
  return a;
}

// The members every evidence element has.
Obj evidenceOf(std::string_view type) {
  Obj e;
  e.str("@odata.type", "#microsoft.graph.security." + std::string(type))
      .str("createdDateTime", kEvidenceCreated)
      .str("verdict", "suspicious")
      .str("remediationStatus", "none")
      .null("remediationStatusDetails")
      .raw("roles", "[]")
      .raw("detailedRoles", R"(["PrimaryDevice"])")
      .raw("tags", R"(["t1"])");
  return e;
}

Obj deviceEvidence(std::string_view device_id = kDeviceId) {
  return evidenceOf("deviceEvidence")
      .str("mdeDeviceId", device_id)
      .str("deviceDnsName", "WKS-77.corp.fabrikam.com")
      .str("osPlatform", "Windows11")
      .num("osBuild", 22631)
      .str("rbacGroupName", "Workstations")
      .num("rbacGroupId", 4)
      .raw(
          "loggedOnUsers",
          R"([{"accountName":"mallory","domainName":"FABRIKAM"},{"accountName":"bob","domainName":"B"}])")
      .raw("ipInterfaces", R"(["10.0.0.7"])");
}

Obj fileEvidence() {
  return evidenceOf("fileEvidence")
      .str("detectionStatus", "blocked")
      .str("mdeDeviceId", kDeviceId)
      .raw("fileDetails", Obj()
                              .str("fileName", "evil.dll")
                              .str("filePath", "C:\\\\Temp")
                              .null("filePublisher")
                              .num("fileSize", 73216)
                              .str("md5", kMd5)
                              .str("sha1", kSha1)
                              .str("sha256", kSha256)
                              .str("signer", "Fabrikam")
                              .json());
}

Obj userAccount() {
  return Obj()
      .str("accountName", "mallory")
      .str("domainName", "FABRIKAM")
      .str("userSid", "S-1-5-21-1-2-3-1104")
      .str("azureAdUserId", "00000000-1111-2222-3333-444444444444")
      .str("userPrincipalName", "mallory@fabrikam.com")
      .str("displayName", "Mallory");
}

Obj processEvidence() {
  return evidenceOf("processEvidence")
      .str("detectionStatus", "prevented")
      .num("processId", 4242)
      .num("parentProcessId", 616)
      .str("processCommandLine", "rundll32.exe evil.dll,Start")
      .str("processCreationDateTime", kFirstActivity)
      .str("parentProcessCreationDateTime", "2026-11-20T06:00:00Z")
      .obj("imageFile", Obj()
                            .str("fileName", "rundll32.exe")
                            .str("filePath", "C:\\\\Windows\\\\System32")
                            .str("sha1", kSha1)
                            .str("sha256", kSha256)
                            .num("fileSize", 71680)
                            .str("filePublisher", "Microsoft Corporation"))
      .obj("parentProcessImageFile", Obj()
                                         .str("fileName", "explorer.exe")
                                         .str("filePath", "C:\\\\Windows")
                                         .str("sha1", kSha1)
                                         .num("fileSize", 5000))
      .obj("userAccount", userAccount());
}

// ---------------------------------------------------------------------------------------------
// Translating

// The translation of `text`, or nullopt when translate() says false.
std::optional<std::string> translate(std::string_view text) {
  GraphTranslator translator;
  const std::string padded = std::string(text) + std::string(kLinePadding, ' ');
  std::string out = "left over";
  if (!translator.translate(std::string_view(padded.data(), text.size()), out)) {
    EXPECT_TRUE(out.empty()) << "out must be empty after false: " << out;
    return std::nullopt;
  }
  EXPECT_GE(out.capacity() - out.size(), kLinePadding);
  return out;
}

// The translated alert, parsed; fails the test when translation fails or gives bad JSON.
JsonDoc translated(const Obj& alert) {
  const auto text = translate(alert.json());
  EXPECT_TRUE(text.has_value()) << alert.json();
  JsonDoc doc(text.value_or("null"));
  EXPECT_TRUE(doc.valid()) << text.value_or("") << ": " << doc.parseError();
  return doc;
}

TEST(GraphTranslateTest, KeysKeptAsTheyAre) {
  const JsonDoc a = translated(graphAlert());
  EXPECT_EQ(a.getString("id"), kAlertId);
  EXPECT_EQ(a.getString("incidentId"), "9042");  // stays a string
  EXPECT_EQ(a.type("incidentId"), "string");
  EXPECT_EQ(a.getString("category"), "DefenseEvasion");
  EXPECT_EQ(a.getString("title"), "Suspicious DLL side-loading");
  EXPECT_EQ(a.getString("description"), "A signed binary loaded a DLL from an unusual path.");
  EXPECT_EQ(a.getString("assignedTo"), "soc@fabrikam.com");
  EXPECT_EQ(a.getString("threatFamilyName"), "Sideload");
  EXPECT_EQ(a.getString("detectorId"), "3f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8");
  EXPECT_EQ(a.getStrings("mitreTechniques"), (Strings{"T1574.002"}));
  EXPECT_EQ(a.getJson("comments"), "[]");
  // Keys without a row: kept under their names, nulls included.
  EXPECT_EQ(a.getString("providerAlertId"), "638671234567890123_-1234567890");
  EXPECT_EQ(a.getString("serviceSource"), "microsoftDefenderForEndpoint");
  EXPECT_EQ(a.getString("productName"), "Microsoft Defender for Endpoint");
  EXPECT_EQ(a.getString("recommendedActions"), "Isolate the device.");
  EXPECT_EQ(a.getString("alertWebUrl"), "https://security.microsoft.com/alerts/x");
  EXPECT_EQ(a.getString("incidentWebUrl"), "https://security.microsoft.com/incidents/9042");
  EXPECT_EQ(a.type("actorDisplayName"), "null");
  EXPECT_EQ(a.type("alertPolicyId"), "null");
  EXPECT_EQ(a.type("additionalData"), "null");
  EXPECT_EQ(a.getStrings("categories"), (Strings{"DefenseEvasion"}));
  EXPECT_EQ(a.getJson("systemTags"), "[]");
}

TEST(GraphTranslateTest, RenamedKeys) {
  const JsonDoc a = translated(graphAlert().str("resolvedDateTime", "2026-11-21T00:00:00Z"));
  EXPECT_EQ(a.getString("alertCreationTime"), kCreated);
  EXPECT_EQ(a.getString("lastUpdateTime"), kLastUpdate);
  EXPECT_EQ(a.getString("firstEventTime"), kFirstActivity);
  EXPECT_EQ(a.getString("lastEventTime"), kLastActivity);
  EXPECT_EQ(a.getString("resolvedTime"), "2026-11-21T00:00:00Z");
  EXPECT_EQ(a.getString("aadTenantId"), kTenant);
  EXPECT_EQ(a.getString("threatName"), "Sideloader");
  for (const char* gone :
       {"createdDateTime", "lastUpdateDateTime", "firstActivityDateTime", "lastActivityDateTime",
        "resolvedDateTime", "tenantId", "threatDisplayName"}) {
    EXPECT_FALSE(a.has(gone)) << gone;
  }
}

TEST(GraphTranslateTest, RenamedKeysTakeThePlaceOfTheKeysTheyReplace) {
  const JsonDoc a = translated(Obj()
                                   .str("id", "x")
                                   .str("tenantId", kTenant)
                                   .str("zeta", "z")
                                   .str("createdDateTime", kCreated)
                                   .str("status", "new")
                                   .evidence({fileEvidence()}));
  EXPECT_EQ(a.keys(""),
            (Strings{"id", "aadTenantId", "zeta", "alertCreationTime", "status", "evidence"}));
}

TEST(GraphTranslateTest, EnumsBecomePascalCase) {
  const JsonDoc a = translated(graphAlert()
                                   .str("status", "inProgress")
                                   .str("classification", "informationalExpectedActivity")
                                   .str("determination", "multiStagedAttack")
                                   .str("investigationState", "successfullyRemediated"));
  EXPECT_EQ(a.getString("status"), "InProgress");
  EXPECT_EQ(a.getString("classification"), "InformationalExpectedActivity");
  EXPECT_EQ(a.getString("determination"), "MultiStagedAttack");
  EXPECT_EQ(a.getString("investigationState"), "SuccessfullyRemediated");

  const JsonDoc b = translated(graphAlert()
                                   .str("status", "new")
                                   .str("classification", "truePositive")
                                   .null("determination"));
  EXPECT_EQ(b.getString("status"), "New");
  EXPECT_EQ(b.getString("classification"), "TruePositive");
  EXPECT_EQ(b.type("determination"), "null");  // not a string: as it is
}

TEST(GraphTranslateTest, UnknownFutureValueEnums) {
  const JsonDoc a = translated(graphAlert()
                                   .str("status", "unknownFutureValue")
                                   .str("severity", "unknownFutureValue")
                                   .str("classification", "unknownFutureValue")
                                   .str("determination", "unknownFutureValue")
                                   .str("detectionSource", "unknownFutureValue"));
  EXPECT_EQ(a.getString("status"), "UnknownFutureValue");
  EXPECT_EQ(a.getString("severity"), "UnknownFutureValue");
  EXPECT_EQ(a.getString("classification"), "UnknownFutureValue");
  EXPECT_EQ(a.getString("determination"), "UnknownFutureValue");
  EXPECT_EQ(a.getString("detectionSource"), "unknownFutureValue");  // not in the table
  // And a member added later (Prefer: include-unknown-enum-members) gets Pascal case too.
  EXPECT_EQ(translated(graphAlert().str("status", "awaitingCustomer")).getString("status"),
            "AwaitingCustomer");
}

TEST(GraphTranslateTest, Severity) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"unknown", "UnSpecified"},
      {"informational", "Informational"},
      {"low", "Low"},
      {"medium", "Medium"},
      {"high", "High"}};
  for (const auto& [graph, mde] : cases) {
    EXPECT_EQ(translated(graphAlert().str("severity", graph)).getString("severity"), mde) << graph;
  }
}

TEST(GraphTranslateTest, DetectionSourceTable) {
  const std::vector<std::pair<std::string, std::string>> cases = {
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
      // Any other value unchanged.
      {"microsoftDefenderForIdentity", "microsoftDefenderForIdentity"},
      {"cloudAppSecurity", "cloudAppSecurity"},
  };
  for (const auto& [graph, mde] : cases) {
    const JsonDoc a = translated(graphAlert().str("detectionSource", graph));
    EXPECT_EQ(a.getString("detectionSource"), mde) << graph;
  }
}

TEST(GraphTranslateTest, UnknownKeysKeptAsTheyAreAtAnyDepth) {
  const JsonDoc a = translated(
      graphAlert()
          .raw("customDetails", R"({"rule":"r1","hits":[1,2.5,-3,true,null],"nested":{"a":{}}})")
          .raw("additionalData", R"({"k":"v"})")
          .raw("futureKey", R"([{"x":18446744073709551615}])")
          .raw("aNumber", "-9223372036854775808")
          .raw("aDouble", "1.5e-7")
          .raw("aBool", "false"));
  EXPECT_EQ(a.getJson("customDetails"),
            R"({"rule":"r1","hits":[1,2.5,-3,true,null],"nested":{"a":{}}})");
  EXPECT_EQ(a.getJson("additionalData"), R"({"k":"v"})");
  EXPECT_EQ(a.type("futureKey"), "array");
  EXPECT_EQ(a.getInt("aNumber"), INT64_MIN);
  EXPECT_EQ(a.getDouble("aDouble"), 1.5e-7);
  EXPECT_EQ(a.getBool("aBool"), false);
  const auto text =
      translate(graphAlert().raw("futureKey", R"([{"x":18446744073709551615}])").json());
  ASSERT_TRUE(text);
  EXPECT_NE(text->find(R"("futureKey":[{"x":18446744073709551615}])"), std::string::npos);
}

// The single element of an evidence array given as JSON text.
JsonDoc onlyElement(const std::optional<std::string>& array) {
  EXPECT_TRUE(array && array->size() > 2 && array->front() == '[') << array.value_or("");
  if (!array || array->size() < 2) return JsonDoc("null");
  return JsonDoc(array->substr(1, array->size() - 2));
}

TEST(GraphTranslateTest, StringsWithEscapesSurviveExactly) {
  // Quotes, backslashes, control characters, \u escapes, \/ and UTF-8, in keys and values,
  // long and short (the writer escapes 16 bytes at a time).
  const std::string tricky = R"(q\"b\\s\/ctl\u0001\u001f\n\t\r\b\f é \u00e9 \ud83d\ude00 )";
  const std::string long_tricky = tricky + std::string(40, 'x') + tricky + tricky;
  const std::string input =
      graphAlert()
          .raw("k\\\"ey", "\"" + tricky + "\"")
          .raw("long", "\"" + long_tricky + "\"")
          .raw("title", "\"" + tricky + "\"")
          .raw("status", R"("\"quoted")")
          .evidence({evidenceOf("fooEvidence").raw("v", "\"" + tricky + "\"")})
          .json();
  const auto text = translate(input);
  ASSERT_TRUE(text);
  const JsonDoc in(input);
  const JsonDoc out(*text);
  ASSERT_TRUE(in.valid());
  ASSERT_TRUE(out.valid()) << *text;
  const Strings keys = out.keys("");
  EXPECT_NE(std::find(keys.begin(), keys.end(), "k\"ey"), keys.end());
  ASSERT_TRUE(in.getString("long"));
  EXPECT_EQ(out.getString("long"), in.getString("long"));
  EXPECT_EQ(out.getString("title"), in.getString("title"));
  EXPECT_EQ(onlyElement(out.getJson("evidence")).getString("v"), in.getString("title"));
  EXPECT_EQ(onlyElement(out.getJson("evidence")).getString("entityType"), "Foo");
  // A string enum whose first byte is not a lower-case letter is kept.
  EXPECT_EQ(out.getString("status"), "\"quoted");
  // Escaped as the project's writer escapes (the same text whatever the input's escapes).
  EXPECT_NE(text->find(R"(\u0001\u001f\n\t\r\b\f)"), std::string::npos);
  EXPECT_NE(text->find(R"(q\"b\\s/ctl)"), std::string::npos);
}

// ---- The first deviceEvidence ----------------------------------------------------------------

TEST(GraphTranslateTest, FirstDeviceEvidenceBecomesMachineFields) {
  const JsonDoc a = translated(graphAlert().evidence({deviceEvidence(), fileEvidence()}));
  EXPECT_EQ(a.getString("machineId"), kDeviceId);
  EXPECT_EQ(a.getString("computerDnsName"), "WKS-77.corp.fabrikam.com");
  EXPECT_EQ(a.getString("rbacGroupName"), "Workstations");
  EXPECT_EQ(a.getJson("relatedUser"), R"({"userName":"mallory","domainName":"FABRIKAM"})");
  // The device is no evidence element any more; its other fields are not kept.
  EXPECT_EQ(a.getJson("evidence").value_or("").find("deviceEvidence"), std::string::npos);
  EXPECT_EQ(a.getJson("evidence").value_or("").find("Machine"), std::string::npos);
  EXPECT_FALSE(a.has("osPlatform"));
  EXPECT_FALSE(a.has("loggedOnUsers"));
  EXPECT_FALSE(a.has("mdeDeviceId"));
  EXPECT_EQ(onlyElement(a.getJson("evidence")).getString("entityType"), "File");
  // ... written just before "evidence".
  const Strings keys = a.keys("");
  ASSERT_GE(keys.size(), 5u);
  EXPECT_EQ(Strings(keys.end() - 5, keys.end()),
            (Strings{"machineId", "computerDnsName", "rbacGroupName", "relatedUser", "evidence"}));
}

TEST(GraphTranslateTest, TheFirstDeviceEvidenceNeedNotComeFirst) {
  const JsonDoc a = translated(graphAlert().evidence(
      {fileEvidence(), deviceEvidence(), evidenceOf("ipEvidence").str("ipAddress", "10.1.2.3")}));
  EXPECT_EQ(a.getString("machineId"), kDeviceId);
  const auto evidence = a.getJson("evidence");
  ASSERT_TRUE(evidence);
  EXPECT_EQ(JsonDoc(*evidence).type(""), "array");
  EXPECT_NE(evidence->find(R"("entityType":"File")"), std::string::npos);
  EXPECT_NE(evidence->find(R"("entityType":"Ip")"), std::string::npos);
  EXPECT_LT(evidence->find(R"("entityType":"File")"), evidence->find(R"("entityType":"Ip")"));
  EXPECT_EQ(evidence->find(R"("Machine")"), std::string::npos);
}

TEST(GraphTranslateTest, ASecondDeviceEvidenceStaysAMachineEvidence) {
  const JsonDoc a =
      translated(graphAlert().evidence({deviceEvidence(), deviceEvidence("aaaabbbbccccdddd")}));
  EXPECT_EQ(a.getString("machineId"), kDeviceId);
  const JsonDoc e = onlyElement(a.getJson("evidence"));
  ASSERT_TRUE(e.valid());
  EXPECT_EQ(e.getString("entityType"), "Machine");
  EXPECT_EQ(e.getString("evidenceCreationTime"), kEvidenceCreated);
  EXPECT_EQ(e.getString("mdeDeviceId"), "aaaabbbbccccdddd");  // kept as is
  EXPECT_EQ(e.getString("deviceDnsName"), "WKS-77.corp.fabrikam.com");
  EXPECT_EQ(e.getInt("osBuild"), 22631);
  EXPECT_FALSE(e.has("@odata.type"));
  EXPECT_FALSE(e.has("createdDateTime"));
}

TEST(GraphTranslateTest, DeviceEvidenceWithoutUsersOrGroup) {
  Obj device = deviceEvidence();
  device.raw("loggedOnUsers", "[]").null("rbacGroupName");
  const JsonDoc a = translated(graphAlert().evidence({device}));
  EXPECT_EQ(a.getString("machineId"), kDeviceId);
  EXPECT_FALSE(a.has("relatedUser"));
  EXPECT_EQ(a.type("rbacGroupName"), "null");  // dropped by the mapper, as any null
  EXPECT_EQ(a.getJson("evidence"), "[]");

  Obj device2 = deviceEvidence();
  device2.erase("loggedOnUsers").erase("deviceDnsName");
  const JsonDoc b = translated(graphAlert().evidence({device2}));
  EXPECT_FALSE(b.has("relatedUser"));
  EXPECT_FALSE(b.has("computerDnsName"));

  Obj device3 = deviceEvidence();
  device3.raw("loggedOnUsers", R"([{"accountName":"solo"}])");
  EXPECT_EQ(translated(graphAlert().evidence({device3})).getJson("relatedUser"),
            R"({"userName":"solo"})");
}

// ---- Evidence elements -----------------------------------------------------------------------

// The one evidence element of the translated alert.
JsonDoc translatedEvidence(const Obj& evidence) {
  return onlyElement(translated(graphAlert().evidence({evidence})).getJson("evidence"));
}

TEST(GraphTranslateTest, EntityTypeFromTheTypeName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"fileEvidence", "File"},
      {"processEvidence", "Process"},
      {"userEvidence", "User"},
      {"ipEvidence", "Ip"},
      {"urlEvidence", "Url"},
      {"registryKeyEvidence", "Registry"},
      {"registryValueEvidence", "Registry"},
      {"mailboxEvidence", "Mailbox"},
      {"analyzedMessageEvidence", "AnalyzedMessage"},
      {"cloudApplicationEvidence", "CloudApplication"},
      {"oauthApplicationEvidence", "OauthApplication"},
      {"securityGroupEvidence", "SecurityGroup"},
      // Types the table does not know: the same rule.
      {"kubernetesPodEvidence", "KubernetesPod"},
      {"quantumWidgetEvidence", "QuantumWidget"},
      {"somethingNew", "SomethingNew"},
  };
  for (const auto& [type, entity] : cases) {
    const JsonDoc e = translatedEvidence(evidenceOf(type));
    EXPECT_EQ(e.getString("entityType"), entity) << type;
    EXPECT_FALSE(e.has("@odata.type")) << type;
  }
  // A type without the namespace.
  EXPECT_EQ(translatedEvidence(Obj().str("@odata.type", "#ipEvidence")).getString("entityType"),
            "Ip");
}

TEST(GraphTranslateTest, EveryEvidenceGetsCommonRenamesAndKeepsTheRest) {
  const JsonDoc e = translatedEvidence(evidenceOf("urlEvidence")
                                           .str("url", "http://127.0.0.1/1.exe")
                                           .str("detectionStatus", "detected")
                                           .raw("futureField", R"({"a":[1]})"));
  EXPECT_EQ(e.keys(""),
            (Strings{"entityType", "evidenceCreationTime", "verdict", "remediationStatus",
                     "remediationStatusDetails", "roles", "detailedRoles", "tags", "url",
                     "detectionStatus", "futureField"}));
  EXPECT_EQ(e.getString("entityType"), "Url");
  EXPECT_EQ(e.getString("evidenceCreationTime"), kEvidenceCreated);
  EXPECT_EQ(e.getString("verdict"), "suspicious");  // not an enum of the table: as it is
  EXPECT_EQ(e.getString("remediationStatus"), "none");
  EXPECT_EQ(e.getStrings("detailedRoles"), (Strings{"PrimaryDevice"}));
  EXPECT_EQ(e.getStrings("tags"), (Strings{"t1"}));
  EXPECT_EQ(e.getString("url"), "http://127.0.0.1/1.exe");
  EXPECT_EQ(e.getString("detectionStatus"), "Detected");
  EXPECT_EQ(e.getJson("futureField"), R"({"a":[1]})");
}

TEST(GraphTranslateTest, DetectionStatusPascalCase) {
  for (const auto& [graph, mde] : std::vector<std::pair<std::string, std::string>>{
           {"detected", "Detected"},
           {"blocked", "Blocked"},
           {"prevented", "Prevented"},
           {"unknownFutureValue", "UnknownFutureValue"}}) {
    EXPECT_EQ(translatedEvidence(evidenceOf("fileEvidence").str("detectionStatus", graph))
                  .getString("detectionStatus"),
              mde);
  }
}

TEST(GraphTranslateTest, FileDetailsFlattened) {
  const JsonDoc e = translatedEvidence(fileEvidence());
  EXPECT_EQ(e.getString("entityType"), "File");
  EXPECT_EQ(e.getString("fileName"), "evil.dll");
  EXPECT_EQ(e.getString("filePath"), "C:\\Temp");
  EXPECT_EQ(e.getString("sha1"), kSha1);
  EXPECT_EQ(e.getString("sha256"), kSha256);
  EXPECT_EQ(e.getString("detectionStatus"), "Blocked");
  EXPECT_EQ(e.getString("mdeDeviceId"), kDeviceId);
  // The rest stays in fileDetails.
  EXPECT_EQ(e.keys("fileDetails"), (Strings{"filePublisher", "fileSize", "md5", "signer"}));
  EXPECT_EQ(e.getInt("fileDetails.fileSize"), 73216);
  EXPECT_EQ(e.getString("fileDetails.md5"), kMd5);
  EXPECT_EQ(e.getString("fileDetails.signer"), "Fabrikam");
  EXPECT_EQ(e.type("fileDetails.filePublisher"), "null");
  EXPECT_FALSE(e.has("fileDetails.sha1"));
}

TEST(GraphTranslateTest, FileDetailsWithNothingElseLeaveNoObject) {
  const JsonDoc e = translatedEvidence(
      evidenceOf("fileEvidence").raw("fileDetails", R"({"fileName":"a.exe","sha1":"abc"})"));
  EXPECT_EQ(e.getString("fileName"), "a.exe");
  EXPECT_EQ(e.getString("sha1"), "abc");
  EXPECT_FALSE(e.has("fileDetails"));
  // fileDetails that is not an object: kept as it is.
  EXPECT_EQ(translatedEvidence(evidenceOf("fileEvidence").null("fileDetails")).type("fileDetails"),
            "null");
}

TEST(GraphTranslateTest, ProcessEvidence) {
  const JsonDoc e = translatedEvidence(processEvidence());
  EXPECT_EQ(e.getString("entityType"), "Process");
  EXPECT_EQ(e.getInt("processId"), 4242);
  EXPECT_EQ(e.getInt("parentProcessId"), 616);
  EXPECT_EQ(e.getString("processCommandLine"), "rundll32.exe evil.dll,Start");
  EXPECT_EQ(e.getString("processCreationTime"), kFirstActivity);
  EXPECT_EQ(e.getString("parentProcessCreationTime"), "2026-11-20T06:00:00Z");
  EXPECT_FALSE(e.has("processCreationDateTime"));
  EXPECT_FALSE(e.has("parentProcessCreationDateTime"));
  EXPECT_EQ(e.getString("detectionStatus"), "Prevented");
  // imageFile -> file fields, the rest in fileDetails.
  EXPECT_EQ(e.getString("fileName"), "rundll32.exe");
  EXPECT_EQ(e.getString("filePath"), "C:\\Windows\\System32");
  EXPECT_EQ(e.getString("sha1"), kSha1);
  EXPECT_EQ(e.getString("sha256"), kSha256);
  EXPECT_FALSE(e.has("imageFile"));
  EXPECT_EQ(e.getJson("fileDetails"),
            R"({"fileSize":71680,"filePublisher":"Microsoft Corporation"})");
  // parentProcessImageFile -> parentProcessFileName / parentProcessFilePath, the rest kept.
  EXPECT_EQ(e.getString("parentProcessFileName"), "explorer.exe");
  EXPECT_EQ(e.getString("parentProcessFilePath"), "C:\\Windows");
  EXPECT_EQ(e.getJson("parentProcessImageFile"),
            std::string(R"({"sha1":")") + kSha1 + R"(","fileSize":5000})");
  // userAccount flattened.
  EXPECT_EQ(e.getString("accountName"), "mallory");
  EXPECT_EQ(e.getString("domainName"), "FABRIKAM");
  EXPECT_EQ(e.getString("userSid"), "S-1-5-21-1-2-3-1104");
  EXPECT_EQ(e.getString("aadUserId"), "00000000-1111-2222-3333-444444444444");
  EXPECT_EQ(e.getString("userPrincipalName"), "mallory@fabrikam.com");
  EXPECT_EQ(e.getString("userDisplayName"), "Mallory");
  EXPECT_FALSE(e.has("userAccount"));
  EXPECT_FALSE(e.has("azureAdUserId"));
  EXPECT_FALSE(e.has("displayName"));
}

TEST(GraphTranslateTest, UserAccountFlattenedAndItsUnknownKeysKept) {
  const JsonDoc e = translatedEvidence(
      evidenceOf("userEvidence")
          .obj("userAccount", userAccount().str("resourceAccessEvents", "x").null("userSid")));
  EXPECT_EQ(e.getString("entityType"), "User");
  EXPECT_EQ(e.getString("accountName"), "mallory");
  EXPECT_EQ(e.getString("domainName"), "FABRIKAM");
  EXPECT_EQ(e.type("userSid"), "null");
  EXPECT_EQ(e.getString("aadUserId"), "00000000-1111-2222-3333-444444444444");
  EXPECT_EQ(e.getString("userPrincipalName"), "mallory@fabrikam.com");
  EXPECT_EQ(e.getString("userDisplayName"), "Mallory");
  EXPECT_EQ(e.getJson("userAccount"), R"({"resourceAccessEvents":"x"})");
}

TEST(GraphTranslateTest, MailboxKeepsItsOwnDisplayName) {
  const JsonDoc e = translatedEvidence(evidenceOf("mailboxEvidence")
                                           .str("displayName", "Mailbox of Mallory")
                                           .str("primaryAddress", "mallory@fabrikam.com")
                                           .obj("userAccount", userAccount()));
  EXPECT_EQ(e.getString("entityType"), "Mailbox");
  EXPECT_EQ(e.getString("displayName"), "Mailbox of Mallory");
  EXPECT_EQ(e.getString("userDisplayName"), "Mallory");
  EXPECT_EQ(e.getString("primaryAddress"), "mallory@fabrikam.com");
  EXPECT_EQ(e.getString("accountName"), "mallory");
}

TEST(GraphTranslateTest, IpUrlAndRegistryKeepTheirNames) {
  const JsonDoc ip = translatedEvidence(
      evidenceOf("ipEvidence").str("ipAddress", "10.1.2.3").str("countryLetterCode", "NL"));
  EXPECT_EQ(ip.getString("entityType"), "Ip");
  EXPECT_EQ(ip.getString("ipAddress"), "10.1.2.3");
  EXPECT_EQ(ip.getString("countryLetterCode"), "NL");
  const JsonDoc reg = translatedEvidence(evidenceOf("registryValueEvidence")
                                             .str("registryKey", "SOFTWARE\\\\Run")
                                             .str("registryHive", "HKEY_CURRENT_USER")
                                             .str("registryValue", "rundll32 evil.dll")
                                             .str("registryValueName", "upd")
                                             .str("registryValueType", "String"));
  EXPECT_EQ(reg.getString("entityType"), "Registry");
  EXPECT_EQ(reg.getString("registryKey"), "SOFTWARE\\Run");
  EXPECT_EQ(reg.getString("registryHive"), "HKEY_CURRENT_USER");
  EXPECT_EQ(reg.getString("registryValue"), "rundll32 evil.dll");
  EXPECT_EQ(reg.getString("registryValueName"), "upd");
  EXPECT_EQ(reg.getString("registryValueType"), "String");
}

TEST(GraphTranslateTest, EvidenceThatIsNotAnArrayOfObjects) {
  // Non-object elements are kept (the mapper makes them error documents).
  EXPECT_EQ(translated(graphAlert().raw("evidence", R"([42,"x",null])")).getJson("evidence"),
            R"([42,"x",null])");
  // The one-object form: translated, still one object.
  const JsonDoc one = translated(graphAlert().obj("evidence", fileEvidence()));
  EXPECT_EQ(one.getString("evidence.entityType"), "File");
  EXPECT_EQ(one.getString("evidence.fileName"), "evil.dll");
  // A single deviceEvidence object: machine fields, no evidence left.
  const JsonDoc device = translated(graphAlert().obj("evidence", deviceEvidence()));
  EXPECT_EQ(device.getString("machineId"), kDeviceId);
  EXPECT_EQ(device.getJson("evidence"), "[]");
  // Something else: as it is.
  EXPECT_EQ(translated(graphAlert().raw("evidence", "7")).getInt("evidence"), 7);
  EXPECT_EQ(translated(graphAlert().null("evidence")).type("evidence"), "null");
}

TEST(GraphTranslateTest, NotAnObjectOrNotJson) {
  for (const char* text :
       {"[1,2]", "42", "\"alert\"", "null", "true", "{\"a\":", "{\"a\" 1}", "{\"a\":\"\\x\"}",
        "{\"a\":01}", "{\"a\":\"\xff\"}", "{} {}", "", "{\"a\":tru}"}) {
    EXPECT_FALSE(translate(text).has_value()) << text;
  }
  EXPECT_EQ(translate("{}"), "{}");
  EXPECT_EQ(translate("  {\"a\" : [ 1 , {\"b\":null} ] }  "), R"({"a":[1,{"b":null}]})");
}

TEST(GraphTranslateTest, OutputBufferIsReusedAndPadded) {
  GraphTranslator translator;
  std::string out;
  const std::string big = graphAlert()
                              .evidence({deviceEvidence(), fileEvidence(), processEvidence(),
                                         fileEvidence(), processEvidence()})
                              .json() +
                          std::string(kLinePadding, ' ');
  const std::string small = R"({"id":"s","status":"new"})" + std::string(kLinePadding, ' ');
  ASSERT_TRUE(translator.translate(std::string_view(big.data(), big.size() - kLinePadding), out));
  const std::string first = out;
  ASSERT_TRUE(
      translator.translate(std::string_view(small.data(), small.size() - kLinePadding), out));
  EXPECT_EQ(out, R"({"id":"s","status":"New"})");
  EXPECT_GE(out.capacity() - out.size(), kLinePadding);
  ASSERT_TRUE(translator.translate(std::string_view(big.data(), big.size() - kLinePadding), out));
  EXPECT_EQ(out, first);
  // The text can go straight to the mapper.
  Mapper mapper(MapOptions{}, [] { return std::string(kNow); });
  CollectingSink sink;
  const LineStats stats = mapper.mapElement(out, sink);
  EXPECT_EQ(stats.documents, 4u);
  EXPECT_EQ(stats.errors, 0u);
}

// ---------------------------------------------------------------------------------------------
// mapGraphLine

struct Mapped {
  LineStats stats;
  std::vector<CollectedDocument> docs;
  JsonDoc doc(std::size_t i) const { return JsonDoc(i < docs.size() ? docs[i].json : "null"); }
};

Mapped mapGraph(const std::vector<std::string>& lines, MapOptions options = {},
                LineContext context = {}) {
  Mapper mapper(std::move(options), [] { return std::string(kNow); });
  GraphTranslator translator;
  CollectingSink sink;
  Mapped out;
  for (const auto& line : lines) {
    const LineStats s = mapGraphLine(mapper, translator, line, context, sink);
    out.stats.alerts += s.alerts;
    out.stats.documents += s.documents;
    out.stats.errors += s.errors;
  }
  out.docs = std::move(sink.documents);
  return out;
}

// The mapper's documents for Defender for Endpoint input (the expected side).
Mapped mapDefender(const std::string& line, MapOptions options = {}, LineContext context = {}) {
  Mapper mapper(std::move(options), [] { return std::string(kNow); });
  CollectingSink sink;
  Mapped out;
  out.stats = mapper.mapLine(line, context, sink);
  out.docs = std::move(sink.documents);
  return out;
}

std::string page(const std::vector<std::string>& alerts, std::string_view extra = "") {
  std::string out =
      R"({"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2",)";
  out += "\"value\":[";
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    if (i > 0) out += ",";
    out += alerts[i];
  }
  out += "]";
  out += extra;
  return out + "}";
}

void expectSameDocuments(const Mapped& actual, const Mapped& expected) {
  ASSERT_EQ(actual.docs.size(), expected.docs.size());
  for (std::size_t i = 0; i < actual.docs.size(); ++i) {
    EXPECT_EQ(actual.docs[i].id, expected.docs[i].id) << i;
    EXPECT_EQ(actual.docs[i].error, expected.docs[i].error) << i;
    EXPECT_EQ(actual.docs[i].evidence_index, expected.docs[i].evidence_index) << i;
    const auto differences = diffJson(expected.docs[i].json, actual.docs[i].json);
    EXPECT_TRUE(differences.empty()) << i << ":\n" << joinLines(differences);
  }
  EXPECT_EQ(actual.stats.alerts, expected.stats.alerts);
  EXPECT_EQ(actual.stats.documents, expected.stats.documents);
  EXPECT_EQ(actual.stats.errors, expected.stats.errors);
}

Obj fullAlert(std::string_view id) {
  return graphAlert().str("id", id).evidence(
      {deviceEvidence(), fileEvidence(), processEvidence(),
       evidenceOf("userEvidence").obj("userAccount", userAccount())});
}

TEST(GraphMapLineTest, AnAlertLineMapsAsItsTranslation) {
  const std::string alert = fullAlert(kAlertId).json();
  const Mapped graph = mapGraph({alert});
  ASSERT_EQ(graph.docs.size(), 3u);
  expectSameDocuments(graph, mapDefender(*translate(alert)));
  EXPECT_EQ(graph.stats.alerts, 1u);
  const JsonDoc file = graph.doc(0);
  EXPECT_EQ(file.getString("event.id"), kAlertId);
  EXPECT_EQ(file.getString("@timestamp"), kCreated);
  EXPECT_EQ(file.getString("host.hostname"), "WKS-77.corp.fabrikam.com");
  EXPECT_EQ(file.getString("host.name"), "wks-77.corp.fabrikam.com");
  EXPECT_EQ(file.getString("host.id"), kDeviceId);
  EXPECT_EQ(file.getString("cloud.account.id"), kTenant);
  EXPECT_EQ(file.getString("user.name"), "mallory");
  EXPECT_EQ(file.getString("observer.name"), "WindowsDefenderAtp");
  EXPECT_EQ(file.getInt("event.severity"), 4);
  EXPECT_EQ(file.getString("file.name"), "evil.dll");
  EXPECT_EQ(file.getString(md("rbacGroupName")), "Workstations");
  EXPECT_EQ(file.getString(md("threatName")), "Sideloader");
  EXPECT_EQ(file.getString(md("status")), "InProgress");
  EXPECT_EQ(file.getString(md("evidence.entityType")), "File");
  EXPECT_EQ(file.getInt(md("evidence.fileDetails.fileSize")), 73216);
  const JsonDoc process = graph.doc(1);
  EXPECT_EQ(process.getInt("process.pid"), 4242);
  EXPECT_EQ(process.getString("process.name"), "rundll32.exe");
  EXPECT_EQ(process.getString("process.parent.name"), "explorer.exe");
  EXPECT_EQ(process.getString("process.start"), kFirstActivity);
  EXPECT_EQ(graph.doc(2).getStrings("event.type"), (Strings{"access"}));
  // The id is the Defender one: (event.id, lastUpdateTime, evidence index).
  for (std::uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(graph.docs[i].id, documentId(kAlertId, kLastUpdate, i));
    EXPECT_EQ(graph.docs[i].evidence_index, i);
  }
}

TEST(GraphMapLineTest, PagesMapEveryAlertInOrder) {
  const std::string a1 = fullAlert("da1").json();
  const std::string a2 = graphAlert().str("id", "da2").evidence({deviceEvidence()}).json();
  const std::string a3 = fullAlert("da3").json();
  const std::string empty_page = page({});
  const Mapped graph =
      mapGraph({page({a1, a2}, R"(,"@odata.nextLink":"https://graph.microsoft.com/next")"),
                empty_page, "", "   ", page({a3})});
  EXPECT_EQ(graph.stats.alerts, 3u);
  EXPECT_EQ(graph.stats.documents, 7u);  // 3 + 1 (no evidence left) + 3
  EXPECT_EQ(graph.stats.errors, 0u);
  Strings ids;
  for (std::size_t i = 0; i < graph.docs.size(); ++i) {
    ids.push_back(graph.doc(i).getString("event.id").value_or("?"));
  }
  EXPECT_EQ(ids, (Strings{"da1", "da1", "da1", "da2", "da3", "da3", "da3"}));
  EXPECT_FALSE(graph.doc(3).has(md("evidence")));
  EXPECT_EQ(graph.doc(3).getString("host.id"), kDeviceId);
  // The same as the translated page through the mapper.
  const std::string translated_page =
      page({*translate(a1), *translate(a2)}, R"(,"@odata.nextLink":"x")");
  Mapped first_page = mapGraph({page({a1, a2})});
  expectSameDocuments(first_page, mapDefender(translated_page));
}

TEST(GraphMapLineTest, PagesWithWhiteSpaceAndOtherMembersAnywhere) {
  const std::string a1 = fullAlert("da1").json();
  const std::string a2 = fullAlert("da2").json();
  const std::string spaced =
      " \t{ \"@odata.count\" : 2 , \"other\" : [ {\"value\":[1]} , \"]\" ] ,"
      " \"value\" : [ \n" +
      a1 + " ,\r\n " + a2 + " ] , \"@odata.nextLink\" : \"x\\\"]}\" } \t";
  const Mapped graph = mapGraph({spaced});
  EXPECT_EQ(graph.stats.alerts, 2u);
  EXPECT_EQ(graph.stats.documents, 6u);
  EXPECT_EQ(graph.stats.errors, 0u);
  expectSameDocuments(graph, mapDefender(page({*translate(a1), *translate(a2)})));
}

TEST(GraphMapLineTest, ABadElementBecomesAnErrorDocumentHoldingIt) {
  const std::string good = fullAlert("da1").json();
  const std::string bad_number = R"({"id":"da2","severity":01})";
  const Mapped graph = mapGraph({page({good, bad_number, "42", "[1]", fullAlert("da3").json()})});
  EXPECT_EQ(graph.stats.alerts, 5u);
  EXPECT_EQ(graph.stats.documents, 9u);
  EXPECT_EQ(graph.stats.errors, 3u);
  ASSERT_EQ(graph.docs.size(), 9u);
  EXPECT_EQ(graph.doc(2).getString("event.id"), "da1");
  EXPECT_EQ(graph.doc(3).getString("event.kind"), "pipeline_error");
  EXPECT_EQ(graph.doc(3).getString("event.original"), bad_number);
  EXPECT_EQ(graph.doc(4).getString("event.original"), "42");
  EXPECT_EQ(graph.doc(5).getString("event.original"), "[1]");
  EXPECT_TRUE(graph.docs[3].error);
  EXPECT_EQ(graph.doc(6).getString("event.id"), "da3");
  EXPECT_EQ(graph.doc(6).getString("event.kind"), "alert");
}

TEST(GraphMapLineTest, InvalidJsonLinesBecomeErrorDocumentsHoldingTheLine) {
  const std::string alert = fullAlert("da1").json();
  const std::vector<std::string> lines = {
      "{not json",
      alert.substr(0, alert.size() - 1),        // cut short
      alert + " trailing",                      // text after the value
      page({alert}).substr(0, 300),             // a page cut short
      page({alert, R"({"a" 1})"}),              // a page with a broken element
      page({alert}) + "}",                      // one brace too many
      "{\"id\":\"x\",\"title\":\"\xff\xfe\"}",  // not UTF-8
  };
  for (const auto& line : lines) {
    const Mapped graph = mapGraph({line});
    ASSERT_EQ(graph.docs.size(), 1u) << line.substr(0, 200);
    const JsonDoc doc = graph.doc(0);
    EXPECT_EQ(doc.getString("event.kind"), "pipeline_error");
    EXPECT_TRUE(graph.docs[0].error);
    EXPECT_EQ(graph.stats.errors, 1u);
    // The same document the mapper makes of that line.
    expectSameDocuments(graph, mapDefender(line));
  }
  const Mapped plain = mapGraph({"{not json"});
  EXPECT_EQ(plain.doc(0).getString("event.original"), "{not json");
  EXPECT_EQ(plain.doc(0).getString("@timestamp"), kNow);
}

TEST(GraphMapLineTest, ValuesThatAreNotAlerts) {
  const Mapped bad_page = mapGraph({R"({"value":3})"});
  ASSERT_EQ(bad_page.docs.size(), 1u);
  EXPECT_EQ(bad_page.doc(0).getString("event.original"), R"({"value":3})");
  EXPECT_TRUE(bad_page.docs[0].error);
  const Mapped array = mapGraph({R"([{"id":"x"}])"});
  ASSERT_EQ(array.docs.size(), 1u);
  EXPECT_EQ(array.doc(0).getString("event.original"), R"([{"id":"x"}])");
  EXPECT_TRUE(array.docs[0].error);
  // An alert with a "value" key that is not the page's (inside an evidence) is an alert.
  const std::string alert =
      graphAlert()
          .str("id", "dav")
          .evidence({evidenceOf("fileHashEvidence").str("algorithm", "sha256").str("value", "ab")})
          .json();
  const Mapped graph = mapGraph({alert});
  ASSERT_EQ(graph.docs.size(), 1u);
  EXPECT_EQ(graph.doc(0).getString("event.id"), "dav");
  EXPECT_EQ(graph.doc(0).getString(md("evidence.value")), "ab");
  EXPECT_EQ(graph.doc(0).getString(md("evidence.entityType")), "FileHash");
}

TEST(GraphMapLineTest, ErrorsOfTheTranslatedAlertKeepTheTranslation) {
  // A date that is not ISO 8601: the mapper's error document holds the translated alert.
  const std::string alert = graphAlert()
                                .str("id", "dbad")
                                .str("lastUpdateDateTime", "yesterday")
                                .evidence({fileEvidence()})
                                .json();
  const Mapped graph = mapGraph({alert});
  ASSERT_EQ(graph.docs.size(), 1u);
  EXPECT_TRUE(graph.docs[0].error);
  const JsonDoc original(graph.doc(0).getString("event.original").value_or(""));
  ASSERT_TRUE(original.valid());
  EXPECT_EQ(original.getString("lastUpdateTime"), "yesterday");
  EXPECT_EQ(original.getString("aadTenantId"), kTenant);
  EXPECT_EQ(original.getString("evidence.entityType"), "File");
}

TEST(GraphMapLineTest, PreserveOriginalEventHoldsTheTranslatedAlert) {
  MapOptions options;
  options.preserve_original_event = true;
  const std::string alert = fullAlert(kAlertId).json();
  const Mapped graph = mapGraph({alert}, options);
  ASSERT_EQ(graph.docs.size(), 3u);
  expectSameDocuments(graph, mapDefender(*translate(alert), options));
  const JsonDoc original(graph.doc(1).getString("event.original").value_or(""));
  ASSERT_TRUE(original.valid());
  EXPECT_EQ(original.getString("machineId"), kDeviceId);
  EXPECT_EQ(original.getString("evidence.entityType"), "Process");
  EXPECT_EQ(original.getString("evidence.fileName"), "rundll32.exe");
  EXPECT_FALSE(original.has("evidence.@odata.type"));
  EXPECT_FALSE(original.has("tenantId"));
  EXPECT_EQ(graph.doc(1).getStrings("tags"),
            (Strings{"microsoft-defender-endpoint", "forwarded", "preserve_original_event"}));
}

TEST(GraphMapLineTest, AFileContextAddsLogFieldsToEveryDocument) {
  const std::string a1 = fullAlert("da1").json();
  const std::string a2 = fullAlert("da2").json();
  LineContext context;
  context.file_path = "/var/log/graph.ndjson";
  context.offset = 1234;
  const std::vector<std::string> lines = {a1, page({a1, a2}), page({a1, "42"}), "{broken"};
  for (const auto& line : lines) {
    const Mapped with_file = mapGraph({line}, MapOptions{}, context);
    const Mapped without = mapGraph({line});
    ASSERT_EQ(with_file.docs.size(), without.docs.size()) << line.substr(0, 100);
    ASSERT_FALSE(with_file.docs.empty());
    for (std::size_t i = 0; i < with_file.docs.size(); ++i) {
      const JsonDoc doc = with_file.doc(i);
      EXPECT_EQ(doc.getString("log.file.path"), "/var/log/graph.ndjson");
      EXPECT_EQ(doc.getInt("log.offset"), 1234);
      EXPECT_EQ(with_file.docs[i].id, without.docs[i].id);
      EXPECT_EQ(with_file.docs[i].error, without.docs[i].error);
      EXPECT_EQ(doc.getString("event.id"), without.doc(i).getString("event.id"));
      EXPECT_FALSE(without.doc(i).has("log"));
    }
  }
}

TEST(GraphMapLineTest, PaddedAndUnpaddedLinesGiveTheSameDocuments) {
  const std::string line = page({fullAlert("da1").json(), fullAlert("da2").json()});
  std::string buffer = line + std::string(kLinePadding, '}');  // padding that is not JSON
  LineContext padded;
  padded.padded = true;
  Mapper mapper(MapOptions{}, [] { return std::string(kNow); });
  GraphTranslator translator;
  CollectingSink sink;
  mapGraphLine(mapper, translator, std::string_view(buffer.data(), line.size()), padded, sink);
  const Mapped plain = mapGraph({line});
  ASSERT_EQ(sink.documents.size(), 6u);
  ASSERT_EQ(plain.docs.size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(sink.documents[i].json, plain.docs[i].json) << i;
}

TEST(GraphMapLineTest, PagesOfEveryShapeMapAsTheirTranslatedElements) {
  // Pages in many shapes, good and bad: mapGraphLine gives what the mapper gives for the
  // same line with every element translated (or kept, when it is no alert).
  const std::string a = fullAlert("da1").json();
  const std::string b = graphAlert().str("id", "d\\\"]}{[2").str("title", "\\\\").json();
  const std::vector<std::string> lines = {
      page({a, b}),
      page({b, b, b}),
      page({a}, R"(,"value":[])"),  // two value arrays
      R"({"value":[],"value":[)" + a + "]}",
      R"({"valuex":[)" + a + "]}",
      R"({"x":"\"value\":[)" + a + R"(]"})",
      R"({"value":[)" + a + ",]}",     // trailing comma
      R"({"value":[,)" + a + "]}",     // leading comma
      R"({"value":[)" + a + a + "]}",  // no comma
      R"({"value":[)" + a + ",," + a + "]}",
      R"({"value":[)" + a + "}",  // array not closed
      R"({"value":[)" + a + "]]}",
      R"({"value":[)" + a + "]} x",
      R"({"value":[)" + a + R"(,{"id":"\"})" + "]}",
      R"({"value":[{"id":"q","k":[1,{"a":"]"}]}]})",
      R"({"value" :[{"id":"q"}], "value":"v"})",
      R"({ "v":1 ,"value":[{"id":"q"}]})",
  };
  for (const auto& line : lines) {
    // The expected side: the line scanner's view, each element translated when it can be.
    mdec::ecs::ScanResult scan;
    mdec::ecs::scanLine(line, scan);
    std::string expected_line = line;
    if (scan.kind == mdec::ecs::ScanResult::Kind::kPage) {
      expected_line = "{\"value\":[";
      for (std::size_t i = 0; i < scan.elements.size(); ++i) {
        const std::string element = line.substr(scan.elements[i].begin, scan.elements[i].size());
        if (i > 0) expected_line += ",";
        expected_line += translate(element).value_or(element);
      }
      expected_line += "]}";
    } else if (scan.kind == mdec::ecs::ScanResult::Kind::kObject) {
      expected_line = translate(line).value_or(line);
    }
    SCOPED_TRACE(line.substr(0, 120));
    expectSameDocuments(mapGraph({line}), mapDefender(expected_line));
  }
}

TEST(GraphMapLineTest, AnAlertKeyThatUnescapesToValueStaysAnAlertKey) {
  // "val\u0075e" is no page key to scanLine (it compares raw text) but is "value" once parsed.
  const std::string alert = graphAlert().str("id", "dv").raw("val\\u0075e", "[1,2]").json();
  LineContext context;
  context.file_path = "/f";
  context.offset = 0;
  for (const LineContext& c : {LineContext{}, context}) {
    const Mapped graph = mapGraph({alert}, MapOptions{}, c);
    ASSERT_EQ(graph.docs.size(), 1u);
    EXPECT_FALSE(graph.docs[0].error);
    EXPECT_EQ(graph.doc(0).getString("event.id"), "dv");
    EXPECT_EQ(graph.doc(0).getJson(md("value")), "[1,2]");
  }
  const auto text = translate(alert);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->find("\"value\""), std::string::npos);
  EXPECT_EQ(JsonDoc(*text).getJson("value"), "[1,2]");
}

TEST(GraphMapLineTest, MutatedPagesGiveWhatTheLineScannerPathGives) {
  // Seeded random edits of a page (structural characters inserted, bytes deleted or
  // replaced): the documents are those of the line as scanLine reads it, each element
  // translated. Bounded: 400 lines.
  const std::string base =
      page({fullAlert("da1").json(),
            graphAlert().str("id", "d\\\"2").raw("x", R"({"value":[1,"]\\"]})").json(),
            fullAlert("da3").json()},
           R"(,"@odata.nextLink":"https://x/?a=\"]")");
  static constexpr char kInsert[] = "{}[],:\"\\ x0";
  std::uint64_t state = 42;
  auto next = [&state](std::uint64_t bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % bound;
  };
  int pages = 0;
  for (int round = 0; round < 400; ++round) {
    std::string line = base;
    const std::uint64_t edits = 1 + next(3);
    for (std::uint64_t e = 0; e < edits; ++e) {
      // Edits land near the structure more often than not: around the element boundaries.
      std::size_t at = static_cast<std::size_t>(next(line.size()));
      if (next(2) == 0) {
        const std::size_t hot = line.find("},{", static_cast<std::size_t>(next(line.size())));
        if (hot != std::string::npos) at = hot + static_cast<std::size_t>(next(3));
      }
      const char c = kInsert[next(sizeof(kInsert) - 1)];
      switch (next(3)) {
        case 0:
          line.insert(at, 1, c);
          break;
        case 1:
          line.erase(at, 1);
          break;
        default:
          line[at] = c;
          break;
      }
    }
    mdec::ecs::ScanResult scan;
    mdec::ecs::scanLine(line, scan);
    std::string expected_line = line;
    if (scan.kind == mdec::ecs::ScanResult::Kind::kPage) {
      ++pages;
      expected_line = "{\"value\":[";
      for (std::size_t i = 0; i < scan.elements.size(); ++i) {
        const std::string element = line.substr(scan.elements[i].begin, scan.elements[i].size());
        if (i > 0) expected_line += ",";
        expected_line += translate(element).value_or(element);
      }
      expected_line += "]}";
    } else if (scan.kind == mdec::ecs::ScanResult::Kind::kObject) {
      expected_line = translate(line).value_or(line);
    }
    SCOPED_TRACE("round " + std::to_string(round) + ": " + line);
    const Mapped graph = mapGraph({line});
    expectSameDocuments(graph, mapDefender(expected_line));
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(pages, 50);  // many edits leave a page (82 with this seed)
}

}  // namespace
