// The Graph incident -> m365_defender.incident mapper (/work/shared/spec/incidents.md §4, §5),
// one rule at a time.
#include "mdecollect/ecs/incident_mapper.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/json_compare.h"

namespace {

using mdec::ecs::elasticFingerprint;
using mdec::ecs::incidentFingerprint;
using mdec::ecs::IncidentFingerprintInput;
using mdec::ecs::IncidentMapOptions;
using mdec::ecs::IncidentMapper;
using mdec::ecs::kLinePadding;
using mdec::ecs::LineContext;
using mdec::ecs::LineStats;
using mdec::testing::JsonDoc;
using Strings = std::vector<std::string>;

constexpr char kNow[] = "2030-01-02T03:04:05.678Z";

// A document as the mapper handed it over, with the seen-set key.
struct CollectedDocument {
  std::string id;
  std::string json;
  bool error = false;
  std::string alert_id;
  std::string last_update_time;
  std::uint32_t evidence_index = 0;
};

class CollectingSink final : public mdec::ecs::DocumentSink {
 public:
  void onDocument(const mdec::ecs::DocumentView& doc) override {
    documents.push_back({std::string(doc.id), std::string(doc.json), doc.error,
                         std::string(doc.alert_id), std::string(doc.last_update_time),
                         doc.evidence_index});
  }
  std::vector<CollectedDocument> documents;
};

// A small incident; `alerts` is the raw JSON of its "alerts" member, or empty for none.
std::string incident(std::string_view alerts, std::string_view extra = "") {
  std::string s = R"({"id":"42","tenantId":"t-1","displayName":"Incident 42",)"
                  R"("incidentWebUrl":"https://security.microsoft.com/incidents/42?tid=t-1",)"
                  R"("createdDateTime":"2024-05-01T10:00:00.1234567Z",)"
                  R"("lastUpdateDateTime":"2024-05-02T11:22:33.9876543Z",)"
                  R"("assignedTo":"ann@contoso.com","severity":"medium","status":"active")";
  s += extra;
  if (!alerts.empty()) {
    s += R"(,"alerts":)";
    s += alerts;
  }
  s += "}";
  return s;
}

std::string alert(std::string_view id, std::string_view evidence = "[]") {
  std::string s = R"({"id":")";
  s += id;
  s +=
      R"(","lastUpdateDateTime":"2024-05-02T09:00:00Z","serviceSource":"microsoftDefenderForEndpoint",)";
  s += R"("category":"Execution","mitreTechniques":["T1059"],"evidence":)";
  s += evidence;
  s += "}";
  return s;
}

std::vector<CollectedDocument> mapLine(std::string_view line, IncidentMapOptions options = {},
                                       LineStats* stats = nullptr) {
  IncidentMapper mapper(std::move(options), [] { return std::string(kNow); });
  CollectingSink sink;
  const LineStats s = mapper.mapLine(line, LineContext{}, sink);
  if (stats != nullptr) *stats = s;
  return std::move(sink.documents);
}

IncidentMapOptions preserveAll() {
  IncidentMapOptions o;
  o.preserve_original_event = true;
  o.preserve_duplicate_custom_fields = true;
  return o;
}

std::optional<Strings> errors(const CollectedDocument& d) {
  return JsonDoc(d.json).getStrings("error.message");
}

bool anyContains(const std::optional<Strings>& messages, std::string_view needle) {
  if (!messages) return false;
  for (const auto& m : *messages) {
    if (m.find(needle) != std::string::npos) return true;
  }
  return false;
}

// ---- Split (§4.1) ----

