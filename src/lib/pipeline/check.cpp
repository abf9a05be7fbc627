#include "mdecollect/pipeline/check.h"

#include <glob.h>
#include <simdjson.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include "mdecollect/auth/token_provider.h"
#include "mdecollect/core/ascii.h"
#include "mdecollect/core/json_writer.h"
#include "mdecollect/output/elasticsearch_output.h"
#include "mdecollect/output/es_setup.h"
#include "mdecollect/output/es_template.h"
#include "mdecollect/source/api_client.h"
#include "mdecollect/source/mde_retirement.h"

namespace mdec::pipeline {
namespace {

namespace fs = std::filesystem;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

bool containsNoCase(std::string_view haystack, std::string_view needle) {
  return core::asciiLower(haystack).find(core::asciiLower(needle)) != std::string::npos;
}

// The number after "AADSTS" in an identity platform message ("AADSTS7000215: ...").
std::optional<long> aadstsCode(std::string_view message) {
  const auto at = message.find("AADSTS");
  if (at == std::string_view::npos) return std::nullopt;
  const char* begin = message.data() + at + 6;
  const char* end = message.data() + message.size();
  long code = 0;
  const auto r = std::from_chars(begin, end, code);
  if (r.ec != std::errc{} || r.ptr == begin) return std::nullopt;
  return code;
}

// The keys a transport failure points at, by topic.
struct Keys {
  const char* url;
  const char* proxy;
  const char* ssl;
};

Keys keysFor(HintTopic topic) {
  switch (topic) {
    case HintTopic::kToken:
      return {"login_url (and tenant_id)", "proxy_url", "ssl.certificate_authorities"};
    case HintTopic::kMdeApi:
    case HintTopic::kGraphApi:
    case HintTopic::kIncidentsApi:
      return {"api_url", "proxy_url", "ssl.certificate_authorities"};
    case HintTopic::kElasticsearch:
      return {"outputs.elasticsearch.hosts", "outputs.elasticsearch.proxy_url",
              "outputs.elasticsearch.ssl.certificate_authorities"};
  }
  return {"the URL", "proxy_url", "ssl.certificate_authorities"};
}

// The message without its URLs (a host named "ssl.example.com" says nothing about TLS).
std::string withoutUrls(std::string_view message) {
  std::string out;
  for (std::size_t i = 0; i < message.size();) {
    const auto next = message.find("://", i);
    if (next == std::string_view::npos) {
      out.append(message.substr(i));
      break;
    }
    auto start = next;
    while (start > i && std::isalpha(static_cast<unsigned char>(message[start - 1]))) --start;
    out.append(message.substr(i, start - i));
    const auto end = message.find_first_of(" \t", next);
    out += "<url>";
    if (end == std::string_view::npos) break;
    i = end;
  }
  return out;
}

bool containsAny(std::string_view haystack, std::initializer_list<std::string_view> needles) {
  return std::any_of(needles.begin(), needles.end(),
                     [&](std::string_view n) { return containsNoCase(haystack, n); });
}

// Transport failures, told apart by curl's own phrases (not by single words: host names
// like "ssl-gw.example.com" appear in the message too).
std::string transportHint(HintTopic topic, const Error& error) {
  const Keys k = keysFor(topic);
  const std::string m = withoutUrls(error.message());
  const std::string url = k.url;
  const std::string proxy = k.proxy;
  const std::string ssl = k.ssl;
  if (containsAny(m, {"resolve proxy"})) {
    return "the proxy's host name does not resolve: check " + proxy + " and the machine's DNS";
  }
  if (containsAny(m, {"resolve host"})) {
    return "the host name does not resolve: check " + url +
           " (spelling, region) and the machine's DNS; where only a proxy reaches the "
           "internet, set " +
           proxy;
  }
  if (containsAny(m, {"from proxy", "proxy connect", "proxy handshake"})) {
    return "the proxy refused the connection: check " + proxy +
           " and that the proxy allows CONNECT to this host";
  }
  if (containsAny(m, {"timeout was reached", "timed out"})) {
    return "no answer in time: a firewall dropping the packets, a wrong host or port in " + url +
           ", or a proxy that is needed (" + proxy + ")";
  }
  if (containsAny(m, {"couldn't connect to server", "connection refused", "failed to connect"})) {
    return "nothing accepts connections there: check the host and port in " + url +
           ", that the service runs, and the firewall; where only a proxy gets out, set " + proxy;
  }
  if (containsAny(m, {"ssl ca cert", "cafile", "certificate file", "verify locations"})) {
    return "the CA file cannot be read: " + ssl + " must name a PEM file mdecollect can read";
  }
  if (containsAny(m,
                  {"certificate", "ssl connect error", "ssl routines", "tls alert", "handshake"})) {
    return "the server's TLS certificate is not trusted or names another host: add the CA "
           "that signed it to " +
           ssl + " (a TLS-inspecting proxy's CA too), and check the host name in " + url;
  }
  if (error.code() == ErrorCode::kInvalidArgument) {
    return "the URL cannot be used: check " + url + " (scheme https://, host, port)";
  }
  return "the connection failed: check " + url + ", " + proxy + " and the firewall";
}

std::string tokenHint(const Error& error) {
  if (auto code = aadstsCode(error.message())) {
    switch (*code) {
      case 7000215:
        return "wrong client secret: paste the secret's Value, not its Secret ID (Entra ID > "
               "App registrations > the app > Certificates & secrets; the Value is shown only "
               "right after the secret is created, else make a new secret)";
      case 7000222:
        return "the client secret has expired: make a new secret for the app (Certificates & "
               "secrets) and put its Value in client_secret or client_secret_file";
      case 7000216:
        return "no client secret was sent: set client_secret or client_secret_file";
      case 700016:
        return "no application with this client_id in this tenant: check client_id (the "
               "app's Application (client) ID) and tenant_id (and cloud: an app registered in "
               "a national cloud exists only there), and that an administrator of that tenant "
               "has consented to the app";
      case 90002:
      case 900023:
        return "tenant not found: check tenant_id (the Directory (tenant) ID) and, for a "
               "sovereign cloud, login_url";
      case 500011:
        return "the API's resource is not found in the tenant: check azure_resource (v1) or "
               "scopes (v2) against api_url, and that the API's service principal exists in "
               "the tenant (Defender for Endpoint set up there, admin consent given)";
      case 70011:
        return "invalid scope: each of scopes must be a resource followed by /.default (e.g. "
               "https://api.securitycenter.microsoft.com/.default or "
               "https://graph.microsoft.com/.default)";
      case 7000112:
        return "the application is disabled in this tenant: ask the tenant's administrator to "
               "enable the app";
      case 700027:
        return "the client assertion's signature was refused: the certificate in "
               "client_certificate_file is not one uploaded to this app (Certificates & "
               "secrets > Certificates: compare its thumbprint), or client_key_file is not its "
               "key";
      case 700024:
        return "the client assertion is outside its time window (nbf to exp): check this "
               "machine's clock (NTP), or, with client_assertion_file, that the platform still "
               "renews the file";
      case 700023:
        return "the client assertion's audience (aud) is not this token URL: with "
               "client_assertion_file, the file holds a token made for another tenant or "
               "cloud; check tenant_id, login_url and cloud";
      case 700021:
        return "the client assertion was issued for another app (iss and sub must be "
               "client_id): check client_id against the certificate's app, or what "
               "client_assertion_file holds";
      case 50013:
        return "the client assertion was refused as invalid (a replayed jti, or a token the "
               "platform no longer renews): with client_assertion_file, check that the "
               "platform still rewrites the file";
      case 50027:
        return "the client assertion is not a well-formed JSON Web Token: with "
               "client_assertion_file, check that the file holds the platform's token and "
               "nothing else";
      case 70021:
      case 700212:
      case 700213:
        return "no federated credential of the app matches the assertion's issuer, subject "
               "and audience: check the app's Federated credentials against the service "
               "account (issuer URL, system:serviceaccount:NAMESPACE:NAME, "
               "api://AzureADTokenExchange)";
      case 53003:
        return "blocked by a Conditional Access policy for workload identities: ask the "
               "tenant's administrator to allow this app from this network";
      case 900144:
        return "the token request lacked a parameter: check client_id and token_url";
      case 90033:
        return "Microsoft Entra ID had a passing fault: check again in a minute";
      default:
        break;
    }
  }
  const auto status = error.httpStatus();
  if (error.code() == ErrorCode::kNetwork ||
      (error.code() == ErrorCode::kInvalidArgument && !status)) {
    return transportHint(HintTopic::kToken, error);
  }
  if (error.code() == ErrorCode::kParse) {
    return "login_url answered, but not like Microsoft Entra ID: check login_url and token_url";
  }
  if (error.code() == ErrorCode::kAuth && !status) {
    // Found here, before any request: the certificate's dates, the key, the assertion file.
    if (containsNoCase(error.message(), "expired on")) {
      return "the client certificate has expired: make a new one, upload it to the app "
             "(Certificates & secrets) and point client_certificate_file (and client_key_file) "
             "at it";
    }
    if (containsNoCase(error.message(), "not valid before")) {
      return "the client certificate is not valid yet: check this machine's clock";
    }
    return "the credential cannot be used: fix the file the message names (nothing was sent)";
  }
  if (!status) return {};
  if (*status == 404) {
    return "no token endpoint at this URL: check login_url, tenant_id and token_url";
  }
  if (*status == 429) return "the identity platform is throttling this app: check again later";
  if (*status >= 500) {
    return "the identity platform answered HTTP " + std::to_string(*status) +
           ": a passing fault there, or at a proxy; check again later";
  }
  if (containsNoCase(error.message(), "invalid_client")) {
    return "the client_id and its credential were refused: check client_id and the secret's "
           "Value, or the certificate uploaded to the app";
  }
  return "Microsoft Entra ID refused the request: check tenant_id, client_id, login_url, "
         "token_url and azure_resource or scopes";
}

std::string apiHint(HintTopic topic, const Error& error) {
  const bool graph = topic == HintTopic::kGraphApi || topic == HintTopic::kIncidentsApi;
  const bool incidents = topic == HintTopic::kIncidentsApi;
  const auto status = error.httpStatus();
  if (!status) {
    if (error.code() == ErrorCode::kParse) {
      return "api_url answered, but not with a page of alerts: check api_url (" +
             std::string(graph ? "https://graph.microsoft.com"
                               : "https://api.security.microsoft.com or a regional host") +
             ")";
    }
    if (error.code() == ErrorCode::kNetwork || error.code() == ErrorCode::kInvalidArgument) {
      return transportHint(topic, error);
    }
    return {};
  }
  switch (*status) {
    case 401:
      return graph ? "the API refused a fresh token: it was issued for another API. scopes "
                     "must name the API api_url serves (https://graph.microsoft.com/.default)"
                   : "the API refused a fresh token: it was issued for another API. "
                     "azure_resource (v1) or scopes (v2) must name the API api_url serves "
                     "(https://api.securitycenter.microsoft.com)";
    case 403:
      if (incidents) {
        return "grant the app the Microsoft Graph application permission "
               "SecurityIncident.Read.All (API permissions > Add > Microsoft Graph > "
               "Application permissions) and give admin consent; it can take some minutes";
      }
      return graph ? "grant the app the Microsoft Graph application permission "
                     "SecurityAlert.Read.All (API permissions > Add > Microsoft Graph > "
                     "Application permissions) and give admin consent; it can take some minutes"
                   : "grant the WindowsDefenderATP application permission Alert.Read.All to the "
                     "app (API permissions > APIs my organization uses > WindowsDefenderATP) and "
                     "give admin consent; it can take some minutes";
    case 404:
      return std::string("no alerts API at this address: check api_url (") +
             (graph ? "https://graph.microsoft.com"
                    : "https://api.security.microsoft.com or a regional host such as "
                      "https://api-eu.security.microsoft.com") +
             ")";
    case 429: {
      std::string wait =
          error.retryAfter()
              ? " (Retry-After " + std::to_string(error.retryAfter()->count()) + " s)"
              : "";
      return std::string("the API quota is used up") + wait + ": " +
             (graph ? "about 150 requests a minute" : "100 requests a minute, 1,500 an hour") +
             " per app and tenant; another collector with the same app? check again later";
    }
    default:
      break;
  }
  if (*status >= 500) {
    return "the API answered HTTP " + std::to_string(*status) +
           ": a passing fault at Microsoft or at a proxy; check again later";
  }
  if (*status == 400) return "the API refused the request: check api_url";
  return {};
}

std::string elasticsearchHint(const Error& error) {
  const auto status = error.httpStatus();
  if (!status) {
    if (error.code() == ErrorCode::kNetwork || error.code() == ErrorCode::kInvalidArgument) {
      return transportHint(HintTopic::kElasticsearch, error);
    }
    return {};
  }
  if (*status == 401) {
    return "Elasticsearch refused the credentials: api_key must be the key's id:api_key (or "
           "its base64 'encoded' form), not its name, and not expired or invalidated; or check "
           "username and password";
  }
  if (*status == 403) {
    return "the credentials lack a privilege: writing needs create_doc and auto_configure on "
           "logs-microsoft_defender_endpoint.log-* (and logs-m365_defender.incident-* for "
           "incidents); `mdecollect setup` also needs the cluster "
           "privilege manage_index_templates";
  }
  if (*status == 429 || *status >= 500) {
    return "Elasticsearch answered HTTP " + std::to_string(*status) +
           ": overloaded or unhealthy; check the cluster's health and check again";
  }
  return {};
}

// The URL without user:password@ (a host may carry them).
std::string shownUrl(std::string_view url) {
  const auto scheme = url.find("://");
  const std::size_t authority = scheme == std::string_view::npos ? 0 : scheme + 3;
  auto end = url.find_first_of("/?#", authority);
  if (end == std::string_view::npos) end = url.size();
  const auto at = url.substr(authority, end - authority).rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, authority)) + std::string(url.substr(authority + at + 1));
}

