// Graph security incidents -> `m365_defender.incident` documents (spec: incidents.md §4, §5).
//
// Each incident (and each of its alerts) is parsed with simdjson's DOM parser into a small
// mutable tree (incident_value.h); the mapping replays Elastic's ingest pipeline on that tree
// in the pipeline's order, because that order fixes the order of every appended array.
#include "mdecollect/ecs/incident_mapper.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "ecs/incident_value.h"
#include "ecs/line_scanner.h"
#include "ecs/url_parts.h"
#include "mdecollect/core/ascii.h"
#include "mdecollect/core/base64.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"

namespace mdec::ecs {

static_assert(kLinePadding >= simdjson::SIMDJSON_PADDING);

namespace {

using incident::appendUnique;
using incident::ensure;
using incident::find;
using incident::findPath;
using incident::Member;
using incident::Path;
using incident::render;
using incident::set;
using incident::take;
using incident::takePath;
using incident::Value;

constexpr std::string_view kDataset = "m365_defender.incident";
constexpr std::string_view kPreserveOriginalTag = "preserve_original_event";
constexpr std::string_view kPreserveDuplicateTag = "preserve_duplicate_custom_fields";
constexpr std::string_view kOdataType = "@odata.type";
constexpr std::string_view kEvidencePrefix = "#microsoft.graph.security.";

const EVP_MD* sha1() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    if (fetched == nullptr) std::abort();  // OpenSSL without SHA-1: cannot happen
    return fetched;
  }();
  return md;
}

// ---- simdjson -> Value ----------------------------------------------------------------

Value fromDom(simdjson::dom::element e) {
  Value v;
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY:
      v.type = Value::Type::kArray;
      for (simdjson::dom::element item : simdjson::dom::array(e)) v.items.push_back(fromDom(item));
      break;
    case simdjson::dom::element_type::OBJECT:
      v.type = Value::Type::kObject;
      for (auto field : simdjson::dom::object(e)) {
        if (find(v, field.key) != nullptr) continue;  // a repeated key: the first one wins
        v.members.push_back(Member{std::string(field.key), fromDom(field.value)});
      }
      break;
    case simdjson::dom::element_type::INT64:
      v.type = Value::Type::kInt;
      v.int_value = e.get_int64().value_unsafe();
      break;
    case simdjson::dom::element_type::UINT64:
      v.type = Value::Type::kUint;
      v.uint_value = e.get_uint64().value_unsafe();
      break;
    case simdjson::dom::element_type::DOUBLE:
      v.type = Value::Type::kDouble;
      v.double_value = e.get_double().value_unsafe();
      break;
    case simdjson::dom::element_type::STRING:
      v.type = Value::Type::kString;
      v.str = std::string(e.get_string().value_unsafe());
      break;
    case simdjson::dom::element_type::BOOL:
      v.type = Value::Type::kBool;
      v.boolean = e.get_bool().value_unsafe();
      break;
    case simdjson::dom::element_type::NULL_VALUE:
      break;
  }
  return v;
}

// ---- Conversions as Elasticsearch's processors make them -------------------------------

// The date processor with format ISO8601, written as its default output format.
std::optional<std::string> toDate(const Value& v) {
  if (!v.isString()) return std::nullopt;
  const auto instant = core::parseIsoDateTime(v.str);
  if (!instant) return std::nullopt;
  return core::formatRfc3339(*instant, 3);
}

// The convert processor, type long: Long.parseLong (or Long.decode for 0x) of toString().
std::optional<std::int64_t> toLong(const Value& v) {
  if (v.type == Value::Type::kInt) return v.int_value;
  if (v.type == Value::Type::kUint) return std::nullopt;  // above Long.MAX_VALUE
  if (!v.isString()) return std::nullopt;                 // a double prints as "1.0": not a long
  std::string_view s = v.str;
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  int base = 10;
  if (s.starts_with("0x") || s.starts_with("0X") || s.starts_with("#")) {
    s.remove_prefix(s.front() == '#' ? 1 : 2);
    base = 16;
  }
  if (s.empty() || s.front() == '+' || s.front() == '-') return std::nullopt;
  std::uint64_t magnitude = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), magnitude, base);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  constexpr std::uint64_t kMax = std::numeric_limits<std::int64_t>::max();
  if (negative) {
    if (magnitude > kMax + 1) return std::nullopt;
    if (magnitude == kMax + 1) return std::numeric_limits<std::int64_t>::min();
    return -static_cast<std::int64_t>(magnitude);
  }
  if (magnitude > kMax) return std::nullopt;
  return static_cast<std::int64_t>(magnitude);
}

// The convert processor, type ip.
bool isIp(const Value& v) {
  if (!v.isString() || v.str.size() > 64) return false;
  std::array<unsigned char, 16> buf{};
  const std::string s = v.str;
  return ::inet_pton(AF_INET, s.c_str(), buf.data()) == 1 ||
         ::inet_pton(AF_INET6, s.c_str(), buf.data()) == 1;
}

// grok `%{USERNAME}@%{HOSTNAME}`, unanchored, first match.
bool isUsernameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}
bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
// Length of a HOSTNAME match at the start of `s` (0: none).
std::size_t hostnameLength(std::string_view s) {
  auto label = [&](std::size_t at) -> std::size_t {
    if (at >= s.size() || !isAlnum(s[at])) return 0;
    std::size_t n = 1;
    while (n < 63 && at + n < s.size() && (isAlnum(s[at + n]) || s[at + n] == '-')) ++n;
    return n;
  };
  std::size_t len = label(0);
  if (len == 0) return 0;
  while (len < s.size() && s[len] == '.') {
    const std::size_t next = label(len + 1);
    if (next == 0) break;
    len += 1 + next;
  }
  return len;
}
struct UserAtHost {
  std::string_view name;
  std::string_view domain;
};
std::optional<UserAtHost> grokUserAtHost(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    if (!isUsernameChar(s[i])) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < s.size() && isUsernameChar(s[end])) ++end;
    if (end < s.size() && s[end] == '@') {
      const std::size_t host = hostnameLength(s.substr(end + 1));
      if (host != 0) return UserAtHost{s.substr(i, end - i), s.substr(end + 1, host)};
    }
    // A later start inside this run ends at the same place: skip the run.
    i = end;
  }
  return std::nullopt;
}

bool lessValue(const Value& a, const Value& b) {
  if (a.isNumber() && b.isNumber()) {
    auto num = [](const Value& v) {
      return v.type == Value::Type::kInt    ? static_cast<long double>(v.int_value)
             : v.type == Value::Type::kUint ? static_cast<long double>(v.uint_value)
                                            : static_cast<long double>(v.double_value);
    };
    return num(a) < num(b);
  }
  if (a.type != b.type) return a.type < b.type;
  return render(a) < render(b);
}

// A sorted, distinct array.
Value sortedArray(std::vector<Value> values) {
  std::sort(values.begin(), values.end(), lessValue);
  values.erase(std::unique(values.begin(), values.end()), values.end());
  Value out = Value::array();
  out.items = std::move(values);
  return out;
}

bool present(const Value* v) { return v != nullptr && !v->isNull(); }

}  // namespace

// ---- Fingerprints -------------------------------------------------------------------

std::string elasticFingerprint(const std::vector<std::string_view>& values) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, sha1(), nullptr) != 1) std::abort();
  const unsigned char zero = 0;
  for (std::string_view v : values) {
    EVP_DigestUpdate(ctx, &zero, 1);
    EVP_DigestUpdate(ctx, v.data(), v.size());
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, digest.data(), &len) != 1) std::abort();
  EVP_MD_CTX_free(ctx);
  return core::base64Encode(std::string_view(reinterpret_cast<const char*>(digest.data()), len));
}

