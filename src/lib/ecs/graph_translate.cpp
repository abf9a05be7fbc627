// Graph alerts_v2 alert -> Defender for Endpoint alert (graph.md), then the mapper.
//
// One simdjson DOM parse of the Graph alert and one compact write of the translated alert,
// in input key order: a key the translation renames is written in the place of the key it
// replaces; the first deviceEvidence's fields are written just before "evidence". Nothing is
// allocated per key: the parser and the output buffer are reused from alert to alert.
//
// mapGraphLine finds the alerts of a page without scanLine when it can (findPageElements),
// translates them all, then hands each to Mapper::mapElement; any doubt about the line sends
// it down the scanLine path, which does what Mapper::mapLine does with Defender pages.
#include "mdecollect/ecs/graph_translate.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "ecs/line_scanner.h"
#include "mdecollect/core/json_writer.h"

namespace mdec::ecs {

static_assert(kLinePadding >= simdjson::SIMDJSON_PADDING);

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// ---- Key classification (by length first: most keys match no rule) -------------------

inline bool is(std::string_view key, std::string_view name) {
  return std::memcmp(key.data(), name.data(), name.size()) == 0;  // sizes already equal
}

// Top-level keys of a Graph alert that the translation changes.
enum AlertKey : int {
  kAOther = 0,
  kAEnum,  // status, classification, determination, investigationState: Pascal case
  kASeverity,
  kADetectionSource,
  kAThreatDisplayName,
  kACreatedDateTime,
  kALastUpdateDateTime,
  kAFirstActivityDateTime,
  kALastActivityDateTime,
  kAResolvedDateTime,
  kATenantId,
  kAEvidence,
  kAValue,  // "value": a page's key, never an alert's
};

AlertKey classifyAlertKey(std::string_view k) {
  switch (k.size()) {
    case 5:
      return is(k, "value") ? kAValue : kAOther;
    case 6:
      return is(k, "status") ? kAEnum : kAOther;
    case 8:
      if (is(k, "severity")) return kASeverity;
      if (is(k, "tenantId")) return kATenantId;
      if (is(k, "evidence")) return kAEvidence;
      return kAOther;
    case 13:
      return is(k, "determination") ? kAEnum : kAOther;
    case 14:
      return is(k, "classification") ? kAEnum : kAOther;
    case 15:
      if (is(k, "detectionSource")) return kADetectionSource;
      if (is(k, "createdDateTime")) return kACreatedDateTime;
      return kAOther;
    case 16:
      return is(k, "resolvedDateTime") ? kAResolvedDateTime : kAOther;
    case 17:
      return is(k, "threatDisplayName") ? kAThreatDisplayName : kAOther;
    case 18:
      if (is(k, "lastUpdateDateTime")) return kALastUpdateDateTime;
      if (is(k, "investigationState")) return kAEnum;
      return kAOther;
    case 20:
      return is(k, "lastActivityDateTime") ? kALastActivityDateTime : kAOther;
    case 21:
      return is(k, "firstActivityDateTime") ? kAFirstActivityDateTime : kAOther;
    default:
      return kAOther;
  }
}

// Keys of an evidence element that the translation changes.
enum EvidenceKey : int {
  kEOther = 0,
  kEODataType,
  kECreatedDateTime,
  kEDetectionStatus,
  kEFileDetails,  // fileDetails (file) and imageFile (process)
  kEProcessCreationDateTime,
  kEParentProcessCreationDateTime,
  kEParentProcessImageFile,
  kEUserAccount,
};

EvidenceKey classifyEvidenceKey(std::string_view k) {
  switch (k.size()) {
    case 9:
      return is(k, "imageFile") ? kEFileDetails : kEOther;
    case 11:
      if (is(k, "@odata.type")) return kEODataType;
      if (is(k, "fileDetails")) return kEFileDetails;
      if (is(k, "userAccount")) return kEUserAccount;
      return kEOther;
    case 15:
      if (is(k, "createdDateTime")) return kECreatedDateTime;
      if (is(k, "detectionStatus")) return kEDetectionStatus;
      return kEOther;
    case 22:
      return is(k, "parentProcessImageFile") ? kEParentProcessImageFile : kEOther;
    case 23:
      return is(k, "processCreationDateTime") ? kEProcessCreationDateTime : kEOther;
    case 29:
      return is(k, "parentProcessCreationDateTime") ? kEParentProcessCreationDateTime : kEOther;
    default:
      return kEOther;
  }
}

// Graph detectionSource -> Defender for Endpoint detectionSource; others unchanged.
constexpr std::array<std::pair<std::string_view, std::string_view>, 10> kDetectionSources = {{
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
}};

// ---- Values ---------------------------------------------------------------------------

inline std::string_view stringOf(const element& e) { return e.get_string().value_unsafe(); }

// The type name of an evidence's "@odata.type" ("#microsoft.graph.security.fileEvidence" ->
// "fileEvidence").
std::string_view typeName(std::string_view odata_type) {
  const std::size_t dot = odata_type.rfind('.');
  if (dot != std::string_view::npos) return odata_type.substr(dot + 1);
  if (!odata_type.empty() && odata_type.front() == '#') odata_type.remove_prefix(1);
  return odata_type;
}

bool isDeviceEvidence(const element& e) {
  if (e.type() != element_type::OBJECT) return false;
  element t;
  if (simdjson::dom::object(e).at_key("@odata.type").get(t) != simdjson::SUCCESS) return false;
  return t.type() == element_type::STRING && typeName(stringOf(t)) == "deviceEvidence";
}

// ---- The writer -----------------------------------------------------------------------
//
// Writes straight into the caller's std::string through a cursor: the string is sized ahead
// (kSlack bytes beyond `end_` always stay writable) and every write reserves what it needs
// first, so there is no capacity check per byte. Strings come from simdjson's string buffer
// (unescaped, valid UTF-8) and are escaped again 16 bytes at a time; that buffer keeps
// SIMDJSON_PADDING bytes after its last string, so a 16-byte load at any byte of a string is
// in bounds.

constexpr std::size_t kSlack = 64;
static_assert(kSlack >= kLinePadding && kSlack >= 16);

class Writer {
 public:
  // Writes into `buf` from offset `start` on; `expected` is the room to make at once.
  // Growing `buf` initializes only the part that is new, so a buffer reused from alert to
  // alert costs nothing to size.
  Writer(std::string& buf, std::size_t start, std::size_t expected) : s_(buf) {
    if (s_.size() < start + expected + kSlack) s_.resize(start + expected + kSlack);
    p_ = s_.data() + start;
    end_ = s_.data() + s_.size() - kSlack;
  }

