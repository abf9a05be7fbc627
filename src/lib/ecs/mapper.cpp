// The alert -> ECS mapper. See mapping.md; section numbers below refer to it.
//
// Shape of the work: a structural scan of the line (line_scanner) finds the alerts of a
// page; each alert is parsed on its own with simdjson's DOM parser (so memory follows
// the largest alert, not the largest page). Everything in a document that depends only
// on the alert is serialized once per alert; each evidence then adds its own part.
#include "mdecollect/ecs/mapper.h"

#include <arpa/inet.h>
#include <simdjson.h>

#include <array>
#include <cstring>
#include <optional>

#include "ecs/line_scanner.h"
#include "ecs/url_parts.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"

namespace mdec::ecs {

static_assert(kLinePadding >= simdjson::SIMDJSON_PADDING);

namespace {

using core::appendDouble;
using core::appendEscaped;
using core::appendEscapedLossy;
using core::appendInt;
using core::appendString;
using core::appendUint;
using core::ObjectWriter;
using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr std::string_view kEcsVersion = "8.11.0";
constexpr std::string_view kDataset = "microsoft_defender_endpoint.log";
constexpr std::string_view kModule = "microsoft_defender_endpoint";
constexpr std::string_view kPreserveTag = "preserve_original_event";

// ---- Key classification (one pass over each object, no hashing) ----------------------

enum class AK {
  kOther,
  kId,
  kIncidentId,
  kInvestigationId,
  kSeverity,
  kStatus,
  kCategory,
  kTitle,
  kDescription,
  kAlertCreationTime,
  kFirstEventTime,
  kLastEventTime,
  kLastUpdateTime,
  kResolvedTime,
  kMachineId,
  kComputerDnsName,
  kAadTenantId,
  kDetectionSource,
  kRelatedUser,
  kComments,
  kEvidence,
  kCount
};

struct KeyName {
  std::string_view name;
  int key;
};

constexpr std::array<KeyName, 20> kAlertKeys = {{
    {"id", static_cast<int>(AK::kId)},
    {"incidentId", static_cast<int>(AK::kIncidentId)},
    {"investigationId", static_cast<int>(AK::kInvestigationId)},
    {"severity", static_cast<int>(AK::kSeverity)},
    {"status", static_cast<int>(AK::kStatus)},
    {"category", static_cast<int>(AK::kCategory)},
    {"title", static_cast<int>(AK::kTitle)},
    {"description", static_cast<int>(AK::kDescription)},
    {"alertCreationTime", static_cast<int>(AK::kAlertCreationTime)},
    {"firstEventTime", static_cast<int>(AK::kFirstEventTime)},
    {"lastEventTime", static_cast<int>(AK::kLastEventTime)},
    {"lastUpdateTime", static_cast<int>(AK::kLastUpdateTime)},
    {"resolvedTime", static_cast<int>(AK::kResolvedTime)},
    {"machineId", static_cast<int>(AK::kMachineId)},
    {"computerDnsName", static_cast<int>(AK::kComputerDnsName)},
    {"aadTenantId", static_cast<int>(AK::kAadTenantId)},
    {"detectionSource", static_cast<int>(AK::kDetectionSource)},
    {"relatedUser", static_cast<int>(AK::kRelatedUser)},
    {"comments", static_cast<int>(AK::kComments)},
    {"evidence", static_cast<int>(AK::kEvidence)},
}};

enum class EK {
  kOther,
  kEntityType,
  kFileName,
  kFilePath,
  kSha1,
  kSha256,
  kProcessId,
  kProcessCommandLine,
  kProcessCreationTime,
  kParentProcessId,
  kParentProcessCreationTime,
  kParentProcessFileName,
  kUrl,
  kUserSid,
  kIpAddress,
  kEvidenceCreationTime,
  kCount
};

constexpr std::array<KeyName, 15> kEvidenceKeys = {{
    {"entityType", static_cast<int>(EK::kEntityType)},
    {"fileName", static_cast<int>(EK::kFileName)},
    {"filePath", static_cast<int>(EK::kFilePath)},
    {"sha1", static_cast<int>(EK::kSha1)},
    {"sha256", static_cast<int>(EK::kSha256)},
    {"processId", static_cast<int>(EK::kProcessId)},
    {"processCommandLine", static_cast<int>(EK::kProcessCommandLine)},
    {"processCreationTime", static_cast<int>(EK::kProcessCreationTime)},
    {"parentProcessId", static_cast<int>(EK::kParentProcessId)},
    {"parentProcessCreationTime", static_cast<int>(EK::kParentProcessCreationTime)},
    {"parentProcessFileName", static_cast<int>(EK::kParentProcessFileName)},
    {"url", static_cast<int>(EK::kUrl)},
    {"userSid", static_cast<int>(EK::kUserSid)},
    {"ipAddress", static_cast<int>(EK::kIpAddress)},
    {"evidenceCreationTime", static_cast<int>(EK::kEvidenceCreationTime)},
}};

template <std::size_t N>
int classify(const std::array<KeyName, N>& table, std::string_view key) {
  for (const auto& k : table) {
    if (k.name.size() == key.size() && std::memcmp(k.name.data(), key.data(), key.size()) == 0) {
      return k.key;
    }
  }
  return 0;
}

// ---- Values ---------------------------------------------------------------------------

bool isString(const element& e) { return e.type() == element_type::STRING; }

std::string_view stringOf(const element& e) {
  std::string_view s;
  if (e.get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}

// Section 3: values that count as absent at the top level of an alert or evidence.
bool isBlankValue(const element& e) {
  switch (e.type()) {
    case element_type::NULL_VALUE:
      return true;
    case element_type::STRING: {
      const std::string_view s = stringOf(e);
      return s.empty() || s == "-" || s == "N/A";
    }
    default:
      return false;
  }
}

// Absent, null or "": a rule with such a source does nothing (section 4).
bool isAbsentValue(const element& e) {
  return e.type() == element_type::NULL_VALUE || (isString(e) && stringOf(e).empty());
}

void writeCompact(std::string& out, const element& e);

void writeNumber(std::string& out, const element& e) {
  switch (e.type()) {
    case element_type::INT64:
      appendInt(out, int64_t(e));
      break;
    case element_type::UINT64:
      appendUint(out, uint64_t(e));
      break;
    default:
      appendDouble(out, double(e));
      break;
  }
}

void writeCompact(std::string& out, const element& e) {
  switch (e.type()) {
    case element_type::OBJECT: {
      out.push_back('{');
      bool first = true;
      for (auto field : simdjson::dom::object(e)) {
        if (!first) out.push_back(',');
        first = false;
        appendString(out, field.key);
        out.push_back(':');
        writeCompact(out, field.value);
      }
      out.push_back('}');
      break;
    }
    case element_type::ARRAY: {
      out.push_back('[');
      bool first = true;
      for (element item : simdjson::dom::array(e)) {
        if (!first) out.push_back(',');
        first = false;
        writeCompact(out, item);
      }
      out.push_back(']');
      break;
    }
    case element_type::STRING:
      appendString(out, stringOf(e));
      break;
    case element_type::BOOL:
      out.append(bool(e) ? "true" : "false");
      break;
    case element_type::NULL_VALUE:
      out.append("null", 4);
      break;
    default:
      writeNumber(out, e);
      break;
  }
}

// Section 3, deep cleaning for what lands under microsoft.defender_endpoint: drops null
// and "" at any depth, and arrays/objects that are or become empty. Returns false (and
// writes nothing) when the value itself is dropped.
bool writeCleaned(std::string& out, const element& e) {
  switch (e.type()) {
    case element_type::NULL_VALUE:
      return false;
    case element_type::STRING: {
      const std::string_view s = stringOf(e);
      if (s.empty()) return false;
      appendString(out, s);
      return true;
    }
    case element_type::OBJECT: {
      const std::size_t mark = out.size();
      out.push_back('{');
      bool any = false;
      for (auto field : simdjson::dom::object(e)) {
        const std::size_t member_mark = out.size();
        if (any) out.push_back(',');
        appendString(out, field.key);
        out.push_back(':');
        if (writeCleaned(out, field.value)) {
          any = true;
        } else {
          out.resize(member_mark);
        }
      }
      if (!any) {
        out.resize(mark);
        return false;
      }
      out.push_back('}');
      return true;
    }
    case element_type::ARRAY: {
      const std::size_t mark = out.size();
      out.push_back('[');
      bool any = false;
      for (element item : simdjson::dom::array(e)) {
        const std::size_t item_mark = out.size();
        if (any) out.push_back(',');
        if (writeCleaned(out, item)) {
          any = true;
        } else {
          out.resize(item_mark);
        }
      }
      if (!any) {
        out.resize(mark);
        return false;
      }
      out.push_back(']');
      return true;
    }
    case element_type::BOOL:
      out.append(bool(e) ? "true" : "false");
      return true;
    default:
      writeNumber(out, e);
      return true;
  }
}

// A scalar as a JSON string ("12" for 12); other values as they are.
void writeAsString(std::string& out, const element& e) {
  switch (e.type()) {
    case element_type::STRING:
      appendString(out, stringOf(e));
      break;
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
    case element_type::BOOL: {
      std::string text;
      writeCompact(text, e);
      appendString(out, text);
      break;
    }
    default:
      writeCleaned(out, e);
      break;
  }
}

// Java's String.length(): UTF-16 code units of valid UTF-8 text.
std::size_t utf16Length(std::string_view s) {
  std::size_t units = 0;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c & 0xC0) != 0x80) ++units;  // a lead byte or ASCII: one unit
    if (c >= 0xF0) ++units;           // a 4-byte sequence: a surrogate pair
  }
  return units;
}

