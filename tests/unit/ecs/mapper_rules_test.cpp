// The alert -> ECS mapper against its contract (/work/shared/spec/mapping.md), one rule at a
// time: small alerts built here, documents parsed back and checked field by field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "mdecollect/ecs/mapper.h"
#include "support/json_compare.h"

namespace {

using mdec::ecs::documentId;
using mdec::ecs::kLinePadding;
using mdec::ecs::LineContext;
using mdec::ecs::LineStats;
using mdec::ecs::MapOptions;
using mdec::ecs::Mapper;
using mdec::testing::CollectedDocument;
using mdec::testing::CollectingSink;
using mdec::testing::diffEcsDocuments;
using mdec::testing::diffJson;
using mdec::testing::joinLines;
using mdec::testing::JsonDoc;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;
using Strings = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// Building alerts

constexpr char kNow[] = "2030-01-02T03:04:05.678Z";  // what the injected clock says
constexpr char kAlertId[] = "da638977756323456770_-1587340120";
constexpr char kCreated[] = "2025-11-03T14:07:14.1187425Z";
constexpr char kEventTime[] = "2025-11-03T14:06:58.27891Z";
constexpr char kLastUpdate[] = "2025-11-03T15:35:02.0566667Z";
constexpr char kMachineId[] = "4a9be1f0c7d25e36b08f9d11e2c3a7b6f5d40812";
constexpr char kTenant[] = "3f1b8c2e-6d4a-4e57-9a0b-1c2d3e4f5a6b";
constexpr char kDescription[] =
    "PowerShell ran with an encoded, hidden command line on this device.\nReview the process tree.";
constexpr char kSha1[] = "6cbce4a295c163791b60fc23d285e6d84f28ee4c";
constexpr char kSha256[] = "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c";
constexpr char kSid[] = "S-1-5-21-1004336348-1177238915-682003330-512";
constexpr char kDataset[] = "microsoft_defender_endpoint.log";
constexpr char kModule[] = "microsoft_defender_endpoint";
constexpr char kMd[] = "microsoft.defender_endpoint";

std::string md(std::string_view key) { return std::string(kMd) + "." + std::string(key); }

// A JSON string literal for text (UTF-8 passed through).
std::string quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20) {
      out += "\\u00";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

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
  Obj& str(std::string_view key, std::string_view value) { return raw(key, quote(value)); }
  Obj& num(std::string_view key, std::int64_t value) { return raw(key, std::to_string(value)); }
  Obj& null(std::string_view key) { return raw(key, "null"); }
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
  Obj& evidence(const Obj& one) { return raw("evidence", one.json()); }

  std::string json() const {
    std::string out = "{";
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      if (i > 0) out += ",";
      out += quote(fields_[i].first) + ":" + fields_[i].second;
    }
    return out + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// The rules fixture's first alert, without its evidence.
Obj baseAlert() {
  Obj alert;
  alert.str("id", kAlertId)
      .num("incidentId", 48213)
      .null("investigationId")
      .null("assignedTo")
      .str("severity", "Medium")
      .str("status", "New")
      .null("classification")
      .null("determination")
      .str("investigationState", "UnsupportedAlertType")
      .str("detectionSource", "WindowsDefenderAtp")
      .str("detectorId", "7f1c3609-a3ff-40e2-995b-c01770161d68")
      .str("category", "Execution")
      .null("threatFamilyName")
      .str("title", "Suspicious PowerShell command line")
      .str("description", kDescription)
      .str("alertCreationTime", kCreated)
      .str("firstEventTime", kEventTime)
      .str("lastEventTime", kEventTime)
      .str("lastUpdateTime", kLastUpdate)
      .null("resolvedTime")
      .str("machineId", kMachineId)
      .str("computerDnsName", "wks-0142.corp.contoso.com")
      .str("rbacGroupName", "Workstations-EU")
      .str("aadTenantId", kTenant)
      .null("threatName")
      .raw("mitreTechniques", R"(["T1059.001"])")
      .raw("relatedUser", R"({"userName":"jdoe","domainName":"CONTOSO"})")
      .raw("comments", "[]");
  return alert;
}

// An evidence object with every key the API sends, all null but entityType.
Obj evidenceOf(std::string_view entity_type) {
  static constexpr const char* kKeys[] = {"entityType",
                                          "evidenceCreationTime",
                                          "sha1",
                                          "sha256",
                                          "fileName",
                                          "filePath",
                                          "processId",
                                          "processCommandLine",
                                          "processCreationTime",
                                          "parentProcessId",
                                          "parentProcessCreationTime",
                                          "parentProcessFileName",
                                          "parentProcessFilePath",
                                          "ipAddress",
                                          "url",
                                          "registryKey",
                                          "registryHive",
                                          "registryValueType",
                                          "registryValue",
                                          "accountName",
                                          "domainName",
                                          "userSid",
                                          "aadUserId",
                                          "userPrincipalName",
                                          "detectionStatus"};
  Obj evidence;
  for (const char* key : kKeys) evidence.null(key);
  evidence.str("entityType", entity_type);
  return evidence;
}

Obj processEvidence() {
  return evidenceOf("Process")
      .str("sha256", kSha256)
      .str("fileName", "powershell.exe")
      .str("filePath", R"(C:\Windows\System32\WindowsPowerShell\v1.0)")
      .num("processId", 7312)
      .str("processCommandLine", "powershell.exe -nop -w hidden -enc SQBFAFgA")
      .str("processCreationTime", "2025-11-03T14:06:58.1023344Z")
      .num("parentProcessId", 5120)
      .str("parentProcessCreationTime", "2025-11-03T08:12:40.6677001Z")
      .str("parentProcessFileName", "explorer.exe")
      .str("parentProcessFilePath", R"(C:\Windows)");
}

Obj fileEvidence() {
  return evidenceOf("File")
      .str("sha1", kSha1)
      .str("fileName", "invoice.docm")
      .str("filePath", R"(C:\Users\jdoe\Downloads)")
      .str("detectionStatus", "Detected");
}

Obj userEvidence() {
  return evidenceOf("User")
      .str("accountName", "jdoe")
      .str("domainName", "CONTOSO")
      .str("userSid", kSid)
      .str("aadUserId", "11118379-2a59-1111-ac3c-a51eb4a3c627")
      .str("userPrincipalName", "jdoe@contoso.com");
}

Obj urlEvidence(std::string_view url) {
  return evidenceOf("Url").str("url", url).str("evidenceCreationTime", "2025-11-03T14:07:14.35Z");
}

Obj ipEvidence(std::string_view ip) { return evidenceOf("Ip").str("ipAddress", ip); }

std::string page(const std::vector<std::string>& alerts) {
  std::string json =
      R"({"@odata.context":"https://api.security.microsoft.com/api/$metadata#Alerts","value":[)";
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    if (i > 0) json += ",";
    json += alerts[i];
  }
  return json + "]}";
}

MapOptions preserveOn() {
  MapOptions options;
  options.preserve_original_event = true;
  return options;
}

// ---------------------------------------------------------------------------------------------
// Mapping and looking at the result

struct Mapped {
  LineStats stats;
  std::vector<CollectedDocument> docs;

  JsonDoc doc(std::size_t i) const { return JsonDoc(i < docs.size() ? docs[i].json : "null"); }
};

Mapped mapText(std::string_view line, MapOptions options = {}, LineContext context = {}) {
  Mapper mapper(std::move(options), [] { return std::string(kNow); });
  CollectingSink sink;
  Mapped out;
  out.stats = mapper.mapLine(line, context, sink);
  out.docs = std::move(sink.documents);
  return out;
}

std::string head(std::string_view text) { return std::string(text.substr(0, 400)); }

// Maps a line that must give exactly one alert document.
JsonDoc mapAlert(std::string_view line, MapOptions options = {}, LineContext context = {}) {
  const Mapped mapped = mapText(line, std::move(options), context);
  EXPECT_EQ(mapped.docs.size(), 1u) << "line: " << head(line);
  if (!mapped.docs.empty() && mapped.docs[0].error) {
    ADD_FAILURE() << "unexpected error document: " << mapped.docs[0].json;
  }
  return mapped.doc(0);
}

// Maps a line that must give exactly one error document.
CollectedDocument mapError(std::string_view line, MapOptions options = {},
                           LineContext context = {}) {
  Mapped mapped = mapText(line, std::move(options), context);
  EXPECT_EQ(mapped.docs.size(), 1u) << "line: " << head(line);
  if (mapped.docs.empty()) return CollectedDocument{"", "null", false, 0};
  EXPECT_TRUE(mapped.docs[0].error) << "expected an error document, got " << mapped.docs[0].json;
  return mapped.docs[0];
}

// True when some character outside JSON strings is whitespace (not compact JSON).
bool hasWhitespaceOutsideStrings(std::string_view json) {
  bool in_string = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      return true;
    }
  }
  return false;
}

// event.original must hold `expected_json` (compared as JSON values), written compactly.
void expectOriginal(const JsonDoc& doc, const std::string& expected_json) {
  const auto original = doc.getString("event.original");
  ASSERT_TRUE(original.has_value()) << "no event.original (string)";
  const auto differences = diffJson(expected_json, *original);
  EXPECT_TRUE(differences.empty()) << joinLines(differences) << "event.original: " << *original;
  EXPECT_FALSE(hasWhitespaceOutsideStrings(*original)) << "not compact: " << *original;
}

Strings plusPreserveTag(Strings tags) {
  tags.emplace_back("preserve_original_event");
  return tags;
}

// Top-level keys the comparison rules ignore (agent.*, input.*) are allowed anywhere.
Strings keysWithoutIgnored(const JsonDoc& doc, std::string_view path) {
  Strings keys;
  for (auto& key : doc.keys(path)) {
    if (path.empty() && (key == "agent" || key == "input")) continue;
    if (path == "event" && key == "ingested") continue;
    keys.push_back(std::move(key));
  }
  return keys;
}

// The fixed shape of every error document (mapping.md section 6).
void expectErrorShape(const CollectedDocument& d, const MapOptions& options = MapOptions{},
                      bool from_file = false) {
  SCOPED_TRACE("error document: " + d.json);
  const JsonDoc doc(d.json);
  ASSERT_TRUE(doc.valid()) << doc.parseError();
  EXPECT_TRUE(d.error);
  EXPECT_EQ(doc.getString("event.kind"), "pipeline_error");
  const auto messages = doc.getStrings("error.message");
  ASSERT_TRUE(messages.has_value()) << "error.message is not an array of strings";
  EXPECT_FALSE(messages->empty());
  for (const auto& message : *messages) EXPECT_FALSE(message.empty());
  EXPECT_EQ(doc.type("event.original"), "string");
  EXPECT_EQ(doc.getString("@timestamp"), kNow);
  EXPECT_EQ(doc.getString("ecs.version"), "8.11.0");
  EXPECT_EQ(doc.getString("data_stream.type"), "logs");
  EXPECT_EQ(doc.getString("data_stream.dataset"), kDataset);
  EXPECT_EQ(doc.getString("data_stream.namespace"), options.data_stream_namespace);
  EXPECT_EQ(doc.getString("event.dataset"), kDataset);
  EXPECT_EQ(doc.getString("event.module"), kModule);
  EXPECT_EQ(doc.getStrings("tags"), plusPreserveTag(options.tags));
  // Section 6 lists everything an error document holds.
  Strings top = {"@timestamp", "data_stream", "ecs", "error", "event", "tags"};
  if (from_file) top.emplace_back("log");
  EXPECT_THAT(keysWithoutIgnored(doc, ""), UnorderedElementsAreArray(top));
  EXPECT_THAT(keysWithoutIgnored(doc, "event"),
              UnorderedElementsAreArray(Strings{"kind", "original", "dataset", "module"}));
}

Strings errorMessages(const CollectedDocument& d) {
  return JsonDoc(d.json).getStrings("error.message").value_or(Strings{});
}

// True when some error message mentions `what`.
bool mentions(const CollectedDocument& d, std::string_view what) {
  for (const auto& message : errorMessages(d)) {
    if (message.find(what) != std::string::npos) return true;
  }
  return false;
}