  // Where the text ends in `buf`; at least kSlack bytes of `buf` follow it.
  std::size_t end() const { return static_cast<std::size_t>(p_ - s_.data()); }

  // A key known not to need escaping.
  void key(bool& first, std::string_view k) {
    reserve(k.size() + 4);
    if (!first) *p_++ = ',';
    first = false;
    *p_++ = '"';
    copy(k);
    *p_++ = '"';
    *p_++ = ':';
  }

  // A key from the input (escaped again).
  void inputKey(bool& first, std::string_view k) {
    reserve(6 * k.size() + 4);
    if (!first) *p_++ = ',';
    first = false;
    *p_++ = '"';
    escaped(k);
    *p_++ = '"';
    *p_++ = ':';
  }

  void put(char c) {
    reserve(1);
    *p_++ = c;
  }

  // Text that is JSON already (a constant).
  void raw(std::string_view json) {
    reserve(json.size());
    copy(json);
  }

  // A string of the parsed document.
  void str(std::string_view s) {
    reserve(6 * s.size() + 2);
    *p_++ = '"';
    escaped(s);
    *p_++ = '"';
  }

  void value(const element& e) {
    switch (e.type()) {
      case element_type::STRING:
        str(stringOf(e));
        break;
      case element_type::OBJECT: {
        put('{');
        bool first = true;
        for (auto field : simdjson::dom::object(e)) {
          inputKey(first, field.key);
          value(field.value);
        }
        put('}');
        break;
      }
      case element_type::ARRAY: {
        put('[');
        bool first = true;
        for (element item : simdjson::dom::array(e)) {
          if (!first) put(',');
          first = false;
          value(item);
        }
        put(']');
        break;
      }
      case element_type::INT64:
        number(e.get_int64().value_unsafe());
        break;
      case element_type::UINT64:
        number(e.get_uint64().value_unsafe());
        break;
      case element_type::DOUBLE: {
        const double d = e.get_double().value_unsafe();
        if (std::isfinite(d)) {
          number(d);
        } else {
          raw("null");
        }
        break;
      }
      case element_type::BOOL:
        raw(e.get_bool().value_unsafe() ? "true" : "false");
        break;
      case element_type::NULL_VALUE:
        raw("null");
        break;
    }
  }