// Control characters out, so that each check stays on one line.
std::string oneLine(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return out;
}

std::string millis(milliseconds d) { return std::to_string(d.count()) + " ms"; }

// {"error":{"code":"…","message":"…"}} (Defender API and Graph): "code: message", or the
// start of the body.
struct Env {
  CheckDeps& deps;
  core::Clock& clock;
  std::unique_ptr<http::HttpClient> client(const http::CurlClientOptions& options) {
    return deps.make_client ? deps.make_client(options) : http::makeCurlClient(options);
  }
};

std::string alertsUrl(const config::SourceConfig& s) {
  std::string base = s.api_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (s.type == config::SourceType::kGraph) return base + "/v1.0/security/alerts_v2?$top=1";
  if (s.type == config::SourceType::kGraphIncidents) {
    return base + "/v1.0/security/incidents?$top=1";
  }
  return base + "/api/alerts?$top=1&$expand=evidence";
}

// One token request, one request for one alert.
void checkApiSource(const config::SourceConfig& s, Env& env, std::vector<CheckLine>& out) {
  const std::string subject = "source " + s.name;
  const bool incidents = s.type == config::SourceType::kGraphIncidents;
  const bool graph = s.type == config::SourceType::kGraph || incidents;
  http::CurlClientOptions options;
  options.proxy_url = s.proxy_url;
  options.tls.verify = s.ssl.verify;
  options.tls.ca_file = s.ssl.ca_file;
  options.user_agent = "MdatpPartner-mdecollect/" MDEC_VERSION_STRING;
  auto client = env.client(options);
  auto tokens = auth::makeClientCredentialsProvider(s, *client, env.clock);

  auto started = env.clock.steadyNow();
  auto token = tokens->token(false);
  auto took = duration_cast<milliseconds>(env.clock.steadyNow() - started);
  if (!token) {
    out.push_back({subject, "token", false, token.error().message(),
                   hintFor(HintTopic::kToken, token.error())});
    return;
  }
  out.push_back({subject, "token", true,
                 "granted by " + shownUrl(auth::tokenUrl(s)) + " in " + millis(took), ""});

  const HintTopic topic = incidents ? HintTopic::kIncidentsApi
                          : graph   ? HintTopic::kGraphApi
                                    : HintTopic::kMdeApi;
  const std::string step = incidents ? "incidents API" : "alerts API";
  const char* const one = incidents ? " incident" : " alert";
  const char* const many = incidents ? " incidents" : " alerts";
  http::HttpRequest req;
  req.url = alertsUrl(s);
  req.headers = {{"Authorization", "Bearer " + *token},
                 {"Accept", "application/json"},
                 {"User-Agent", "MdatpPartner-mdecollect/" MDEC_VERSION_STRING}};
  if (graph && (!incidents || s.include_unknown_enum_members)) {
    req.headers.push_back({"Prefer", "include-unknown-enum-members"});
  }
  req.timeout = s.request_timeout;
  req.max_response_bytes = 16u << 20;
  started = env.clock.steadyNow();
  auto res = client->send(req);
  took = duration_cast<milliseconds>(env.clock.steadyNow() - started);
  const std::string shown = shownUrl(req.url.substr(0, req.url.find('?')));
  if (!res) {
    out.push_back({subject, step, false, res.error().message(), hintFor(topic, res.error())});
    return;
  }
  if (res->status == 200) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    simdjson::dom::array value;
    if (parser.parse(simdjson::padded_string(res->body)).get(root) == simdjson::SUCCESS &&
        root["value"].get_array().get(value) == simdjson::SUCCESS) {
      const std::size_t n = value.size();
      out.push_back({subject, step, true,
                     "GET " + shown + ": HTTP 200 in " + millis(took) + ", " + std::to_string(n) +
                         (n == 1 ? one : many) + " ($top=1)",
                     ""});
      return;
    }
    const Error e(ErrorCode::kParse, "GET " + shown +
                                         ": HTTP 200, but the body is not a page of alerts "
                                         "(no \"value\" array)");
    out.push_back({subject, step, false, e.message(), hintFor(topic, e)});
    return;
  }
  // What the status means is decided where the sources decide it (api_client.h).
  const source::StatusClass cls = source::classifyStatus(res->status);
  Error e(cls == source::StatusClass::kRenewToken || cls == source::StatusClass::kRefused
              ? ErrorCode::kAuth
          : cls == source::StatusClass::kThrottled ? ErrorCode::kThrottled
                                                   : ErrorCode::kHttp,
          "GET " + shown + ": HTTP " + std::to_string(res->status) + ": " +
              source::apiErrorMessage(res->body));
  e.withHttpStatus(res->status);
  if (const std::string* ra = res->header("retry-after")) {
    const auto now = core::toInstant(env.clock.now()).seconds;
    if (auto wait = source::parseRetryAfter(*ra, now)) e.withRetryAfter(*wait);
  }
  std::string hint = hintFor(topic, e);
  if (s.type == config::SourceType::kMde) {
    // After the API's last day its refusal is most likely the retirement: say the switch.
    if (auto retired = source::mdeRetiredRefusalHint(s.name, res->status, env.clock.now())) {
      hint = hint.empty() ? *retired : hint + "; " + *retired;
    }
  }
  out.push_back({subject, step, false, e.message(), hint});
}