// =============================================================================================
// Section 1: what the mapper accepts

TEST(MapperInputTest, PageYieldsEveryAlertInOrder) {
  const std::string first =
      baseAlert().str("id", "alert-1").evidence({fileEvidence(), processEvidence()}).json();
  const std::string second = baseAlert().str("id", "alert-2").json();
  const Mapped mapped = mapText(page({first, second}));
  ASSERT_EQ(mapped.docs.size(), 3u);
  EXPECT_EQ(mapped.doc(0).getString("event.id"), "alert-1");
  EXPECT_EQ(mapped.doc(0).getString("file.name"), "invoice.docm");
  EXPECT_EQ(mapped.doc(1).getString("event.id"), "alert-1");
  EXPECT_EQ(mapped.doc(1).getString("file.name"), "powershell.exe");
  EXPECT_EQ(mapped.doc(2).getString("event.id"), "alert-2");
  EXPECT_EQ(mapped.docs[0].evidence_index, 0u);
  EXPECT_EQ(mapped.docs[1].evidence_index, 1u);
  EXPECT_EQ(mapped.docs[2].evidence_index, 0u);
  for (const auto& d : mapped.docs) EXPECT_FALSE(d.error) << d.json;
  EXPECT_EQ(mapped.stats.alerts, 2u);
  EXPECT_EQ(mapped.stats.documents, 3u);
  EXPECT_EQ(mapped.stats.errors, 0u);
}

TEST(MapperInputTest, MapElementMapsEachElementAsThePageDoes) {
  // Alerts, a broken alert (a bad number) and a non-object element.
  const std::vector<std::string> elements = {
      baseAlert().str("id", "alert-1").evidence({fileEvidence(), processEvidence()}).json(),
      R"({"id":"alert-2","severity":01})", "42", baseAlert().str("id", "alert-3").json()};
  const std::string text = page(elements);
  const Mapped whole = mapText(text);
  ASSERT_EQ(whole.docs.size(), 5u);

  Mapper mapper(MapOptions{}, [] { return std::string(kNow); });
  CollectingSink sink;
  std::string padded = text + std::string(kLinePadding, ' ');
  std::size_t at = 0;
  std::uint64_t alerts = 0;
  for (const auto& e : elements) {
    at = padded.find(e, at);
    ASSERT_NE(at, std::string::npos);
    alerts += mapper.mapElement(std::string_view(padded.data() + at, e.size()), sink).alerts;
    at += e.size();
  }
  EXPECT_EQ(alerts, 4u);
  ASSERT_EQ(sink.documents.size(), whole.docs.size());
  for (std::size_t i = 0; i < whole.docs.size(); ++i) {
    EXPECT_EQ(sink.documents[i].id, whole.docs[i].id) << i;
    EXPECT_EQ(sink.documents[i].json, whole.docs[i].json) << i;
    EXPECT_EQ(sink.documents[i].error, whole.docs[i].error) << i;
  }
  EXPECT_TRUE(sink.documents[2].error);
  EXPECT_TRUE(sink.documents[3].error);
}

TEST(MapperInputTest, PageWithoutODataContext) {
  const std::string line = R"({"value":[)" + baseAlert().json() + "]}";
  const JsonDoc doc = mapAlert(line);
  EXPECT_EQ(doc.getString("event.id"), kAlertId);
  EXPECT_EQ(doc.getString("event.kind"), "alert");
}

TEST(MapperInputTest, EmptyPageYieldsNothing) {
  for (
      const char* line :
      {R"({"value":[]})",
       R"({"@odata.context":"https://api.security.microsoft.com/api/$metadata#Alerts","value":[]})",
       R"( { "value" : [ ] } )"}) {
    const Mapped mapped = mapText(line);
    EXPECT_TRUE(mapped.docs.empty()) << line << " gave " << mapped.docs.size();
    EXPECT_EQ(mapped.stats.documents, 0u) << line;
    EXPECT_EQ(mapped.stats.errors, 0u) << line;
    EXPECT_EQ(mapped.stats.alerts, 0u) << line;
  }
}

TEST(MapperInputTest, AlertWithEvidenceArray) {
  const Mapped mapped =
      mapText(baseAlert().evidence({userEvidence(), processEvidence(), fileEvidence()}).json());
  ASSERT_EQ(mapped.docs.size(), 3u);
  EXPECT_EQ(mapped.doc(0).getString(md("evidence.entityType")), "User");
  EXPECT_EQ(mapped.doc(1).getString(md("evidence.entityType")), "Process");
  EXPECT_EQ(mapped.doc(2).getString(md("evidence.entityType")), "File");
  EXPECT_EQ(mapped.stats.alerts, 1u);
  EXPECT_EQ(mapped.stats.documents, 3u);
}

TEST(MapperInputTest, AlertWithEvidenceObject) {
  const JsonDoc doc = mapAlert(baseAlert().evidence(fileEvidence()).json());
  EXPECT_EQ(doc.getString("file.name"), "invoice.docm");
  EXPECT_EQ(doc.getString(md("evidence.entityType")), "File");
  EXPECT_EQ(doc.getString(md("evidence.detectionStatus")), "Detected");
}

TEST(MapperInputTest, WhitespaceAroundJsonIsFine) {
  const JsonDoc doc = mapAlert("  " + baseAlert().json() + " \t");
  EXPECT_EQ(doc.getString("event.id"), kAlertId);
}

TEST(MapperInputTest, BlankLinesYieldNothing) {
  for (const char* line : {"", " ", "\t \t", "   \r"}) {
    const Mapped mapped = mapText(line);
    EXPECT_TRUE(mapped.docs.empty()) << "line [" << line << "]";
    EXPECT_EQ(mapped.stats.documents, 0u);
    EXPECT_EQ(mapped.stats.errors, 0u);
    EXPECT_EQ(mapped.stats.alerts, 0u);
  }
}

TEST(MapperInputTest, PageOfTenThousandAlertsInOneLine) {
  constexpr int kCount = 10000;
  std::string line = R"({"@odata.context":"x","value":[)";
  line.reserve(static_cast<std::size_t>(kCount) * 160);
  for (int i = 0; i < kCount; ++i) {
    if (i > 0) line += ',';
    line +=
        R"({"id":"a-)" + std::to_string(i) +
        R"(","severity":"High","status":"New","title":"t","lastUpdateTime":"2025-11-03T15:35:02Z",)"
        R"("alertCreationTime":"2025-11-03T14:07:14Z","computerDnsName":"h)" +
        std::to_string(i % 7) + R"("})";
  }
  line += "]}";
  const Mapped mapped = mapText(line);
  ASSERT_EQ(mapped.docs.size(), static_cast<std::size_t>(kCount));
  EXPECT_EQ(mapped.stats.alerts, static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(mapped.stats.documents, static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(mapped.stats.errors, 0u);
  EXPECT_EQ(mapped.doc(0).getString("event.id"), "a-0");
  EXPECT_EQ(mapped.doc(kCount - 1).getString("event.id"), "a-9999");
  EXPECT_EQ(mapped.doc(kCount - 1).getInt("event.severity"), 4);
  std::set<std::string> ids;
  for (const auto& d : mapped.docs) {
    EXPECT_FALSE(d.error);
    ids.insert(d.id);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kCount)) << "document ids collide";
}

// A copy of a line that ends exactly where an unreadable page begins: reading one byte past
// its end faults, whoever does it (simdjson is a shared library that ASan does not see into).
class GuardedLine {
 public:
  explicit GuardedLine(std::string_view text) : length_(text.size()) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t data_pages = std::max<std::size_t>(1, (text.size() + page - 1) / page);
    mapped_size_ = (data_pages + 1) * page;
    void* memory =
        mmap(nullptr, mapped_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) std::abort();
    base_ = static_cast<char*>(memory);
    char* guard = base_ + data_pages * page;
    if (mprotect(guard, page, PROT_NONE) != 0) std::abort();
    begin_ = guard - text.size();
    std::memcpy(begin_, text.data(), text.size());
  }
  ~GuardedLine() { munmap(base_, mapped_size_); }
  GuardedLine(const GuardedLine&) = delete;
  GuardedLine& operator=(const GuardedLine&) = delete;

  std::string_view view() const { return {begin_, length_}; }

 private:
  std::size_t length_;
  std::size_t mapped_size_ = 0;
  char* base_ = nullptr;
  char* begin_ = nullptr;
};

TEST(MapperInputTest, UnpaddedLineAtTheEndOfABuffer) {
  LineContext context;
  context.padded = false;
  {
    const GuardedLine line(baseAlert().evidence({processEvidence()}).json());
    const JsonDoc doc = mapAlert(line.view(), MapOptions{}, context);
    EXPECT_EQ(doc.getString("event.id"), kAlertId);
    EXPECT_EQ(doc.getInt("process.pid"), 7312);
  }
  {
    // Ends in a short string: string parsing reads ahead in blocks.
    const GuardedLine line(R"({"id":"x","title":"t"})");
    const JsonDoc doc = mapAlert(line.view(), MapOptions{}, context);
    EXPECT_EQ(doc.getString("message"), "t");
  }
  {
    const GuardedLine line(page({baseAlert().str("title", "t").json()}));
    const JsonDoc doc = mapAlert(line.view(), preserveOn(), context);
    EXPECT_EQ(doc.getString("message"), "t");
  }
}

TEST(MapperInputTest, UnpaddedLineThatIsNotJsonAtTheEndOfABuffer) {
  LineContext context;
  context.padded = false;
  for (const char* text : {R"({"id": "da1", "title": "trunc)", R"({"id":"x","title":"t")", "[1, 2]",
                           "42", R"("text)"}) {
    const GuardedLine line(text);
    const CollectedDocument d = mapError(line.view(), MapOptions{}, context);
    EXPECT_TRUE(d.error) << text;
  }
}

TEST(MapperInputTest, PaddedLineIgnoresTheBytesAfterIt) {
  const std::string text = baseAlert().evidence({fileEvidence()}).json();
  const std::string junk = R"(,"id":"junk"}],"x":"\"  )";
  std::string buffer = text;
  while (buffer.size() < text.size() + kLinePadding) buffer += junk;
  LineContext context;
  context.padded = true;
  const Mapped padded =
      mapText(std::string_view(buffer.data(), text.size()), MapOptions{}, context);
  const Mapped plain = mapText(text);
  ASSERT_EQ(padded.docs.size(), 1u);
  ASSERT_EQ(plain.docs.size(), 1u);
  EXPECT_EQ(padded.docs[0].json, plain.docs[0].json);
  EXPECT_EQ(padded.doc(0).getString("event.id"), kAlertId);

  // And a broken line: event.original is the line only, not the padding.
  const std::string broken = R"({"id":"x","title":)";
  std::string broken_buffer = broken;
  while (broken_buffer.size() < broken.size() + kLinePadding) broken_buffer += junk;
  const Mapped error =
      mapText(std::string_view(broken_buffer.data(), broken.size()), MapOptions{}, context);
  ASSERT_EQ(error.docs.size(), 1u);
  EXPECT_EQ(error.doc(0).getString("event.original"), broken);
}

TEST(MapperInputTest, StatsCountAlertsDocumentsAndErrors) {
  const std::string line = page(
      {baseAlert().evidence({fileEvidence(), processEvidence()}).json(), "42", baseAlert().json()});
  const Mapped mapped = mapText(line);
  ASSERT_EQ(mapped.docs.size(), 4u);
  EXPECT_EQ(mapped.stats.alerts, 3u);
  EXPECT_EQ(mapped.stats.documents, 4u);
  EXPECT_EQ(mapped.stats.errors, 1u);
}

TEST(MapperInputTest, OptionsAreKept) {
  MapOptions options;
  options.data_stream_namespace = "prod";
  options.tags = {"a"};
  options.preserve_original_event = true;
  const Mapper mapper(options);
  EXPECT_EQ(mapper.options().data_stream_namespace, "prod");
  EXPECT_EQ(mapper.options().tags, Strings{"a"});
  EXPECT_TRUE(mapper.options().preserve_original_event);
}

// =============================================================================================
// Section 2: one document per evidence

