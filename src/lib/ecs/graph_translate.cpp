// Graph alerts_v2 alert -> Defender for Endpoint alert (graph.md), then the mapper.
//
// One simdjson DOM parse of the Graph alert and one compact write of the translated alert,
// in input key order: a key the translation renames is written in the place of the key it
// replaces; the first deviceEvidence's fields are written just before "evidence". Nothing is
// allocated per key: the parser and the output buffer are reused from alert to alert.
#include "mdecollect/ecs/graph_translate.h"

#include <simdjson.h>

#include <array>
#include <cstring>
#include <optional>

#include "ecs/json_writer.h"
#include "ecs/line_scanner.h"

namespace mdec::ecs {

static_assert(kLinePadding >= simdjson::SIMDJSON_PADDING);

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// ---- Key classification (compare lengths first, then bytes; no hashing) ---------------

struct KeyName {
  std::string_view name;
  int key;
};

template <std::size_t N>
int classify(const std::array<KeyName, N>& table, std::string_view key) {
  for (const auto& k : table) {
    if (k.name.size() == key.size() && std::memcmp(k.name.data(), key.data(), key.size()) == 0) {
      return k.key;
    }
  }
  return 0;
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
};

constexpr std::array<KeyName, 14> kAlertKeys = {{
    {"status", kAEnum},
    {"severity", kASeverity},
    {"classification", kAEnum},
    {"determination", kAEnum},
    {"investigationState", kAEnum},
    {"detectionSource", kADetectionSource},
    {"threatDisplayName", kAThreatDisplayName},
    {"createdDateTime", kACreatedDateTime},
    {"lastUpdateDateTime", kALastUpdateDateTime},
    {"firstActivityDateTime", kAFirstActivityDateTime},
    {"lastActivityDateTime", kALastActivityDateTime},
    {"resolvedDateTime", kAResolvedDateTime},
    {"tenantId", kATenantId},
    {"evidence", kAEvidence},
}};

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

constexpr std::array<KeyName, 9> kEvidenceKeys = {{
    {"@odata.type", kEODataType},
    {"createdDateTime", kECreatedDateTime},
    {"detectionStatus", kEDetectionStatus},
    {"fileDetails", kEFileDetails},
    {"imageFile", kEFileDetails},
    {"processCreationDateTime", kEProcessCreationDateTime},
    {"parentProcessCreationDateTime", kEParentProcessCreationDateTime},
    {"parentProcessImageFile", kEParentProcessImageFile},
    {"userAccount", kEUserAccount},
}};

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

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  // A key known not to need escaping.
  void key(bool& first, std::string_view k) {
    if (!first) out_.push_back(',');
    first = false;
    out_.push_back('"');
    out_.append(k);
    out_.append("\":", 2);
  }

  // A key from the input (escaped again).
  void inputKey(bool& first, std::string_view k) {
    if (!first) out_.push_back(',');
    first = false;
    appendString(out_, k);
    out_.push_back(':');
  }

  void value(const element& e) {
    switch (e.type()) {
      case element_type::STRING: appendString(out_, stringOf(e)); break;
      case element_type::OBJECT: {
        out_.push_back('{');
        bool first = true;
        for (auto field : simdjson::dom::object(e)) {
          inputKey(first, field.key);
          value(field.value);
        }
        out_.push_back('}');
        break;
      }
      case element_type::ARRAY: {
        out_.push_back('[');
        bool first = true;
        for (element item : simdjson::dom::array(e)) {
          if (!first) out_.push_back(',');
          first = false;
          value(item);
        }
        out_.push_back(']');
        break;
      }
      case element_type::INT64: appendInt(out_, e.get_int64().value_unsafe()); break;
      case element_type::UINT64: appendUint(out_, e.get_uint64().value_unsafe()); break;
      case element_type::DOUBLE: appendDouble(out_, e.get_double().value_unsafe()); break;
      case element_type::BOOL:
        if (e.get_bool().value_unsafe()) {
          out_.append("true", 4);
        } else {
          out_.append("false", 5);
        }
        break;
      case element_type::NULL_VALUE: out_.append("null", 4); break;
    }
  }