std::string incidentFingerprint(const IncidentFingerprintInput& input) {
  std::vector<std::string_view> values;
  for (const std::string* s : {input.alert_id, input.alert_last_update, input.created, input.id,
                               input.web_url, input.last_update}) {
    if (s != nullptr) values.emplace_back(*s);
  }
  return elasticFingerprint(values);
}

// ---- The mapper ---------------------------------------------------------------------

struct IncidentMapper::Impl {
  IncidentMapOptions options;
  TimestampFn now;
  simdjson::dom::parser parser;
  ScanResult scan;
  std::string padded;
  std::string json;
  std::string now_text;
  LineStats stats;
  DocumentSink* sink = nullptr;
  std::uint32_t alert_index = 0;  // DocumentView::evidence_index: the alert's place in "alerts"

  // Elastic's pipeline keeps the duplicated fields when the document is tagged
  // preserve_duplicate_custom_fields, whether the option or a configured tag put it there.
  bool keep_duplicates = false;

  Impl(IncidentMapOptions o, TimestampFn n) : options(std::move(o)), now(std::move(n)) {
    keep_duplicates = options.preserve_duplicate_custom_fields ||
                      std::find(options.tags.begin(), options.tags.end(), kPreserveDuplicateTag) !=
                          options.tags.end();
  }

  const std::string& nowText() {
    if (now_text.empty()) now_text = now();
    return now_text;
  }

  void begin(DocumentSink& out) {
    stats = {};
    sink = &out;
    now_text.clear();
  }

  Value tags(bool force_preserve) const {
    Value t = Value::array();
    if (options.preserve_original_event || force_preserve) {
      t.items.push_back(Value::string(std::string(kPreserveOriginalTag)));
    }
    if (options.preserve_duplicate_custom_fields) {
      t.items.push_back(Value::string(std::string(kPreserveDuplicateTag)));
    }
    for (const std::string& tag : options.tags) {
      Value v = Value::string(tag);
      if (std::find(t.items.begin(), t.items.end(), v) == t.items.end()) {
        t.items.push_back(std::move(v));
      }
    }
    return t;
  }

  void addEnvelope(Value& doc) {
    set(doc, {"ecs", "version"}, Value::string("8.11.0"));
    set(doc, {"data_stream", "type"}, Value::string("logs"));
    set(doc, {"data_stream", "dataset"}, Value::string(std::string(kDataset)));
    set(doc, {"data_stream", "namespace"}, Value::string(options.data_stream_namespace));
    set(doc, {"event", "dataset"}, Value::string(std::string(kDataset)));
  }

  void emit(const Value& doc, std::string_view id, bool error, std::string_view alert_id,
            std::string_view last_update) {
    json.clear();
    incident::writeJson(json, doc);
    DocumentView view;
    view.id = id;
    view.json = json;
    view.error = error;
    view.alert_id = alert_id;
    view.last_update_time = last_update;
    view.evidence_index = alert_index;
    ++stats.documents;
    if (error) ++stats.errors;
    sink->onDocument(view);
  }

  // An error document (§4.5) keeping `original`, which may not be valid UTF-8.
  void emitError(std::string_view original, std::string problem, std::string_view alert_id = {},
                 std::string_view last_update = {}) {
    Value doc = Value::object();
    set(doc, {"@timestamp"}, Value::string(nowText()));
    addEnvelope(doc);
    set(doc, {"event", "kind"}, Value::string("pipeline_error"));
    // The raw text goes in lossily; the tree holds valid UTF-8 only.
    std::string lossy;
    core::appendEscapedLossy(lossy, original);
    simdjson::padded_string quoted("\"" + lossy + "\"");
    simdjson::dom::parser p;
    std::string_view decoded;
    if (p.parse(quoted).get_string().get(decoded) == simdjson::SUCCESS) {
      set(doc, {"event", "original"}, Value::string(std::string(decoded)));
    }
    Value messages = Value::array();
    messages.items.push_back(Value::string(std::move(problem)));
    set(doc, {"error", "message"}, std::move(messages));
    set(doc, {"tags"}, tags(true));
    const std::string id = elasticFingerprint({original});
    emit(doc, id, true, alert_id, last_update);
  }

  // ---- Line level ----

  LineStats mapLine(std::string_view line, const LineContext& context, DocumentSink& out) {
    begin(out);
    dispatchLine(
        line, context.padded, padded, scan,
        [this](std::string_view text) { mapText(text, nullptr); },
        [this](std::string_view text, const std::string& message) { emitError(text, message); });
    return stats;
  }

  LineStats mapElement(std::string_view text, DocumentSink& out) {
    begin(out);
    mapText(text, nullptr);
    return stats;
  }

  LineStats mapWithoutAlerts(std::string_view text, std::string_view reason, DocumentSink& out) {
    begin(out);
    std::string copy(text);
    copy.append(kLinePadding, '\0');
    const std::string prefix = "alerts could not be fetched: ";
    std::string message = prefix;
    message.append(reason);
    mapText(std::string_view(copy.data(), text.size()), &message);
    return stats;
  }

  // `text` is followed by at least kLinePadding readable bytes. `no_alerts_reason` set: the
  // §5.3 form.
  void mapText(std::string_view text, const std::string* no_alerts_reason) {
    ++stats.alerts;
    alert_index = 0;
    simdjson::dom::element root;
    const auto err = parser.parse(text.data(), text.size(), false).get(root);
    if (err != simdjson::SUCCESS) {
      emitError(text, std::string("invalid JSON: ") + simdjson::error_message(err));
      return;
    }
    if (root.type() != simdjson::dom::element_type::OBJECT) {
      emitError(text, "the incident is not a JSON object");
      return;
    }
    Value incident_value = fromDom(root);
    std::optional<Value> alerts = take(incident_value, "alerts");
    if (no_alerts_reason != nullptr) {
      mapOne(incident_value, nullptr, nullptr, no_alerts_reason);
      return;
    }
    if (!alerts || alerts->isNull() || (alerts->isArray() && alerts->items.empty())) {
      // The incident as received (with its null or empty alerts) is the original.
      Value original = incident_value;
      if (alerts) original.members.push_back(Member{"alerts", *alerts});
      mapOne(incident_value, nullptr, &original, nullptr);
      return;
    }
    if (!alerts->isArray()) {
      if (alerts->isObject()) {  // Elastic's split shape: one alert object
        mapAlert(incident_value, *alerts);
      } else {
        emitIncidentError(incident_value, *alerts, "the incident's \"alerts\" is not an array");
      }
      return;
    }
    for (std::size_t i = 0; i < alerts->items.size(); ++i) {
      alert_index = static_cast<std::uint32_t>(i);
      mapAlert(incident_value, alerts->items[i]);
    }
  }

  void mapAlert(const Value& incident_value, const Value& alert) {
    if (!alert.isObject()) {
      emitIncidentError(incident_value, alert, "an alert of the incident is not a JSON object");
      return;
    }
    const Value* evidence = find(alert, "evidence");
    if (present(evidence) && !evidence->isArray()) {
      emitIncidentError(incident_value, alert, "the alert's \"evidence\" is not an array");
      return;
    }
    Value original = incident_value;
    original.members.push_back(Member{"alerts", alert});
    mapOne(incident_value, &alert, &original, nullptr);
  }