TEST(MapperSplitTest, EachEvidenceGivesOneDocumentInArrayOrder) {
  const Mapped mapped = mapText(baseAlert()
                                    .evidence({fileEvidence().str("fileName", "one.txt"),
                                               fileEvidence().str("fileName", "two.txt"),
                                               fileEvidence().str("fileName", "three.txt")})
                                    .json());
  ASSERT_EQ(mapped.docs.size(), 3u);
  const char* names[] = {"one.txt", "two.txt", "three.txt"};
  for (std::uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(mapped.doc(i).getString("file.name"), names[i]);
    EXPECT_EQ(mapped.docs[i].evidence_index, i);
    EXPECT_FALSE(mapped.docs[i].error);
    // Every split document still has the whole alert.
    EXPECT_EQ(mapped.doc(i).getString("message"), "Suspicious PowerShell command line");
    EXPECT_EQ(mapped.doc(i).getString(md("incidentId")), "48213");
  }
}

TEST(MapperSplitTest, EachDocumentSeesOnlyItsOwnEvidence) {
  const Mapped mapped = mapText(baseAlert().evidence({userEvidence(), processEvidence()}).json());
  ASSERT_EQ(mapped.docs.size(), 2u);
  const JsonDoc user = mapped.doc(0);
  const JsonDoc process = mapped.doc(1);
  EXPECT_EQ(user.getString("user.id"), kSid);
  EXPECT_FALSE(user.has("process"));
  EXPECT_FALSE(user.has("file"));
  EXPECT_FALSE(process.has("user.id"));
  EXPECT_FALSE(process.has(md("evidence.accountName")));
  EXPECT_EQ(process.getInt("process.pid"), 7312);
}

TEST(MapperSplitTest, NoEvidenceGivesOneDocument) {
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"absent", baseAlert().erase("evidence").json()},
      {"null", baseAlert().null("evidence").json()},
      {"empty array", baseAlert().raw("evidence", "[]").json()},
  };
  for (const auto& [what, line] : cases) {
    const Mapped mapped = mapText(line);
    ASSERT_EQ(mapped.docs.size(), 1u) << what;
    EXPECT_FALSE(mapped.docs[0].error) << what << ": " << mapped.docs[0].json;
    EXPECT_EQ(mapped.docs[0].evidence_index, 0u) << what;
    const JsonDoc doc = mapped.doc(0);
    EXPECT_EQ(doc.getString("event.kind"), "alert") << what;
    EXPECT_FALSE(doc.has(md("evidence"))) << what;
    EXPECT_FALSE(doc.has("file")) << what;
    EXPECT_FALSE(doc.has("process")) << what;
  }
}

TEST(MapperSplitTest, EvidenceObjectGivesOneDocumentAtIndexZero) {
  const Mapped mapped = mapText(baseAlert().evidence(processEvidence()).json());
  ASSERT_EQ(mapped.docs.size(), 1u);
  EXPECT_EQ(mapped.docs[0].evidence_index, 0u);
  EXPECT_FALSE(mapped.docs[0].error);
  EXPECT_EQ(mapped.doc(0).getInt("process.pid"), 7312);
}

TEST(MapperSplitTest, EvidenceOfAnotherTypeIsAnErrorDocument) {
  for (const char* evidence : {R"("File")", "42", "true", "1.5"}) {
    const std::string line = baseAlert().raw("evidence", evidence).json();
    const CollectedDocument d = mapError(line);
    expectErrorShape(d);
    // The value that cannot be split: the alert, as compact JSON.
    expectOriginal(JsonDoc(d.json), line);
    EXPECT_TRUE(mentions(d, "evidence"))
        << "evidence " << evidence << ": " << ::testing::PrintToString(errorMessages(d));
  }
}

TEST(MapperSplitTest, EvidenceArrayHoldingANonObjectIsAnError) {
  const std::string line =
      baseAlert().raw("evidence", "[" + fileEvidence().json() + R"(,"oops"])").json();
  const Mapped mapped = mapText(line);
  ASSERT_FALSE(mapped.docs.empty());
  bool saw_error = false;
  for (const auto& d : mapped.docs) {
    EXPECT_TRUE(JsonDoc(d.json).valid()) << d.json;
    if (d.error) saw_error = true;
  }
  EXPECT_TRUE(saw_error) << "an evidence that is not an object must give an error document";
  EXPECT_GE(mapped.stats.errors, 1u);
}

// =============================================================================================
// Section 3: cleaning

TEST(MapperCleaningTest, CommentsAreDropped) {
  const JsonDoc doc = mapAlert(
      baseAlert()
          .raw(
              "comments",
              R"([{"createdTime":"2021-01-26T01:00:37.8404534Z","createdBy":"secop123@contoso.com","comment":"test comment for docs"}])")
          .json());
  EXPECT_FALSE(doc.has(md("comments")));
  for (const auto& key : doc.allKeys()) {
    EXPECT_NE(key, "comments");
    EXPECT_NE(key, "createdBy");
  }
}

TEST(MapperCleaningTest, EmptyTopLevelValuesAreDropped) {
  const JsonDoc doc = mapAlert(baseAlert()
                                   .null("futureNull")
                                   .str("futureEmpty", "")
                                   .str("futureDash", "-")
                                   .str("futureNa", "N/A")
                                   .str("futureKept", "kept")
                                   .str("assignedTo", "N/A")
                                   .str("rbacGroupName", "-")
                                   .json());
  EXPECT_FALSE(doc.has(md("futureNull")));
  EXPECT_FALSE(doc.has(md("futureEmpty")));
  EXPECT_FALSE(doc.has(md("futureDash")));
  EXPECT_FALSE(doc.has(md("futureNa")));
  EXPECT_FALSE(doc.has(md("assignedTo")));
  EXPECT_FALSE(doc.has(md("rbacGroupName")));
  EXPECT_FALSE(doc.has(md("classification")));
  EXPECT_FALSE(doc.has(md("investigationId")));
  EXPECT_FALSE(doc.has(md("resolvedTime")));
  EXPECT_EQ(doc.getString(md("futureKept")), "kept");
}

TEST(MapperCleaningTest, DroppedTopLevelValuesDoNotFeedRules) {
  const JsonDoc doc = mapAlert(baseAlert()
                                   .str("title", "N/A")
                                   .str("computerDnsName", "-")
                                   .str("aadTenantId", "")
                                   .str("category", "-")
                                   .str("detectionSource", "N/A")
                                   .json());
  EXPECT_FALSE(doc.has("message"));
  EXPECT_FALSE(doc.has("host.hostname"));
  EXPECT_FALSE(doc.has("host.name"));
  EXPECT_FALSE(doc.has("related.hosts"));
  EXPECT_FALSE(doc.has("cloud.account"));
  EXPECT_FALSE(doc.has("event.action"));
  EXPECT_FALSE(doc.has("threat"));
  EXPECT_FALSE(doc.has("observer.name"));
  EXPECT_EQ(doc.getString("cloud.provider"), "azure");
  EXPECT_FALSE(doc.has(md("title")));
  EXPECT_FALSE(doc.has(md("category")));
}

TEST(MapperCleaningTest, EmptyEvidenceValuesAreDropped) {
  const JsonDoc doc = mapAlert(baseAlert()
                                   .evidence({evidenceOf("User")
                                                  .str("accountName", "N/A")
                                                  .str("domainName", "-")
                                                  .str("aadUserId", "")
                                                  .str("userPrincipalName", "jdoe@contoso.com")
                                                  .str("fileName", "-")
                                                  .str("registryValue", "N/A")})
                                   .json());
  EXPECT_EQ(doc.keys(md("evidence")), (Strings{"entityType", "userPrincipalName"}))
      << doc.getJson(md("evidence")).value_or("(none)");
  EXPECT_FALSE(doc.has("file.name"));
}

TEST(MapperCleaningTest, EvidenceThatEndsUpEmptyIsDropped) {
  // Every key is either empty or moved to an ECS field: nothing is left under evidence.
  const JsonDoc doc =
      mapAlert(baseAlert()
                   .evidence({evidenceOf("File").null("entityType").str("fileName", "a.exe")})
                   .json());
  EXPECT_EQ(doc.getString("file.name"), "a.exe");
  EXPECT_FALSE(doc.has(md("evidence"))) << doc.getJson(md("evidence")).value_or("");
}

TEST(MapperCleaningTest, DeepCleaningUnderDefenderEndpoint) {
  const JsonDoc doc = mapAlert(
      baseAlert()
          .raw("futureKey",
               R"({"a":null,"b":"","c":{"d":null,"e":[],"f":{}},"g":{"h":{"i":null}},)"
               R"("keep":{"k":"v","zero":0,"no":false,"list":["x"],"deeper":{"n":1,"gone":""}}})")
          .raw("futureAllEmpty", R"({"x":null,"y":{"z":""},"w":[]})")
          .raw("mitreTechniques", "[]")
          .json());
  const auto differences =
      diffJson(R"({"keep":{"k":"v","zero":0,"no":false,"list":["x"],"deeper":{"n":1}}})",
               doc.getJson(md("futureKey")).value_or("null"));
  EXPECT_TRUE(differences.empty()) << joinLines(differences);
  EXPECT_FALSE(doc.has(md("futureAllEmpty")));
  EXPECT_FALSE(doc.has(md("mitreTechniques")));
}

TEST(MapperCleaningTest, DeepCleaningDropsEmptyArrayElements) {
  const JsonDoc doc = mapAlert(baseAlert()
                                   .raw("futureList", R"(["a",null,"",{"x":null},[]])")
                                   .raw("futureNullsOnly", R"([null,"",{}])")
                                   .json());
  EXPECT_EQ(doc.getJson(md("futureList")), R"(["a"])");
  EXPECT_FALSE(doc.has(md("futureNullsOnly")));
}

TEST(MapperCleaningTest, DeepCleaningInsideEvidence) {
  const JsonDoc doc =
      mapAlert(baseAlert()
                   .evidence({fileEvidence().raw("futureEv", R"({"x":null,"y":{"z":[]},"k":"v"})")})
                   .json());
  EXPECT_EQ(doc.getJson(md("evidence.futureEv")), R"({"k":"v"})");
}

TEST(MapperCleaningTest, DashAndNaAreOnlyDroppedAsTopLevelOrEvidenceValues) {
  // Deep cleaning drops null and "" only; "-" and "N/A" nested deeper are data.
  const JsonDoc doc =
      mapAlert(baseAlert().raw("futureKey", R"({"dash":"-","na":"N/A","gone":null})").json());
  const auto differences =
      diffJson(R"({"dash":"-","na":"N/A"})", doc.getJson(md("futureKey")).value_or("null"));
  EXPECT_TRUE(differences.empty()) << joinLines(differences);
}

TEST(MapperCleaningTest, UnknownKeysKeepTheirTypes) {
  const JsonDoc doc = mapAlert(baseAlert()
                                   .raw("futureNumber", "1.5")
                                   .raw("futureInt", "-7")
                                   .raw("futureFalse", "false")
                                   .raw("futureZero", "0")
                                   .json());
  EXPECT_EQ(doc.getDouble(md("futureNumber")), 1.5);
  EXPECT_EQ(doc.getInt(md("futureInt")), -7);
  EXPECT_EQ(doc.getBool(md("futureFalse")), false);
  EXPECT_EQ(doc.getInt(md("futureZero")), 0);
}

// =============================================================================================
// Section 4: fields