bool shorterThanUtf16(std::string_view s, std::size_t limit) {
  if (s.size() < limit) return true;  // units never exceed bytes
  return utf16Length(s) < limit;
}

std::optional<int> severityNumber(std::string_view s) {
  static constexpr std::array<std::string_view, 5> kNames = {"unspecified", "informational", "low",
                                                             "medium", "high"};
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    const auto& name = kNames[i];
    if (name.size() != s.size()) continue;
    bool equal = true;
    for (std::size_t k = 0; k < s.size() && equal; ++k) {
      char c = s[k];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      equal = c == name[k];
    }
    if (equal) return static_cast<int>(i);
  }
  return std::nullopt;
}

bool isIpAddress(std::string_view s) {
  if (s.size() >= 64) return false;
  std::array<char, 64> buf{};
  std::memcpy(buf.data(), s.data(), s.size());
  std::array<unsigned char, 16> addr{};
  if (s.find(':') != std::string_view::npos)
    return inet_pton(AF_INET6, buf.data(), addr.data()) == 1;
  return inet_pton(AF_INET, buf.data(), addr.data()) == 1;
}

// A JSON integer (or an integral number written as a float); nullopt otherwise.
std::optional<std::int64_t> integerOf(const element& e) {
  switch (e.type()) {
    case element_type::INT64:
      return int64_t(e);
    case element_type::UINT64: {
      const std::uint64_t v = uint64_t(e);
      if (v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
      return static_cast<std::int64_t>(v);
    }
    case element_type::DOUBLE: {
      const double d = double(e);
      if (d != d || d < -9.2e18 || d > 9.2e18) return std::nullopt;
      const auto i = static_cast<std::int64_t>(d);
      if (static_cast<double>(i) != d) return std::nullopt;
      return i;
    }
    default:
      return std::nullopt;
  }
}

std::optional<core::Instant> dateOf(const element& e) {
  if (!isString(e)) return std::nullopt;
  return core::parseIsoDateTime(stringOf(e));
}

// ---- Per-alert state -----------------------------------------------------------------

struct Member {
  std::string_view key;
  element value;
  int kind;  // AK or EK value, 0 for keys the mapping does not name
};

struct EvidenceFields {
  std::array<std::optional<element>, static_cast<std::size_t>(EK::kCount)> slot;
  std::vector<Member> members;  // after cleaning, in input order
  std::vector<std::string> problems;

  const std::optional<element>& get(EK k) const { return slot[static_cast<std::size_t>(k)]; }
};

}  // namespace