bool hasWildcard(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

// The directory a glob's matches would be in: its leading components without wildcards.
fs::path fixedDirOf(const std::string& pattern) {
  fs::path dir;
  for (const auto& part : fs::path(pattern).parent_path()) {
    if (hasWildcard(part.string())) break;
    dir /= part;
  }
  return dir.empty() ? fs::path(".") : dir;
}

void checkFileSource(const config::SourceConfig& s, std::vector<CheckLine>& out) {
  const std::string subject = "source " + s.name;
  for (const auto& pattern : s.paths) {
    std::vector<std::string> matches;
    glob_t g{};
    if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
      for (std::size_t i = 0; i < g.gl_pathc; ++i) {
        std::error_code ec;
        if (fs::is_regular_file(g.gl_pathv[i], ec)) matches.emplace_back(g.gl_pathv[i]);
      }
    }
    ::globfree(&g);
    if (!matches.empty()) {
      std::string unreadable;
      int err = 0;
      for (const auto& p : matches) {
        if (::access(p.c_str(), R_OK) != 0) {
          err = errno;
          unreadable = p;
          break;
        }
      }
      if (!unreadable.empty()) {
        out.push_back({subject, "files", false,
                       pattern + ": " + unreadable + " cannot be read: " + std::strerror(err),
                       "make the files readable by the user mdecollect runs as"});
        continue;
      }
      out.push_back({subject, "files", true,
                     pattern + ": " + std::to_string(matches.size()) +
                         (matches.size() == 1 ? " file matches" : " files match"),
                     ""});
      continue;
    }
    const fs::path dir = fixedDirOf(pattern);
    std::error_code ec;
    const auto st = fs::status(dir, ec);
    if (!fs::exists(st)) {
      out.push_back({subject, "files", false,
                     pattern + ": the directory " + dir.string() + " does not exist",
                     "fix paths, or create " + dir.string() +
                         " (the source reads the files its globs match)"});
    } else if (!fs::is_directory(st)) {
      out.push_back({subject, "files", false, pattern + ": " + dir.string() + " is not a directory",
                     "fix paths: each glob names files in a directory"});
    } else if (::access(dir.c_str(), R_OK | X_OK) != 0) {
      const int err = errno;
      out.push_back(
          {subject, "files", false,
           pattern + ": the directory " + dir.string() + " cannot be read: " + std::strerror(err),
           "make " + dir.string() + " readable by the user mdecollect runs as"});
    } else {
      out.push_back(
          {subject, "files", true, pattern + ": no file matches yet (read when one appears)", ""});
    }
  }
}