  // An error document for an incident that parsed: the original is the incident with
  // `alerts` = the offending value.
  void emitIncidentError(const Value& incident_value, const Value& alerts, std::string problem) {
    Value original = incident_value;
    original.members.push_back(Member{"alerts", alerts});
    std::string text;
    incident::writeJson(text, original);
    const Value* id = find(incident_value, "id");
    const Value* lut = find(incident_value, "lastUpdateDateTime");
    const std::string id_text = present(id) ? render(*id) : std::string();
    const std::string lut_text = present(lut) ? render(*lut) : std::string();
    emitError(text, std::move(problem), id_text, lut_text);
  }

  // ---- One document -----------------------------------------------------------------

  struct Doc {
    Value root = Value::object();
    std::vector<std::string> problems;
  };

  static void moveTo(Value& src, std::string_view key, Value& doc, Path path) {
    if (auto v = take(src, key); v && !v->isNull()) set(doc, path, std::move(*v));
  }

  static void dateTo(Value& src, std::string_view key, Doc& d, Path path, std::string_view label) {
    auto v = take(src, key);
    if (!v || v->isNull()) return;
    if (auto date = toDate(*v)) {
      set(d.root, path, Value::string(std::move(*date)));
    } else {
      d.problems.push_back(std::string(label) + ": '" + render(*v) + "' is not an ISO 8601 date");
    }
  }

  static void urlTo(Value& src, std::string_view key, Doc& d, Path path, std::string_view label) {
    auto v = take(src, key);
    if (!v || v->isNull()) return;
    std::optional<UrlParts> parts;
    if (v->isString()) parts = parseUrlParts(v->str);
    if (!parts) {
      d.problems.push_back(std::string(label) + ": '" + render(*v) + "' is not a URL");
      return;
    }
    Value u = Value::object();
    set(u, {"original"}, Value::string(v->str));
    if (!parts->scheme.empty()) set(u, {"scheme"}, Value::string(parts->scheme));
    if (!parts->domain.empty()) set(u, {"domain"}, Value::string(parts->domain));
    if (parts->port) set(u, {"port"}, Value::integer(*parts->port));
    if (!parts->path.empty()) set(u, {"path"}, Value::string(parts->path));
    if (!parts->extension.empty()) set(u, {"extension"}, Value::string(parts->extension));
    if (!parts->query.empty()) set(u, {"query"}, Value::string(parts->query));
    if (!parts->fragment.empty()) set(u, {"fragment"}, Value::string(parts->fragment));
    if (!parts->user_info.empty()) {
      set(u, {"user_info"}, Value::string(parts->user_info));
      if (!parts->username.empty()) set(u, {"username"}, Value::string(parts->username));
      if (parts->password && !parts->password->empty()) {
        set(u, {"password"}, Value::string(*parts->password));
      }
    }
    set(d.root, path, std::move(u));
  }

  static void appendText(Value& doc, Path path, const Value* v) {
    if (!present(v)) return;
    appendUnique(doc, path, Value::string(render(*v)));
  }

  // `no_alerts_reason`: the §5.3 document. `original`: event.original's value (null: not
  // kept).
  void mapOne(const Value& incident_in, const Value* alert_in, const Value* original,
              const std::string* no_alerts_reason) {
    Value inc = incident_in;
    Value alert = alert_in != nullptr ? *alert_in : Value::object();
    Doc d;
    Value& doc = d.root;

    // Identity, from the raw values.
    auto rawString = [](const Value& obj, std::string_view key) -> std::optional<std::string> {
      const Value* v = find(obj, key);
      if (!present(v)) return std::nullopt;
      return render(*v);
    };
    const auto a_id = alert_in != nullptr ? rawString(alert, "id") : std::nullopt;
    const auto a_lut = alert_in != nullptr ? rawString(alert, "lastUpdateDateTime") : std::nullopt;
    const auto i_created = rawString(inc, "createdDateTime");
    const auto i_id = rawString(inc, "id");
    const auto i_url = rawString(inc, "incidentWebUrl");
    const auto i_lut = rawString(inc, "lastUpdateDateTime");
    auto ptr = [](const std::optional<std::string>& s) { return s ? &*s : nullptr; };
    const std::string id = incidentFingerprint(
        {ptr(a_id), ptr(a_lut), ptr(i_created), ptr(i_id), ptr(i_url), ptr(i_lut)});

    set(doc, {"ecs", "version"}, Value::string("8.11.0"));
    if (options.preserve_original_event && original != nullptr) {
      std::string text;
      incident::writeJson(text, *original);
      set(doc, {"event", "original"}, Value::string(std::move(text)));
    } else if (options.preserve_original_event) {
      std::string text;
      incident::writeJson(text, incident_in);
      set(doc, {"event", "original"}, Value::string(std::move(text)));
    }
    set(doc, {"event", "kind"}, Value::string("alert"));

    // event.category / event.type from the incident's determination.
    if (const Value* det = find(inc, "determination"); det != nullptr && det->isString()) {
      const std::string lower = core::asciiLower(det->str);
      if (lower == "malware" || lower == "malicioususeractivity") {
        appendUnique(doc, {"event", "category"}, Value::string("malware"));
      } else if (lower == "phishing") {
        appendUnique(doc, {"event", "category"}, Value::string("email"));
      } else if (lower == "apt") {
        appendUnique(doc, {"event", "category"}, Value::string("threat"));
      }
    }
    if (const Value* cat = findPath(doc, {"event", "category"}); cat != nullptr) {
      auto has = [&](std::string_view c) {
        return std::find(cat->items.begin(), cat->items.end(), Value::string(std::string(c))) !=
               cat->items.end();
      };
      const bool threat = has("threat");
      const bool info = has("email") || has("malware");
      if (threat) appendUnique(doc, {"event", "type"}, Value::string("indicator"));
      if (info) appendUnique(doc, {"event", "type"}, Value::string("info"));
    }

    moveTo(inc, kOdataType, doc, {"m365_defender", "incident", "odata_type"});
    dateTo(inc, "lastUpdateDateTime", d, {"m365_defender", "incident", "last_update_datetime"},
           "lastUpdateDateTime");
    if (const Value* lut = findPath(doc, {"m365_defender", "incident", "last_update_datetime"})) {
      set(doc, {"@timestamp"}, *lut);
    }
    moveTo(inc, "displayName", doc, {"m365_defender", "incident", "display_name"});
    if (const Value* v = findPath(doc, {"m365_defender", "incident", "display_name"})) {
      set(doc, {"message"}, *v);
    }
    moveTo(inc, "tenantId", doc, {"m365_defender", "incident", "tenant_id"});
    if (const Value* v = findPath(doc, {"m365_defender", "incident", "tenant_id"})) {
      set(doc, {"cloud", "account", "id"}, *v);
    }
    dateTo(inc, "createdDateTime", d, {"m365_defender", "incident", "created_datetime"},
           "createdDateTime");
    if (const Value* v = findPath(doc, {"m365_defender", "incident", "created_datetime"})) {
      set(doc, {"event", "created"}, *v);
    }
    moveTo(inc, "id", doc, {"m365_defender", "incident", "id"});
    if (const Value* v = findPath(doc, {"m365_defender", "incident", "id"})) {
      set(doc, {"event", "id"}, *v);
    }
    moveTo(alert, "serviceSource", doc, {"m365_defender", "incident", "alert", "service_source"});
    if (const Value* v = findPath(doc, {"m365_defender", "incident", "alert", "service_source"})) {
      set(doc, {"event", "provider"}, *v);
    }
    if (auto sev = take(inc, "severity"); sev && !sev->isNull()) {
      if (sev->isString()) {
        const std::string lower = core::asciiLower(sev->str);
        if (lower == "low" || lower == "informational") {
          set(doc, {"event", "severity"}, Value::integer(21));
        } else if (lower == "medium") {
          set(doc, {"event", "severity"}, Value::integer(47));
        } else if (lower == "high") {
          set(doc, {"event", "severity"}, Value::integer(73));
        } else if (lower == "critical") {
          set(doc, {"event", "severity"}, Value::integer(99));
        }
        set(doc, {"m365_defender", "incident", "severity"}, Value::string(lower));
      } else {
        set(doc, {"m365_defender", "incident", "severity"}, std::move(*sev));
      }
    }
    urlTo(inc, "incidentWebUrl", d, {"m365_defender", "incident", "web_url"}, "incidentWebUrl");
    if (const Value* v = findPath(doc, {"m365_defender", "incident", "web_url", "original"})) {
      set(doc, {"event", "url"}, *v);
    }
    moveTo(inc, "assignedTo", doc, {"m365_defender", "incident", "assigned_to"});
    if (const Value* v = findPath(doc, {"m365_defender", "incident", "assigned_to"});
        v != nullptr && v->isString()) {
      const std::string assigned = v->str;
      if (auto m = grokUserAtHost(assigned)) {
        set(doc, {"source", "user", "name"}, Value::string(std::string(m->name)));
        set(doc, {"source", "user", "domain"}, Value::string(std::string(m->domain)));
      } else {
        set(doc, {"source", "user", "name"}, Value::string(assigned));
      }
      const auto at = assigned.find('@');
      if (at != std::string::npos && at > 0) {
        set(doc, {"source", "user", "email"}, Value::string(assigned));
      }
      appendText(doc, {"related", "user"}, findPath(doc, {"source", "user", "name"}));
      appendText(doc, {"related", "user"}, findPath(doc, {"source", "user", "email"}));
    }

    mapAlertFields(alert, d);

    moveTo(inc, "classification", doc, {"m365_defender", "incident", "classification"});
    if (const Value* comments = find(inc, "comments"); comments != nullptr && comments->isArray()) {
      for (const Value& c : comments->items) {
        appendText(doc, {"related", "user"}, find(c, "createdByDisplayName"));
      }
      for (const Value& c : comments->items) {
        appendText(doc, {"related", "user"}, find(c, "createdBy"));
      }
    }
    moveTo(inc, "comments", doc, {"m365_defender", "incident", "comments"});
    moveTo(inc, "determination", doc, {"m365_defender", "incident", "determination"});
    moveTo(inc, "redirectIncidentId", doc, {"m365_defender", "incident", "redirect_incident_id"});
    moveTo(inc, "status", doc, {"m365_defender", "incident", "status"});
    // Deviation D1: customTags when the beta name `tags` is absent.
    if (present(find(inc, "tags"))) {
      moveTo(inc, "tags", doc, {"m365_defender", "incident", "tags"});
    } else {
      moveTo(inc, "customTags", doc, {"m365_defender", "incident", "tags"});
    }

    if (auto ev = take(alert, "evidence"); ev && ev->isArray()) {
      mapEvidence(*ev, d);
      set(doc, {"m365_defender", "incident", "alert", "evidence"}, std::move(*ev));
    }

    if (!keep_duplicates) removeDuplicates(doc);

    if (no_alerts_reason != nullptr) d.problems.push_back(*no_alerts_reason);
    if (!d.problems.empty()) {
      Value messages = Value::array();
      for (std::string& p : d.problems) messages.items.push_back(Value::string(std::move(p)));
      set(doc, {"error", "message"}, std::move(messages));
    }
    incident::prune(doc);
    if (find(doc, "@timestamp") == nullptr) set(doc, {"@timestamp"}, Value::string(nowText()));
    set(doc, {"ecs", "version"}, Value::string("8.11.0"));
    set(doc, {"event", "kind"}, Value::string("alert"));
    addEnvelope(doc);
    set(doc, {"tags"}, tags(false));
    emit(doc, id, false, i_id.value_or(std::string()), i_lut.value_or(std::string()));
  }