TEST(IncidentMapperTest, AnIncidentWithoutAlertsGivesOneDocument) {
  for (const std::string& line : {incident(""), incident("null"), incident("[]"),
                                  std::string(R"({"value":[)") + incident("[]") + "]}"}) {
    const auto docs = mapLine(line, preserveAll());
    ASSERT_EQ(docs.size(), 1u) << line;
    const JsonDoc doc(docs[0].json);
    EXPECT_EQ(doc.getString("event.kind"), "alert") << line;
    EXPECT_FALSE(doc.has("m365_defender.incident.alert")) << line;
    EXPECT_EQ(doc.getString("event.id"), "42");
    // The original is the incident as received.
    const JsonDoc original(*doc.getString("event.original"));
    EXPECT_EQ(original.getString("id"), "42");
    EXPECT_EQ(docs[0].alert_id, "42");
    EXPECT_EQ(docs[0].last_update_time, "2024-05-02T11:22:33.9876543Z");
  }
}

TEST(IncidentMapperTest, OneDocumentPerAlertInOrderEachWithItsOneAlertAsOriginal) {
  const std::string line =
      incident("[" + alert("a1") + "," + alert("a2") + "," + alert("a3") + "]");
  LineStats stats;
  const auto docs = mapLine(line, preserveAll(), &stats);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(stats.documents, 3u);
  EXPECT_EQ(stats.errors, 0u);
  const char* ids[] = {"a1", "a2", "a3"};
  for (std::size_t i = 0; i < 3; ++i) {
    const JsonDoc doc(docs[i].json);
    EXPECT_EQ(doc.getString("m365_defender.incident.alert.id"), ids[i]);
    const JsonDoc original(*doc.getString("event.original"));
    EXPECT_EQ(original.type("alerts"), "object") << i;  // the one alert, not an array
    EXPECT_EQ(original.getString("alerts.id"), ids[i]);
    EXPECT_EQ(original.getString("id"), "42");
    EXPECT_EQ(docs[i].alert_id, "42");  // the incident version is the seen-set key
    EXPECT_EQ(docs[i].evidence_index, i);
    EXPECT_EQ(docs[i].last_update_time, "2024-05-02T11:22:33.9876543Z");
  }
  EXPECT_NE(docs[0].id, docs[1].id);
  EXPECT_NE(docs[1].id, docs[2].id);
}

TEST(IncidentMapperTest, EmptyPagesAndBlankLinesGiveNothing) {
  EXPECT_TRUE(mapLine(R"({"value":[]})").empty());
  EXPECT_TRUE(mapLine(R"({"@odata.context":"x","value":[]})").empty());
  EXPECT_TRUE(mapLine("   ").empty());
  EXPECT_TRUE(mapLine("").empty());
}

TEST(IncidentMapperTest, APageGivesEveryIncidentInOrder) {
  const std::string line =
      std::string(R"({"value":[)") + incident("[" + alert("a1") + "]") + "," + incident("") + "]}";
  const auto docs = mapLine(line);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(JsonDoc(docs[0].json).getString("m365_defender.incident.alert.id"), "a1");
  EXPECT_FALSE(JsonDoc(docs[1].json).has("m365_defender.incident.alert"));
}

TEST(IncidentMapperTest, OriginalOnlyWithTheOptionAndTagsInOrder) {
  const auto plain = mapLine(incident(""));
  ASSERT_EQ(plain.size(), 1u);
  const JsonDoc doc(plain[0].json);
  EXPECT_FALSE(doc.has("event.original"));
  EXPECT_EQ(doc.getStrings("tags"), (Strings{"forwarded", "m365_defender-incident"}));
  EXPECT_EQ(doc.getString("data_stream.dataset"), "m365_defender.incident");
  EXPECT_EQ(doc.getString("data_stream.namespace"), "default");
  EXPECT_EQ(doc.getString("data_stream.type"), "logs");
  EXPECT_EQ(doc.getString("event.dataset"), "m365_defender.incident");
  EXPECT_EQ(doc.getString("ecs.version"), "8.11.0");
  EXPECT_FALSE(doc.has("event.module"));
  const auto kept = mapLine(incident(""), preserveAll());
  EXPECT_EQ(JsonDoc(kept[0].json).getStrings("tags"),
            (Strings{"preserve_original_event", "preserve_duplicate_custom_fields", "forwarded",
                     "m365_defender-incident"}));
}

// ---- Fingerprints (§5.1) ----