  // `s` (a string of the parsed document) with its first letter upper-cased, as a JSON string.
  void pascal(std::string_view s) {
    reserve(6 * s.size() + 2);
    *p_++ = '"';
    if (!s.empty() && s.front() >= 'a' && s.front() <= 'z') {
      *p_++ = static_cast<char>(s.front() - 'a' + 'A');
      s.remove_prefix(1);
    }
    escaped(s);
    *p_++ = '"';
  }

  // An enum value: a string in Pascal case, anything else as it is.
  void enumValue(const element& e) {
    if (e.type() == element_type::STRING) {
      pascal(stringOf(e));
    } else {
      value(e);
    }
  }

  void severity(const element& e) {
    if (e.type() == element_type::STRING && stringOf(e) == "unknown") {
      raw("\"UnSpecified\"");
    } else {
      enumValue(e);
    }
  }

  void detectionSource(const element& e) {
    if (e.type() == element_type::STRING) {
      const std::string_view s = stringOf(e);
      for (const auto& [graph, mde] : kDetectionSources) {
        if (s == graph) {
          reserve(mde.size() + 2);
          *p_++ = '"';
          copy(mde);
          *p_++ = '"';
          return;
        }
      }
    }
    value(e);
  }

  // The translated alert.
  void alert(const element& root) {
    put('{');
    bool first = true;
    for (auto field : simdjson::dom::object(root)) {
      switch (classifyAlertKey(field.key)) {
        case kAEnum:
          key(first, field.key);
          enumValue(field.value);
          break;
        case kASeverity:
          key(first, "severity");
          severity(field.value);
          break;
        case kADetectionSource:
          key(first, "detectionSource");
          detectionSource(field.value);
          break;
        case kAThreatDisplayName:
          key(first, "threatName");
          value(field.value);
          break;
        case kACreatedDateTime:
          key(first, "alertCreationTime");
          value(field.value);
          break;
        case kALastUpdateDateTime:
          key(first, "lastUpdateTime");
          value(field.value);
          break;
        case kAFirstActivityDateTime:
          key(first, "firstEventTime");
          value(field.value);
          break;
        case kALastActivityDateTime:
          key(first, "lastEventTime");
          value(field.value);
          break;
        case kAResolvedDateTime:
          key(first, "resolvedTime");
          value(field.value);
          break;
        case kATenantId:
          key(first, "aadTenantId");
          value(field.value);
          break;
        case kAEvidence:
          evidenceMember(first, field.value);
          break;
        case kAValue:
          // Written escaped (the same key to a JSON parser) so that scanLine, which compares
          // raw key text, never takes the translated alert for a page.
          key(first, "\\u0076alue");
          value(field.value);
          break;
        default:
          inputKey(first, field.key);
          value(field.value);
          break;
      }
    }
    put('}');
  }

 private:
  // "evidence" (and, before it, the first deviceEvidence's fields).
  void evidenceMember(bool& first, const element& ev) {
    if (ev.type() == element_type::ARRAY) {
      const simdjson::dom::array items(ev);
      std::size_t device_index = 0;
      bool found = false;
      for (element item : items) {
        if (isDeviceEvidence(item)) {
          device(first, item);
          found = true;
          break;
        }
        ++device_index;
      }
      key(first, "evidence");
      put('[');
      bool first_item = true;
      std::size_t index = 0;
      for (element item : items) {
        if (!found || index != device_index) {
          if (!first_item) put(',');
          first_item = false;
          if (item.type() == element_type::OBJECT) {
            evidence(item);
          } else {
            value(item);
          }
        }
        ++index;
      }
      put(']');
    } else if (ev.type() == element_type::OBJECT) {
      // The one-object form: a deviceEvidence leaves no evidence behind.
      if (isDeviceEvidence(ev)) {
        device(first, ev);
        key(first, "evidence");
        raw("[]");
      } else {
        key(first, "evidence");
        evidence(ev);
      }
    } else {
      key(first, "evidence");
      value(ev);
    }
  }