// ---- The mapper ----------------------------------------------------------------------

struct Mapper::Impl {
  MapOptions options;
  TimestampFn now;
  simdjson::dom::parser parser;
  ScanResult scan;
  std::string padded;
  std::string doc;
  std::string scratch;
  std::string tags_json;        // ["a","b"]
  std::string error_tags_json;  // tags + preserve_original_event (once)
  std::string ns_json;          // "default" (quoted, escaped)
  std::string now_text;         // the current line's "now", made on first use
  std::string log_json;         // "log":{...} of the current line, or empty

  // Per alert.
  std::array<std::optional<element>, static_cast<std::size_t>(AK::kCount)> aslot;
  std::vector<Member> amembers;
  std::vector<std::string> alert_problems;
  EvidenceFields ev;
  std::string alert_head;      // '{' and every top-level member that depends on the alert
  std::string event_head;      // members of "event" that depend on the alert
  std::string user_head;       // members of "user" from the alert
  std::string mde_head;        // members of microsoft.defender_endpoint from the alert
  std::string orig_prefix;     // event.original text before the evidence (escaped)
  std::string orig_suffix;     // ... and after it
  std::string alert_id_text;   // event.id as text, for the document id
  std::string lut_text;        // lastUpdateTime as text
  bool version_known = false;  // alert_id_text/lut_text describe the current documents
  bool event_has_type_start = false;
  bool event_has_type_end = false;
  bool category_malware = false;
  std::optional<std::string> host_name;  // lower-cased, for related.hosts
  std::string user_name_json;            // JSON value of user.name, for related.user

  LineStats stats;
  const LineContext* ctx = nullptr;
  DocumentSink* sink = nullptr;

  Impl(MapOptions o, TimestampFn n) : options(std::move(o)), now(std::move(n)) {
    tags_json = buildTags(false);
    error_tags_json = buildTags(true);
    appendString(ns_json, options.data_stream_namespace);
  }

  std::string buildTags(bool force_preserve) const {
    std::string out = "[";
    bool has_preserve = false;
    for (const auto& t : options.tags) {
      if (out.size() > 1) out.push_back(',');
      appendString(out, t);
      has_preserve = has_preserve || t == kPreserveTag;
    }
    if ((options.preserve_original_event || force_preserve) && !has_preserve) {
      if (out.size() > 1) out.push_back(',');
      appendString(out, kPreserveTag);
    }
    out.push_back(']');
    return out;
  }

  const std::string& nowText() {
    if (now_text.empty()) now_text = now();
    return now_text;
  }

  const std::optional<element>& a(AK k) const { return aslot[static_cast<std::size_t>(k)]; }

  void emit(std::string_view id, bool error, std::uint32_t index) {
    DocumentView view;
    view.id = id;
    view.json = doc;
    view.error = error;
    view.evidence_index = index;
    view.alert_id = version_known ? std::string_view(alert_id_text) : std::string_view();
    view.last_update_time = version_known ? std::string_view(lut_text) : std::string_view();
    ++stats.documents;
    if (error) ++stats.errors;
    sink->onDocument(view);
  }