TEST(IncidentMapperTest, FingerprintsMatchElasticsOwnIds) {
  const std::string a_id = "da637551227677560813_-961444813";
  const std::string a_lut = "2021-05-02T14:19:01.3266667Z";
  const std::string created = "2020-08-13T08:43:35.5533333Z";
  const std::string id = "2872395";
  const std::string url =
      "https://security.microsoft.com/incidents/2972395?tid=12f988bf-16f1-11af-11ab-1d7cd011db47";
  const std::string lut = "2021-09-29T09:35:45.1133333Z";
  EXPECT_EQ(incidentFingerprint({&a_id, &a_lut, &created, &id, &url, &lut}),
            "3AD3zEf4F1YpVMasYuPT/BybzAo=");

  const std::string a_id3 = "fa2d9ab3ff-f4e5-5c4c-5600-08db54ecb349";
  const std::string a_lut3 = "2023-05-15T02:37:41.96Z";
  const std::string created3 = "2023-05-15T02:37:40.3966667Z";
  const std::string id3 = "1924";
  const std::string url3 =
      "https://security.microsoft.com/incidents/1924?tid=f65ad163-1b89-0000-b2a7-e70409495256";
  const std::string lut3 = "2023-05-15T02:37:40.5933333Z";
  EXPECT_EQ(incidentFingerprint({&a_id3, &a_lut3, &created3, &id3, &url3, &lut3}),
            "g4LqZt3xrYWcf+3Q/2mJq39JJ2I=");
  // The entity_id example of §4.3.
  EXPECT_EQ(elasticFingerprint({"4780|2021-08-12T12:43:19.077Z|"
                                "73e7e2de709dff64ef64b1d0c30e67fab63279db"}),
            "GdecP48p4oFdVJ7+AU6JJ5JokMc=");
}

TEST(IncidentMapperTest, TheDocumentIdIsTheFingerprintOfTheRawStrings) {
  const std::string created = "2024-05-01T10:00:00.1234567Z";
  const std::string id = "42";
  const std::string url = "https://security.microsoft.com/incidents/42?tid=t-1";
  const std::string lut = "2024-05-02T11:22:33.9876543Z";
  const std::string a_id = "a1";
  const std::string a_lut = "2024-05-02T09:00:00Z";

  const auto none = mapLine(incident(""));
  ASSERT_EQ(none.size(), 1u);
  IncidentFingerprintInput no_alert;
  no_alert.created = &created;
  no_alert.id = &id;
  no_alert.web_url = &url;
  no_alert.last_update = &lut;
  EXPECT_EQ(none[0].id, incidentFingerprint(no_alert));
  EXPECT_EQ(none[0].id.size(), 28u);

  const auto one = mapLine(incident("[" + alert("a1") + "]"));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].id, incidentFingerprint({&a_id, &a_lut, &created, &id, &url, &lut}));
  // The same snapshot gives the same id; a new incident version a new one.
  EXPECT_EQ(mapLine(incident("[" + alert("a1") + "]"))[0].id, one[0].id);
  std::string newer = incident("[" + alert("a1") + "]");
  newer.replace(newer.find("11:22:33"), 8, "11:22:34");
  EXPECT_NE(mapLine(newer)[0].id, one[0].id);
}

// ---- Fields ----

TEST(IncidentMapperTest, TimestampIsTheIncidentUpdateTruncatedToMilliseconds) {
  const auto docs = mapLine(incident("[" + alert("a1") + "]"));
  ASSERT_EQ(docs.size(), 1u);
  const JsonDoc doc(docs[0].json);
  EXPECT_EQ(doc.getString("@timestamp"), "2024-05-02T11:22:33.987Z");
  EXPECT_EQ(doc.getString("event.created"), "2024-05-01T10:00:00.123Z");
  // No incident update time: the time the document was made.
  const auto none = mapLine(R"({"id":"1"})");
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(JsonDoc(none[0].json).getString("@timestamp"), kNow);
}