// A directory mdecollect writes in: when it exists, a probe file is created in it and
// removed; otherwise the nearest existing ancestor must let it be created.
CheckLine checkWritableDir(const std::string& subject, const std::string& step,
                           const std::string& key, const std::string& path) {
  const std::string change = "make it writable by the user mdecollect runs as, or change " + key;
  std::error_code ec;
  const fs::path dir = fs::absolute(path, ec);
  const auto st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return {subject, step, false, path + ": " + ec.message(), change};
  }
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) {
      return {subject, step, false, path + " exists but is not a directory",
              "point " + key + " at a directory"};
    }
    std::string probe = (dir / ".mdecollect-check-XXXXXX").string();
    const int fd = ::mkstemp(probe.data());
    if (fd < 0) {
      const int err = errno;
      return {subject, step, false, path + ": cannot create a file in it: " + std::strerror(err),
              change};
    }
    ::close(fd);
    ::unlink(probe.c_str());
    return {subject, step, true, path + " is writable", ""};
  }
  fs::path ancestor = dir.parent_path();
  while (!ancestor.empty() && !fs::exists(ancestor, ec) && ancestor != ancestor.parent_path()) {
    ancestor = ancestor.parent_path();
  }
  if (!fs::is_directory(ancestor, ec)) {
    return {subject, step, false,
            path + " does not exist and " + ancestor.string() + " is not a directory",
            "create " + path + ", or change " + key};
  }
  if (::access(ancestor.c_str(), W_OK | X_OK) != 0) {
    const int err = errno;
    return {subject, step, false,
            path + " does not exist, and " + ancestor.string() + " does not let it be created (" +
                std::strerror(err) + ")",
            "create " + path + " owned by the user mdecollect runs as, or change " + key};
  }
  return {subject, step, true,
          path + " does not exist yet; it will be created (in " + ancestor.string() + ")", ""};
}