  // Members every document carries: @timestamp is the caller's.
  void appendCommon(std::string& out) {
    out.append(",\"ecs\":{\"version\":\"");
    out.append(kEcsVersion);
    out.append("\"},\"data_stream\":{\"type\":\"logs\",\"dataset\":\"");
    out.append(kDataset);
    out.append("\",\"namespace\":");
    out.append(ns_json);
    out.push_back('}');
    if (!log_json.empty()) {
      out.push_back(',');
      out.append(log_json);
    }
  }

  // Section 6. `original` is JSON text or, for a line that is not JSON, the raw line.
  void emitError(std::string_view original, const std::vector<std::string>& problems,
                 std::string_view id, std::uint32_t index) {
    doc.clear();
    doc.append("{\"@timestamp\":");
    appendString(doc, nowText());
    appendCommon(doc);
    doc.append(",\"event\":{\"dataset\":\"");
    doc.append(kDataset);
    doc.append("\",\"module\":\"");
    doc.append(kModule);
    doc.append("\",\"kind\":\"pipeline_error\",\"original\":\"");
    appendEscapedLossy(doc, original);
    doc.append("\"},\"error\":{\"message\":[");
    for (std::size_t i = 0; i < problems.size(); ++i) {
      if (i != 0) doc.push_back(',');
      appendString(doc, problems[i]);
    }
    doc.append("]},\"tags\":");
    doc.append(error_tags_json);
    doc.push_back('}');
    emit(id, true, index);
  }

  void emitErrorForText(std::string_view original, std::string problem) {
    version_known = false;
    const std::string id = documentId(original, "\x1epipeline_error", 0);
    emitError(original, {std::move(problem)}, id, 0);
  }

  // ---- Line level ----

  LineStats mapLine(std::string_view line, const LineContext& context, DocumentSink& out) {
    stats = {};
    ctx = &context;
    sink = &out;
    now_text.clear();
    log_json.clear();
    if (!context.file_path.empty()) {
      log_json.append("\"log\":{\"file\":{\"path\":");
      appendString(log_json, context.file_path);
      log_json.append("},\"offset\":");
      appendInt(log_json, context.offset);
      log_json.push_back('}');
    }
    dispatchLine(
        line, context.padded, padded, scan, [this](std::string_view text) { mapAlertText(text); },
        [this](std::string_view text, const std::string& message) {
          emitErrorForText(text, message);
        });
    return stats;
  }

  LineStats mapElement(std::string_view text, DocumentSink& out) {
    static const LineContext kNoFile{{}, -1, true};
    stats = {};
    ctx = &kNoFile;
    sink = &out;
    now_text.clear();
    log_json.clear();
    mapAlertText(text);
    return stats;
  }

  // `text` is followed by at least kLinePadding readable bytes.
  void mapAlertText(std::string_view text) {
    ++stats.alerts;
    element root;
    const auto err = parser.parse(text.data(), text.size(), false).get(root);
    if (err != simdjson::SUCCESS) {
      emitErrorForText(text, std::string("invalid JSON: ") + simdjson::error_message(err));
      return;
    }
    if (root.type() != element_type::OBJECT) {
      scratch.clear();
      writeCompact(scratch, root);
      emitErrorForText(scratch, "the alert is not a JSON object");
      return;
    }
    mapAlert(root);
  }

  // ---- Alert level ----

  void collectAlert(const element& root) {
    aslot.fill(std::nullopt);
    amembers.clear();
    for (auto field : simdjson::dom::object(root)) {
      const int kind = classify(kAlertKeys, field.key);
      if (kind == static_cast<int>(AK::kComments)) continue;  // section 3: dropped
      if (isBlankValue(field.value)) continue;
      if (kind != 0) {
        auto& slot = aslot[static_cast<std::size_t>(kind)];
        if (slot) continue;  // a repeated key: the first one wins
        slot = field.value;
      } else if (isDuplicateOther(field.key)) {
        continue;
      }
      amembers.push_back({field.key, field.value, kind});
    }
  }

  bool isDuplicateOther(std::string_view key) const {
    for (const auto& m : amembers) {
      if (m.kind == 0 && m.key == key) return true;
    }
    return false;
  }

  void validateAlert() {
    alert_problems.clear();
    static constexpr std::array<std::pair<AK, std::string_view>, 5> kDates = {{
        {AK::kAlertCreationTime, "alertCreationTime"},
        {AK::kFirstEventTime, "firstEventTime"},
        {AK::kLastEventTime, "lastEventTime"},
        {AK::kLastUpdateTime, "lastUpdateTime"},
        {AK::kResolvedTime, "resolvedTime"},
    }};
    for (const auto& [k, name] : kDates) {
      if (a(k) && !dateOf(*a(k))) {
        alert_problems.push_back(std::string(name) + " is not an ISO 8601 date-time");
      }
    }
  }