TEST(IncidentMapperTest, EventSeverityComesFromTheIncidentOnly) {
  struct Case {
    const char* severity;
    std::optional<std::int64_t> expected;
    const char* lowered;
  };
  const Case cases[] = {
      {"low", 21, "low"},
      {"Informational", 21, "informational"},
      {"medium", 47, "medium"},
      {"HIGH", 73, "high"},
      {"critical", 99, "critical"},
      {"unknown", std::nullopt, "unknown"},
      {"unknownFutureValue", std::nullopt, "unknownfuturevalue"},
  };
  for (const Case& c : cases) {
    std::string line = incident("[" + alert("a1") + "]");
    line.replace(line.find(R"("severity":"medium")"), 19,
                 std::string(R"("severity":")") + c.severity + "\"");
    const auto docs = mapLine(line, preserveAll());
    ASSERT_EQ(docs.size(), 1u);
    const JsonDoc doc(docs[0].json);
    EXPECT_EQ(doc.getInt("event.severity"), c.expected) << c.severity;
    EXPECT_EQ(doc.getString("m365_defender.incident.severity"), c.lowered) << c.severity;
    // The alert's own severity is not used.
    EXPECT_EQ(doc.has("m365_defender.incident.alert.severity"), false);
  }
}

TEST(IncidentMapperTest, CustomTagsStandInForTheBetaTagsName) {
  const auto custom = mapLine(incident("", R"(,"customTags":["ops","eu"])"));
  EXPECT_EQ(JsonDoc(custom[0].json).getStrings("m365_defender.incident.tags"),
            (Strings{"ops", "eu"}));
  const auto both = mapLine(incident("", R"(,"tags":["beta"],"customTags":["ops"])"));
  EXPECT_EQ(JsonDoc(both[0].json).getStrings("m365_defender.incident.tags"), (Strings{"beta"}));
  const auto system = mapLine(incident("", R"(,"systemTags":["sys"],"description":"d")"));
  EXPECT_FALSE(JsonDoc(system[0].json).has("m365_defender.incident.tags"));
  EXPECT_FALSE(JsonDoc(system[0].json).has("m365_defender.incident.description"));
}

TEST(IncidentMapperTest, AssigneeGivesSourceUserAndRelatedUser) {
  const auto docs = mapLine(incident(""));
  const JsonDoc doc(docs[0].json);
  EXPECT_EQ(doc.getString("source.user.name"), "ann");
  EXPECT_EQ(doc.getString("source.user.domain"), "contoso.com");
  EXPECT_EQ(doc.getString("source.user.email"), "ann@contoso.com");
  EXPECT_EQ(doc.getStrings("related.user"), (Strings{"ann", "ann@contoso.com"}));
  std::string plain = incident("");
  plain.replace(plain.find("ann@contoso.com"), 15, "Ann Smith");
  const JsonDoc p(mapLine(plain)[0].json);
  EXPECT_EQ(p.getString("source.user.name"), "Ann Smith");
  EXPECT_FALSE(p.has("source.user.email"));
  EXPECT_FALSE(p.has("source.user.domain"));
}