// Index privileges the collector writes with, on its data streams.
constexpr std::string_view kWritePrivileges[] = {"create_doc", "auto_configure"};

// `credentials`: GET / answered (not 401); then _has_privileges, where the cluster has it.
CheckLine checkEsCredentials(const std::string& subject,
                             const config::ElasticsearchOutputConfig& es, int root_status,
                             output::EsTransport& transport) {
  const bool configured = !es.api_key.empty() || !es.username.empty();
  const std::string who = !es.api_key.empty() ? "the API key" : "the user " + es.username;
  std::string body = R"({"cluster":["manage_index_templates"],"index":[{"names":[")" +
                     std::string(output::kIndexPattern) + R"("],"privileges":[)";
  for (std::size_t i = 0; i < std::size(kWritePrivileges); ++i) {
    body += (i ? ",\"" : "\"") + std::string(kWritePrivileges[i]) + "\"";
  }
  body += "]}]}";
  auto res = transport.send("POST", "/_security/user/_has_privileges", body, false);
  if (!res) {
    return {subject, "credentials", false, res.error().message(),
            hintFor(HintTopic::kElasticsearch, res.error())};
  }
  if (res->status == 401) {
    Error e(ErrorCode::kAuth, "HTTP 401: " + oneLine(output::elasticsearchError(res->body)));
    e.withHttpStatus(401);
    return {subject, "credentials", false, e.message(), hintFor(HintTopic::kElasticsearch, e)};
  }
  if (res->status != 200) {
    // No security API (security off, OpenSearch, a proxy in front): GET / is all we know.
    return {subject, "credentials", true,
            std::string(configured ? "accepted" : "none configured") + " (GET / answered HTTP " +
                std::to_string(root_status) + "); privileges not checked: " +
                "_has_privileges answered HTTP " + std::to_string(res->status),
            ""};
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(simdjson::padded_string(res->body)).get(root) != simdjson::SUCCESS) {
    return {subject, "credentials", true,
            "accepted; privileges not checked (_has_privileges answered no JSON)", ""};
  }
  std::string_view username;
  if (root["username"].get(username) != simdjson::SUCCESS) username = {};
  std::vector<std::string> missing;
  const std::string pointer_base = "/index/" + std::string(output::kIndexPattern);
  for (std::string_view p : kWritePrivileges) {
    bool granted = false;
    if (root.at_pointer(pointer_base + "/" + std::string(p)).get_bool().get(granted) !=
            simdjson::SUCCESS ||
        !granted) {
      missing.emplace_back(p);
    }
  }
  bool manage_templates = false;
  if (root.at_pointer("/cluster/manage_index_templates").get_bool().get(manage_templates) !=
      simdjson::SUCCESS) {
    manage_templates = false;
  }
  const std::string as = username.empty() ? who : "authenticated as " + std::string(username);
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    Error e(ErrorCode::kAuth,
            as + ", but without " + list + " on " + std::string(output::kIndexPattern));
    e.withHttpStatus(403);
    return {subject, "credentials", false, e.message(), hintFor(HintTopic::kElasticsearch, e)};
  }
  return {subject, "credentials", true,
          as + "; create_doc and auto_configure on " + std::string(output::kIndexPattern) +
              (manage_templates ? "; manage_index_templates"
                                : "; no manage_index_templates (only `mdecollect setup` needs it)"),
          ""};
}