  void mapAlertFields(Value& a, Doc& d) {
    Value& doc = d.root;
    using P = Path;
    auto alertPath = [](std::string_view leaf) -> std::array<std::string_view, 4> {
      return {"m365_defender", "incident", "alert", leaf};
    };
    auto mv = [&](std::string_view key, std::string_view leaf) {
      const auto p = alertPath(leaf);
      moveTo(a, key, doc, P{p[0], p[1], p[2], p[3]});
    };
    auto date = [&](std::string_view key, std::string_view leaf) {
      const auto p = alertPath(leaf);
      dateTo(a, key, d, P{p[0], p[1], p[2], p[3]}, std::string("alert ") + std::string(key));
    };
    auto url = [&](std::string_view key, std::string_view leaf) {
      const auto p = alertPath(leaf);
      urlTo(a, key, d, P{p[0], p[1], p[2], p[3]}, std::string("alert ") + std::string(key));
    };
    mv("threatFamilyName", "threat_family_name");
    mv("category", "category");
    appendText(doc, {"threat", "tactic", "name"},
               findPath(doc, {"m365_defender", "incident", "alert", "category"}));
    mv("mitreTechniques", "mitre_techniques");
    if (const Value* v =
            findPath(doc, {"m365_defender", "incident", "alert", "mitre_techniques"})) {
      set(doc, {"threat", "technique", "subtechnique", "id"}, *v);
    }
    mv("actorDisplayName", "actor_display_name");
    url("alertWebUrl", "alert_web_url");
    mv("assignedTo", "assigned_to");
    mv("classification", "classification");
    if (const Value* comments = find(a, "comments"); comments != nullptr && comments->isArray()) {
      for (const Value& c : comments->items) {
        appendText(doc, {"related", "user"}, find(c, "createdByDisplayName"));
      }
    }
    mv("comments", "comments");
    date("createdDateTime", "created_datetime");
    mv("description", "description");
    mv("detectionSource", "detection_source");
    mv("detectorId", "detector_id");
    mv("determination", "determination");
    date("firstActivityDateTime", "first_activity_datetime");
    mv("id", "id");
    mv("incidentId", "incident_id");
    url("incidentWebUrl", "incident_web_url");
    date("lastActivityDateTime", "last_activity_datetime");
    date("lastUpdateDateTime", "last_update_datetime");
    mv("providerAlertId", "provider_alert_id");
    mv("recommendedActions", "recommended_actions");
    date("resolvedDateTime", "resolved_datetime");
    mv("severity", "severity");
    mv("status", "status");
    mv("tenantId", "tenant_id");
    mv("threatDisplayName", "threat_display_name");
    mv("title", "title");
  }

  // ---- Evidence (§4.3) ----

  void mapEvidence(Value& evidence, Doc& d);
  static void removeDuplicates(Value& doc);
};