TEST(IncidentMapperTest, DuplicateCustomFieldsOffRemovesThem) {
  const std::string evidence =
      R"([{"@odata.type":"#microsoft.graph.security.processEvidence","processId":4780,)"
      R"("processCreationDateTime":"2021-08-12T12:43:19.0772577Z","processCommandLine":"a.exe x",)"
      R"("mdeDeviceId":"dev","detectionStatus":"detected","ipAddress":"10.0.0.1",)"
      R"("imageFile":{"sha1":"s1","fileName":"a.exe","filePath":"C:\\w"},)"
      R"("loggedOnUsers":[{"accountName":"bob","domainName":"D"}]}])";
  const std::string line = incident("[" + alert("a1", evidence) + "]");
  const JsonDoc off(mapLine(line)[0].json);
  for (const char* gone :
       {"m365_defender.incident.last_update_datetime", "m365_defender.incident.tenant_id",
        "m365_defender.incident.created_datetime", "m365_defender.incident.id",
        "m365_defender.incident.web_url", "m365_defender.incident.assigned_to",
        "m365_defender.incident.alert.service_source", "m365_defender.incident.alert.category",
        "m365_defender.incident.alert.mitre_techniques"}) {
    EXPECT_FALSE(off.has(gone)) << gone;
  }
  // The ECS copies stay.
  EXPECT_EQ(off.getString("event.id"), "42");
  EXPECT_EQ(off.getString("cloud.account.id"), "t-1");
  EXPECT_EQ(off.getStrings("threat.tactic.name"), (Strings{"Execution"}));
  EXPECT_EQ(off.getStrings("process.command_line"), (Strings{"a.exe x"}));
  EXPECT_EQ(off.getString("process.name"), "a.exe");
  const JsonDoc on(mapLine(line, preserveAll())[0].json);
  EXPECT_EQ(on.getString("m365_defender.incident.id"), "42");
  EXPECT_EQ(on.getString("m365_defender.incident.alert.category"), "Execution");
  // In the evidence: the raw text is searched because JsonDoc has no array indexes.
  const std::string off_json = mapLine(line)[0].json;
  const std::string on_json = mapLine(line, preserveAll())[0].json;
  for (const char* key : {"\"ip_address\"", "\"detection_status\"", "\"account_name\"",
                          "\"creation_datetime\"", "\"command_line\":\"a.exe x\""}) {
    EXPECT_NE(on_json.find(key), std::string::npos) << key;
    EXPECT_EQ(off_json.find(key), std::string::npos) << key;
  }
  EXPECT_EQ(off.type("m365_defender.incident.alert.evidence"), "array");
  // As in Elastic's pipeline, the tag alone keeps them too.
  IncidentMapOptions tagged;
  tagged.tags = {"preserve_duplicate_custom_fields", "forwarded"};
  const JsonDoc by_tag(mapLine(line, tagged)[0].json);
  EXPECT_EQ(by_tag.getString("m365_defender.incident.id"), "42");
  EXPECT_EQ(by_tag.getStrings("tags"), (Strings{"preserve_duplicate_custom_fields", "forwarded"}));
}

TEST(IncidentMapperTest, ProcessEntityIdIsTheFingerprintOfPidTimeAndDevice) {
  const std::string evidence =
      R"([{"@odata.type":"#microsoft.graph.security.processEvidence","processId":4780,)"
      R"("processCreationDateTime":"2021-08-12T12:43:19.0772577Z",)"
      R"("mdeDeviceId":"73e7e2de709dff64ef64b1d0c30e67fab63279db","parentProcessId":"668",)"
      R"("parentProcessCreationDateTime":"2021-08-12T07:39:09.0909239Z"}])";
  const JsonDoc doc(mapLine(incident("[" + alert("a1", evidence) + "]"))[0].json);
  EXPECT_EQ(doc.getStrings("process.entity_id"), (Strings{"GdecP48p4oFdVJ7+AU6JJ5JokMc="}));
  EXPECT_EQ(doc.getStrings("process.parent.entity_id"), (Strings{"AJts3MYV1Rb50FPjg7N4xdSt+rg="}));
  EXPECT_EQ(doc.type("process.pid"), "array");
  EXPECT_EQ(doc.getStrings("process.start"), (Strings{"2021-08-12T12:43:19.077Z"}));
}

// ---- Errors (§4.5) ----

