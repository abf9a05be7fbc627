#include "mdecollect/emulator/graph_json.h"

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "mdecollect/core/json_writer.h"

namespace mdec::emulator {
namespace {

using std::chrono::days;
using std::chrono::nanoseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------------------------------
// Enum members (Graph's schema, v1.0). The evolvable enums list their newer members apart:
// Graph sends those only to clients that ask with `Prefer: include-unknown-enum-members`.

constexpr std::string_view kStatusMembers[] = {"unknown", "new", "inProgress", "resolved",
                                               "unknownFutureValue"};
constexpr std::string_view kSeverityMembers[] = {"unknown", "informational", "low",
                                                 "medium",  "high",          "unknownFutureValue"};
constexpr std::string_view kClassificationMembers[] = {"unknown", "falsePositive", "truePositive",
                                                       "informationalExpectedActivity",
                                                       "unknownFutureValue"};
constexpr std::string_view kDeterminationMembers[] = {"unknown",
                                                      "apt",
                                                      "malware",
                                                      "securityPersonnel",
                                                      "securityTesting",
                                                      "unwantedSoftware",
                                                      "other",
                                                      "multiStagedAttack",
                                                      "compromisedAccount",
                                                      "phishing",
                                                      "maliciousUserActivity",
                                                      "notMalicious",
                                                      "notEnoughDataToValidate",
                                                      "confirmedUserActivity",
                                                      "lineOfBusinessApplication",
                                                      "unknownFutureValue"};
// Incidents (microsoft.graph.security.incident): their own status and determination enums.
constexpr std::string_view kIncidentStatusMembers[] = {"active", "resolved", "inProgress",
                                                       "redirected", "unknownFutureValue"};
constexpr std::string_view kIncidentStatusNewer[] = {"awaitingAction"};
constexpr std::string_view kIncidentDeterminationMembers[] = {"unknown",
                                                              "apt",
                                                              "malware",
                                                              "securityPersonnel",
                                                              "securityTesting",
                                                              "unwantedSoftware",
                                                              "other",
                                                              "multiStagedAttack",
                                                              "compromisedUser",
                                                              "phishing",
                                                              "maliciousUserActivity",
                                                              "clean",
                                                              "insufficientData",
                                                              "confirmedUserActivity",
                                                              "lineOfBusinessApplication",
                                                              "unknownFutureValue"};
constexpr std::string_view kDetectionSourceMembers[] = {
    "unknown",
    "microsoftDefenderForEndpoint",
    "antivirus",
    "smartScreen",
    "customTi",
    "microsoftDefenderForOffice365",
    "automatedInvestigation",
    "microsoftThreatExperts",
    "customDetection",
    "microsoftDefenderForIdentity",
    "cloudAppSecurity",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "manual",
    "microsoftDataLossPrevention",
    "appGovernancePolicy",
    "appGovernanceDetection",
    "unknownFutureValue",
};
constexpr std::string_view kDetectionSourceNewer[] = {
    "microsoftDefenderForCloud",
    "microsoftDefenderForIoT",
    "microsoftDefenderForServers",
    "microsoftDefenderForStorage",
    "microsoftDefenderForDNS",
    "microsoftDefenderForDatabases",
    "microsoftDefenderForContainers",
    "microsoftDefenderForNetwork",
    "microsoftDefenderForAppService",
    "microsoftDefenderForKeyVault",
    "microsoftDefenderForResourceManager",
    "microsoftDefenderForApiManagement",
    "microsoftSentinel",
    "nrtAlerts",
    "scheduledAlerts",
    "microsoftDefenderThreatIntelligenceAnalytics",
    "builtInMl",
    "microsoftThreatIntelligence",
    "microsoftDefenderForAIServices",
    "securityCopilot",
};
constexpr std::string_view kServiceSourceMembers[] = {
    "unknown",
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForIdentity",
    "microsoftDefenderForCloudApps",
    "microsoftDefenderForOffice365",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "microsoftAppGovernance",
    "dataLossPrevention",
    "unknownFutureValue",
};
constexpr std::string_view kServiceSourceNewer[] = {
    "microsoftDefenderForCloud",
    "microsoftSentinel",
    "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence",
};

// graph.md's detectionSource table, Defender -> Graph.
constexpr std::pair<std::string_view, std::string_view> kDetectionSources[] = {
    {"WindowsDefenderAtp", "microsoftDefenderForEndpoint"},
    {"WindowsDefenderAv", "antivirus"},
    {"WindowsDefenderSmartScreen", "smartScreen"},
    {"CustomerTI", "customTi"},
    {"CustomDetection", "customDetection"},
    {"AutomatedInvestigation", "automatedInvestigation"},
    {"MTP", "microsoft365Defender"},
    {"OfficeATP", "microsoftDefenderForOffice365"},
    {"ThreatExperts", "microsoftThreatExperts"},
    {"Manual", "manual"},
};

template <std::size_t N>
bool contains(const std::string_view (&list)[N], std::string_view value) {
  for (std::string_view member : list) {
    if (member == value) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Deterministic derivation: FNV-1a over the struct's own text, mixed by splitmix64.

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ULL) {
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr char kHex[] = "0123456789abcdef";

void appendHex(std::uint64_t v, int digits, std::string& out) {
  for (int i = digits - 1; i >= 0; --i) out.push_back(kHex[(v >> (4 * i)) & 0xf]);
}

// A version-4 GUID from a hash.
void appendGuid(std::uint64_t h, std::string& out) {
  const std::uint64_t a = mix(h);
  const std::uint64_t b = mix(h ^ 0x5851f42d4c957f2dULL);
  appendHex(a >> 32, 8, out);
  out.push_back('-');
  appendHex((a >> 16) & 0xffff, 4, out);
  out.push_back('-');
  out.push_back('4');
  appendHex(a & 0xfff, 3, out);
  out.push_back('-');
  out.push_back(kHex[8 + ((b >> 60) & 0x3)]);
  appendHex((b >> 48) & 0xfff, 3, out);
  out.push_back('-');
  appendHex(b & 0xffffffffffffULL, 12, out);
}

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    char b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// A compact JSON object writer (keys are plain ASCII and need no escaping).

class Obj {
 public:
  explicit Obj(std::string& out) : out_(out) { out_.push_back('{'); }
  Obj(const Obj&) = delete;
  Obj& operator=(const Obj&) = delete;

  std::string& key(std::string_view k) {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_.push_back('"');
    out_.append(k);
    out_.append("\":");
    return out_;
  }
  void null(std::string_view k) { key(k).append("null"); }
  void str(std::string_view k, std::string_view v) { core::appendString(key(k), v); }
  void str(std::string_view k, const char* v) { str(k, std::string_view(v)); }
  void str(std::string_view k, const std::optional<std::string>& v) {
    if (v) {
      str(k, std::string_view(*v));
    } else {
      null(k);
    }
  }
  void enumeration(std::string_view k, const std::optional<std::string>& pascal) {
    if (!pascal) {
      null(k);
      return;
    }
    core::appendString(key(k), lowerCamel(*pascal));
  }
  void time(std::string_view k, Timestamp t) {
    std::string& out = key(k);
    out.push_back('"');
    appendApiTime(t, out);
    out.push_back('"');
  }
  void time(std::string_view k, const std::optional<Timestamp>& t) {
    if (t) {
      time(k, *t);
    } else {
      null(k);
    }
  }
  void integer(std::string_view k, std::int64_t v) { core::appendInt(key(k), v); }
  void integer(std::string_view k, const std::optional<std::int64_t>& v) {
    if (v) {
      integer(k, *v);
    } else {
      null(k);
    }
  }
  void raw(std::string_view k, std::string_view json) { key(k).append(json); }
  void close() { out_.push_back('}'); }

 private:
  std::string& out_;
  bool first_ = true;
};

void appendStringArray(std::initializer_list<std::string_view> items, std::string& out) {
  out.push_back('[');
  bool first = true;
  for (std::string_view item : items) {
    if (!first) out.push_back(',');
    first = false;
    core::appendString(out, item);
  }
  out.push_back(']');
}

// ---------------------------------------------------------------------------------------
// Graph-only values, derived from the struct

// recommendedActions: the portal's advice for the alert's category.
std::string_view recommendedActions(const std::optional<std::string>& category) {
  static constexpr std::pair<std::string_view, std::string_view> kByCategory[] = {
      {"Malware",
       "A. Validate the alert.\n1. Check the file's prevalence and reputation.\n2. Review the "
       "device timeline for activity before and after the detection.\nB. Scope the incident.\n"
       "1. Find other devices with the same file.\nC. Contain and mitigate.\n1. Run a full "
       "antivirus scan and isolate the device if the malware was active."},
      {"Ransomware",
       "Isolate the device at once. Identify the process that encrypted files, block its hash "
       "across the organization, and restore affected files from backup. Reset the "
       "credentials of accounts that signed in to the device."},
      {"CredentialAccess",
       "Reset the passwords of the accounts that signed in to the device and revoke their "
       "sessions. Review sign-ins of those accounts on other devices and look for lateral "
       "movement."},
      {"CommandAndControl",
       "Block the remote address at the perimeter. Identify the process that made the "
       "connection and check other devices for connections to the same address."},
      {"Persistence",
       "Remove the persistence mechanism (run key, service or scheduled task) and the file it "
       "points to. Check whether the same mechanism exists on other devices."},
  };
  if (category) {
    for (const auto& [name, text] : kByCategory) {
      if (name == *category) return text;
    }
  }
  return "Collect artifacts and determine scope.\n\u2022 Review the device timeline for "
         "suspicious activities that occurred before and after the alert.\n\u2022 Look for "
         "the same artifacts on other devices.\nInitiate containment and mitigation.\n\u2022 "
         "Contact the user to verify intent, update antivirus signatures and run a full scan.";
}

struct Publisher {
  std::string_view publisher;
  std::string_view signer;
  std::string_view issuer;
};

// Who signs a binary in this folder (null fields: unsigned or unknown).
Publisher publisherFor(const std::optional<std::string>& path) {
  if (!path) return {};
  if (startsWithNoCase(*path, "C:\\Windows")) {
    return {"Microsoft Corporation", "Microsoft Windows", "Microsoft Windows Production PCA 2011"};
  }
  if (startsWithNoCase(*path, "C:\\Program Files\\Microsoft Office")) {
    return {"Microsoft Corporation", "Microsoft Corporation", "Microsoft Code Signing PCA 2011"};
  }
  if (startsWithNoCase(*path, "C:\\Tools\\Sysinternals")) {
    return {"Sysinternals - www.sysinternals.com", "Microsoft Corporation",
            "Microsoft Code Signing PCA 2010"};
  }
  if (startsWithNoCase(*path, "C:\\Program Files\\7-Zip")) return {"Igor Pavlov", {}, {}};
  return {};
}

// A string member, null when `v` is empty.
void optionalView(Obj& o, std::string_view k, std::string_view v) {
  if (v.empty()) {
    o.null(k);
  } else {
    o.str(k, v);
  }
}

// fileDetails / imageFile / parentProcessImageFile.
void appendFileDetails(const std::optional<std::string>& name,
                       const std::optional<std::string>& path,
                       const std::optional<std::string>& sha1,
                       const std::optional<std::string>& sha256, std::string& out) {
  Obj o(out);
  o.str("sha1", sha1);
  o.str("sha256", sha256);
  o.str("fileName", name);
  o.str("filePath", path);
  const std::optional<std::string>& hash = sha1 ? sha1 : sha256;
  if (hash) {
    // md5 and size are not in the Defender evidence: derived from its hash.
    const std::uint64_t h = fnv1a(*hash);
    std::string& md5 = o.key("md5");
    md5.push_back('"');
    appendHex(mix(h), 16, md5);
    appendHex(mix(h ^ 0xd6e8feb86659fd93ULL), 16, md5);
    md5.push_back('"');
    o.integer("fileSize", static_cast<std::int64_t>(4096 + mix(h + 1) % (12u << 20)));
  } else {
    o.null("md5");
    o.null("fileSize");
  }
  const Publisher p = publisherFor(path);
  optionalView(o, "filePublisher", p.publisher);
  optionalView(o, "signer", p.signer);
  optionalView(o, "issuer", p.issuer);
  o.close();
}

bool hasAccount(const Evidence& e) {
  return e.account_name || e.domain_name || e.user_sid || e.aad_user_id || e.user_principal_name;
}

// userAccount {accountName, domainName, userSid, azureAdUserId, userPrincipalName,
// displayName}; displayName (not in the Defender evidence) is the account name of a
// directory account and null for a local one.
void appendUserAccount(const Evidence& e, std::string& out) {
  Obj o(out);
  o.str("accountName", e.account_name);
  o.str("domainName", e.domain_name);
  o.str("userSid", e.user_sid);
  o.str("azureAdUserId", e.aad_user_id);
  o.str("userPrincipalName", e.user_principal_name);
  if (e.aad_user_id && e.account_name) {
    o.str("displayName", std::string_view(*e.account_name));
  } else {
    o.null("displayName");
  }
  o.close();
}

// countryLetterCode of an address: null for private and documentation ranges.
std::optional<std::string_view> countryOf(const std::string& ip) {
  static constexpr std::string_view kNoCountry[] = {
      "10.", "192.168.", "203.0.113.", "198.51.100.", "2001:db8", "fe80:", "127.", "169.254."};
  for (std::string_view prefix : kNoCountry) {
    if (ip.starts_with(prefix)) return std::nullopt;
  }
  if (ip.starts_with("172.")) {
    const std::size_t dot = ip.find('.', 4);
    int second = 0;
    std::from_chars(ip.data() + 4, ip.data() + (dot == std::string::npos ? ip.size() : dot),
                    second);
    if (second >= 16 && second <= 31) return std::nullopt;
  }
  static constexpr std::string_view kCountries[] = {"US", "NL", "DE", "RU", "CN", "BR",
                                                    "GB", "FR", "SG", "KR", "UA", "IN"};
  return kCountries[mix(fnv1a(ip)) % std::size(kCountries)];
}

// registryValueName (not in the Defender evidence): what such a key typically holds.
std::string registryValueName(const Evidence& e) {
  const std::string key = e.registry_key.value_or("");
  if (key.find("Real-Time Protection") != std::string::npos) return "DisableRealtimeMonitoring";
  if (key.find("Image File Execution Options") != std::string::npos) return "Debugger";
  if (key.find("\\Services\\") != std::string::npos) return "ImagePath";
  if (key.ends_with("\\command")) return "(Default)";
  // Run keys: named after the program they start.
  std::string_view value = e.registry_value ? std::string_view(*e.registry_value) : "";
  const std::size_t slash = value.rfind('\\');
  if (slash != std::string_view::npos) value.remove_prefix(slash + 1);
  const std::size_t end = value.find_first_of(". \"");
  value = value.substr(0, end);
  if (value.empty()) return "Updater";
  return std::string(value);
}

std::string_view remediationStatus(const std::optional<std::string>& detection_status) {
  if (!detection_status) return "none";
  if (*detection_status == "Blocked") return "blocked";
  if (*detection_status == "Prevented") return "prevented";
  if (*detection_status == "Remediated") return "remediated";
  return "none";
}

// The common members every evidence element starts with.
void commonEvidence(Obj& o, std::string_view type, const std::optional<Timestamp>& created,
                    std::string_view verdict, std::string_view remediation,
                    std::initializer_list<std::string_view> roles,
                    std::initializer_list<std::string_view> detailed_roles) {
  std::string& t = o.key("@odata.type");
  t.append("\"#microsoft.graph.security.");
  t.append(type);
  t.push_back('"');
  o.time("createdDateTime", created);
  o.str("verdict", verdict);
  o.str("remediationStatus", remediation);
  o.null("remediationStatusDetails");
  appendStringArray(roles, o.key("roles"));
  appendStringArray(detailed_roles, o.key("detailedRoles"));
  o.raw("tags", "[]");
}

std::string_view riskScore(Severity severity) {
  switch (severity) {
    case Severity::kUnSpecified:
      return "none";
    case Severity::kInformational:
      return "informational";
    case Severity::kLow:
      return "low";
    case Severity::kMedium:
      return "medium";
    case Severity::kHigh:
      return "high";
  }
  std::abort();
}

// The device the alert is about: the first evidence element. mdeDeviceId, deviceDnsName,
// rbacGroupName and loggedOnUsers carry the Defender alert's machineId, computerDnsName,
// rbacGroupName and relatedUser; the rest is derived from the device id.
void appendDeviceEvidence(const Alert& a, std::string& out) {
  const std::string& machine = *a.machine_id;
  const std::uint64_t h = mix(fnv1a(machine));
  const std::string_view dns =
      a.computer_dns_name ? std::string_view(*a.computer_dns_name) : std::string_view();
  const bool server = startsWithNoCase(dns, "srv-");
  const bool high = a.severity == Severity::kHigh;

  Obj o(out);
  if (high) {
    commonEvidence(o, "deviceEvidence", a.alert_creation_time, "malicious", "none", {"compromised"},
                   {"Main device"});
  } else {
    commonEvidence(o, "deviceEvidence", a.alert_creation_time, "suspicious", "none", {},
                   {"Main device"});
  }
  // First seen: a fixed instant per device, before the alert.
  Timestamp first_seen = Timestamp(std::chrono::sys_days(std::chrono::year(2021) / 1 / 1)) +
                         days(static_cast<std::int64_t>(h % (3 * 365))) +
                         seconds(static_cast<std::int64_t>((h >> 20) % 86400)) +
                         nanoseconds(static_cast<std::int64_t>((h >> 40) % 10'000'000) * 100);
  if (first_seen >= a.alert_creation_time) first_seen = a.alert_creation_time - days(1);
  o.time("firstSeenDateTime", first_seen);
  o.str("mdeDeviceId", std::string_view(machine));
  if (server) {
    o.null("azureAdDeviceId");
  } else {
    std::string& v = o.key("azureAdDeviceId");
    v.push_back('"');
    appendGuid(h ^ 0x1dULL, v);
    v.push_back('"');
  }
  o.str("deviceDnsName", a.computer_dns_name);
  const std::size_t dot = dns.find('.');
  if (dns.empty()) {
    o.null("hostName");
  } else {
    o.str("hostName", dns.substr(0, dot));
  }
  if (dot == std::string_view::npos) {
    o.null("dnsDomain");
  } else {
    o.str("dnsDomain", dns.substr(dot + 1));
  }
  if (server) {
    o.str("osPlatform", "WindowsServer2022");
    o.integer("osBuild", 20348);
    o.str("version", "21H2");
  } else if ((h >> 7) & 1) {
    o.str("osPlatform", "Windows11");
    o.integer("osBuild", 22631);
    o.str("version", "23H2");
  } else {
    o.str("osPlatform", "Windows10");
    o.integer("osBuild", 19045);
    o.str("version", "22H2");
  }
  o.str("healthStatus", "active");
  o.str("riskScore", riskScore(a.severity));
  if (a.rbac_group_name) {
    o.integer("rbacGroupId", static_cast<std::int64_t>(1 + mix(fnv1a(*a.rbac_group_name)) % 900));
  } else {
    o.null("rbacGroupId");
  }
  o.str("rbacGroupName", a.rbac_group_name);
  o.str("onboardingStatus", "onboarded");
  o.str("defenderAvStatus", "updated");
  std::string& ips = o.key("ipInterfaces");
  ips.append("[\"10.");
  core::appendUint(ips, (h >> 8) & 0xff);
  ips.push_back('.');
  core::appendUint(ips, (h >> 16) & 0xff);
  ips.push_back('.');
  core::appendUint(ips, 1 + (h >> 24) % 254);
  ips.append("\",\"fe80::");
  appendHex((h >> 32) & 0xffff, 4, ips);
  ips.push_back(':');
  appendHex((h >> 48) & 0xffff, 4, ips);
  ips.append("\"]");
  std::string& users = o.key("loggedOnUsers");
  if (a.related_user) {
    users.push_back('[');
    Obj u(users);
    u.str("accountName", std::string_view(a.related_user->user_name));
    u.str("domainName", std::string_view(a.related_user->domain_name));
    u.close();
    users.push_back(']');
  } else {
    users.append("[]");
  }
  if (server) {
    const std::uint64_t subscription = h ^ 0x5eedULL;
    std::string& vm = o.key("vmMetadata");
    Obj m(vm);
    std::string& vm_id = m.key("vmId");
    vm_id.push_back('"');
    appendGuid(h ^ 0x7fULL, vm_id);
    vm_id.push_back('"');
    m.str("cloudProvider", "azure");
    std::string& resource = m.key("resourceId");
    resource.append("\"/subscriptions/");
    appendGuid(subscription, resource);
    resource.append("/resourceGroups/rg-servers/providers/Microsoft.Compute/virtualMachines/");
    core::appendEscaped(resource, dns.substr(0, dot));
    resource.push_back('"');
    std::string& sub = m.key("subscriptionId");
    sub.push_back('"');
    appendGuid(subscription, sub);
    sub.push_back('"');
    m.close();
  } else {
    o.null("vmMetadata");
  }
  o.close();
}

void appendFileEvidence(const Evidence& e, const Alert& a, std::string& out) {
  Obj o(out);
  commonEvidence(o, "fileEvidence", e.evidence_creation_time,
                 e.detection_status ? "malicious" : "suspicious",
                 remediationStatus(e.detection_status), {}, {});
  o.enumeration("detectionStatus", e.detection_status);
  o.str("mdeDeviceId", a.machine_id);
  appendFileDetails(e.file_name, e.file_path, e.sha1, e.sha256, o.key("fileDetails"));
  o.close();
}

void appendProcessEvidence(const Evidence& e, const Alert& a, std::string& out) {
  Obj o(out);
  commonEvidence(o, "processEvidence", e.evidence_creation_time,
                 e.detection_status ? "malicious" : "suspicious",
                 remediationStatus(e.detection_status), {}, {});
  o.integer("processId", e.process_id);
  o.integer("parentProcessId", e.parent_process_id);
  o.str("processCommandLine", e.process_command_line);
  o.time("processCreationDateTime", e.process_creation_time);
  o.time("parentProcessCreationDateTime", e.parent_process_creation_time);
  o.enumeration("detectionStatus", e.detection_status);
  o.str("mdeDeviceId", a.machine_id);
  appendFileDetails(e.file_name, e.file_path, e.sha1, e.sha256, o.key("imageFile"));
  appendFileDetails(e.parent_process_file_name, e.parent_process_file_path, std::nullopt,
                    std::nullopt, o.key("parentProcessImageFile"));
  if (hasAccount(e)) {
    appendUserAccount(e, o.key("userAccount"));
  } else {
    o.null("userAccount");
  }
  o.close();
}

void appendUserEvidence(const Evidence& e, const Alert& a, std::string& out) {
  Obj o(out);
  if (a.severity == Severity::kHigh) {
    commonEvidence(o, "userEvidence", e.evidence_creation_time, "suspicious", "none",
                   {"compromised"}, {});
  } else {
    commonEvidence(o, "userEvidence", e.evidence_creation_time, "unknown", "none", {}, {});
  }
  appendUserAccount(e, o.key("userAccount"));
  o.close();
}

void appendIpEvidence(const Evidence& e, std::string& out) {
  Obj o(out);
  commonEvidence(o, "ipEvidence", e.evidence_creation_time, "suspicious", "none", {"destination"},
                 {});
  o.str("ipAddress", e.ip_address);
  std::optional<std::string_view> country;
  if (e.ip_address) country = countryOf(*e.ip_address);
  if (country) {
    o.str("countryLetterCode", *country);
  } else {
    o.null("countryLetterCode");
  }
  o.close();
}

void appendUrlEvidence(const Evidence& e, std::string& out) {
  Obj o(out);
  commonEvidence(o, "urlEvidence", e.evidence_creation_time, "suspicious", "none", {"destination"},
                 {});
  o.str("url", e.url);
  o.close();
}

void appendRegistryEvidence(const Evidence& e, const Alert& a, bool value, std::string& out) {
  Obj o(out);
  commonEvidence(o, value ? "registryValueEvidence" : "registryKeyEvidence",
                 e.evidence_creation_time, "suspicious", "none", {"edited"}, {});
  o.str("registryKey", e.registry_key);
  o.str("registryHive", e.registry_hive);
  if (value) {
    o.str("registryValue", e.registry_value);
    o.str("registryValueName", std::string_view(registryValueName(e)));
    o.str("registryValueType", e.registry_value_type);
    o.str("mdeDeviceId", a.machine_id);
  }
  o.close();
}

// An entity type the emulator does not generate: its type name, the common members and,
// under their Defender names, the flat keys the Defender evidence has.
void appendOtherEvidence(const Evidence& e, std::string& out) {
  std::string type;
  appendLowerCamel(e.entity_type, type);
  type += "Evidence";
  Obj o(out);
  commonEvidence(o, type, e.evidence_creation_time, "unknown", "none", {}, {});
  const std::pair<std::string_view, const std::optional<std::string>*> strings[] = {
      {"sha1", &e.sha1},
      {"sha256", &e.sha256},
      {"fileName", &e.file_name},
      {"filePath", &e.file_path},
      {"processCommandLine", &e.process_command_line},
      {"parentProcessFileName", &e.parent_process_file_name},
      {"parentProcessFilePath", &e.parent_process_file_path},
      {"ipAddress", &e.ip_address},
      {"url", &e.url},
      {"registryKey", &e.registry_key},
      {"registryHive", &e.registry_hive},
      {"registryValueType", &e.registry_value_type},
      {"registryValue", &e.registry_value},
      {"accountName", &e.account_name},
      {"domainName", &e.domain_name},
      {"userSid", &e.user_sid},
      {"aadUserId", &e.aad_user_id},
      {"userPrincipalName", &e.user_principal_name},
  };
  for (const auto& [name, value] : strings) {
    if (*value) o.str(name, std::string_view(**value));
  }
  if (e.process_id) o.integer("processId", *e.process_id);
  if (e.process_creation_time) o.time("processCreationDateTime", *e.process_creation_time);
  if (e.parent_process_id) o.integer("parentProcessId", *e.parent_process_id);
  if (e.parent_process_creation_time) {
    o.time("parentProcessCreationDateTime", *e.parent_process_creation_time);
  }
  if (e.detection_status) o.enumeration("detectionStatus", e.detection_status);
  o.close();
}

void appendEvidence(const Evidence& e, const Alert& a, std::string& out) {
  const std::string& t = e.entity_type;
  if (t == "File") {
    appendFileEvidence(e, a, out);
  } else if (t == "Process") {
    appendProcessEvidence(e, a, out);
  } else if (t == "User") {
    appendUserEvidence(e, a, out);
  } else if (t == "Ip") {
    appendIpEvidence(e, out);
  } else if (t == "Url") {
    appendUrlEvidence(e, out);
  } else if (t == "Registry" || t == "RegistryKey" || t == "RegistryValue") {
    // A value when it has one (registryValueEvidence), else the key (registryKeyEvidence).
    const bool value = t == "RegistryValue" || e.registry_value || e.registry_value_type;
    appendRegistryEvidence(e, a, value, out);
  } else {
    appendOtherEvidence(e, out);
  }
}

std::string_view systemTag(const std::optional<std::string>& detection_source) {
  if (!detection_source) return {};
  if (*detection_source == "CustomDetection") return "Custom detection";
  if (*detection_source == "ThreatExperts") return "Defender Experts";
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Names

std::string_view graphStatusName(Status status) {
  switch (status) {
    case Status::kUnknown:
      return "unknown";
    case Status::kNew:
      return "new";
    case Status::kInProgress:
      return "inProgress";
    case Status::kResolved:
      return "resolved";
  }
  std::abort();
}

std::string_view graphSeverityName(Severity severity) {
  switch (severity) {
    case Severity::kUnSpecified:
      return "unknown";
    case Severity::kInformational:
      return "informational";
    case Severity::kLow:
      return "low";
    case Severity::kMedium:
      return "medium";
    case Severity::kHigh:
      return "high";
  }
  std::abort();
}

std::string_view graphClassificationName(Classification c) {
  switch (c) {
    case Classification::kUnknown:
      return "unknown";
    case Classification::kTruePositive:
      return "truePositive";
    case Classification::kInformationalExpectedActivity:
      return "informationalExpectedActivity";
    case Classification::kFalsePositive:
      return "falsePositive";
  }
  std::abort();
}

void appendLowerCamel(std::string_view text, std::string& out) {
  if (!text.empty() && text.front() >= 'A' && text.front() <= 'Z') {
    out.push_back(static_cast<char>(text.front() - 'A' + 'a'));
    text.remove_prefix(1);
  }
  out.append(text);
}

std::string lowerCamel(std::string_view text) {
  std::string s;
  s.reserve(text.size());
  appendLowerCamel(text, s);
  return s;
}

std::string graphDetectionSource(std::string_view defender) {
  for (const auto& [mde, graph] : kDetectionSources) {
    if (mde == defender) return std::string(graph);
  }
  return std::string(defender);
}

bool isGraphEnumMember(GraphEnum which, std::string_view value) {
  switch (which) {
    case GraphEnum::kStatus:
      return contains(kStatusMembers, value);
    case GraphEnum::kSeverity:
      return contains(kSeverityMembers, value);
    case GraphEnum::kClassification:
      return contains(kClassificationMembers, value);
    case GraphEnum::kDetermination:
      return contains(kDeterminationMembers, value);
    case GraphEnum::kDetectionSource:
      return contains(kDetectionSourceMembers, value) || contains(kDetectionSourceNewer, value);
    case GraphEnum::kServiceSource:
      return contains(kServiceSourceMembers, value) || contains(kServiceSourceNewer, value);
    case GraphEnum::kIncidentStatus:
      return contains(kIncidentStatusMembers, value) || contains(kIncidentStatusNewer, value);
    case GraphEnum::kIncidentDetermination:
      return contains(kIncidentDeterminationMembers, value);
  }
  std::abort();
}

bool isNewerGraphMember(GraphEnum which, std::string_view value) {
  switch (which) {
    case GraphEnum::kDetectionSource:
      return contains(kDetectionSourceNewer, value);
    case GraphEnum::kServiceSource:
      return contains(kServiceSourceNewer, value);
    case GraphEnum::kIncidentStatus:
      return contains(kIncidentStatusNewer, value);
    default:
      return false;
  }
}

std::string_view graphEnumValue(GraphEnum which, std::string_view value,
                                bool include_unknown_enum_members) {
  if (!include_unknown_enum_members && isNewerGraphMember(which, value)) {
    return kUnknownFutureValue;
  }
  return value;
}

bool hasNewerGraphMembers(const Alert& alert) {
  return alert.detection_source &&
         isNewerGraphMember(GraphEnum::kDetectionSource,
                            graphDetectionSource(*alert.detection_source));
}

// ---------------------------------------------------------------------------------------
// Writers

void appendGraphAlertJson(const Alert& a, bool include_unknown_enum_members, std::string& out) {
  Obj o(out);
  o.raw("@odata.type", "\"#microsoft.graph.security.alert\"");
  o.str("id", std::string_view(a.id));
  o.str("providerAlertId", std::string_view(a.id));
  std::string& incident = o.key("incidentId");
  incident.push_back('"');
  core::appendInt(incident, a.incident_id);
  incident.push_back('"');
  o.str("status", graphStatusName(a.status));
  o.str("severity", graphSeverityName(a.severity));
  if (a.classification) {
    o.str("classification", graphClassificationName(*a.classification));
  } else {
    o.null("classification");
  }
  o.enumeration("determination", a.determination);
  o.str("serviceSource", graphEnumValue(GraphEnum::kServiceSource, kGraphServiceSource,
                                        include_unknown_enum_members));
  if (a.detection_source) {
    const std::string graph = graphDetectionSource(*a.detection_source);
    o.str("detectionSource",
          graphEnumValue(GraphEnum::kDetectionSource, graph, include_unknown_enum_members));
  } else {
    o.null("detectionSource");
  }
  o.str("productName", "Microsoft Defender for Endpoint");
  o.str("detectorId", a.detector_id);
  o.str("tenantId", a.aad_tenant_id);
  o.str("title", a.title);
  o.str("description", a.description);
  o.str("recommendedActions", recommendedActions(a.category));
  o.str("category", a.category);
  o.str("assignedTo", a.assigned_to);
  {
    std::string url = "https://security.microsoft.com/alerts/";
    url += a.id;
    if (a.aad_tenant_id) url += "?tid=" + *a.aad_tenant_id;
    o.str("alertWebUrl", std::string_view(url));
    url = "https://security.microsoft.com/incidents/";
    core::appendInt(url, a.incident_id);
    if (a.aad_tenant_id) url += "?tid=" + *a.aad_tenant_id;
    o.str("incidentWebUrl", std::string_view(url));
  }
  o.null("actorDisplayName");
  o.str("threatDisplayName", a.threat_name);
  o.str("threatFamilyName", a.threat_family_name);
  std::string& mitre = o.key("mitreTechniques");
  mitre.push_back('[');
  for (std::size_t i = 0; i < a.mitre_techniques.size(); ++i) {
    if (i != 0) mitre.push_back(',');
    core::appendString(mitre, a.mitre_techniques[i]);
  }
  mitre.push_back(']');
  o.time("createdDateTime", a.alert_creation_time);
  o.time("lastUpdateDateTime", a.last_update_time);
  o.time("resolvedDateTime", a.resolved_time);
  o.time("firstActivityDateTime", a.first_event_time);
  o.time("lastActivityDateTime", a.last_event_time);
  o.enumeration("investigationState", a.investigation_state);
  o.null("alertPolicyId");
  o.raw("additionalData", "{}");
  o.null("customDetails");
  std::string& comments = o.key("comments");
  comments.push_back('[');
  for (std::size_t i = 0; i < a.comments.size(); ++i) {
    if (i != 0) comments.push_back(',');
    Obj c(comments);
    c.str("comment", std::string_view(a.comments[i].comment));
    c.str("createdByDisplayName", std::string_view(a.comments[i].created_by));
    c.time("createdDateTime", a.comments[i].created_time);
    c.close();
  }
  comments.push_back(']');
  std::string& evidence = o.key("evidence");
  evidence.push_back('[');
  bool first = true;
  if (a.machine_id) {
    appendDeviceEvidence(a, evidence);
    first = false;
  }
  for (const Evidence& e : a.evidence) {
    if (!first) evidence.push_back(',');
    first = false;
    appendEvidence(e, a, evidence);
  }
  evidence.push_back(']');
  const std::string_view tag = systemTag(a.detection_source);
  if (tag.empty()) {
    o.raw("systemTags", "[]");
  } else {
    appendStringArray({tag}, o.key("systemTags"));
  }
  o.close();
}

void appendGraphPageJson(std::span<const Alert> alerts, std::string_view odata_context,
                         bool include_unknown_enum_members, std::string& out,
                         std::string_view next_link, std::int64_t count) {
  out += "{\"@odata.context\":";
  core::appendString(out, odata_context);
  if (count >= 0) {
    out += ",\"@odata.count\":";
    core::appendInt(out, count);
  }
  if (!next_link.empty()) {
    out += ",\"@odata.nextLink\":";
    core::appendString(out, next_link);
  }
  out += ",\"value\":[";
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    if (i != 0) out.push_back(',');
    appendGraphAlertJson(alerts[i], include_unknown_enum_members, out);
  }
  out += "]}";
}

}  // namespace mdec::emulator