  // machineId, computerDnsName, rbacGroupName and relatedUser from a deviceEvidence.
  void device(bool& first, const element& dev) {
    std::optional<element> machine;
    std::optional<element> dns;
    std::optional<element> rbac;
    std::optional<element> users;
    for (auto field : simdjson::dom::object(dev)) {
      const std::string_view k = field.key;
      if (k == "mdeDeviceId") {
        if (!machine) machine = field.value;
      } else if (k == "deviceDnsName") {
        if (!dns) dns = field.value;
      } else if (k == "rbacGroupName") {
        if (!rbac) rbac = field.value;
      } else if (k == "loggedOnUsers") {
        if (!users) users = field.value;
      }
    }
    if (machine) {
      key(first, "machineId");
      value(*machine);
    }
    if (dns) {
      key(first, "computerDnsName");
      value(*dns);
    }
    if (rbac) {
      key(first, "rbacGroupName");
      value(*rbac);
    }
    if (!users || users->type() != element_type::ARRAY) return;
    element user;
    if (simdjson::dom::array(*users).at(0).get(user) != simdjson::SUCCESS ||
        user.type() != element_type::OBJECT) {
      return;
    }
    std::optional<element> account;
    std::optional<element> domain;
    for (auto field : simdjson::dom::object(user)) {
      if (field.key == "accountName") {
        if (!account) account = field.value;
      } else if (field.key == "domainName") {
        if (!domain) domain = field.value;
      }
    }
    if (!account && !domain) return;
    key(first, "relatedUser");
    put('{');
    bool first_member = true;
    if (account) {
      key(first_member, "userName");
      value(*account);
    }
    if (domain) {
      key(first_member, "domainName");
      value(*domain);
    }
    put('}');
  }

  // One evidence element (an object) other than the first deviceEvidence.
  void evidence(const element& ev) {
    put('{');
    bool first = true;
    for (auto field : simdjson::dom::object(ev)) {
      const element& v = field.value;
      switch (classifyEvidenceKey(field.key)) {
        case kEODataType:
          if (v.type() == element_type::STRING) {
            key(first, "entityType");
            entityType(typeName(stringOf(v)));
          }
          break;
        case kECreatedDateTime:
          key(first, "evidenceCreationTime");
          value(v);
          break;
        case kEDetectionStatus:
          key(first, "detectionStatus");
          enumValue(v);
          break;
        case kEFileDetails:
          if (v.type() == element_type::OBJECT) {
            fileDetails(first, v);
          } else {
            inputKey(first, field.key);
            value(v);
          }
          break;
        case kEProcessCreationDateTime:
          key(first, "processCreationTime");
          value(v);
          break;
        case kEParentProcessCreationDateTime:
          key(first, "parentProcessCreationTime");
          value(v);
          break;
        case kEParentProcessImageFile:
          if (v.type() == element_type::OBJECT) {
            parentImageFile(first, v);
          } else {
            inputKey(first, field.key);
            value(v);
          }
          break;
        case kEUserAccount:
          if (v.type() == element_type::OBJECT) {
            userAccount(first, v);
          } else {
            inputKey(first, field.key);
            value(v);
          }
          break;
        default:
          inputKey(first, field.key);
          value(v);
          break;
      }
    }
    put('}');
  }

  // entityType from the evidence type name: without "Evidence", first letter upper case.
  void entityType(std::string_view type) {
    if (type == "deviceEvidence") {
      raw("\"Machine\"");
      return;
    }
    if (type == "registryKeyEvidence" || type == "registryValueEvidence") {
      raw("\"Registry\"");
      return;
    }
    constexpr std::string_view kSuffix = "Evidence";
    if (type.size() > kSuffix.size() && type.substr(type.size() - kSuffix.size()) == kSuffix) {
      type.remove_suffix(kSuffix.size());
    }
    pascal(type);
  }