TEST(IncidentMapperTest, FieldsThatDoNotConvertKeepTheDocumentAndAddAMessage) {
  const std::string evidence =
      R"([{"@odata.type":"#microsoft.graph.security.processEvidence","processId":"abc",)"
      R"("ipAddress":"999.1.1.1","mdeDeviceId":"d"},)"
      R"({"@odata.type":"#microsoft.graph.security.mailMessageEvidence","senderIp":"nope",)"
      R"("attachmentsCount":"1.5"}])";
  std::string line = incident("[" + alert("a1", evidence) + "]");
  line.replace(line.find("https://security.microsoft.com/incidents/42?tid=t-1"), 51,
               "http://exa mple.com/");
  LineStats stats;
  const auto docs = mapLine(line, preserveAll(), &stats);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_FALSE(docs[0].error);
  EXPECT_EQ(stats.errors, 0u);
  const JsonDoc doc(docs[0].json);
  EXPECT_EQ(doc.getString("event.kind"), "alert");
  const auto messages = errors(docs[0]);
  ASSERT_TRUE(messages.has_value());
  EXPECT_TRUE(anyContains(messages, "incidentWebUrl")) << docs[0].json;
  EXPECT_TRUE(anyContains(messages, "processId"));
  EXPECT_TRUE(anyContains(messages, "ipAddress"));
  EXPECT_TRUE(anyContains(messages, "senderIp"));
  EXPECT_TRUE(anyContains(messages, "attachmentsCount"));
  EXPECT_FALSE(doc.has("m365_defender.incident.web_url"));
  EXPECT_FALSE(doc.has("event.url"));
  EXPECT_FALSE(doc.has("process.pid"));
  EXPECT_FALSE(doc.has("related.ip"));
  EXPECT_EQ(docs[0].json.find("\"processId\""), docs[0].json.rfind("\"processId\""));
  // The rest of the document is there.
  EXPECT_EQ(doc.getString("event.id"), "42");
  EXPECT_EQ(doc.getString("m365_defender.incident.alert.id"), "a1");
}

TEST(IncidentMapperTest, InvalidEvidenceDatesAreDroppedSilently) {
  const std::string evidence =
      R"([{"@odata.type":"#microsoft.graph.security.ipEvidence","createdDateTime":"yesterday",)"
      R"("ipAddress":"10.1.2.3"}])";
  const auto docs = mapLine(incident("[" + alert("a1", evidence) + "]"));
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_FALSE(errors(docs[0]).has_value()) << docs[0].json;
  EXPECT_EQ(docs[0].json.find("yesterday"), std::string::npos);
  EXPECT_EQ(JsonDoc(docs[0].json).getStrings("related.ip"), (Strings{"10.1.2.3"}));
}

void expectErrorDocument(const CollectedDocument& d, std::string_view original_part) {
  EXPECT_TRUE(d.error);
  const JsonDoc doc(d.json);
  ASSERT_TRUE(doc.valid()) << d.json;
  EXPECT_EQ(doc.getString("event.kind"), "pipeline_error");
  const auto original = doc.getString("event.original");
  ASSERT_TRUE(original.has_value());
  EXPECT_NE(original->find(original_part), std::string::npos) << *original;
  const auto messages = errors(d);
  ASSERT_TRUE(messages.has_value());
  EXPECT_FALSE(messages->empty());
  EXPECT_EQ(doc.getStrings("tags"),
            (Strings{"preserve_original_event", "forwarded", "m365_defender-incident"}));
  EXPECT_EQ(doc.getString("@timestamp"), kNow);
  EXPECT_EQ(doc.getString("data_stream.dataset"), "m365_defender.incident");
  EXPECT_EQ(doc.getString("event.dataset"), "m365_defender.incident");
  EXPECT_EQ(doc.getString("ecs.version"), "8.11.0");
  EXPECT_EQ(d.id.size(), 28u);
}

TEST(IncidentMapperTest, ALineThatIsNotJsonIsOneErrorDocumentKeepingTheText) {
  LineStats stats;
  const auto docs = mapLine("{\"id\": not json \xff", {}, &stats);
  ASSERT_EQ(docs.size(), 1u);
  expectErrorDocument(docs[0], "not json");
  EXPECT_EQ(stats.errors, 1u);
  EXPECT_EQ(docs[0].id, elasticFingerprint({"{\"id\": not json \xff"}));
  EXPECT_TRUE(docs[0].alert_id.empty());
}