TEST(MapperFieldsTest, BaseAlertMapsToExactlyThisDocument) {
  const JsonDoc doc = mapAlert(baseAlert().json());
  const std::string expected = R"({
    "ecs":{"version":"8.11.0"},
    "data_stream":{"type":"logs","dataset":"microsoft_defender_endpoint.log","namespace":"default"},
    "event":{"dataset":"microsoft_defender_endpoint.log","module":"microsoft_defender_endpoint",
      "kind":"alert","timezone":"UTC","action":"Execution","provider":"defender_endpoint",
      "created":"2025-11-03T14:07:14.1187425Z","category":["host"],"type":["start"],
      "id":"da638977756323456770_-1587340120","start":"2025-11-03T14:06:58.27891Z",
      "end":"2025-11-03T14:06:58.27891Z","severity":3,"duration":0},
    "cloud":{"provider":"azure","account":{"id":"3f1b8c2e-6d4a-4e57-9a0b-1c2d3e4f5a6b"},
      "instance":{"id":"4a9be1f0c7d25e36b08f9d11e2c3a7b6f5d40812"}},
    "@timestamp":"2025-11-03T14:07:14.1187425Z",
    "host":{"id":"4a9be1f0c7d25e36b08f9d11e2c3a7b6f5d40812","hostname":"wks-0142.corp.contoso.com",
      "name":"wks-0142.corp.contoso.com"},
    "message":"Suspicious PowerShell command line",
    "threat":{"framework":"MITRE ATT&CK","technique":{"name":["Execution"]}},
    "rule":{"description":"PowerShell ran with an encoded, hidden command line on this device.\nReview the process tree."},
    "observer":{"product":"Defender for Endpoint","vendor":"Microsoft","name":"WindowsDefenderAtp"},
    "user":{"name":"jdoe","domain":"CONTOSO"},
    "related":{"user":["jdoe"],"hosts":["wks-0142.corp.contoso.com"]},
    "microsoft":{"defender_endpoint":{"incidentId":"48213","status":"New",
      "investigationState":"UnsupportedAlertType","detectorId":"7f1c3609-a3ff-40e2-995b-c01770161d68",
      "lastUpdateTime":"2025-11-03T15:35:02.0566667Z","rbacGroupName":"Workstations-EU",
      "mitreTechniques":["T1059.001"]}},
    "tags":["microsoft-defender-endpoint","forwarded"]})";
  const auto differences = diffEcsDocuments(expected, doc.getJson("").value_or("null"));
  EXPECT_TRUE(differences.empty()) << joinLines(differences);
}

TEST(MapperFieldsTest, TimestampIsAlertCreationTimeAsGiven) {
  const JsonDoc doc =
      mapAlert(baseAlert().str("alertCreationTime", "2025-11-03T16:07:14.1187425+02:00").json());
  EXPECT_EQ(doc.getString("@timestamp"), "2025-11-03T16:07:14.1187425+02:00");
  EXPECT_EQ(doc.getString("event.created"), "2025-11-03T16:07:14.1187425+02:00");
  EXPECT_FALSE(doc.has(md("alertCreationTime")));
}

TEST(MapperFieldsTest, TimestampFallsBackToTheClockWithoutAlertCreationTime) {
  for (const std::string& line :
       {baseAlert().erase("alertCreationTime").json(), baseAlert().null("alertCreationTime").json(),
        baseAlert().str("alertCreationTime", "").json()}) {
    const JsonDoc doc = mapAlert(line);
    EXPECT_EQ(doc.getString("@timestamp"), kNow);
    EXPECT_FALSE(doc.has("event.created"));
    EXPECT_EQ(doc.getString("event.kind"), "alert");
  }
}