void checkElasticsearchHost(const config::Config& config, const std::string& host, Env& env,
                            std::vector<CheckLine>& out) {
  config::ElasticsearchOutputConfig one = config.elasticsearch;
  one.hosts = {host};
  http::CurlClientOptions options;
  options.proxy_url = one.proxy_url;
  options.tls.verify = one.ssl.verify;
  options.tls.ca_file = one.ssl.ca_file;
  options.user_agent = "mdecollect/" MDEC_VERSION_STRING;
  output::EsTransport transport(one, env.client(options));
  const std::string shown = shownUrl(host);
  const std::string subject = "elasticsearch " + shown;

  const auto started = env.clock.steadyNow();
  auto root = transport.send("GET", "/", {}, false);
  const auto took = duration_cast<milliseconds>(env.clock.steadyNow() - started);
  if (!root) {
    // EsTransport names the host first; the subject already does.
    std::string detail = root.error().message();
    if (detail.rfind(host + ": ", 0) == 0) detail.erase(0, host.size() + 2);
    if (shown != host) {
      for (auto at = detail.find(host); at != std::string::npos; at = detail.find(host, at)) {
        detail.replace(at, host.size(), shown);
      }
    }
    out.push_back(
        {subject, "reachable", false, detail, hintFor(HintTopic::kElasticsearch, root.error())});
    return;
  }
  std::string version;
  {
    simdjson::dom::parser parser;
    simdjson::dom::element body;
    std::string_view number;
    if (parser.parse(simdjson::padded_string(root->body)).get(body) == simdjson::SUCCESS &&
        body.at_pointer("/version/number").get(number) == simdjson::SUCCESS) {
      version = ", version " + oneLine(number);
    }
  }
  out.push_back({subject, "reachable", true,
                 "GET /: HTTP " + std::to_string(root->status) + " in " + millis(took) + version,
                 ""});
  if (root->status == 401) {
    Error e(ErrorCode::kAuth,
            "GET /: HTTP 401: " + oneLine(output::elasticsearchError(root->body)));
    e.withHttpStatus(401);
    out.push_back(
        {subject, "credentials", false, e.message(), hintFor(HintTopic::kElasticsearch, e)});
    return;
  }
  out.push_back(checkEsCredentials(subject, one, root->status, transport));
  if (!out.back().ok) return;

  const std::string setup =
      "run: mdecollect setup -c " + (config.file.empty() ? "FILE" : config.file);
  // The templates of the data streams the configured sources write to: "template" for the
  // endpoint one, "incident template" for the m365_defender.incident one.
  for (const auto id : output::templatesWritten(config)) {
    const output::IndexTemplateSpec& spec = output::indexTemplate(id);
    const std::string check =
        id == output::IndexTemplateId::kEndpoint ? "template" : "incident template";
    const std::string name(spec.name);
    auto state = output::templateState(one, transport, spec);
    if (!state) {
      const auto status = state.error().httpStatus();
      std::string hint = hintFor(HintTopic::kElasticsearch, state.error());
      if (status && (*status == 401 || *status == 403)) {
        hint =
            "these credentials may not read index templates: grant the cluster privilege "
            "monitor (or manage_index_templates), or " +
            setup + " with credentials that may; it says whether the template is current";
      }
      out.push_back({subject, check, false, oneLine(state.error().message()), hint});
      return;
    }
    switch (*state) {
      case output::TemplateState::kCurrent:
        out.push_back({subject, check, true,
                       "index template " + name + " is current (version " +
                           std::to_string(output::indexTemplateVersion(spec)) + ")",
                       ""});
        break;
      case output::TemplateState::kMissing:
        out.push_back({subject, check, false,
                       "index template " + name +
                           " is missing: documents would get Elasticsearch's default mappings",
                       setup});
        break;
      case output::TemplateState::kOutdated:
        out.push_back({subject, check, false,
                       "index template " + name +
                           " is from another version of mdecollect (or another ilm_policy)",
                       setup});
        break;
    }
  }
}