namespace {

// Renames inside one evidence element.
void renameIn(Value& e, Path from, Path to) {
  if (auto v = takePath(e, from)) set(e, to, std::move(*v));
}

// An evidence date: one that does not parse is dropped, as Elastic's pipeline drops it
// (ignore_failure), and counted in `dropped`.
void dateIn(Value& e, Path from, Path to, std::uint64_t& dropped) {
  auto v = takePath(e, from);
  if (!v || v->isNull()) return;
  if (auto date = toDate(*v)) {
    set(e, to, Value::string(std::move(*date)));
  } else {
    ++dropped;
  }
}

void stringIn(Value& e, Path from, Path to) {
  auto v = takePath(e, from);
  if (!v) return;
  if (v->isNull() || v->isString()) {
    set(e, to, std::move(*v));
  } else {
    set(e, to, Value::string(render(*v)));
  }
}

std::string pathText(Path p) {
  std::string out;
  for (std::string_view k : p) {
    if (!out.empty()) out.push_back('.');
    out.append(k);
  }
  return out;
}

void longIn(Value& e, Path from, Path to, std::vector<std::string>& problems) {
  auto v = takePath(e, from);
  if (!v || v->isNull()) return;
  if (auto n = toLong(*v)) {
    set(e, to, Value::integer(*n));
  } else {
    problems.push_back("evidence " + pathText(from) + ": '" + render(*v) + "' is not an integer");
  }
}

void ipIn(Value& e, Path from, Path to, std::vector<std::string>& problems) {
  auto v = takePath(e, from);
  if (!v || v->isNull()) return;
  if (isIp(*v)) {
    set(e, to, std::move(*v));
  } else {
    problems.push_back("evidence " + pathText(from) + ": '" + render(*v) +
                       "' is not an IP address");
  }
}

bool isType(const Value& e, std::string_view type) {
  const Value* t = find(e, "odata_type");
  return t != nullptr && t->isString() && t->str.size() == kEvidencePrefix.size() + type.size() &&
         t->str.starts_with(kEvidencePrefix) && t->str.ends_with(type);
}

void appendFrom(Value& doc, Path to, const Value& e, Path from) {
  const Value* v = findPath(e, from);
  if (present(v)) appendUnique(doc, to, Value::string(render(*v)));
}

// process.name from one command line (Elastic's script).
std::optional<std::string> processName(std::string_view cmd) {
  if (cmd.empty()) return std::nullopt;
  // String.trim(): every byte <= ' ' at both ends.
  while (!cmd.empty() && static_cast<unsigned char>(cmd.front()) <= ' ') cmd.remove_prefix(1);
  while (!cmd.empty() && static_cast<unsigned char>(cmd.back()) <= ' ') cmd.remove_suffix(1);
  std::string_view first = cmd.substr(0, cmd.find(' '));
  if (first.find('/') != std::string_view::npos) {
    // splitOnToken drops trailing empty parts.
    while (!first.empty() && first.back() == '/') first.remove_suffix(1);
    first = first.substr(first.rfind('/') == std::string_view::npos ? 0 : first.rfind('/') + 1);
  }
  std::string name;
  for (char c : first) {
    if (c != '"') name.push_back(c);
  }
  return name;
}

std::optional<std::string> executable(const Value* image_file) {
  if (image_file == nullptr) return std::nullopt;
  const Value* path = find(*image_file, "path");
  const Value* name = find(*image_file, "name");
  if (!present(name)) return std::nullopt;
  const std::string n = render(*name);
  if (!present(path)) return n;
  std::string p = render(*path);
  const char sep = p.find('\\') != std::string::npos ? '\\' : '/';
  if (p.empty() || p.back() != sep) p.push_back(sep);
  return p + n;
}

}  // namespace