// yyyy-MM-ddTHH:mm:ss[.fraction]Z (std::regex trips -Wmaybe-uninitialized in g++ 12).
bool isRfc3339Utc(std::string_view text) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  if (text.size() < kShape.size() + 1 || text.back() != 'Z') return false;
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    const bool digit = text[i] >= '0' && text[i] <= '9';
    if (kShape[i] == 'd' ? !digit : text[i] != kShape[i]) return false;
  }
  std::string_view rest = text.substr(kShape.size(), text.size() - kShape.size() - 1);
  if (rest.empty()) return true;
  if (rest.front() != '.' || rest.size() < 2 || rest.size() > 10) return false;
  for (const char c : rest.substr(1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

TEST(MapperFieldsTest, DefaultClockGivesRfc3339Utc) {
  Mapper mapper(MapOptions{});
  CollectingSink sink;
  mapper.mapLine(baseAlert().erase("alertCreationTime").json(), sink);
  ASSERT_EQ(sink.documents.size(), 1u);
  const auto timestamp = JsonDoc(sink.documents[0].json).getString("@timestamp");
  ASSERT_TRUE(timestamp.has_value());
  EXPECT_TRUE(isRfc3339Utc(*timestamp)) << *timestamp;
  EXPECT_GE(timestamp->substr(0, 4), "2025") << *timestamp;
  EXPECT_TRUE(isRfc3339Utc(mdec::ecs::systemTimestamp())) << mdec::ecs::systemTimestamp();
  EXPECT_FALSE(isRfc3339Utc("2025-11-03 14:07:14Z"));  // the checker itself
}

TEST(MapperFieldsTest, ConstantFields) {
  const JsonDoc doc = mapAlert(baseAlert().evidence({processEvidence()}).json());
  EXPECT_EQ(doc.getString("ecs.version"), "8.11.0");
  EXPECT_EQ(doc.getString("data_stream.type"), "logs");
  EXPECT_EQ(doc.getString("data_stream.dataset"), kDataset);
  EXPECT_EQ(doc.getString("data_stream.namespace"), "default");
  EXPECT_EQ(doc.getString("event.dataset"), kDataset);
  EXPECT_EQ(doc.getString("event.module"), kModule);
  EXPECT_EQ(doc.getString("event.kind"), "alert");
  EXPECT_EQ(doc.getString("event.provider"), "defender_endpoint");
  EXPECT_EQ(doc.getString("event.timezone"), "UTC");
  EXPECT_EQ(doc.getString("cloud.provider"), "azure");
  EXPECT_EQ(doc.getString("observer.vendor"), "Microsoft");
  EXPECT_EQ(doc.getString("observer.product"), "Defender for Endpoint");
}

TEST(MapperFieldsTest, ConstantFieldsEvenForAMinimalAlert) {
  const JsonDoc doc = mapAlert(R"({"id":"x"})");
  EXPECT_EQ(doc.getString("event.id"), "x");
  EXPECT_EQ(doc.getString("ecs.version"), "8.11.0");
  EXPECT_EQ(doc.getString("event.kind"), "alert");
  EXPECT_EQ(doc.getString("cloud.provider"), "azure");
  EXPECT_EQ(doc.getStrings("event.category"), Strings{"host"});
  EXPECT_FALSE(doc.has("event.type"));
  EXPECT_FALSE(doc.has("event.severity"));
  EXPECT_FALSE(doc.has("event.duration"));
  EXPECT_FALSE(doc.has("threat"));
  EXPECT_EQ(doc.getString("@timestamp"), kNow);
}

TEST(MapperFieldsTest, EventFieldsMovedFromTheAlert) {
  const JsonDoc doc = mapAlert(baseAlert()
                                   .str("firstEventTime", "2020-06-30T09:31:22.5729558Z")
                                   .str("lastEventTime", "2020-06-30T09:46:15.0876676Z")
                                   .json());
  EXPECT_EQ(doc.getString("event.action"), "Execution");
  EXPECT_EQ(doc.getString("event.id"), kAlertId);
  EXPECT_EQ(doc.getString("event.created"), kCreated);
  EXPECT_EQ(doc.getString("event.start"), "2020-06-30T09:31:22.5729558Z");
  EXPECT_EQ(doc.getString("event.end"), "2020-06-30T09:46:15.0876676Z");
  for (const char* moved : {"id", "alertCreationTime", "firstEventTime", "lastEventTime", "title",
                            "aadTenantId", "machineId", "computerDnsName", "detectionSource",
                            "description", "category", "relatedUser", "severity", "comments"}) {
    EXPECT_FALSE(doc.has(md(moved))) << moved << " should have been moved";
  }
}

struct DurationCase {
  const char* start;
  const char* end;
  std::int64_t nanoseconds;
};
void PrintTo(const DurationCase& c, std::ostream* os) {
  *os << c.start << " -> " << c.end << " = " << c.nanoseconds;
}

class MapperDurationTest : public ::testing::TestWithParam<DurationCase> {};

TEST_P(MapperDurationTest, IsEndMinusStartInNanoseconds) {
  const DurationCase& c = GetParam();
  const JsonDoc doc =
      mapAlert(baseAlert().str("firstEventTime", c.start).str("lastEventTime", c.end).json());
  EXPECT_EQ(doc.type("event.duration"), "int");
  EXPECT_EQ(doc.getInt("event.duration"), c.nanoseconds);
  EXPECT_EQ(doc.getString("event.start"), c.start);
  EXPECT_EQ(doc.getString("event.end"), c.end);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MapperDurationTest,
    ::testing::Values(
        DurationCase{"2025-11-03T14:06:58.27891Z", "2025-11-03T14:06:58.27891Z", 0},
        DurationCase{"2020-06-30T09:31:22.5729558Z", "2020-06-30T09:46:15.0876676Z", 892514711800},
        DurationCase{"2020-06-30T09:46:15.0876676Z", "2020-06-30T09:31:22.5729558Z", -892514711800},
        DurationCase{"2021-01-26T20:31:32.9562661Z", "2021-01-26T20:31:33.0577322Z", 101466100},
        DurationCase{"2025-01-01T00:00:00Z", "2025-01-01T00:00:00.000000001Z", 1},
        DurationCase{"2025-01-01T00:00:00.0000001Z", "2025-01-01T00:00:00Z", -100},
        DurationCase{"2025-01-01T00:00:00+01:00", "2025-01-01T00:00:00Z", 3600000000000},
        DurationCase{"2025-01-01T00:00:00-0530", "2025-01-01T05:30:00Z", 0},
        DurationCase{"2024-02-28T23:59:59Z", "2024-03-01T00:00:00Z", 86401000000000},
        DurationCase{"2025-11-03T14:07Z", "2025-11-03T14:08:00.5Z", 60500000000},
        DurationCase{"2024-12-31T23:59:59.999Z", "2025-01-01T00:00:00.001Z", 2000000},
        DurationCase{"2025-01-01", "2025-01-02T00:00:00Z", 86400000000000}));

TEST(MapperFieldsTest, NoDurationWithoutBothTimes) {
  const JsonDoc only_start = mapAlert(baseAlert().erase("lastEventTime").json());
  EXPECT_FALSE(only_start.has("event.duration"));
  EXPECT_FALSE(only_start.has("event.end"));
  EXPECT_EQ(only_start.getString("event.start"), kEventTime);
  const JsonDoc only_end = mapAlert(baseAlert().null("firstEventTime").json());
  EXPECT_FALSE(only_end.has("event.duration"));
  EXPECT_FALSE(only_end.has("event.start"));
  EXPECT_EQ(only_end.getString("event.end"), kEventTime);
}

struct SeverityCase {
  const char* given;
  std::int64_t severity;
};
void PrintTo(const SeverityCase& c, std::ostream* os) { *os << c.given << " -> " << c.severity; }

class MapperSeverityTest : public ::testing::TestWithParam<SeverityCase> {};

TEST_P(MapperSeverityTest, KnownSeveritiesAreNumbersCaseInsensitively) {
  const JsonDoc doc = mapAlert(baseAlert().str("severity", GetParam().given).json());
  EXPECT_EQ(doc.type("event.severity"), "int");
  EXPECT_EQ(doc.getInt("event.severity"), GetParam().severity);
  EXPECT_FALSE(doc.has(md("severity")));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MapperSeverityTest,
    ::testing::Values(SeverityCase{"UnSpecified", 0}, SeverityCase{"unspecified", 0},
                      SeverityCase{"Informational", 1}, SeverityCase{"INFORMATIONAL", 1},
                      SeverityCase{"Low", 2}, SeverityCase{"low", 2}, SeverityCase{"Medium", 3},
                      SeverityCase{"mEdIuM", 3}, SeverityCase{"High", 4}, SeverityCase{"HIGH", 4}));

TEST(MapperFieldsTest, UnknownSeverityStaysUnderDefenderEndpoint) {
  for (const char* severity : {"Critical", "Severe", "High ", "4"}) {
    const JsonDoc doc = mapAlert(baseAlert().str("severity", severity).json());
    EXPECT_FALSE(doc.has("event.severity")) << severity;
    EXPECT_EQ(doc.getString(md("severity")), severity);
  }
}

struct CategoryCase {
  const char* category;
  std::optional<Obj> evidence;
  const char* status;
  Strings event_category;
  Strings event_type;  // empty: event.type absent
};
void PrintTo(const CategoryCase& c, std::ostream* os) {
  *os << "category=" << c.category << " status=" << c.status
      << " evidence=" << (c.evidence ? c.evidence->json().substr(0, 40) : "none");
}

class MapperCategoryTest : public ::testing::TestWithParam<CategoryCase> {};

TEST_P(MapperCategoryTest, CategoryAndTypeArrays) {
  const CategoryCase& c = GetParam();
  Obj alert = baseAlert().str("category", c.category).str("status", c.status);
  if (c.evidence) alert.evidence({*c.evidence});
  const JsonDoc doc = mapAlert(alert.json());
  EXPECT_EQ(doc.getStrings("event.category"), c.event_category);
  if (c.event_type.empty()) {
    EXPECT_FALSE(doc.has("event.type")) << doc.getJson("event.type").value_or("");
  } else {
    EXPECT_EQ(doc.getStrings("event.type"), c.event_type);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MapperCategoryTest,
    ::testing::Values(
        CategoryCase{"Execution", std::nullopt, "New", {"host"}, {"start"}},
        CategoryCase{"Malware", std::nullopt, "New", {"host", "malware"}, {"start"}},
        CategoryCase{"Execution", processEvidence(), "New", {"host", "process"}, {"start"}},
        CategoryCase{
            "Malware", processEvidence(), "Resolved", {"host", "malware", "process"}, {"end"}},
        CategoryCase{"Malware", fileEvidence(), "InProgress", {"host", "malware"}, {}},
        CategoryCase{"Execution", userEvidence(), "New", {"host"}, {"access", "start"}},
        CategoryCase{"Execution", userEvidence(), "Resolved", {"host"}, {"access", "end"}},
        CategoryCase{"Execution", userEvidence(), "InProgress", {"host"}, {"access"}},
        CategoryCase{"Execution", std::nullopt, "InProgress", {"host"}, {}},
        CategoryCase{"Execution", fileEvidence(), "Unknown", {"host"}, {}}));

TEST(MapperFieldsTest, MessageIsTheTitleWithEscapesRoundTripped) {
  const std::string title = "He said \"hi\" \\ tab\tctl\x01 caf\xC3\xA9 \xF0\x9F\x98\x80 </x>";
  const JsonDoc doc = mapAlert(baseAlert().str("title", title).json());
  EXPECT_EQ(doc.getString("message"), title);
  EXPECT_FALSE(doc.has(md("title")));
}

TEST(MapperFieldsTest, CloudAndHostFields) {
  const JsonDoc doc =
      mapAlert(baseAlert().str("computerDnsName", "WKS-0142.Corp.Contoso.COM").json());
  EXPECT_EQ(doc.getString("cloud.account.id"), kTenant);
  EXPECT_EQ(doc.getString("cloud.instance.id"), kMachineId);
  EXPECT_EQ(doc.getString("host.id"), kMachineId);
  EXPECT_EQ(doc.getString("host.hostname"), "WKS-0142.Corp.Contoso.COM");
  EXPECT_EQ(doc.getString("host.name"), "wks-0142.corp.contoso.com");
  EXPECT_EQ(doc.getStrings("related.hosts"), Strings{"wks-0142.corp.contoso.com"});
}

TEST(MapperFieldsTest, HostNameLowercasesAsciiOnly) {
  const std::string hostname = "H\xC3\x96ST-\xC3\x84.Example";  // HÖST-Ä.Example
  const JsonDoc doc = mapAlert(baseAlert().str("computerDnsName", hostname).json());
  EXPECT_EQ(doc.getString("host.hostname"), hostname);
  EXPECT_EQ(doc.getString("host.name"), "h\xC3\x96st-\xC3\x84.example");
  EXPECT_EQ(doc.getStrings("related.hosts"), Strings{"h\xC3\x96st-\xC3\x84.example"});
}

TEST(MapperFieldsTest, NoHostFieldsWithoutComputerDnsName) {
  const JsonDoc doc = mapAlert(baseAlert().erase("computerDnsName").json());
  EXPECT_FALSE(doc.has("host.hostname"));
  EXPECT_FALSE(doc.has("host.name"));
  EXPECT_FALSE(doc.has("related.hosts"));
  EXPECT_EQ(doc.getString("host.id"), kMachineId);
}

TEST(MapperFieldsTest, ObserverName) {
  const JsonDoc doc = mapAlert(baseAlert().str("detectionSource", "WindowsDefenderAv").json());
  EXPECT_EQ(doc.getString("observer.name"), "WindowsDefenderAv");
  EXPECT_FALSE(doc.has(md("detectionSource")));
}

TEST(MapperFieldsTest, ThreatFromCategory) {
  const JsonDoc doc = mapAlert(baseAlert().str("category", "DefenseEvasion").json());
  EXPECT_EQ(doc.getString("threat.framework"), "MITRE ATT&CK");
  EXPECT_EQ(doc.getStrings("threat.technique.name"), Strings{"DefenseEvasion"});
  EXPECT_EQ(doc.getString("event.action"), "DefenseEvasion");
  EXPECT_FALSE(doc.has(md("category")));

  const JsonDoc none = mapAlert(baseAlert().erase("category").json());
  EXPECT_FALSE(none.has("threat"));
  EXPECT_FALSE(none.has("event.action"));
  EXPECT_EQ(none.getStrings("event.category"), Strings{"host"});
}

// --- rule.description: shorter than 1020 UTF-16 code units ----------------------------------

std::string repeat(std::string_view unit, std::size_t count) {
  std::string out;
  out.reserve(unit.size() * count);
  for (std::size_t i = 0; i < count; ++i) out += unit;
  return out;
}

struct DescriptionCase {
  const char* what;
  std::string json_text;  // the description as written inside the JSON string
  std::string decoded;    // the same text decoded
  bool to_rule;           // rule.description (true) or stays under defender_endpoint
};
void PrintTo(const DescriptionCase& c, std::ostream* os) { *os << c.what; }

class MapperDescriptionTest : public ::testing::TestWithParam<DescriptionCase> {};

TEST_P(MapperDescriptionTest, RuleDescriptionOnlyUnder1020Utf16Units) {
  const DescriptionCase& c = GetParam();
  const JsonDoc doc = mapAlert(baseAlert().raw("description", "\"" + c.json_text + "\"").json());
  if (c.to_rule) {
    EXPECT_EQ(doc.getString("rule.description"), c.decoded);
    EXPECT_FALSE(doc.has(md("description")));
  } else {
    EXPECT_FALSE(doc.has("rule.description"));
    EXPECT_EQ(doc.getString(md("description")), c.decoded);
  }
}

const std::string kE = "\xC3\xA9";             // é: 2 UTF-8 bytes, 1 UTF-16 unit
const std::string kEuro = "\xE2\x82\xAC";      // €: 3 UTF-8 bytes, 1 UTF-16 unit
const std::string kGrin = "\xF0\x9F\x98\x80";  // U+1F600: 4 UTF-8 bytes, 2 UTF-16 units

INSTANTIATE_TEST_SUITE_P(
    Cases, MapperDescriptionTest,
    ::testing::Values(
        DescriptionCase{"1019 ASCII", repeat("x", 1019), repeat("x", 1019), true},
        DescriptionCase{"1020 ASCII", repeat("x", 1020), repeat("x", 1020), false},
        DescriptionCase{"1019 two-byte chars (2038 bytes)", repeat(kE, 1019), repeat(kE, 1019),
                        true},
        DescriptionCase{"1020 two-byte chars", repeat(kE, 1020), repeat(kE, 1020), false},
        DescriptionCase{"600 two-byte chars (1200 bytes)", repeat(kE, 600), repeat(kE, 600), true},
        DescriptionCase{"1019 three-byte chars (3057 bytes)", repeat(kEuro, 1019),
                        repeat(kEuro, 1019), true},
        DescriptionCase{"509 astral + 1 = 1019 units", repeat(kGrin, 509) + "x",
                        repeat(kGrin, 509) + "x", true},
        DescriptionCase{"510 astral = 1020 units", repeat(kGrin, 510), repeat(kGrin, 510), false},
        DescriptionCase{"1019 \\u00e9 escapes", repeat("\\u00e9", 1019), repeat(kE, 1019), true},
        DescriptionCase{"510 escaped surrogate pairs", repeat("\\ud83d\\ude00", 510),
                        repeat(kGrin, 510), false},
        DescriptionCase{"1018 x + escaped newline", repeat("x", 1018) + "\\n",
                        repeat("x", 1018) + "\n", true}));

// --- file, process --------------------------------------------------------------------------

TEST(MapperFieldsTest, FileAndProcessFieldsFromProcessEvidence) {
  const JsonDoc doc = mapAlert(baseAlert().evidence({processEvidence()}).json());
  EXPECT_EQ(doc.getString("file.name"), "powershell.exe");
  EXPECT_EQ(doc.getString("file.path"), R"(C:\Windows\System32\WindowsPowerShell\v1.0)");
  EXPECT_EQ(doc.getString("file.hash.sha256"), kSha256);
  EXPECT_FALSE(doc.has("file.hash.sha1"));
  EXPECT_EQ(doc.type("process.pid"), "int");
  EXPECT_EQ(doc.getInt("process.pid"), 7312);
  EXPECT_EQ(doc.getString("process.command_line"), "powershell.exe -nop -w hidden -enc SQBFAFgA");
  EXPECT_EQ(doc.getString("process.start"), "2025-11-03T14:06:58.1023344Z");
  EXPECT_EQ(doc.type("process.parent.pid"), "int");
  EXPECT_EQ(doc.getInt("process.parent.pid"), 5120);
  EXPECT_EQ(doc.getString("process.parent.start"), "2025-11-03T08:12:40.6677001Z");
  EXPECT_EQ(doc.getString("process.parent.name"), "explorer.exe");
  EXPECT_EQ(doc.getString("process.name"), "powershell.exe");
  // What is left of the evidence.
  EXPECT_THAT(doc.keys(md("evidence")),
              UnorderedElementsAreArray(Strings{"entityType", "parentProcessFilePath"}));
  EXPECT_EQ(doc.getString(md("evidence.parentProcessFilePath")), R"(C:\Windows)");
}

TEST(MapperFieldsTest, FileEvidenceHasNoProcessName) {
  const JsonDoc doc = mapAlert(baseAlert().evidence({fileEvidence()}).json());
  EXPECT_EQ(doc.getString("file.name"), "invoice.docm");
  EXPECT_EQ(doc.getString("file.path"), R"(C:\Users\jdoe\Downloads)");
  EXPECT_EQ(doc.getString("file.hash.sha1"), kSha1);
  EXPECT_FALSE(doc.has("process"));
  EXPECT_THAT(doc.keys(md("evidence")),
              UnorderedElementsAreArray(Strings{"entityType", "detectionStatus"}));
}

TEST(MapperFieldsTest, ProcessEvidenceWithoutFileNameHasNoProcessName) {
  const JsonDoc doc = mapAlert(baseAlert().evidence({processEvidence().null("fileName")}).json());
  EXPECT_FALSE(doc.has("file.name"));
  EXPECT_FALSE(doc.has("process.name"));
  EXPECT_EQ(doc.getInt("process.pid"), 7312);
}

TEST(MapperFieldsTest, RelatedHashHoldsTheHashesThatExistInOrder) {
  const JsonDoc both =
      mapAlert(baseAlert().evidence({fileEvidence().str("sha256", kSha256)}).json());
  EXPECT_EQ(both.getStrings("related.hash"), (Strings{kSha1, kSha256}));
  EXPECT_EQ(both.getString("file.hash.sha1"), kSha1);
  EXPECT_EQ(both.getString("file.hash.sha256"), kSha256);
  const JsonDoc sha1 = mapAlert(baseAlert().evidence({fileEvidence()}).json());
  EXPECT_EQ(sha1.getStrings("related.hash"), Strings{kSha1});
  const JsonDoc sha256 = mapAlert(baseAlert().evidence({processEvidence()}).json());
  EXPECT_EQ(sha256.getStrings("related.hash"), Strings{kSha256});
  const JsonDoc none = mapAlert(baseAlert().evidence({userEvidence()}).json());
  EXPECT_FALSE(none.has("related.hash"));
  EXPECT_FALSE(none.has("file"));
}

// --- url ------------------------------------------------------------------------------------

void expectUrl(std::string_view url, const std::string& expected_url_object) {
  SCOPED_TRACE(std::string("url: ") + std::string(url));
  const JsonDoc doc = mapAlert(baseAlert().evidence({urlEvidence(url)}).json());
  const auto differences = diffJson(expected_url_object, doc.getJson("url").value_or("null"));
  EXPECT_TRUE(differences.empty()) << joinLines(differences);
  EXPECT_FALSE(doc.has(md("evidence.url")));
}

TEST(MapperUrlTest, EveryPart) {
  expectUrl("https://ann:s3cret@evil.example.com:8443/a/b/payload.ps1?x=1&y=2#frag", R"({
    "full":"https://ann:s3cret@evil.example.com:8443/a/b/payload.ps1?x=1&y=2#frag",
    "original":"https://ann:s3cret@evil.example.com:8443/a/b/payload.ps1?x=1&y=2#frag",
    "scheme":"https","domain":"evil.example.com","port":8443,"path":"/a/b/payload.ps1",
    "extension":"ps1","query":"x=1&y=2","fragment":"frag","username":"ann","password":"s3cret",
    "user_info":"ann:s3cret"})");
}

TEST(MapperUrlTest, PortOnlyWhenWritten) {
  expectUrl("https://download.example.com/tools/setup.exe", R"({
    "full":"https://download.example.com/tools/setup.exe",
    "original":"https://download.example.com/tools/setup.exe",
    "scheme":"https","domain":"download.example.com","path":"/tools/setup.exe",
    "extension":"exe"})");
  expectUrl("http://example.com:80/", R"({
    "full":"http://example.com:80/","original":"http://example.com:80/",
    "scheme":"http","domain":"example.com","port":80,"path":"/"})");
}