// Every secret the config holds (and the header forms made from them), to be masked.
std::vector<std::string> secretsOf(const config::Config& config) {
  std::vector<std::string> secrets;
  for (const auto& s : config.sources) secrets.push_back(s.client_secret.reveal());
  const std::string& api_key = config.elasticsearch.api_key.reveal();
  secrets.push_back(api_key);
  if (const auto colon = api_key.find(':'); colon != std::string::npos) {
    secrets.push_back(api_key.substr(colon + 1));  // the key without its id
  }
  secrets.push_back(config.elasticsearch.password.reveal());
  const std::string header = output::authorizationHeader(config.elasticsearch);
  if (const auto space = header.find(' '); space != std::string::npos) {
    secrets.push_back(header.substr(space + 1));
  }
  // Too short to mask without mangling the text around it.
  std::erase_if(secrets, [](const std::string& s) { return s.size() < 4; });
  // The longest first: one secret may contain another.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return secrets;
}

void mask(std::string& text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
      text.replace(at, secret.size(), config::Secret::kMask);
    }
  }
}

std::string outputsOf(const config::Config& config) {
  std::string out;
  auto add = [&out](const char* name) { out += (out.empty() ? "" : ", ") + std::string(name); };
  if (config.file_output.enabled) add("file");
  if (config.stdout_output.enabled) add("stdout");
  if (config.elasticsearch.enabled) add("elasticsearch");
  return out.empty() ? "none" : out;
}

}  // namespace