TEST(IncidentMapperTest, AnIncidentThatIsNotAnObjectIsAnErrorDocument) {
  const auto docs = mapLine(R"({"value":[17,)" + incident("") + "]}");
  ASSERT_EQ(docs.size(), 2u);
  expectErrorDocument(docs[0], "17");
  EXPECT_FALSE(docs[1].error);
  const auto scalar = mapLine(R"("just a string")");
  ASSERT_EQ(scalar.size(), 1u);
  expectErrorDocument(scalar[0], "just a string");
  const auto bad_page = mapLine(R"({"value":{"id":"1"}})");
  ASSERT_EQ(bad_page.size(), 1u);
  expectErrorDocument(bad_page[0], "value");
}

TEST(IncidentMapperTest, AnAlertThatIsNotAnObjectIsAnErrorDocumentTheOthersStay) {
  const auto docs = mapLine(incident("[" + alert("a1") + R"(,"oops"])"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_FALSE(docs[0].error);
  expectErrorDocument(docs[1], "oops");
  EXPECT_EQ(docs[1].alert_id, "42");  // the incident version is still known
}

TEST(IncidentMapperTest, EvidenceThatIsNotAnArrayIsAnErrorDocument) {
  const auto docs = mapLine(incident("[" + alert("a1", R"("not-a-list")") + "]"));
  ASSERT_EQ(docs.size(), 1u);
  expectErrorDocument(docs[0], "not-a-list");
}

// ---- §5.3: alerts not obtainable ----

TEST(IncidentMapperTest, MapWithoutAlertsGivesOneIncidentDocumentWithTheReason) {
  IncidentMapper mapper(preserveAll(), [] { return std::string(kNow); });
  CollectingSink sink;
  const std::string text = incident("[" + alert("a1") + "," + alert("a2") + "]");
  const LineStats stats = mapper.mapWithoutAlerts(text, "HTTP 500", sink);
  ASSERT_EQ(sink.documents.size(), 1u);
  EXPECT_EQ(stats.documents, 1u);
  EXPECT_EQ(stats.errors, 0u);
  const auto& d = sink.documents[0];
  EXPECT_FALSE(d.error);
  const JsonDoc doc(d.json);
  EXPECT_EQ(doc.getString("event.kind"), "alert");
  EXPECT_FALSE(doc.has("m365_defender.incident.alert"));
  EXPECT_EQ(doc.getStrings("error.message"), (Strings{"alerts could not be fetched: HTTP 500"}));
  EXPECT_EQ(d.id, mapLine(incident(""))[0].id);  // the no-alert fingerprint
  EXPECT_EQ(d.alert_id, "42");
  const JsonDoc original(*doc.getString("event.original"));
  EXPECT_FALSE(original.has("alerts"));
}

TEST(IncidentMapperTest, MapElementNeedsNoScan) {
  IncidentMapper mapper(IncidentMapOptions{}, [] { return std::string(kNow); });
  CollectingSink sink;
  std::string text = incident("[" + alert("a1") + "]");
  const std::size_t size = text.size();
  text.append(kLinePadding, '\0');
  mapper.mapElement(std::string_view(text.data(), size), sink);
  ASSERT_EQ(sink.documents.size(), 1u);
  EXPECT_EQ(JsonDoc(sink.documents[0].json).getString("m365_defender.incident.alert.id"), "a1");
}

TEST(IncidentMapperTest, HostileShapesNeverCrash) {
  const char* lines[] = {
      R"({"alerts":[{"evidence":[{"loggedOnUsers":"x","fileDetails":5,"imageFile":[1]}]}]})",
      R"({"id":5,"lastUpdateDateTime":7,"severity":3,"assignedTo":["a"],"comments":"c"})",
      R"({"alerts":[{"evidence":[null,1,"s",[],{}]}],"tags":null,"customTags":"x"})",
      R"({"alerts":{"id":"single"}})",
      R"({"alerts":5})",
      R"({"value":[[],null,{}]})",
      R"({"assignedTo":"@@@x@","alerts":[{"evidence":[{"processCommandLine":"   "}]}]})",
  };
  for (const char* line : lines) {
    const auto docs = mapLine(line, preserveAll());
    EXPECT_FALSE(docs.empty()) << line;
    for (const auto& d : docs) EXPECT_TRUE(JsonDoc(d.json).valid()) << d.json;
  }
}

}  // namespace