TEST(MapperUrlTest, PortIsAnInteger) {
  const JsonDoc doc =
      mapAlert(baseAlert().evidence({urlEvidence("http://example.com:8080/x")}).json());
  EXPECT_EQ(doc.type("url.port"), "int");
  EXPECT_EQ(doc.getInt("url.port"), 8080);
}

TEST(MapperUrlTest, PartsArePercentDecoded) {
  expectUrl("https://example.com/a%20b/c%2Etxt?q=%41%20b#%42", R"({
    "full":"https://example.com/a%20b/c%2Etxt?q=%41%20b#%42",
    "original":"https://example.com/a%20b/c%2Etxt?q=%41%20b#%42",
    "scheme":"https","domain":"example.com","path":"/a b/c.txt","extension":"txt",
    "query":"q=A b","fragment":"B"})");
}

TEST(MapperUrlTest, UserInfoWithoutPassword) {
  expectUrl("ftp://ann@files.example.com/pub/file.tar.gz", R"({
    "full":"ftp://ann@files.example.com/pub/file.tar.gz",
    "original":"ftp://ann@files.example.com/pub/file.tar.gz",
    "scheme":"ftp","domain":"files.example.com","path":"/pub/file.tar.gz","extension":"gz",
    "username":"ann","user_info":"ann"})");
}

TEST(MapperUrlTest, UserInfoIsDecodedAndSplitAtTheFirstColon) {
  expectUrl("https://a%40b:p%3Aw@h.example.com/", R"({
    "full":"https://a%40b:p%3Aw@h.example.com/","original":"https://a%40b:p%3Aw@h.example.com/",
    "scheme":"https","domain":"h.example.com","path":"/",
    "username":"a@b","password":"p:w","user_info":"a@b:p:w"})");
}

TEST(MapperUrlTest, ExtensionOnlyFromTheLastSegment) {
  expectUrl("https://example.com/a.b/c", R"({
    "full":"https://example.com/a.b/c","original":"https://example.com/a.b/c",
    "scheme":"https","domain":"example.com","path":"/a.b/c"})");
}

TEST(MapperUrlTest, RelativeReferenceHasOnlyAPath) {
  expectUrl("evil.example.com/a.ps1", R"({
    "full":"evil.example.com/a.ps1","original":"evil.example.com/a.ps1",
    "path":"evil.example.com/a.ps1","extension":"ps1"})");
}