void IncidentMapper::Impl::mapEvidence(Value& evidence, Doc& d) {
  Value& doc = d.root;
  auto& problems = d.problems;
  auto each = [&](auto&& fn) {
    for (Value& e : evidence.items) {
      if (e.isObject()) fn(e);
    }
  };

  incident::dropEmptyStrings(evidence);
  each([&](Value& e) {
    dateIn(e, {"createdDateTime"}, {"created_datetime"}, stats.dropped_dates);
    renameIn(e, {"remediationStatus"}, {"remediation_status"});
    renameIn(e, {"remediationStatusDetails"}, {"remediation_status_details"});
  });
  each([&](Value& e) {
    renameIn(e, {kOdataType}, {"odata_type"});
    for (std::string_view sub : {"p1Sender", "p2Sender", "vmMetadata", "fileDetails", "imageFile",
                                 "parentProcessImageFile", "userAccount"}) {
      if (Value* s = find(e, sub)) renameIn(*s, {kOdataType}, {"odata_type"});
    }
    if (Value* users = find(e, "loggedOnUsers"); users != nullptr && users->isArray()) {
      for (Value& u : users->items) renameIn(u, {kOdataType}, {"odata_type"});
    }
  });

  each([&](Value& e) {
    dateIn(e, {"receivedDateTime"}, {"received_datetime"}, stats.dropped_dates);
  });
  each([&](Value& e) {
    appendFrom(doc, {"email", "delivery_timestamp"}, e, {"received_datetime"});
  });
  each([&](Value& e) { renameIn(e, {"antiSpamDirection"}, {"antispam_direction"}); });
  each([&](Value& e) { appendFrom(doc, {"email", "direction"}, e, {"antispam_direction"}); });
  each([&](Value& e) { appendFrom(doc, {"email", "subject"}, e, {"subject"}); });
  each([&](Value& e) { renameIn(e, {"recipientEmailAddress"}, {"recipient_email_address"}); });
  each([&](Value& e) { appendFrom(doc, {"related", "user"}, e, {"recipient_email_address"}); });
  each([&](Value& e) {
    appendFrom(doc, {"email", "to", "address"}, e, {"recipient_email_address"});
  });
  each([&](Value& e) { longIn(e, {"attachmentsCount"}, {"attachments_count"}, problems); });
  each([&](Value& e) {
    renameIn(e, {"deliveryAction"}, {"delivery_action"});
    renameIn(e, {"deliveryLocation"}, {"delivery_location"});
    renameIn(e, {"internetMessageId"}, {"internet_message_id"});
    renameIn(e, {"networkMessageId"}, {"network_message_id"});
  });
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 2> kSenders = {{
      {"p1Sender", "p1_sender"},
      {"p2Sender", "p2_sender"},
  }};
  for (const auto& sender : kSenders) {
    // Named copies: clang 14 lets no lambda capture a structured binding.
    const std::string_view raw = sender.first;
    const std::string_view out = sender.second;
    each([&](Value& e) {
      renameIn(e, {raw, "odata_type"}, {out, "odata_type"});
      renameIn(e, {raw, "displayName"}, {out, "display_name"});
      renameIn(e, {raw, "domainName"}, {out, "domain_name"});
      renameIn(e, {raw, "emailAddress"}, {out, "email_address"});
    });
    each([&](Value& e) { appendFrom(doc, {"related", "user"}, e, {out, "display_name"}); });
    each([&](Value& e) { appendFrom(doc, {"related", "hosts"}, e, {out, "domain_name"}); });
    each([&](Value& e) {
      appendFrom(doc, {"email", "from", "address"}, e, {out, "email_address"});
    });
    each([&](Value& e) { appendFrom(doc, {"related", "user"}, e, {out, "email_address"}); });
  }
  each([&](Value& e) { ipIn(e, {"senderIp"}, {"sender_ip"}, problems); });
  each([&](Value& e) { appendFrom(doc, {"related", "ip"}, e, {"sender_ip"}); });
  each([&](Value& e) { renameIn(e, {"threatDetectionMethods"}, {"threat_detection_methods"}); });
  each([&](Value& e) { longIn(e, {"urlCount"}, {"url_count"}, problems); });
  each([&](Value& e) {
    stringIn(e, {"instanceId"}, {"instance_id"});
    renameIn(e, {"instanceName"}, {"instance_name"});
  });
  each([&](Value& e) { appendFrom(doc, {"cloud", "instance", "id"}, e, {"instance_id"}); });
  each([&](Value& e) { appendFrom(doc, {"cloud", "instance", "name"}, e, {"instance_name"}); });
  each([&](Value& e) {
    stringIn(e, {"appId"}, {"app_id"});
    renameIn(e, {"displayName"}, {"display_name"});
    stringIn(e, {"saasAppId"}, {"saas_app_id"});
  });
  each([&](Value& e) {
    renameIn(e, {"vmMetadata", "cloudProvider"}, {"vm_metadata", "cloud_provider"});
  });
  each([&](Value& e) { renameIn(e, {"mdeDeviceId"}, {"mde_device_id"}); });
  each([&](Value& e) { renameIn(e, {"osPlatform"}, {"os_platform"}); });
  each([&](Value& e) { appendFrom(doc, {"host", "os", "name"}, e, {"os_platform"}); });
  each([&](Value& e) { appendFrom(doc, {"host", "os", "version"}, e, {"version"}); });
  each([&](Value& e) { appendFrom(doc, {"device", "id"}, e, {"azureAdDeviceId"}); });
  each([&](Value& e) { renameIn(e, {"azureAdDeviceId"}, {"azure_ad_device_id"}); });
  each([&](Value& e) { renameIn(e, {"defenderAvStatus"}, {"defender_av_status"}); });
  each([&](Value& e) { renameIn(e, {"deviceDnsName"}, {"device_dns_name"}); });
  each([&](Value& e) { appendFrom(doc, {"related", "hosts"}, e, {"device_dns_name"}); });
  each([&](Value& e) { appendFrom(doc, {"host", "name"}, e, {"device_dns_name"}); });
  each([&](Value& e) { appendFrom(doc, {"host", "hostname"}, e, {"device_dns_name"}); });
  each([&](Value& e) {
    dateIn(e, {"firstSeenDateTime"}, {"first_seen_datetime"}, stats.dropped_dates);
    renameIn(e, {"healthStatus"}, {"health_status"});
  });
  each([&](Value& e) {
    renameIn(e, {"loggedOnUsers"}, {"logged_on_users"});
    if (Value* users = find(e, "logged_on_users"); users != nullptr && users->isArray()) {
      for (Value& u : users->items) {
        renameIn(u, {"accountName"}, {"account_name"});
        renameIn(u, {"domainName"}, {"domain_name"});
      }
    }
  });
  auto eachUser = [&](auto&& fn) {
    each([&](Value& e) {
      if (Value* users = find(e, "logged_on_users"); users != nullptr && users->isArray()) {
        for (Value& u : users->items) fn(u);
      }
    });
  };
  eachUser([&](Value& u) { appendFrom(doc, {"user", "name"}, u, {"account_name"}); });
  eachUser([&](Value& u) { appendFrom(doc, {"related", "user"}, u, {"account_name"}); });
  eachUser([&](Value& u) { appendFrom(doc, {"related", "hosts"}, u, {"domain_name"}); });
  each([&](Value& e) { renameIn(e, {"onboardingStatus"}, {"onboarding_status"}); });
  each([&](Value& e) {
    stringIn(e, {"osBuild"}, {"os_build"});
    stringIn(e, {"rbacGroupId"}, {"rbac_group", "id"});
    renameIn(e, {"rbacGroupName"}, {"rbac_group", "name"});
    renameIn(e, {"riskScore"}, {"risk_score"});
  });
  each([&](Value& e) {
    renameIn(e, {"vmMetadata", "odata_type"}, {"vm_metadata", "odata_type"});
    renameIn(e, {"vmMetadata", "resourceId"}, {"vm_metadata", "resource_id"});
    renameIn(e, {"vmMetadata", "subscriptionId"}, {"vm_metadata", "subscription_id"});
    renameIn(e, {"vmMetadata", "vmId"}, {"vm_metadata", "vm_id"});
  });
  each([&](Value& e) { renameIn(e, {"detectionStatus"}, {"detection_status"}); });
  each([&](Value& e) { appendFrom(doc, {"event", "action"}, e, {"detection_status"}); });

  // fileEvidence
  each([&](Value& e) {
    renameIn(e, {"fileDetails", "odata_type"}, {"file_details", "odata_type"});
    renameIn(e, {"fileDetails", "sha1"}, {"file_details", "sha1"});
    renameIn(e, {"fileDetails", "sha256"}, {"file_details", "sha256"});
    renameIn(e, {"fileDetails", "fileName"}, {"file_details", "name"});
    renameIn(e, {"fileDetails", "filePath"}, {"file_details", "path"});
  });
  each([&](Value& e) { appendFrom(doc, {"file", "hash", "sha1"}, e, {"file_details", "sha1"}); });
  each([&](Value& e) { appendFrom(doc, {"related", "hash"}, e, {"file_details", "sha1"}); });
  each([&](Value& e) {
    appendFrom(doc, {"file", "hash", "sha256"}, e, {"file_details", "sha256"});
  });
  each([&](Value& e) { appendFrom(doc, {"related", "hash"}, e, {"file_details", "sha256"}); });
  each([&](Value& e) { appendFrom(doc, {"file", "name"}, e, {"file_details", "name"}); });
  each([&](Value& e) {
    // Deviation D4 kept: Elastic's template renders a missing half as "".
    const Value* path = findPath(e, {"file_details", "path"});
    const Value* name = findPath(e, {"file_details", "name"});
    std::string joined = present(path) ? render(*path) : std::string();
    joined.push_back('\\');
    if (present(name)) joined += render(*name);
    appendUnique(doc, {"file", "path"}, Value::string(std::move(joined)));
  });
  if (Value* paths = findPath(doc, {"file", "path"}); paths != nullptr && paths->isArray()) {
    std::erase(paths->items, Value::string("\\"));
  }
  each([&](Value& e) {
    longIn(e, {"fileDetails", "fileSize"}, {"file_details", "size"}, problems);
  });
  each([&](Value& e) {
    renameIn(e, {"fileDetails", "filePublisher"}, {"file_details", "publisher"});
    renameIn(e, {"fileDetails", "issuer"}, {"file_details", "issuer"});
    renameIn(e, {"fileDetails", "signer"}, {"file_details", "signer"});
  });

  each([&](Value& e) { ipIn(e, {"ipAddress"}, {"ip_address"}, problems); });
  each([&](Value& e) { appendFrom(doc, {"source", "ip"}, e, {"ip_address"}); });
  each([&](Value& e) { appendFrom(doc, {"related", "ip"}, e, {"ip_address"}); });

  each([&](Value& e) {
    renameIn(e, {"userAccount", "odata_type"}, {"user_account", "odata_type"});
    renameIn(e, {"userAccount", "domainName"}, {"user_account", "domain_name"});
    renameIn(e, {"userAccount", "azureAdUserId"}, {"user_account", "azure_ad_user_id"});
    renameIn(e, {"userAccount", "userPrincipalName"}, {"user_account", "user_principal_name"});
  });
  each([&](Value& e) {
    appendFrom(doc, {"related", "hosts"}, e, {"user_account", "domain_name"});
  });
  each([&](Value& e) {
    appendFrom(doc, {"related", "user"}, e, {"user_account", "azure_ad_user_id"});
  });
  each([&](Value& e) {
    appendFrom(doc, {"related", "user"}, e, {"user_account", "user_principal_name"});
  });
  each([&](Value& e) { renameIn(e, {"primaryAddress"}, {"primary_address"}); });
  each([&](Value& e) { appendFrom(doc, {"user", "email"}, e, {"primary_address"}); });
  each([&](Value& e) { appendFrom(doc, {"related", "user"}, e, {"primary_address"}); });
  each([&](Value& e) {
    renameIn(e, {"userAccount", "accountName"}, {"user_account", "account_name"});
    renameIn(e, {"userAccount", "displayName"}, {"user_account", "display_name"});
    renameIn(e, {"userAccount", "userSid"}, {"user_account", "user_sid"});
  });
  each([&](Value& e) {
    appendFrom(doc, {"related", "user"}, e, {"user_account", "display_name"});
  });
  each([&](Value& e) {
    appendFrom(doc, {"related", "user"}, e, {"user_account", "account_name"});
  });
  each([&](Value& e) { appendFrom(doc, {"related", "user"}, e, {"user_account", "user_sid"}); });
  each([&](Value& e) {
    renameIn(e, {"clusterBy"}, {"cluster_by"});
    renameIn(e, {"clusterByValue"}, {"cluster_by_value"});
  });
  each([&](Value& e) { longIn(e, {"emailCount"}, {"email_count"}, problems); });
  each([&](Value& e) {
    renameIn(e, {"networkMessageIds"}, {"network_message_ids"});
    renameIn(e, {"objectId"}, {"object_id"});
  });

  // processEvidence
  each([&](Value& e) { renameIn(e, {"processCommandLine"}, {"process", "command_line"}); });
  each([&](Value& e) {
    appendFrom(doc, {"process", "command_line"}, e, {"process", "command_line"});
  });
  each([&](Value& e) {
    renameIn(e, {"imageFile", "odata_type"}, {"image_file", "odata_type"});
    renameIn(e, {"imageFile", "sha1"}, {"image_file", "sha1"});
    renameIn(e, {"imageFile", "sha256"}, {"image_file", "sha256"});
  });
  each([&](Value& e) { appendFrom(doc, {"process", "hash", "sha1"}, e, {"image_file", "sha1"}); });
  each([&](Value& e) { appendFrom(doc, {"related", "hash"}, e, {"image_file", "sha1"}); });
  each([&](Value& e) {
    appendFrom(doc, {"process", "hash", "sha256"}, e, {"image_file", "sha256"});
  });
  each([&](Value& e) { appendFrom(doc, {"related", "hash"}, e, {"image_file", "sha256"}); });
  each([&](Value& e) {
    renameIn(e, {"parentProcessImageFile", "odata_type"},
             {"parent_process", "image_file", "odata_type"});
    renameIn(e, {"parentProcessImageFile", "sha1"}, {"parent_process", "image_file", "sha1"});
    renameIn(e, {"parentProcessImageFile", "sha256"}, {"parent_process", "image_file", "sha256"});
  });
  each([&](Value& e) {
    appendFrom(doc, {"process", "parent", "hash", "sha1"}, e,
               {"parent_process", "image_file", "sha1"});
  });
  each([&](Value& e) {
    appendFrom(doc, {"related", "hash"}, e, {"parent_process", "image_file", "sha1"});
  });
  each([&](Value& e) {
    appendFrom(doc, {"process", "parent", "hash", "sha256"}, e,
               {"parent_process", "image_file", "sha256"});
  });
  each([&](Value& e) {
    appendFrom(doc, {"related", "hash"}, e, {"parent_process", "image_file", "sha256"});
  });
  each([&](Value& e) {
    longIn(e, {"parentProcessId"}, {"parent_process", "id"}, problems);
    dateIn(e, {"parentProcessCreationDateTime"}, {"parent_process", "creation_datetime"},
           stats.dropped_dates);
  });
  each([&](Value& e) {
    appendFrom(doc, {"process", "parent", "start"}, e, {"parent_process", "creation_datetime"});
  });
  each([&](Value& e) {
    longIn(e, {"processId"}, {"process", "id"}, problems);
    dateIn(e, {"processCreationDateTime"}, {"process", "creation_datetime"}, stats.dropped_dates);
  });
  each([&](Value& e) {
    appendFrom(doc, {"process", "start"}, e, {"process", "creation_datetime"});
  });
  each([&](Value& e) {
    renameIn(e, {"imageFile", "fileName"}, {"image_file", "name"});
    renameIn(e, {"imageFile", "filePath"}, {"image_file", "path"});
    renameIn(e, {"imageFile", "filePublisher"}, {"image_file", "publisher"});
    longIn(e, {"imageFile", "fileSize"}, {"image_file", "size"}, problems);
    renameIn(e, {"imageFile", "issuer"}, {"image_file", "issuer"});
    renameIn(e, {"imageFile", "signer"}, {"image_file", "signer"});
  });
  each([&](Value& e) {
    renameIn(e, {"parentProcessImageFile", "fileName"}, {"parent_process", "image_file", "name"});
    renameIn(e, {"parentProcessImageFile", "filePath"}, {"parent_process", "image_file", "path"});
    renameIn(e, {"parentProcessImageFile", "filePublisher"},
             {"parent_process", "image_file", "publisher"});
    longIn(e, {"parentProcessImageFile", "fileSize"}, {"parent_process", "image_file", "size"},
           problems);
    renameIn(e, {"parentProcessImageFile", "issuer"}, {"parent_process", "image_file", "issuer"});
    renameIn(e, {"parentProcessImageFile", "signer"}, {"parent_process", "image_file", "signer"});
  });

  // registry
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kRegistry = {{
      {"registryHive", "registry_hive"},
      {"registryKey", "registry_key"},
      {"registryValueType", "registry_value_type"},
      {"registryValue", "registry_value"},
      {"registryValueName", "registry_value_name"},
  }};
  for (const auto& names : kRegistry) {
    const std::string_view raw = names.first;
    const std::string_view out = names.second;
    each([&](Value& e) { renameIn(e, {raw}, {out}); });
  }
  each([&](Value& e) { appendFrom(doc, {"registry", "hive"}, e, {"registry_hive"}); });
  each([&](Value& e) { appendFrom(doc, {"registry", "key"}, e, {"registry_key"}); });
  each([&](Value& e) {
    appendFrom(doc, {"registry", "data", "type"}, e, {"registry_value_type"});
  });
  each([&](Value& e) { appendFrom(doc, {"registry", "value"}, e, {"registry_value"}); });
  each([&](Value& e) { renameIn(e, {"securityGroupId"}, {"security_group_id"}); });
  each([&](Value& e) { appendFrom(doc, {"group", "id"}, e, {"security_group_id"}); });

  // ---- Computed after the rows ----
  // process.name (deviation D2: sorted).
  {
    std::vector<Value> names;
    if (const Value* cmds = findPath(doc, {"process", "command_line"})) {
      auto add = [&](const Value& c) {
        if (!c.isString()) return;
        if (auto n = processName(c.str)) names.push_back(Value::string(std::move(*n)));
      };
      if (cmds->isArray()) {
        for (const Value& c : cmds->items) add(c);
      } else {
        add(*cmds);
      }
    }
    Value sorted = sortedArray(std::move(names));
    if (sorted.items.size() == 1) {
      set(doc, {"process", "name"}, std::move(sorted.items.front()));
    } else if (!sorted.items.empty()) {
      set(doc, {"process", "name"}, std::move(sorted));
    }
  }
  {
    std::vector<Value> exe;
    std::vector<Value> parent_exe;
    std::vector<Value> sizes;
    std::vector<Value> pids;
    std::vector<Value> parent_pids;
    std::vector<Value> entity;
    std::vector<Value> parent_entity;
    each([&](Value& e) {
      if (auto x = executable(find(e, "image_file"))) exe.push_back(Value::string(*x));
      if (auto x = executable(findPath(e, {"parent_process", "image_file"}))) {
        parent_exe.push_back(Value::string(*x));
      }
      if (isType(e, "fileEvidence")) {
        if (const Value* s = findPath(e, {"file_details", "size"}); present(s)) sizes.push_back(*s);
      } else if (isType(e, "processEvidence")) {
        const Value* device = find(e, "mde_device_id");
        for (const auto& [which, pid_list, entity_list] :
             {std::tuple<std::string_view, std::vector<Value>*, std::vector<Value>*>{
                  "process", &pids, &entity},
              {"parent_process", &parent_pids, &parent_entity}}) {
          const Value* pid = findPath(e, {which, "id"});
          const Value* created = findPath(e, {which, "creation_datetime"});
          if (!present(pid)) continue;
          pid_list->push_back(*pid);
          if (present(created) && present(device)) {
            entity_list->push_back(
                Value::string(render(*pid) + "|" + render(*created) + "|" + render(*device)));
          }
        }
      }
    });
    auto setSorted = [&](Path path, std::vector<Value> values, bool single_as_scalar) {
      if (values.empty()) return;
      Value sorted = sortedArray(std::move(values));
      if (single_as_scalar && sorted.items.size() == 1) {
        set(doc, path, std::move(sorted.items.front()));
      } else {
        set(doc, path, std::move(sorted));
      }
    };
    auto fingerprints = [](std::vector<Value> values) {
      Value sorted = sortedArray(std::move(values));
      std::vector<Value> out;
      for (const Value& v : sorted.items) out.push_back(Value::string(elasticFingerprint({v.str})));
      return out;
    };
    setSorted({"file", "size"}, std::move(sizes), false);
    setSorted({"process", "pid"}, std::move(pids), false);
    setSorted({"process", "parent", "pid"}, std::move(parent_pids), false);
    if (!entity.empty()) {
      Value v = Value::array();
      v.items = fingerprints(std::move(entity));
      set(doc, {"process", "entity_id"}, std::move(v));
    }
    if (!parent_entity.empty()) {
      Value v = Value::array();
      v.items = fingerprints(std::move(parent_entity));
      set(doc, {"process", "parent", "entity_id"}, std::move(v));
    }
    setSorted({"process", "executable"}, std::move(exe), true);
    setSorted({"process", "parent", "executable"}, std::move(parent_exe), true);
  }
  {
    bool azure = false;
    std::vector<Value> group_name;
    std::vector<Value> host_id;
    std::vector<Value> user_domain;
    std::vector<Value> user_name;
    std::vector<Value> user_id;
    std::vector<Value> process_user_id;
    std::vector<Value> process_user_name;
    auto add = [](std::vector<Value>& to, const Value* v) {
      if (present(v)) to.push_back(*v);
    };
    each([&](Value& e) {
      if (isType(e, "securityGroupEvidence")) add(group_name, find(e, "display_name"));
      if (isType(e, "deviceEvidence")) add(host_id, find(e, "mde_device_id"));
      if (isType(e, "mailboxEvidence") || isType(e, "userEvidence")) {
        add(user_domain, findPath(e, {"user_account", "domain_name"}));
        add(user_id, findPath(e, {"user_account", "user_principal_name"}));
        add(user_name, findPath(e, {"user_account", "account_name"}));
      }
      if (isType(e, "processEvidence")) {
        add(process_user_id, findPath(e, {"user_account", "azure_ad_user_id"}));
        add(process_user_name, findPath(e, {"user_account", "account_name"}));
      }
      const Value* provider = findPath(e, {"vm_metadata", "cloud_provider"});
      if (provider != nullptr && provider->isString() &&
          core::equalsIgnoreCase(provider->str, "azure")) {
        azure = true;
      }
    });
    auto setList = [&](Path path, std::vector<Value> values) {
      if (values.empty()) return;
      Value sorted = Value::array();
      sorted.items = std::move(values);
      std::sort(sorted.items.begin(), sorted.items.end(), lessValue);
      set(doc, path, std::move(sorted));
    };
    if (azure) {
      Value v = Value::array();
      v.items.push_back(Value::string("azure"));
      set(doc, {"cloud", "provider"}, std::move(v));
    }
    // HashSets in Elastic's script: distinct.
    auto distinct = [](std::vector<Value> v) {
      std::sort(v.begin(), v.end(), lessValue);
      v.erase(std::unique(v.begin(), v.end()), v.end());
      return v;
    };
    setList({"group", "name"}, distinct(std::move(group_name)));
    setList({"host", "id"}, distinct(std::move(host_id)));
    setList({"user", "domain"}, distinct(std::move(user_domain)));
    setList({"user", "name"}, distinct(std::move(user_name)));
    setList({"user", "id"}, distinct(std::move(user_id)));
    Value& process = ensure(doc, {"process"});
    if (Value* user = find(process, "user")) *user = Value::object();
    setList({"process", "user", "id"}, distinct(std::move(process_user_id)));
    setList({"process", "user", "name"}, distinct(std::move(process_user_name)));
  }
  if (Value* names = findPath(doc, {"host", "name"})) {
    auto lower = [](Value& v) {
      if (v.isString()) v.str = core::asciiLower(v.str);
    };
    if (names->isArray()) {
      for (Value& v : names->items) lower(v);
    } else {
      lower(*names);
    }
  }
}