  void collectEvidence(const element& e) {
    ev.slot.fill(std::nullopt);
    ev.members.clear();
    ev.problems.clear();
    for (auto field : simdjson::dom::object(e)) {
      if (isBlankValue(field.value)) continue;
      const int kind = classify(kEvidenceKeys, field.key);
      if (kind != 0) {
        auto& slot = ev.slot[static_cast<std::size_t>(kind)];
        if (slot) continue;
        slot = field.value;
      } else {
        bool dup = false;
        for (const auto& m : ev.members) dup = dup || (m.kind == 0 && m.key == field.key);
        if (dup) continue;
      }
      ev.members.push_back({field.key, field.value, kind});
    }
    static constexpr std::array<std::pair<EK, std::string_view>, 3> kDates = {{
        {EK::kProcessCreationTime, "evidence.processCreationTime"},
        {EK::kParentProcessCreationTime, "evidence.parentProcessCreationTime"},
        {EK::kEvidenceCreationTime, "evidence.evidenceCreationTime"},
    }};
    for (const auto& [k, name] : kDates) {
      if (ev.get(k) && !dateOf(*ev.get(k))) {
        ev.problems.push_back(std::string(name) + " is not an ISO 8601 date-time");
      }
    }
    if (const auto& ip = ev.get(EK::kIpAddress)) {
      if (!isString(*ip) || !isIpAddress(stringOf(*ip))) {
        ev.problems.push_back("evidence.ipAddress is not an IP address");
      }
    }
    if (const auto& pid = ev.get(EK::kProcessId); pid && !integerOf(*pid)) {
      ev.problems.push_back("evidence.processId is not an integer");
    }
    if (const auto& pid = ev.get(EK::kParentProcessId); pid && !integerOf(*pid)) {
      ev.problems.push_back("evidence.parentProcessId is not an integer");
    }
  }

  // The alert as event.original keeps it: every key, evidence replaced by `evidence`.
  void writeOriginal(std::string& out, const element& root, const element* evidence) {
    out.push_back('{');
    bool first = true;
    for (auto field : simdjson::dom::object(root)) {
      if (!first) out.push_back(',');
      first = false;
      appendString(out, field.key);
      out.push_back(':');
      if (evidence != nullptr && field.key == "evidence") {
        writeCompact(out, *evidence);
      } else {
        writeCompact(out, field.value);
      }
    }
    out.push_back('}');
  }

  void mapAlert(const element& root) {
    collectAlert(root);
    version_known = true;
    alert_id_text.clear();
    if (a(AK::kId)) {
      if (isString(*a(AK::kId))) {
        alert_id_text = stringOf(*a(AK::kId));
      } else {
        writeCompact(alert_id_text, *a(AK::kId));
      }
    }
    lut_text.clear();
    if (a(AK::kLastUpdateTime) && isString(*a(AK::kLastUpdateTime))) {
      lut_text = stringOf(*a(AK::kLastUpdateTime));
    }

    // Section 2: how many documents.
    const std::optional<element>& evidence = a(AK::kEvidence);
    simdjson::dom::array evidence_items;
    bool split = false;
    if (evidence) {
      if (evidence->type() == element_type::ARRAY) {
        evidence_items = simdjson::dom::array(*evidence);
        split = evidence_items.size() > 0;
      } else if (evidence->type() != element_type::OBJECT) {
        scratch.clear();
        writeCompact(scratch, root);
        const std::string id = documentId(alert_id_text, lut_text, 0);
        emitError(scratch, {"evidence is neither an array nor an object"}, id, 0);
        return;
      }
    }

    validateAlert();
    bool heads_built = false;
    auto one = [&](const element* ev_elem, std::uint32_t index) {
      const std::string id = documentId(alert_id_text, lut_text, index);
      std::vector<std::string> problems = alert_problems;
      bool ev_is_object = false;
      if (ev_elem != nullptr) {
        if (ev_elem->type() == element_type::OBJECT) {
          ev_is_object = true;
          collectEvidence(*ev_elem);
          problems.insert(problems.end(), ev.problems.begin(), ev.problems.end());
        } else {
          problems.push_back("evidence[" + std::to_string(index) + "] is not a JSON object");
        }
      }
      if (!problems.empty()) {
        scratch.clear();
        writeOriginal(scratch, root, split ? ev_elem : nullptr);
        emitError(scratch, problems, id, index);
        return;
      }
      if (!heads_built) {
        buildHeads(root, split);
        heads_built = true;
      }
      buildDocument(ev_is_object, split ? ev_elem : nullptr, index);
      emit(id, false, index);
    };

    if (split) {
      std::uint32_t index = 0;
      for (element item : evidence_items) {
        one(&item, index);
        ++index;
      }
    } else if (evidence && evidence->type() == element_type::OBJECT) {
      const element item = *evidence;
      one(&item, 0);
    } else {
      one(nullptr, 0);
    }
  }