  // Lifts members of `obj` out of it: lift(key) gives the flat name a member is written
  // under, or {} for a member that stays; those that stay go into a `rest_name` object
  // (not written when there are none).
  template <typename Lift>
  void liftMembers(bool& first, const element& obj, std::string_view rest_name, Lift lift) {
    bool any_rest = false;
    for (auto field : simdjson::dom::object(obj)) {
      const std::string_view flat = lift(field.key);
      if (flat.empty()) {
        any_rest = true;
        continue;
      }
      key(first, flat);
      value(field.value);
    }
    if (!any_rest) return;
    key(first, rest_name);
    put('{');
    bool first_member = true;
    for (auto field : simdjson::dom::object(obj)) {
      if (!lift(field.key).empty()) continue;
      inputKey(first_member, field.key);
      value(field.value);
    }
    put('}');
  }

  void fileDetails(bool& first, const element& obj) {
    liftMembers(first, obj, "fileDetails", [](std::string_view k) -> std::string_view {
      if (k == "fileName" || k == "filePath" || k == "sha1" || k == "sha256") return k;
      return {};
    });
  }

  void parentImageFile(bool& first, const element& obj) {
    liftMembers(first, obj, "parentProcessImageFile", [](std::string_view k) -> std::string_view {
      if (k == "fileName") return "parentProcessFileName";
      if (k == "filePath") return "parentProcessFilePath";
      return {};
    });
  }

  void userAccount(bool& first, const element& obj) {
    liftMembers(first, obj, "userAccount", [](std::string_view k) -> std::string_view {
      if (k == "accountName" || k == "domainName" || k == "userSid" || k == "userPrincipalName") {
        return k;
      }
      if (k == "azureAdUserId") return "aadUserId";
      if (k == "displayName") return "userDisplayName";
      return {};
    });
  }

  template <typename T>
  void number(T v) {
    reserve(32);
    p_ = std::to_chars(p_, p_ + 32, v).ptr;
  }

  void reserve(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) grow(n);
  }

  void grow(std::size_t n) {
    const auto used = static_cast<std::size_t>(p_ - s_.data());
    s_.resize(std::max(2 * s_.size(), used + n + kSlack));
    p_ = s_.data() + used;
    end_ = s_.data() + s_.size() - kSlack;
  }

  // Unchecked: the caller reserved.
  void copy(std::string_view s) {
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }

  // `s` escaped, without quotes; the caller reserved 6 * s.size(). `s` lies in simdjson's
  // string buffer (16-byte loads past its end stay in bounds) and kSlack bytes after the
  // reserved room are writable (16-byte stores).
  void escaped(std::string_view s) {
    const char* src = s.data();
    std::size_t n = s.size();
    while (n != 0) {
#if defined(__SSE2__)
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
      const __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
      const __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
      const __m128i control =
          _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
      auto mask = static_cast<unsigned>(
          _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)));
      const std::size_t take = n < 16 ? n : 16;
      if (take < 16) mask &= (1u << take) - 1;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p_), v);
      if (mask == 0) {
        p_ += take;
        src += take;
        n -= take;
        continue;
      }
      const auto clean = static_cast<std::size_t>(__builtin_ctz(mask));
      p_ += clean;
      src += clean;
      n -= clean;
#else
      if (!core::kJsonNeedsEscape[static_cast<unsigned char>(*src)]) {
        *p_++ = *src++;
        --n;
        continue;
      }
#endif
      escapeOne(static_cast<unsigned char>(*src));
      ++src;
      --n;
    }
  }

  void escapeOne(unsigned char c) {
    *p_++ = '\\';
    switch (c) {
      case '"':
        *p_++ = '"';
        break;
      case '\\':
        *p_++ = '\\';
        break;
      case '\n':
        *p_++ = 'n';
        break;
      case '\r':
        *p_++ = 'r';
        break;
      case '\t':
        *p_++ = 't';
        break;
      case '\b':
        *p_++ = 'b';
        break;
      case '\f':
        *p_++ = 'f';
        break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        *p_++ = 'u';
        *p_++ = '0';
        *p_++ = '0';
        *p_++ = kHex[c >> 4];
        *p_++ = kHex[c & 0xF];
      }
    }
  }

  std::string& s_;
  char* p_ = nullptr;
  char* end_ = nullptr;
};

}  // namespace