TEST(MapperUrlTest, NotAUrlKeepsOnlyFull) {
  expectUrl("not a url", R"({"full":"not a url"})");
  expectUrl("http://exa mple.com/x", R"({"full":"http://exa mple.com/x"})");
}

// --- user, related --------------------------------------------------------------------------

TEST(MapperUserTest, RelatedUserGivesUserFieldsAndIsRemoved) {
  const JsonDoc doc = mapAlert(
      baseAlert()
          .raw("relatedUser", R"({"userName":"svc-backup","domainName":"CORP","extra":"x"})")
          .json());
  EXPECT_EQ(doc.getString("user.name"), "svc-backup");
  EXPECT_EQ(doc.getString("user.domain"), "CORP");
  EXPECT_EQ(doc.getStrings("related.user"), Strings{"svc-backup"});
  EXPECT_FALSE(doc.has(md("relatedUser")));
}

TEST(MapperUserTest, RelatedUserWithoutDomain) {
  const JsonDoc doc = mapAlert(
      baseAlert().raw("relatedUser", R"({"userName":"svc-backup","domainName":null})").json());
  EXPECT_EQ(doc.getString("user.name"), "svc-backup");
  EXPECT_FALSE(doc.has("user.domain"));
  EXPECT_EQ(doc.getStrings("related.user"), Strings{"svc-backup"});
}

TEST(MapperUserTest, RelatedUserWithoutName) {
  const JsonDoc doc =
      mapAlert(baseAlert().raw("relatedUser", R"({"userName":"","domainName":"CORP"})").json());
  EXPECT_FALSE(doc.has("user.name"));
  EXPECT_EQ(doc.getString("user.domain"), "CORP");
  EXPECT_FALSE(doc.has("related.user"));
  EXPECT_FALSE(doc.has(md("relatedUser")));
}

TEST(MapperUserTest, NoRelatedUser) {
  const JsonDoc doc = mapAlert(baseAlert().null("relatedUser").json());
  EXPECT_FALSE(doc.has("user"));
  EXPECT_FALSE(doc.has("related.user"));
  EXPECT_FALSE(doc.has(md("relatedUser")));
}

TEST(MapperUserTest, UserIdFromEvidenceSid) {
  const JsonDoc doc = mapAlert(baseAlert().null("relatedUser").evidence({userEvidence()}).json());
  EXPECT_EQ(doc.getString("user.id"), kSid);
  EXPECT_FALSE(doc.has("user.name"));
  EXPECT_FALSE(doc.has(md("evidence.userSid")));
  EXPECT_THAT(doc.keys(md("evidence")),
              UnorderedElementsAreArray(Strings{"entityType", "accountName", "domainName",
                                                "aadUserId", "userPrincipalName"}));
}

TEST(MapperUserTest, RelatedIpIsACopy) {
  const JsonDoc doc = mapAlert(baseAlert().evidence({ipEvidence("10.1.2.3")}).json());
  EXPECT_EQ(doc.getStrings("related.ip"), Strings{"10.1.2.3"});
  EXPECT_EQ(doc.getString(md("evidence.ipAddress")), "10.1.2.3");
}

// --- identifiers, tags, namespace -------------------------------------------------------------

TEST(MapperFieldsTest, IncidentAndInvestigationIdsAreStrings) {
  const JsonDoc numbers =
      mapAlert(baseAlert().num("incidentId", 12).num("investigationId", 9).json());
  EXPECT_EQ(numbers.type(md("incidentId")), "string");
  EXPECT_EQ(numbers.getString(md("incidentId")), "12");
  EXPECT_EQ(numbers.type(md("investigationId")), "string");
  EXPECT_EQ(numbers.getString(md("investigationId")), "9");
  const JsonDoc big = mapAlert(baseAlert().num("incidentId", 1126093).json());
  EXPECT_EQ(big.getString(md("incidentId")), "1126093");
  const JsonDoc strings =
      mapAlert(baseAlert().str("incidentId", "12").str("investigationId", "9").json());
  EXPECT_EQ(strings.getString(md("incidentId")), "12");
  EXPECT_EQ(strings.getString(md("investigationId")), "9");
  const JsonDoc absent = mapAlert(baseAlert().null("incidentId").null("investigationId").json());
  EXPECT_FALSE(absent.has(md("incidentId")));
  EXPECT_FALSE(absent.has(md("investigationId")));
}

TEST(MapperFieldsTest, DefaultTags) {
  const JsonDoc doc = mapAlert(baseAlert().json());
  EXPECT_EQ(doc.getStrings("tags"), (Strings{"microsoft-defender-endpoint", "forwarded"}));
}

TEST(MapperFieldsTest, ConfiguredTagsAndNamespace) {
  MapOptions options;
  options.tags = {"team-a", "prod"};
  options.data_stream_namespace = "production";
  const JsonDoc doc = mapAlert(baseAlert().json(), options);
  EXPECT_EQ(doc.getStrings("tags"), (Strings{"team-a", "prod"}));
  EXPECT_EQ(doc.getString("data_stream.namespace"), "production");
  EXPECT_EQ(doc.getString("data_stream.dataset"), kDataset);
}

TEST(MapperFieldsTest, PreserveOriginalEventAddsItsTagLast) {
  MapOptions options = preserveOn();
  options.tags = {"team-a"};
  const JsonDoc doc = mapAlert(baseAlert().json(), options);
  EXPECT_EQ(doc.getStrings("tags"), (Strings{"team-a", "preserve_original_event"}));
  const JsonDoc defaults = mapAlert(baseAlert().json(), preserveOn());
  EXPECT_EQ(defaults.getStrings("tags"),
            (Strings{"microsoft-defender-endpoint", "forwarded", "preserve_original_event"}));
}

// --- event.original -------------------------------------------------------------------------

TEST(MapperOriginalTest, AbsentWithoutTheOption) {
  const JsonDoc doc = mapAlert(baseAlert().evidence({fileEvidence()}).json());
  EXPECT_FALSE(doc.has("event.original"));
}

TEST(MapperOriginalTest, IsTheAlertWithItsOwnEvidenceSplitOut) {
  const Obj alert = baseAlert().raw(
      "comments", R"([{"createdTime":"2021-01-26T01:00:37.8404534Z","comment":"kept here"}])");
  const std::vector<Obj> evidences = {userEvidence(), processEvidence()};
  const Mapped mapped = mapText(Obj(alert).evidence(evidences).json(), preserveOn());
  ASSERT_EQ(mapped.docs.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE("document " + std::to_string(i));
    // Raw: nulls, comments and all, with evidence replaced by this document's one object.
    expectOriginal(mapped.doc(i), Obj(alert).evidence(evidences[i]).json());
  }
}

TEST(MapperOriginalTest, AlertWithoutSplittableEvidenceIsKeptAsIs) {
  for (const std::string& line :
       {baseAlert().json(), baseAlert().raw("evidence", "[]").json(),
        baseAlert().null("evidence").json(), baseAlert().evidence(fileEvidence()).json()}) {
    expectOriginal(mapAlert(line, preserveOn()), line);
  }
}

TEST(MapperOriginalTest, PageElementIsTheOriginalNotThePage) {
  const std::string alert = baseAlert().evidence({fileEvidence()}).json();
  const JsonDoc doc = mapAlert(page({alert}), preserveOn());
  expectOriginal(doc, baseAlert().evidence(fileEvidence()).json());
}

TEST(MapperOriginalTest, IsCompactEvenWhenTheInputIsNot) {
  const std::string line =
      "{ \"id\" : \"x\",\t \"title\" : \"a  b\" , \"evidence\" : [ { \"entityType\" : \"File\" ,"
      " \"fileName\" : \"f.txt\" } ] }";
  const JsonDoc doc = mapAlert(line, preserveOn());
  expectOriginal(
      doc, R"({"id":"x","title":"a  b","evidence":{"entityType":"File","fileName":"f.txt"}})");
}

// --- log.*, document shape ------------------------------------------------------------------

TEST(MapperLogTest, FileAndOffsetWhenFromAFile) {
  LineContext context;
  context.file_path = "/var/log/mde/alerts.ndjson";
  context.offset = 4096;
  const Mapped mapped = mapText(
      page({baseAlert().evidence({fileEvidence(), processEvidence()}).json(), baseAlert().json()}),
      MapOptions{}, context);
  ASSERT_EQ(mapped.docs.size(), 3u);
  for (std::size_t i = 0; i < mapped.docs.size(); ++i) {
    const JsonDoc doc = mapped.doc(i);
    EXPECT_EQ(doc.getString("log.file.path"), "/var/log/mde/alerts.ndjson") << i;
    EXPECT_EQ(doc.type("log.offset"), "int") << i;
    EXPECT_EQ(doc.getInt("log.offset"), 4096) << i;
  }
}

TEST(MapperLogTest, OffsetZeroIsWritten) {
  LineContext context;
  context.file_path = "alerts.ndjson";
  context.offset = 0;
  const JsonDoc doc = mapAlert(baseAlert().json(), MapOptions{}, context);
  EXPECT_EQ(doc.getString("log.file.path"), "alerts.ndjson");
  EXPECT_EQ(doc.getInt("log.offset"), 0);
}

TEST(MapperLogTest, NoLogFieldsOtherwise) {
  const JsonDoc doc = mapAlert(baseAlert().json());
  EXPECT_FALSE(doc.has("log"));
  LineContext context;
  context.offset = 77;  // an offset without a file is not a file
  const JsonDoc no_path = mapAlert(baseAlert().json(), MapOptions{}, context);
  EXPECT_FALSE(no_path.has("log"));
}

TEST(MapperLogTest, ErrorDocumentsFromAFileCarryLogFieldsToo) {
  LineContext context;
  context.file_path = "/var/log/mde/alerts.ndjson";
  context.offset = 123;
  const CollectedDocument d = mapError("{not json", MapOptions{}, context);
  expectErrorShape(d, MapOptions{}, /*from_file=*/true);
  const JsonDoc doc(d.json);
  EXPECT_EQ(doc.getString("log.file.path"), "/var/log/mde/alerts.ndjson");
  EXPECT_EQ(doc.getInt("log.offset"), 123);
}

TEST(MapperShapeTest, NestedObjectsNeverDottedKeys) {
  LineContext context;
  context.file_path = "/tmp/a.ndjson";
  context.offset = 1;
  const Mapped mapped =
      mapText(baseAlert()
                  .evidence({processEvidence(), userEvidence(), ipEvidence("10.0.0.1"),
                             urlEvidence("https://u:p@example.com:8443/x/y.js?q#f")})
                  .json(),
              preserveOn(), context);
  ASSERT_EQ(mapped.docs.size(), 4u);
  for (std::size_t i = 0; i < mapped.docs.size(); ++i) {
    const JsonDoc doc = mapped.doc(i);
    ASSERT_TRUE(doc.valid()) << mapped.docs[i].json;
    for (const auto& key : doc.allKeys()) {
      EXPECT_EQ(key.find('.'), std::string::npos) << "dotted key '" << key << "' in document " << i;
    }
    EXPECT_EQ(doc.type("event"), "object");
    EXPECT_EQ(doc.type("microsoft.defender_endpoint"), "object");
  }
}

TEST(MapperShapeTest, OneCompactJsonObjectPerDocument) {
  const Mapped mapped = mapText(
      baseAlert().str("title", "line one\nline two\r\n").evidence({processEvidence()}).json(),
      preserveOn());
  ASSERT_EQ(mapped.docs.size(), 1u);
  const std::string& json = mapped.docs[0].json;
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_EQ(json.find('\r'), std::string::npos);
  EXPECT_EQ(mapped.doc(0).type(""), "object");
  EXPECT_EQ(mapped.doc(0).getString("message"), "line one\nline two\r\n");
}

TEST(MapperShapeTest, NoDuplicateKeys) {
  const Mapped mapped = mapText(
      baseAlert().evidence({processEvidence(), urlEvidence("https://example.com/a.js")}).json(),
      preserveOn());
  ASSERT_EQ(mapped.docs.size(), 2u);
  for (const auto& d : mapped.docs) {
    // Comparing a document with itself reports duplicate keys and nothing else.
    const auto differences = diffJson(d.json, d.json);
    EXPECT_TRUE(differences.empty()) << joinLines(differences);
  }
}

// =============================================================================================
// Section 5: identity

bool isHex(std::string_view text) {
  for (const char c : text) {
    const bool digit = c >= '0' && c <= '9';
    const bool lower = c >= 'a' && c <= 'f';
    const bool upper = c >= 'A' && c <= 'F';
    if (!digit && !lower && !upper) return false;
  }
  return true;
}

TEST(MapperIdentityTest, DocumentIdIsStableAndDependsOnEveryInput) {
  const std::string id = documentId(kAlertId, kLastUpdate, 0);
  EXPECT_EQ(id.size(), 32u) << id;
  EXPECT_TRUE(isHex(id)) << id;
  EXPECT_EQ(id, documentId(kAlertId, kLastUpdate, 0));
  EXPECT_NE(id, documentId(kAlertId, "2025-11-03T15:35:02.0566668Z", 0));
  EXPECT_NE(id, documentId(kAlertId, kLastUpdate, 1));
  EXPECT_NE(id, documentId("da638977756323456770_-1587340121", kLastUpdate, 0));
  EXPECT_NE(documentId(kAlertId, kLastUpdate, 1), documentId(kAlertId, kLastUpdate, 2));
}

TEST(MapperIdentityTest, DocumentIdDoesNotConfuseFieldBoundaries) {
  EXPECT_NE(documentId("ab", "c", 0), documentId("a", "bc", 0));
  EXPECT_NE(documentId("a1", "", 0), documentId("a", "1", 0));
  EXPECT_NE(documentId("a", "t1", 0), documentId("a", "t", 10));
}

TEST(MapperIdentityTest, ViewIdIsTheDocumentIdOfEachDocument) {
  const Mapped mapped =
      mapText(baseAlert().evidence({userEvidence(), processEvidence(), fileEvidence()}).json());
  ASSERT_EQ(mapped.docs.size(), 3u);
  std::set<std::string> ids;
  for (std::uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(mapped.docs[i].evidence_index, i);
    EXPECT_EQ(mapped.docs[i].id, documentId(kAlertId, kLastUpdate, i));
    ids.insert(mapped.docs[i].id);
  }
  EXPECT_EQ(ids.size(), 3u);
}

TEST(MapperIdentityTest, SameAlertVersionSameIdsNewVersionNewIds) {
  const std::string line = baseAlert().evidence({fileEvidence(), processEvidence()}).json();
  const Mapped first = mapText(line);
  const Mapped again = mapText(line, preserveOn());  // options do not change identity
  const Mapped updated = mapText(baseAlert()
                                     .str("lastUpdateTime", "2025-11-04T09:00:00Z")
                                     .str("status", "Resolved")
                                     .evidence({fileEvidence(), processEvidence()})
                                     .json());
  ASSERT_EQ(first.docs.size(), 2u);
  ASSERT_EQ(again.docs.size(), 2u);
  ASSERT_EQ(updated.docs.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(first.docs[i].id, again.docs[i].id);
    EXPECT_NE(first.docs[i].id, updated.docs[i].id);
    EXPECT_EQ(updated.docs[i].id,
              documentId(kAlertId, "2025-11-04T09:00:00Z", static_cast<std::uint32_t>(i)));
  }
}

TEST(MapperIdentityTest, ErrorFlagAndEvidenceIndexOnTheView) {
  const Mapped mapped = mapText(baseAlert().evidence({fileEvidence()}).json());
  ASSERT_EQ(mapped.docs.size(), 1u);
  EXPECT_FALSE(mapped.docs[0].error);
  EXPECT_EQ(mapped.docs[0].evidence_index, 0u);
  const Mapped error = mapText("not json");
  ASSERT_EQ(error.docs.size(), 1u);
  EXPECT_TRUE(error.docs[0].error);
  EXPECT_EQ(error.docs[0].evidence_index, 0u);
}

// =============================================================================================
// Section 6: bad input

TEST(MapperErrorTest, LineThatIsNotJson) {
  for (const char* line :
       {R"({"id": "da1", "title": "truncated)", "not json at all", R"({"id":"x"} trailing)",
        R"({"a":1,})", "nul", "text with \"quotes\", \\backslash and\ttab"}) {
    SCOPED_TRACE(line);
    const CollectedDocument d = mapError(line);
    expectErrorShape(d);
    EXPECT_EQ(JsonDoc(d.json).getString("event.original"), line);
  }
}

TEST(MapperErrorTest, LineThatIsNotJsonCountsAsAnError) {
  const Mapped mapped = mapText("{broken");
  EXPECT_EQ(mapped.stats.documents, 1u);
  EXPECT_EQ(mapped.stats.errors, 1u);
}

TEST(MapperErrorTest, InvalidUtf8StillGivesValidJson) {
  const std::string line = "{\"id\":\"bad \xFF\xFE byte\",\"title\":\"x\"}";
  const Mapped mapped = mapText(line);
  ASSERT_EQ(mapped.docs.size(), 1u);
  EXPECT_TRUE(JsonDoc(mapped.docs[0].json).valid())
      << "the document must be valid JSON (UTF-8): " << mapped.docs[0].json;
}

TEST(MapperErrorTest, LineThatIsJsonButNotAnObject) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"42", "42"},     {R"("text")", R"("text")"}, {"null", "null"},
      {"true", "true"}, {"[1, 2]", "[1,2]"},        {R"( [ {"id" : "x"} ] )", R"([{"id":"x"}])"}};
  for (const auto& [line, compact] : cases) {
    SCOPED_TRACE(line);
    const CollectedDocument d = mapError(line);
    expectErrorShape(d);
    EXPECT_EQ(JsonDoc(d.json).getString("event.original"), compact);
    EXPECT_TRUE(mentions(d, "not a JSON object")) << ::testing::PrintToString(errorMessages(d));
  }
}

TEST(MapperErrorTest, PageElementThatIsNotAnObject) {
  const std::string good = baseAlert().json();
  const Mapped mapped =
      mapText(R"({"value":[)" + good + R"(, 42 ,[1, "a"],null,"x",)" + good + "]}");
  ASSERT_EQ(mapped.docs.size(), 6u);
  EXPECT_FALSE(mapped.docs[0].error);
  EXPECT_FALSE(mapped.docs[5].error);
  const char* originals[] = {"42", R"([1,"a"])", "null", R"("x")"};
  for (std::size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(originals[i]);
    const CollectedDocument& d = mapped.docs[i + 1];
    expectErrorShape(d);
    EXPECT_EQ(JsonDoc(d.json).getString("event.original"), originals[i]);
    EXPECT_TRUE(mentions(d, "not a JSON object")) << ::testing::PrintToString(errorMessages(d));
  }
  EXPECT_EQ(mapped.stats.errors, 4u);
  EXPECT_EQ(mapped.stats.documents, 6u);
}

TEST(MapperErrorTest, ErrorDocumentsFollowTheOptions) {
  MapOptions options;
  options.tags = {"team-a"};
  options.data_stream_namespace = "production";
  const CollectedDocument d = mapError("not json", options);
  expectErrorShape(d, options);
  EXPECT_EQ(JsonDoc(d.json).getStrings("tags"), (Strings{"team-a", "preserve_original_event"}));

  // With the option on, the tag is there once.
  MapOptions preserve = preserveOn();
  const CollectedDocument p = mapError("not json", preserve);
  EXPECT_EQ(JsonDoc(p.json).getStrings("tags"),
            (Strings{"microsoft-defender-endpoint", "forwarded", "preserve_original_event"}));
}

// --- values the index template types strictly ----------------------------------------------

struct DateField {
  const char* name;
  bool in_evidence;
  const char* ecs_path;  // where a valid value lands
};
void PrintTo(const DateField& f, std::ostream* os) { *os << f.name; }