  // Everything of a document that depends only on the alert.
  void buildHeads(const element& root, bool split) {
    // Top-level members.
    alert_head.clear();
    alert_head.append("{\"@timestamp\":");
    if (a(AK::kAlertCreationTime)) {
      writeCompact(alert_head, *a(AK::kAlertCreationTime));
    } else {
      appendString(alert_head, nowText());
    }
    appendCommon(alert_head);

    const auto& tenant = a(AK::kAadTenantId);
    const auto& machine = a(AK::kMachineId);
    alert_head.append(",\"cloud\":{\"provider\":\"azure\"");
    if (tenant) {
      alert_head.append(",\"account\":{\"id\":");
      writeCompact(alert_head, *tenant);
      alert_head.push_back('}');
    }
    if (machine) {
      alert_head.append(",\"instance\":{\"id\":");
      writeCompact(alert_head, *machine);
      alert_head.push_back('}');
    }
    alert_head.push_back('}');

    host_name.reset();
    const auto& dns = a(AK::kComputerDnsName);
    if (machine || dns) {
      alert_head.append(",\"host\":");
      ObjectWriter host(alert_head);
      if (machine) writeCompact(host.key("id"), *machine);
      if (dns) {
        writeCompact(host.key("hostname"), *dns);
        if (isString(*dns)) {
          std::string lower(stringOf(*dns));
          for (char& c : lower) {
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
          }
          host.string("name", lower);
          host_name = std::move(lower);
        }
      }
      host.close();
    }
    if (a(AK::kTitle)) {
      alert_head.append(",\"message\":");
      writeCompact(alert_head, *a(AK::kTitle));
    }
    const auto& category = a(AK::kCategory);
    category_malware = category && isString(*category) && stringOf(*category) == "Malware";
    if (category) {
      alert_head.append(",\"threat\":{\"framework\":\"MITRE ATT&CK\",\"technique\":{\"name\":[");
      writeCompact(alert_head, *category);
      alert_head.append("]}}");
    }
    bool description_moved = false;
    if (const auto& d = a(AK::kDescription);
        d && isString(*d) && shorterThanUtf16(stringOf(*d), 1020)) {
      description_moved = true;
      alert_head.append(",\"rule\":{\"description\":");
      writeCompact(alert_head, *d);
      alert_head.push_back('}');
    }
    alert_head.append(
        ",\"observer\":{\"vendor\":\"Microsoft\",\"product\":\"Defender for Endpoint\"");
    if (a(AK::kDetectionSource)) {
      alert_head.append(",\"name\":");
      writeCompact(alert_head, *a(AK::kDetectionSource));
    }
    alert_head.append("},\"tags\":");
    alert_head.append(tags_json);

    // event.* from the alert.
    event_head.clear();
    {
      ObjectWriter event(event_head);  // we keep only the members, the brace is dropped
      event.string("dataset", kDataset);
      event.string("module", kModule);
      event.string("kind", "alert");
      event.string("timezone", "UTC");
      event.string("provider", "defender_endpoint");
      if (category) writeCompact(event.key("action"), *category);
      if (const auto& v = a(AK::kAlertCreationTime)) writeCompact(event.key("created"), *v);
      if (const auto& v = a(AK::kId)) writeCompact(event.key("id"), *v);
      const auto& start = a(AK::kFirstEventTime);
      const auto& end = a(AK::kLastEventTime);
      if (start) writeCompact(event.key("start"), *start);
      if (end) writeCompact(event.key("end"), *end);
      if (start && end) {
        const auto s = dateOf(*start);
        const auto e = dateOf(*end);
        if (s && e) {
          if (const auto ns = core::nanosBetween(*s, *e)) event.integer("duration", *ns);
        }
      }
    }
    event_head.erase(0, 1);
    std::optional<int> severity;
    if (const auto& sv = a(AK::kSeverity); sv && isString(*sv)) {
      severity = severityNumber(stringOf(*sv));
      if (severity) {
        event_head.append(",\"severity\":");
        appendInt(event_head, *severity);
      }
    }
    const auto& status = a(AK::kStatus);
    event_has_type_start = status && isString(*status) && stringOf(*status) == "New";
    event_has_type_end = status && isString(*status) && stringOf(*status) == "Resolved";

    // user.* from relatedUser.
    user_head.clear();
    user_name_json.clear();
    bool related_user_moved = false;
    if (const auto& ru = a(AK::kRelatedUser); ru && ru->type() == element_type::OBJECT) {
      related_user_moved = true;
      simdjson::dom::object obj(*ru);
      element v;
      if (obj["userName"].get(v) == simdjson::SUCCESS && !isAbsentValue(v)) {
        user_head.append("\"name\":");
        writeCompact(user_name_json, v);
        user_head.append(user_name_json);
      }
      if (obj["domainName"].get(v) == simdjson::SUCCESS && !isAbsentValue(v)) {
        if (!user_head.empty()) user_head.push_back(',');
        user_head.append("\"domain\":");
        writeCompact(user_head, v);
      }
    }

    // microsoft.defender_endpoint: every alert key not moved.
    mde_head.clear();
    for (const Member& m : amembers) {
      switch (static_cast<AK>(m.kind)) {
        case AK::kId:
        case AK::kAlertCreationTime:
        case AK::kFirstEventTime:
        case AK::kLastEventTime:
        case AK::kTitle:
        case AK::kAadTenantId:
        case AK::kMachineId:
        case AK::kComputerDnsName:
        case AK::kDetectionSource:
        case AK::kCategory:
        case AK::kEvidence:
        case AK::kComments:
          continue;
        case AK::kSeverity:
          if (severity) continue;
          break;
        case AK::kDescription:
          if (description_moved) continue;
          break;
        case AK::kRelatedUser:
          if (related_user_moved) continue;
          break;
        case AK::kIncidentId:
        case AK::kInvestigationId: {
          const std::size_t mark = mde_head.size();
          if (!mde_head.empty()) mde_head.push_back(',');
          appendString(mde_head, m.key);
          mde_head.push_back(':');
          const std::size_t value_mark = mde_head.size();
          writeAsString(mde_head, m.value);
          if (mde_head.size() == value_mark) mde_head.resize(mark);
          continue;
        }
        default:
          break;
      }
      const std::size_t mark = mde_head.size();
      if (!mde_head.empty()) mde_head.push_back(',');
      appendString(mde_head, m.key);
      mde_head.push_back(':');
      if (!writeCleaned(mde_head, m.value)) mde_head.resize(mark);
    }

    // event.original around the evidence.
    orig_prefix.clear();
    orig_suffix.clear();
    if (options.preserve_original_event) {
      scratch.clear();
      if (!split) {
        writeOriginal(scratch, root, nullptr);
        appendEscaped(orig_prefix, scratch);
      } else {
        // Written with a marker where the evidence goes, then cut in two.
        scratch.push_back('{');
        bool first = true;
        std::size_t cut = std::string::npos;
        for (auto field : simdjson::dom::object(root)) {
          if (!first) scratch.push_back(',');
          first = false;
          appendString(scratch, field.key);
          scratch.push_back(':');
          if (cut == std::string::npos && field.key == "evidence") {
            cut = scratch.size();
          } else {
            writeCompact(scratch, field.value);
          }
        }
        scratch.push_back('}');
        appendEscaped(orig_prefix, std::string_view(scratch).substr(0, cut));
        appendEscaped(orig_suffix, std::string_view(scratch).substr(cut));
      }
    }
  }