  // `s` with its first letter upper-cased, as a JSON string.
  void pascal(std::string_view s) {
    out_.push_back('"');
    if (!s.empty() && s.front() >= 'a' && s.front() <= 'z') {
      out_.push_back(static_cast<char>(s.front() - 'a' + 'A'));
      s.remove_prefix(1);
    }
    appendEscaped(out_, s);
    out_.push_back('"');
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
      out_.append("\"UnSpecified\"");
    } else {
      enumValue(e);
    }
  }

  void detectionSource(const element& e) {
    if (e.type() == element_type::STRING) {
      const std::string_view s = stringOf(e);
      for (const auto& [graph, mde] : kDetectionSources) {
        if (s == graph) {
          out_.push_back('"');
          out_.append(mde);
          out_.push_back('"');
          return;
        }
      }
    }
    value(e);
  }

  // The translated alert.
  void alert(const element& root) {
    out_.push_back('{');
    bool first = true;
    for (auto field : simdjson::dom::object(root)) {
      switch (classify(kAlertKeys, field.key)) {
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
        default:
          inputKey(first, field.key);
          value(field.value);
          break;
      }
    }
    out_.push_back('}');
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
      out_.push_back('[');
      bool first_item = true;
      std::size_t index = 0;
      for (element item : items) {
        if (!found || index != device_index) {
          if (!first_item) out_.push_back(',');
          first_item = false;
          if (item.type() == element_type::OBJECT) {
            evidence(item);
          } else {
            value(item);
          }
        }
        ++index;
      }
      out_.push_back(']');
    } else if (ev.type() == element_type::OBJECT) {
      // The one-object form: a deviceEvidence leaves no evidence behind.
      if (isDeviceEvidence(ev)) {
        device(first, ev);
        key(first, "evidence");
        out_.append("[]", 2);
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
    out_.push_back('{');
    bool first_member = true;
    if (account) {
      key(first_member, "userName");
      value(*account);
    }
    if (domain) {
      key(first_member, "domainName");
      value(*domain);
    }
    out_.push_back('}');
  }

  // One evidence element (an object) other than the first deviceEvidence.
  void evidence(const element& ev) {
    out_.push_back('{');
    bool first = true;
    for (auto field : simdjson::dom::object(ev)) {
      const element& v = field.value;
      switch (classify(kEvidenceKeys, field.key)) {
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
    out_.push_back('}');
  }

  // entityType from the evidence type name: without "Evidence", first letter upper case.
  void entityType(std::string_view type) {
    if (type == "deviceEvidence") {
      out_.append("\"Machine\"");
      return;
    }
    if (type == "registryKeyEvidence" || type == "registryValueEvidence") {
      out_.append("\"Registry\"");
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
    out_.push_back('{');
    bool first_member = true;
    for (auto field : simdjson::dom::object(obj)) {
      if (!lift(field.key).empty()) continue;
      inputKey(first_member, field.key);
      value(field.value);
    }
    out_.push_back('}');
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

  std::string& out_;
};

}  // namespace

struct GraphTranslator::Impl {
  simdjson::dom::parser parser;
  // mapGraphLine's buffers.
  std::string padded;  // a line that came without padding, copied
  ScanResult scan;
  std::string alert;  // one translated alert
  std::string page;   // a translated page, for lines that carry a file context
};

GraphTranslator::GraphTranslator() : impl_(std::make_unique<Impl>()) {}
GraphTranslator::~GraphTranslator() = default;

bool GraphTranslator::translate(std::string_view text, std::string& out) {
  out.clear();
  element root;
  if (impl_->parser.parse(text.data(), text.size(), false).get(root) != simdjson::SUCCESS ||
      root.type() != element_type::OBJECT) {
    return false;
  }
  out.reserve(text.size() + text.size() / 4 + 2 * kLinePadding);
  Writer(out).alert(root);
  // Initialized spare bytes after the text, for the mapper's parser.
  out.append(kLinePadding, ' ');
  out.resize(out.size() - kLinePadding);
  return true;
}

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

  scanLine(line, s.scan);
  switch (s.scan.kind) {
    case ScanResult::Kind::kBlank: return {};
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
      if (context.file_path.empty()) return mapper.mapElement(s.alert, sink);
      return mapper.mapLine(s.alert, padded_context, sink);
    }
    case ScanResult::Kind::kPage: break;
  }

  // A page: each element translated on its own; one that is not a valid object is mapped
  // as it is (the mapper's error document holds it).
  LineStats total;
  if (s.scan.elements.empty()) return total;
  if (context.file_path.empty()) {
    for (const Span& e : s.scan.elements) {
      // Each element is followed by the rest of the padded line.
      const std::string_view item = line.substr(e.begin, e.size());
      const LineStats one = translator.translate(item, s.alert) ? mapper.mapElement(s.alert, sink)
                                                                : mapper.mapElement(item, sink);
      total.alerts += one.alerts;
      total.documents += one.documents;
      total.errors += one.errors;
    }
    return total;
  }
  // With a file context the documents need log.*, which only mapLine adds: the translated
  // elements go into one page that is mapped as a whole.
  s.page.clear();
  s.page.append("{\"value\":[");
  bool first = true;
  for (const Span& e : s.scan.elements) {
    if (!first) s.page.push_back(',');
    first = false;
    const std::string_view item = line.substr(e.begin, e.size());
    if (translator.translate(item, s.alert)) {
      s.page.append(s.alert);
    } else {
      s.page.append(item);
    }
  }
  s.page.append("]}");
  s.page.append(kLinePadding, ' ');
  const std::string_view page(s.page.data(), s.page.size() - kLinePadding);
  return mapper.mapLine(page, padded_context, sink);
}

}  // namespace mdec::ecs