const DateField kDateFields[] = {
    {"alertCreationTime", false, "event.created"},
    {"firstEventTime", false, "event.start"},
    {"lastEventTime", false, "event.end"},
    {"lastUpdateTime", false, "microsoft.defender_endpoint.lastUpdateTime"},
    {"resolvedTime", false, "microsoft.defender_endpoint.resolvedTime"},
    {"processCreationTime", true, "process.start"},
    {"parentProcessCreationTime", true, "process.parent.start"},
    {"evidenceCreationTime", true, "microsoft.defender_endpoint.evidence.evidenceCreationTime"},
};

// An alert (one Process evidence) with `field` set to the raw JSON `value`, and the split
// alert an error document would keep.
struct BuiltAlert {
  std::string line;
  std::string split;
};
BuiltAlert alertWith(const char* field, bool in_evidence, const std::string& raw_value) {
  Obj evidence = processEvidence().str("evidenceCreationTime", "2025-11-03T14:07:14.35Z");
  Obj alert = baseAlert().str("resolvedTime", "2025-11-03T16:00:00Z");
  if (in_evidence) {
    evidence.raw(field, raw_value);
  } else {
    alert.raw(field, raw_value);
  }
  return BuiltAlert{Obj(alert).evidence({evidence}).json(), Obj(alert).evidence(evidence).json()};
}

class MapperBadDateTest : public ::testing::TestWithParam<std::tuple<DateField, const char*>> {};

TEST_P(MapperBadDateTest, IsAnErrorDocument) {
  const auto& [field, value] = GetParam();
  const BuiltAlert alert = alertWith(field.name, field.in_evidence, quote(value));
  const CollectedDocument d = mapError(alert.line);
  expectErrorShape(d);
  expectOriginal(JsonDoc(d.json), alert.split);
  EXPECT_TRUE(mentions(d, field.name)) << ::testing::PrintToString(errorMessages(d));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MapperBadDateTest,
    ::testing::Combine(::testing::ValuesIn(kDateFields),
                       ::testing::Values("yesterday", "2025-02-30T00:00:00Z",
                                         "2023-02-29T00:00:00Z", "2025-13-01T00:00:00Z",
                                         "2025-11-03T25:00:00Z", "2025-11-03T14:60:00Z",
                                         "2025-11-03 14:07:14Z", "2025-11-03T14:07:14.1234567890Z",
                                         "03/11/2025", "20251103T140714Z",
                                         "2025-11-03T14:07:14Zjunk", "2025-11-03T14:07:14+2",
                                         "1730642834")));

class MapperGoodDateTest : public ::testing::TestWithParam<std::tuple<DateField, const char*>> {};

TEST_P(MapperGoodDateTest, IsAccepted) {
  const auto& [field, value] = GetParam();
  const BuiltAlert alert = alertWith(field.name, field.in_evidence, quote(value));
  const JsonDoc doc = mapAlert(alert.line);
  EXPECT_EQ(doc.getString(field.ecs_path), value);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MapperGoodDateTest,
    ::testing::Combine(::testing::ValuesIn(kDateFields),
                       ::testing::Values("2025-11-03T14:07:14Z", "2025-11-03T14:07:14.123456789Z",
                                         "2025-11-03T14:07:14.1187425Z", "2025-11-03T14:07Z",
                                         "2025-11-03", "2025-11-03T14:07:14+02:00",
                                         "2025-11-03T14:07:14-0530", "2024-02-29T23:59:59.9Z",
                                         "2025-11-03T14:07:14.1187425")));

TEST(MapperErrorTest, EmptyDateValuesAreDroppedNotErrors) {
  for (const char* value : {"null", R"("")", R"("-")", R"("N/A")"}) {
    const BuiltAlert alert = alertWith("resolvedTime", false, value);
    const JsonDoc doc = mapAlert(alert.line);
    EXPECT_FALSE(doc.has(md("resolvedTime"))) << value;
    const BuiltAlert evidence = alertWith("processCreationTime", true, value);
    EXPECT_FALSE(mapAlert(evidence.line).has("process.start")) << value;
  }
}

class MapperBadIpTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MapperBadIpTest, IsAnErrorDocument) {
  const std::string line = baseAlert().evidence({ipEvidence(GetParam())}).json();
  const CollectedDocument d = mapError(line);
  expectErrorShape(d);
  expectOriginal(JsonDoc(d.json), baseAlert().evidence(ipEvidence(GetParam())).json());
  EXPECT_TRUE(mentions(d, "ipAddress")) << ::testing::PrintToString(errorMessages(d));
}

INSTANTIATE_TEST_SUITE_P(Cases, MapperBadIpTest,
                         ::testing::Values("999.1.1.1", "not-an-ip", "10.0.0", "1.2.3.4.5",
                                           "10.0.0.1/24", "2001:db8::g", "2001:db8:::1",
                                           "10.0.0.1 ", "host.example.com"));

class MapperGoodIpTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MapperGoodIpTest, IsAccepted) {
  const JsonDoc doc = mapAlert(baseAlert().evidence({ipEvidence(GetParam())}).json());
  EXPECT_EQ(doc.getStrings("related.ip"), Strings{GetParam()});
  EXPECT_EQ(doc.getString(md("evidence.ipAddress")), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, MapperGoodIpTest,
                         ::testing::Values("10.1.2.3", "0.0.0.0", "255.255.255.255", "2001:db8::1",
                                           "::1", "::", "fe80::1:2:3:4",
                                           "2001:0db8:0000:0000:0000:ff00:0042:8329",
                                           "::ffff:10.0.0.1"));

struct PidCase {
  const char* field;
  const char* raw;  // JSON text of the value
};
void PrintTo(const PidCase& c, std::ostream* os) { *os << c.field << "=" << c.raw; }

class MapperBadPidTest : public ::testing::TestWithParam<PidCase> {};

TEST_P(MapperBadPidTest, IsAnErrorDocument) {
  const PidCase& c = GetParam();
  const BuiltAlert alert = alertWith(c.field, true, c.raw);
  const CollectedDocument d = mapError(alert.line);
  expectErrorShape(d);
  expectOriginal(JsonDoc(d.json), alert.split);
  EXPECT_TRUE(mentions(d, c.field)) << ::testing::PrintToString(errorMessages(d));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MapperBadPidTest,
    ::testing::Values(PidCase{"processId", R"("7312")"}, PidCase{"processId", R"("abc")"},
                      PidCase{"processId", "7312.5"}, PidCase{"processId", "true"},
                      PidCase{"processId", R"({"pid":1})"}, PidCase{"parentProcessId", R"("5120")"},
                      PidCase{"parentProcessId", "5120.25"}, PidCase{"parentProcessId", "false"}));

class MapperGoodPidTest : public ::testing::TestWithParam<std::int64_t> {};

TEST_P(MapperGoodPidTest, IsAccepted) {
  const std::string raw = std::to_string(GetParam());
  const JsonDoc doc = mapAlert(alertWith("processId", true, raw).line);
  EXPECT_EQ(doc.type("process.pid"), "int");
  EXPECT_EQ(doc.getInt("process.pid"), GetParam());
  const JsonDoc parent = mapAlert(alertWith("parentProcessId", true, raw).line);
  EXPECT_EQ(parent.type("process.parent.pid"), "int");
  EXPECT_EQ(parent.getInt("process.parent.pid"), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, MapperGoodPidTest,
                         ::testing::Values(std::int64_t{0}, std::int64_t{4}, std::int64_t{7312},
                                           std::int64_t{4294967296}));

TEST(MapperErrorTest, EveryProblemOfAnAlertIsListed) {
  Obj alert = baseAlert().str("firstEventTime", "yesterday").str("lastUpdateTime", "soon");
  const Obj evidence = processEvidence()
                           .str("processId", "7312")
                           .str("ipAddress", "999.1.1.1")
                           .str("evidenceCreationTime", "2025-02-30T00:00:00Z");
  const CollectedDocument d = mapError(Obj(alert).evidence({evidence}).json());
  expectErrorShape(d);
  for (const char* field :
       {"firstEventTime", "lastUpdateTime", "processId", "ipAddress", "evidenceCreationTime"}) {
    EXPECT_TRUE(mentions(d, field))
        << field << " not in " << ::testing::PrintToString(errorMessages(d));
  }
  expectOriginal(JsonDoc(d.json), Obj(alert).evidence(evidence).json());
}

TEST(MapperErrorTest, EachSplitDocumentFailsOnItsOwn) {
  const Obj alert = baseAlert();
  const std::vector<Obj> evidences = {
      processEvidence(), processEvidence().str("processId", "not-a-pid"), fileEvidence()};
  const Mapped mapped = mapText(Obj(alert).evidence(evidences).json());
  ASSERT_EQ(mapped.docs.size(), 3u);
  EXPECT_FALSE(mapped.docs[0].error);
  EXPECT_EQ(mapped.doc(0).getInt("process.pid"), 7312);
  EXPECT_EQ(mapped.docs[0].evidence_index, 0u);
  expectErrorShape(mapped.docs[1]);
  EXPECT_EQ(mapped.docs[1].evidence_index, 1u);
  EXPECT_TRUE(mentions(mapped.docs[1], "processId"));
  expectOriginal(mapped.doc(1), Obj(alert).evidence(evidences[1]).json());
  EXPECT_FALSE(mapped.docs[2].error);
  EXPECT_EQ(mapped.docs[2].evidence_index, 2u);
  EXPECT_EQ(mapped.doc(2).getString("file.name"), "invoice.docm");
  EXPECT_EQ(mapped.docs[2].id, documentId(kAlertId, kLastUpdate, 2));
  EXPECT_EQ(mapped.stats.alerts, 1u);
  EXPECT_EQ(mapped.stats.documents, 3u);
  EXPECT_EQ(mapped.stats.errors, 1u);
}

TEST(MapperErrorTest, AlertLevelProblemFailsEverySplitDocument) {
  const Obj alert = baseAlert().str("lastEventTime", "later");
  const Mapped mapped = mapText(Obj(alert).evidence({fileEvidence(), processEvidence()}).json());
  ASSERT_EQ(mapped.docs.size(), 2u);
  for (std::uint32_t i = 0; i < 2; ++i) {
    expectErrorShape(mapped.docs[i]);
    EXPECT_EQ(mapped.docs[i].evidence_index, i);
    EXPECT_TRUE(mentions(mapped.docs[i], "lastEventTime"));
  }
  expectOriginal(mapped.doc(0), Obj(alert).evidence(fileEvidence()).json());
  expectOriginal(mapped.doc(1), Obj(alert).evidence(processEvidence()).json());
  EXPECT_EQ(mapped.stats.errors, 2u);
}

TEST(MapperErrorTest, ErrorDocumentKeepsTheOriginalWhateverTheOption) {
  for (const bool preserve : {false, true}) {
    MapOptions options;
    options.preserve_original_event = preserve;
    const BuiltAlert alert = alertWith("firstEventTime", false, R"("yesterday")");
    const CollectedDocument d = mapError(alert.line, options);
    expectErrorShape(d, options);
    expectOriginal(JsonDoc(d.json), alert.split);
  }
}

TEST(MapperErrorTest, TheRunGoesOnAfterAnError) {
  Mapper mapper(MapOptions{}, [] { return std::string(kNow); });
  CollectingSink sink;
  mapper.mapLine("{broken", sink);
  mapper.mapLine(baseAlert().str("firstEventTime", "bad").json(), sink);
  const LineStats stats = mapper.mapLine(baseAlert().evidence({fileEvidence()}).json(), sink);
  ASSERT_EQ(sink.documents.size(), 3u);
  EXPECT_TRUE(sink.documents[0].error);
  EXPECT_TRUE(sink.documents[1].error);
  EXPECT_FALSE(sink.documents[2].error);
  EXPECT_EQ(JsonDoc(sink.documents[2].json).getString("file.name"), "invoice.docm");
  EXPECT_EQ(stats.documents, 1u);  // per line
  EXPECT_EQ(stats.errors, 0u);
}

}  // namespace