void IncidentMapper::Impl::removeDuplicates(Value& doc) {
  for (std::string_view k :
       {"last_update_datetime", "tenant_id", "created_datetime", "id", "web_url", "assigned_to"}) {
    erasePath(doc, {"m365_defender", "incident", k});
  }
  for (std::string_view k : {"service_source", "category", "mitre_techniques"}) {
    erasePath(doc, {"m365_defender", "incident", "alert", k});
  }
  Value* evidence = findPath(doc, {"m365_defender", "incident", "alert", "evidence"});
  if (evidence == nullptr || !evidence->isArray()) return;
  for (Value& e : evidence->items) {
    if (Value* users = find(e, "logged_on_users"); users != nullptr && users->isArray()) {
      for (Value& u : users->items) erasePath(u, {"account_name"});
    }
    for (std::string_view k :
         {"ip_address", "detection_status", "received_datetime", "antispam_direction", "subject",
          "recipient_email_address", "instance_id", "instance_name", "os_platform", "version",
          "registry_value_type", "registry_hive", "registry_key", "registry_value",
          "security_group_id"}) {
      erasePath(e, {k});
    }
    erasePath(e, {"vm_metadata", "cloud_provider"});
    for (std::string_view k : {"sha1", "sha256", "name", "path", "size"}) {
      erasePath(e, {"file_details", k});
    }
    erasePath(e, {"process", "command_line"});
    erasePath(e, {"process", "id"});
    erasePath(e, {"process", "creation_datetime"});
    erasePath(e, {"image_file", "sha1"});
    erasePath(e, {"image_file", "sha256"});
    erasePath(e, {"parent_process", "image_file", "sha1"});
    erasePath(e, {"parent_process", "image_file", "sha256"});
    erasePath(e, {"parent_process", "id"});
    erasePath(e, {"parent_process", "creation_datetime"});
  }
}

// ---- Public interface -----------------------------------------------------------------

IncidentMapper::IncidentMapper(IncidentMapOptions options, TimestampFn now)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(now))) {}

IncidentMapper::~IncidentMapper() = default;

LineStats IncidentMapper::mapLine(std::string_view line, const LineContext& context,
                                  DocumentSink& sink) {
  return impl_->mapLine(line, context, sink);
}

LineStats IncidentMapper::mapElement(std::string_view element, DocumentSink& sink) {
  return impl_->mapElement(element, sink);
}

LineStats IncidentMapper::mapWithoutAlerts(std::string_view element, std::string_view reason,
                                           DocumentSink& sink) {
  return impl_->mapWithoutAlerts(element, reason, sink);
}

const IncidentMapOptions& IncidentMapper::options() const { return impl_->options; }

}  // namespace mdec::ecs