std::string hintFor(HintTopic topic, const Error& error) {
  switch (topic) {
    case HintTopic::kToken:
      return tokenHint(error);
    case HintTopic::kMdeApi:
    case HintTopic::kGraphApi:
    case HintTopic::kIncidentsApi:
      return apiHint(topic, error);
    case HintTopic::kElasticsearch:
      return elasticsearchHint(error);
  }
  return {};
}

std::vector<CheckLine> runChecks(const config::Config& config, CheckDeps& deps) {
  core::SystemClock system_clock;
  Env env{deps, deps.clock ? *deps.clock : system_clock};
  std::vector<CheckLine> out;
  const std::size_t n = config.sources.size();
  out.push_back({"config", "valid", true,
                 (config.file.empty() ? std::string("the configuration") : config.file) + ": " +
                     std::to_string(n) + (n == 1 ? " source" : " sources") +
                     "; outputs: " + outputsOf(config),
                 ""});
  for (const auto& s : config.sources) {
    if (s.type == config::SourceType::kFile) {
      checkFileSource(s, out);
    } else {
      checkApiSource(s, env, out);
    }
  }
  out.push_back(checkWritableDir("state", "state_dir", "state_dir", config.state_dir));
  if (config.file_output.enabled) {
    out.push_back(
        checkWritableDir("output file", "directory", "outputs.file.path", config.file_output.path));
  }
  if (config.elasticsearch.enabled) {
    for (const auto& host : config.elasticsearch.hosts) {
      checkElasticsearchHost(config, host, env, out);
    }
  }
  if (config.tracing.enabled) {
    const std::string dir = fs::path(config.tracing.path).parent_path().string();
    out.push_back(
        checkWritableDir("tracing", "directory", "tracing.path", dir.empty() ? "." : dir));
  }
  const auto secrets = secretsOf(config);
  for (auto& line : out) {
    for (std::string* text : {&line.subject, &line.step, &line.detail, &line.hint}) {
      *text = oneLine(*text);
      mask(*text, secrets);
    }
  }
  return out;
}

bool allPassed(const std::vector<CheckLine>& lines) {
  return std::all_of(lines.begin(), lines.end(), [](const CheckLine& l) { return l.ok; });
}

std::string renderCheckTable(const std::vector<CheckLine>& lines) {
  auto label = [](const CheckLine& l) { return l.subject + " / " + l.step; };
  std::size_t width = std::string_view("CHECK").size();
  for (const auto& l : lines) width = std::max(width, label(l).size());
  auto pad = [](std::string s, std::size_t w) {
    if (s.size() < w) s.append(w - s.size(), ' ');
    return s;
  };
  std::string out = pad("CHECK", width) + "  RESULT  DETAIL\n";
  std::size_t failed = 0;
  for (const auto& l : lines) {
    out += pad(label(l), width) + "  " + pad(l.ok ? "pass" : "FAIL", 6) + "  " + l.detail;
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
    if (!l.ok) {
      ++failed;
      if (!l.hint.empty()) out += "  hint: " + l.hint + "\n";
    }
  }
  if (failed == 0) {
    out += "all " + std::to_string(lines.size()) + " checks passed\n";
  } else {
    out += std::to_string(failed) + " of " + std::to_string(lines.size()) + " checks FAILED\n";
  }
  return out;
}

std::string renderCheckJson(const std::vector<CheckLine>& lines) {
  std::string out = "{\"ok\":";
  out += allPassed(lines) ? "true" : "false";
  out += ",\"checks\":[";
  auto field = [&out](const char* key, const std::string& value) {
    out += ",\"";
    out += key;
    out += "\":\"";
    core::appendEscapedLossy(out, value);
    out += '"';
  };
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto& l = lines[i];
    out += i ? ",{" : "{";
    out += "\"ok\":";
    out += l.ok ? "true" : "false";
    field("subject", l.subject);
    field("step", l.step);
    field("detail", l.detail);
    field("hint", l.hint);
    out += '}';
  }
  out += "]}\n";
  return out;
}

}  // namespace mdec::pipeline