  // One normal document: the alert's parts plus this evidence's.
  void buildDocument(bool has_evidence, const element* split_evidence, std::uint32_t) {
    auto evs = [&](EK k) -> const std::optional<element>& {
      static const std::optional<element> kNone;
      return has_evidence ? ev.get(k) : kNone;
    };
    const auto& entity = evs(EK::kEntityType);
    const bool is_process = entity && isString(*entity) && stringOf(*entity) == "Process";
    const bool is_user = entity && isString(*entity) && stringOf(*entity) == "User";

    doc.clear();
    doc.append(alert_head);

    // event
    doc.append(",\"event\":{");
    doc.append(event_head);
    doc.append(",\"category\":[\"host\"");
    if (category_malware) doc.append(",\"malware\"");
    if (is_process) doc.append(",\"process\"");
    doc.push_back(']');
    if (is_user || event_has_type_start || event_has_type_end) {
      doc.append(",\"type\":[");
      bool first = true;
      auto put = [&](std::string_view v) {
        if (!first) doc.push_back(',');
        first = false;
        appendString(doc, v);
      };
      if (is_user) put("access");
      if (event_has_type_start) put("start");
      if (event_has_type_end) put("end");
      doc.push_back(']');
    }
    if (options.preserve_original_event) {
      doc.append(",\"original\":\"");
      doc.append(orig_prefix);
      if (split_evidence != nullptr) {
        scratch.clear();
        writeCompact(scratch, *split_evidence);
        appendEscaped(doc, scratch);
        doc.append(orig_suffix);
      }
      doc.push_back('"');
    }
    doc.push_back('}');

    // file
    const auto& file_name = evs(EK::kFileName);
    const auto& file_path = evs(EK::kFilePath);
    const auto& sha1 = evs(EK::kSha1);
    const auto& sha256 = evs(EK::kSha256);
    if (file_name || file_path || sha1 || sha256) {
      doc.append(",\"file\":");
      ObjectWriter file(doc);
      if (file_name) writeCompact(file.key("name"), *file_name);
      if (file_path) writeCompact(file.key("path"), *file_path);
      if (sha1 || sha256) {
        ObjectWriter hash(file.key("hash"));
        if (sha1) writeCompact(hash.key("sha1"), *sha1);
        if (sha256) writeCompact(hash.key("sha256"), *sha256);
        hash.close();
      }
      file.close();
    }

    // process
    const auto& pid = evs(EK::kProcessId);
    const auto& cmd = evs(EK::kProcessCommandLine);
    const auto& pstart = evs(EK::kProcessCreationTime);
    const auto& ppid = evs(EK::kParentProcessId);
    const auto& ppstart = evs(EK::kParentProcessCreationTime);
    const auto& ppname = evs(EK::kParentProcessFileName);
    const bool process_name = is_process && file_name.has_value();
    if (pid || cmd || pstart || ppid || ppstart || ppname || process_name) {
      doc.append(",\"process\":");
      ObjectWriter process(doc);
      if (pid) process.integer("pid", *integerOf(*pid));
      if (cmd) writeCompact(process.key("command_line"), *cmd);
      if (pstart) writeCompact(process.key("start"), *pstart);
      if (ppid || ppstart || ppname) {
        ObjectWriter parent(process.key("parent"));
        if (ppid) parent.integer("pid", *integerOf(*ppid));
        if (ppstart) writeCompact(parent.key("start"), *ppstart);
        if (ppname) writeCompact(parent.key("name"), *ppname);
        parent.close();
      }
      if (process_name) writeCompact(process.key("name"), *file_name);
      process.close();
    }

    // url
    if (const auto& url = evs(EK::kUrl)) {
      doc.append(",\"url\":");
      ObjectWriter u(doc);
      writeCompact(u.key("full"), *url);
      if (isString(*url)) {
        const std::string_view full = stringOf(*url);
        if (auto parts = parseUrlParts(full)) {
          u.string("original", full);
          if (!parts->scheme.empty()) u.string("scheme", parts->scheme);
          if (!parts->domain.empty()) u.string("domain", parts->domain);
          if (parts->port) u.integer("port", *parts->port);
          if (!parts->path.empty()) u.string("path", parts->path);
          if (!parts->extension.empty()) u.string("extension", parts->extension);
          if (!parts->query.empty()) u.string("query", parts->query);
          if (!parts->fragment.empty()) u.string("fragment", parts->fragment);
          if (!parts->user_info.empty()) {
            u.string("user_info", parts->user_info);
            if (!parts->username.empty()) u.string("username", parts->username);
            if (parts->password && !parts->password->empty())
              u.string("password", *parts->password);
          }
        }
      }
      u.close();
    }

    // user
    const auto& sid = evs(EK::kUserSid);
    if (!user_head.empty() || sid) {
      doc.append(",\"user\":{");
      doc.append(user_head);
      if (sid) {
        if (!user_head.empty()) doc.push_back(',');
        doc.append("\"id\":");
        writeCompact(doc, *sid);
      }
      doc.push_back('}');
    }

    // related
    const auto& ip = evs(EK::kIpAddress);
    if (ip || !user_name_json.empty() || sha1 || sha256 || host_name) {
      doc.append(",\"related\":");
      ObjectWriter related(doc);
      if (ip) {
        std::string& o = related.key("ip");
        o.push_back('[');
        writeCompact(o, *ip);
        o.push_back(']');
      }
      if (!user_name_json.empty()) {
        std::string& o = related.key("user");
        o.push_back('[');
        o.append(user_name_json);
        o.push_back(']');
      }
      if (sha1 || sha256) {
        std::string& o = related.key("hash");
        o.push_back('[');
        if (sha1) writeCompact(o, *sha1);
        if (sha1 && sha256) o.push_back(',');
        if (sha256) writeCompact(o, *sha256);
        o.push_back(']');
      }
      if (host_name) {
        std::string& o = related.key("hosts");
        o.push_back('[');
        appendString(o, *host_name);
        o.push_back(']');
      }
      related.close();
    }

    // microsoft.defender_endpoint
    const std::size_t mark = doc.size();
    doc.append(",\"microsoft\":{\"defender_endpoint\":{");
    const std::size_t body = doc.size();
    doc.append(mde_head);
    if (has_evidence) {
      const std::size_t ev_mark = doc.size();
      if (doc.size() != body) doc.push_back(',');
      doc.append("\"evidence\":{");
      const std::size_t ev_body = doc.size();
      for (const Member& m : ev.members) {
        switch (static_cast<EK>(m.kind)) {
          case EK::kFileName:
          case EK::kFilePath:
          case EK::kSha1:
          case EK::kSha256:
          case EK::kProcessId:
          case EK::kProcessCommandLine:
          case EK::kProcessCreationTime:
          case EK::kParentProcessId:
          case EK::kParentProcessCreationTime:
          case EK::kParentProcessFileName:
          case EK::kUrl:
          case EK::kUserSid:
            continue;
          default:
            break;
        }
        const std::size_t member_mark = doc.size();
        if (doc.size() != ev_body) doc.push_back(',');
        appendString(doc, m.key);
        doc.push_back(':');
        if (!writeCleaned(doc, m.value)) doc.resize(member_mark);
      }
      if (doc.size() == ev_body) {
        doc.resize(ev_mark);
      } else {
        doc.push_back('}');
      }
    }
    if (doc.size() == body) {
      doc.resize(mark);
    } else {
      doc.append("}}");
    }
    doc.push_back('}');
  }
};

std::string systemTimestamp() {
  return core::formatRfc3339(core::toInstant(std::chrono::system_clock::now()), 3);
}

Mapper::Mapper(MapOptions options, TimestampFn now)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(now))) {}

Mapper::~Mapper() = default;

void Mapper::trim() {
  impl_->parser = simdjson::dom::parser();
  impl_->scan = ScanResult();
  std::string().swap(impl_->padded);
  std::string().swap(impl_->doc);
  std::string().swap(impl_->scratch);
}

LineStats Mapper::mapLine(std::string_view line, const LineContext& context, DocumentSink& sink) {
  return impl_->mapLine(line, context, sink);
}

LineStats Mapper::mapElement(std::string_view element, DocumentSink& sink) {
  return impl_->mapElement(element, sink);
}

const MapOptions& Mapper::options() const { return impl_->options; }

}  // namespace mdec::ecs