struct GraphTranslator::Impl {
  simdjson::dom::parser parser;
  // mapGraphLine's buffers.
  std::string padded;  // a line that came without padding, copied
  ScanResult scan;
  std::string alert;  // one translated alert
  std::string page;   // a translated page: {"value":[alert,...]} and padding

  // Translates `text` into `buf` from `start` on; returns where it ends (kSlack bytes of
  // `buf` follow), or npos when `text` is not valid JSON or not an object.
  std::size_t translateInto(std::string_view text, std::string& buf, std::size_t start) {
    element root;
    if (parser.parse(text.data(), text.size(), false).get(root) != simdjson::SUCCESS ||
        root.type() != element_type::OBJECT) {
      return std::string::npos;
    }
    Writer writer(buf, start, text.size() + text.size() / 4);
    writer.alert(root);
    return writer.end();
  }
};

GraphTranslator::GraphTranslator() : impl_(std::make_unique<Impl>()) {}
GraphTranslator::~GraphTranslator() = default;

bool GraphTranslator::translate(std::string_view text, std::string& out) {
  // `out` keeps its size until the end: growing it initializes only the new part.
  const std::size_t end = impl_->translateInto(text, out, 0);
  if (end == std::string::npos) {
    out.clear();
    return false;
  }
  out.resize(end);  // the writer's slack stays behind it, as padding
  return true;
}

namespace {

void addStats(LineStats& total, const LineStats& one) {
  total.alerts += one.alerts;
  total.documents += one.documents;
  total.errors += one.errors;
}

}  // namespace

LineStats mapGraphLine(Mapper& mapper, GraphTranslator& translator, std::string_view line,
                       const LineContext& context, DocumentSink& sink) {
  GraphTranslator::Impl& s = *translator.impl_;
  if (!context.padded) {
    s.padded.assign(line.data(), line.size());
    s.padded.append(kLinePadding, ' ');
    line = std::string_view(s.padded.data(), line.size());
  }
  LineContext padded_context = context;
  padded_context.padded = true;
  const bool with_log = !context.file_path.empty();  // documents need log.*: only mapLine adds it

  scanLine(line, s.scan);
  switch (s.scan.kind) {
    case ScanResult::Kind::kBlank:
      return {};
    case ScanResult::Kind::kInvalid:
    case ScanResult::Kind::kBadPage:
    case ScanResult::Kind::kOther:
      // Error documents with the original text: the mapper's own.
      return mapper.mapLine(line, padded_context, sink);
    case ScanResult::Kind::kObject: {
      const std::string_view value = line.substr(s.scan.value.begin, s.scan.value.size());
      if (!translator.translate(value, s.alert)) return mapper.mapLine(line, padded_context, sink);
      // The translated alert has no top-level "value" (the line had none), so mapLine sees
      // it as one alert too; mapElement spares the scan where no log.* fields are due.
      return with_log ? mapper.mapLine(s.alert, padded_context, sink)
                      : mapper.mapElement(s.alert, sink);
    }
    case ScanResult::Kind::kPage:
      break;
  }

  // A page: each element translated on its own; one that is not a valid object is mapped
  // as it is (the mapper's error document holds it).
  LineStats total;
  if (s.scan.elements.empty()) return total;
  if (!with_log) {
    for (const Span& e : s.scan.elements) {
      // Each element is followed by the rest of the padded line.
      const std::string_view item = line.substr(e.begin, e.size());
      addStats(total, translator.translate(item, s.alert) ? mapper.mapElement(s.alert, sink)
                                                          : mapper.mapElement(item, sink));
    }
    return total;
  }
  // With a file context the translated elements go into one page that mapLine maps whole.
  std::string& page = s.page;
  page.clear();
  page.append("{\"value\":[");
  bool first = true;
  for (const Span& e : s.scan.elements) {
    if (!first) page.push_back(',');
    first = false;
    const std::string_view item = line.substr(e.begin, e.size());
    if (translator.translate(item, s.alert)) {
      page.append(s.alert);
    } else {
      page.append(item);
    }
  }
  page.append("]}");
  page.append(kLinePadding, ' ');
  return mapper.mapLine(std::string_view(page.data(), page.size() - kLinePadding), padded_context,
                        sink);
}

}  // namespace mdec::ecs
