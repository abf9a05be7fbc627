// `mdecollect check` (pipeline/check.h) against a scripted HttpClient and a fixed clock:
// one token and one $top=1 request per source, every hint path (identity platform codes,
// API statuses, transport failures, Elasticsearch credentials, privileges and template),
// file sources and writable directories, the table and JSON renderings, and that no secret
// of the configuration is ever printed.
#include "mdecollect/pipeline/check.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mdecollect/output/es_template.h"
#include "support/temp_dir.h"

namespace mdec::pipeline {
namespace {

namespace fs = std::filesystem;
using mdec::testing::TempDir;

constexpr const char* kSecret = "Zq8Q~client-secret-value-42";
constexpr const char* kApiKey = "es-key-id:es-key-secret-77";

class FixedClock : public core::Clock {
 public:
  // 2027-01-15T08:00:00Z unless a test moves it: before the Defender API's last day.
  std::chrono::system_clock::time_point at{std::chrono::seconds(1'800'000'000)};
  std::chrono::system_clock::time_point now() const override { return at; }
  std::chrono::steady_clock::time_point steadyNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::seconds(1000));
  }
  bool sleepFor(std::chrono::milliseconds, std::stop_token) override { return true; }
};

// What the fake answers: the first rule whose method matches and whose text is in the URL.
struct Rule {
  std::string method;
  std::string url_part;
  std::optional<http::HttpResponse> response;
  std::optional<Error> error;
};

struct Script {
  std::vector<Rule> rules;
  std::vector<http::HttpRequest> requests;
  std::vector<http::CurlClientOptions> clients;

  void answer(const std::string& method, const std::string& url_part, int status, std::string body,
              std::map<std::string, std::string> headers = {}) {
    http::HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    rules.push_back({method, url_part, std::move(r), std::nullopt});
  }
  void fail(const std::string& method, const std::string& url_part, Error error) {
    rules.push_back({method, url_part, std::nullopt, std::move(error)});
  }
  std::size_t count(const std::string& url_part) const {
    std::size_t n = 0;
    for (const auto& r : requests) n += r.url.find(url_part) != std::string::npos;
    return n;
  }
};

class ScriptedClient : public http::HttpClient {
 public:
  explicit ScriptedClient(Script& script) : script_(script) {}
  Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    script_.requests.push_back(request);
    for (const auto& rule : script_.rules) {
      if (rule.method == request.method && request.url.find(rule.url_part) != std::string::npos) {
        if (rule.error) return *rule.error;
        return *rule.response;
      }
    }
    http::HttpResponse none;
    none.status = 404;
    none.body = R"({"error":{"code":"NotFound","message":"no rule"}})";
    return none;
  }

 private:
  Script& script_;
};

const std::string kTokenOk =
    R"({"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0-access-token"})";

std::string tokenError(const std::string& error, int code, const std::string& text) {
  return R"({"error":")" + error + R"(","error_description":"AADSTS)" + std::to_string(code) +
         ": " + text + R"(\r\nTrace ID: 0000\r\nCorrelation ID: 1111","error_codes":[)" +
         std::to_string(code) + "]}";
}

const std::string kOnePage = R"({"@odata.context":"x","value":[{"id":"a1"}]})";

std::string templateBody(int version) {
  return R"({"index_templates":[{"name":"mdecollect-microsoft_defender_endpoint.log",)"
         R"("index_template":{"_meta":{"version":)" +
         std::to_string(version) + R"(},"template":{"settings":{}}}}]})";
}

config::SourceConfig apiSource(const std::string& name, config::SourceType type) {
  config::SourceConfig s;
  s.name = name;
  s.type = type;
  s.tenant_id = "tenant-guid";
  s.client_id = "client-guid";
  s.client_secret = config::Secret(kSecret);
  s.login_url = "https://login.test";
  if (type == config::SourceType::kGraph) {
    s.api_url = "https://graph.test";
    s.scopes = {"https://graph.microsoft.com/.default"};
  } else {
    s.api_url = "https://mde.test";
  }
  return s;
}

class CheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config.file = "/etc/mdecollect/mdecollect.yaml";
    config.state_dir = dir.sub("state");
    config.file_output.enabled = true;
    config.file_output.path = dir.sub("state/output");
    deps.clock = &clock;
    deps.make_client = [this](const http::CurlClientOptions& options) {
      script.clients.push_back(options);
      return std::make_unique<ScriptedClient>(script);
    };
  }

  void addElasticsearch(const std::string& host = "https://es.test:9200") {
    config.elasticsearch.enabled = true;
    config.elasticsearch.hosts = {host};
    config.elasticsearch.api_key = config::Secret(kApiKey);
  }

  std::vector<CheckLine> run() {
    lines = runChecks(config, deps);
    table = renderCheckTable(lines);
    return lines;
  }

  // The one line of `subject` / `step` (fails the test when there is not exactly one).
  CheckLine line(const std::string& subject, const std::string& step) const {
    const CheckLine* found = nullptr;
    int n = 0;
    for (const auto& l : lines) {
      if (l.subject == subject && l.step == step) {
        found = &l;
        ++n;
      }
    }
    EXPECT_EQ(n, 1) << subject << " / " << step << " in\n" << table;
    return found ? *found : CheckLine{};
  }

  TempDir dir{"mdec-check"};
  config::Config config;
  FixedClock clock;
  Script script;
  CheckDeps deps;
  std::vector<CheckLine> lines;
  std::string table;
};

TEST_F(CheckTest, EverythingGoodPassesWithOneTokenAndOneRequestPerSource) {
  config.sources = {apiSource("tenant-a", config::SourceType::kMde),
                    apiSource("tenant-g", config::SourceType::kGraph)};
  config.sources[0].proxy_url = "http://proxy.test:3128";
  addElasticsearch();
  script.answer("POST", "/oauth2/", 200, kTokenOk);
  script.answer("GET", "/api/alerts", 200, kOnePage);
  script.answer("GET", "/v1.0/security/alerts_v2", 200, R"({"value":[]})");
  script.answer("GET", "es.test:9200/_index_template/", 200,
                templateBody(output::indexTemplateVersion()));
  script.answer("GET", "es.test:9200/", 200, R"({"version":{"number":"8.11.0"}})");
  script.answer(
      "POST", "/_security/user/_has_privileges", 200,
      R"({"username":"collector","has_all_requested":true,"cluster":)"
      R"({"manage_index_templates":false},"index":{"logs-microsoft_defender_endpoint.log-*":)"
      R"({"create_doc":true,"auto_configure":true}}})");
  run();
  EXPECT_TRUE(allPassed(lines)) << table;
  EXPECT_NE(table.find("all 10 checks passed"), std::string::npos) << table;

  // mde: one token (v1) and one $top=1 request with evidence; graph: v2 token, Prefer.
  EXPECT_EQ(script.count("/tenant-guid/oauth2/token"), 1u);
  EXPECT_EQ(script.count("/tenant-guid/oauth2/v2.0/token"), 1u);
  EXPECT_EQ(script.count("https://mde.test/api/alerts?$top=1&$expand=evidence"), 1u);
  EXPECT_EQ(script.count("https://graph.test/v1.0/security/alerts_v2?$top=1"), 1u);
  for (const auto& r : script.requests) {
    if (r.url.find("alerts") == std::string::npos) continue;
    bool bearer = false;
    bool prefer = false;
    for (const auto& [k, v] : r.headers) {
      bearer = bearer || (k == "Authorization" && v == "Bearer eyJ0-access-token");
      prefer = prefer || (k == "Prefer" && v == "include-unknown-enum-members");
    }
    EXPECT_TRUE(bearer) << r.url;
    EXPECT_EQ(prefer, r.url.find("alerts_v2") != std::string::npos) << r.url;
  }
  // The source's client carries its proxy and the partner user agent.
  ASSERT_GE(script.clients.size(), 1u);
  EXPECT_EQ(script.clients[0].proxy_url, "http://proxy.test:3128");
  EXPECT_EQ(script.clients[0].user_agent.rfind("MdatpPartner-mdecollect/", 0), 0u);

  EXPECT_NE(line("source tenant-a", "alerts API").detail.find("1 alert"), std::string::npos);
  EXPECT_NE(line("source tenant-g", "alerts API").detail.find("0 alerts"), std::string::npos);
  EXPECT_NE(line("elasticsearch https://es.test:9200", "credentials")
                .detail.find("authenticated as collector"),
            std::string::npos);
  EXPECT_NE(line("elasticsearch https://es.test:9200", "reachable").detail.find("8.11.0"),
            std::string::npos);
  EXPECT_TRUE(line("elasticsearch https://es.test:9200", "template").ok);
  EXPECT_NE(line("state", "state_dir").detail.find("will be created"), std::string::npos);
  EXPECT_TRUE(line("output file", "directory").ok);
}

struct TokenCase {
  int code;
  const char* error;
  int status;
  const char* hint_part;
};

class CheckTokenHintTest : public CheckTest, public ::testing::WithParamInterface<TokenCase> {};

TEST_P(CheckTokenHintTest, IdentityPlatformCodesGetTheirHintAndNoApiRequest) {
  const TokenCase c = GetParam();
  config.sources = {apiSource("tenant-a", config::SourceType::kMde)};
  script.answer("POST", "/oauth2/", c.status, tokenError(c.error, c.code, "refused."));
  script.answer("GET", "/api/alerts", 200, kOnePage);
  run();
  const CheckLine l = line("source tenant-a", "token");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.detail.find("AADSTS" + std::to_string(c.code)), std::string::npos) << l.detail;
  EXPECT_NE(l.hint.find(c.hint_part), std::string::npos) << l.hint;
  EXPECT_NE(table.find("  hint: " + l.hint + "\n"), std::string::npos) << table;
  EXPECT_EQ(script.count("/api/alerts"), 0u);
  EXPECT_FALSE(allPassed(lines));
}

INSTANTIATE_TEST_SUITE_P(
    CheckCodes, CheckTokenHintTest,
    ::testing::Values(TokenCase{7000215, "invalid_client", 401, "Value, not its Secret ID"},
                      TokenCase{7000222, "invalid_client", 401, "expired: make a new secret"},
                      TokenCase{700016, "unauthorized_client", 400, "check client_id"},
                      TokenCase{90002, "invalid_request", 400, "check tenant_id"},
                      TokenCase{500011, "invalid_resource", 400, "azure_resource"},
                      TokenCase{70011, "invalid_scope", 400, "/.default"},
                      TokenCase{7000216, "invalid_client", 401, "client_secret_file"},
                      TokenCase{53003, "access_denied", 400, "Conditional Access"},
                      TokenCase{700027, "invalid_client", 401, "not one uploaded to this app"},
                      TokenCase{700024, "invalid_client", 400, "machine's clock"},
                      TokenCase{50027, "invalid_request", 400, "client_assertion_file"},
                      TokenCase{70021, "invalid_request", 400, "Federated credentials"},
                      TokenCase{7000112, "unauthorized_client", 400, "enable the app"},
                      TokenCase{700023, "invalid_client", 401, "another tenant or cloud"},
                      TokenCase{700021, "invalid_client", 401, "issued for another app"},
                      TokenCase{50013, "invalid_client", 401, "replayed jti"}));

TEST_F(CheckTest, CredentialProblemsFoundLocallyGetHints) {
  config.sources = {apiSource("tenant-a", config::SourceType::kMde)};
  const Error expired(ErrorCode::kAuth,
                      "client certificate /etc/c.pem (/CN=x) expired on 2026-01-01T00:00:00Z");
  EXPECT_NE(hintFor(HintTopic::kToken, expired).find("upload it to the app"), std::string::npos);
  const Error early(ErrorCode::kAuth,
                    "client certificate /etc/c.pem (/CN=x) is not valid before "
                    "2030-01-01T00:00:00Z");
  EXPECT_NE(hintFor(HintTopic::kToken, early).find("clock"), std::string::npos);
  const Error key(ErrorCode::kAuth, "client_key_file /k.pem: the key is not the certificate's");
  EXPECT_NE(hintFor(HintTopic::kToken, key).find("nothing was sent"), std::string::npos);
}

TEST_F(CheckTest, TokenEndpointWithoutAnAadstsCodeStillGetsAHint) {
  config.sources = {apiSource("tenant-a", config::SourceType::kMde)};
  script.answer("POST", "/oauth2/", 404, "<html>not here</html>");
  run();
  EXPECT_NE(line("source tenant-a", "token").hint.find("login_url"), std::string::npos);
}

struct ApiCase {
  config::SourceType type;
  int status;
  const char* body;
  const char* hint_part;
};

class CheckApiHintTest : public CheckTest, public ::testing::WithParamInterface<ApiCase> {};

TEST_P(CheckApiHintTest, ApiStatusesGetTheirHint) {
  const ApiCase c = GetParam();
  config.sources = {apiSource("tenant-a", c.type)};
  script.answer("POST", "/oauth2/", 200, kTokenOk);
  script.answer("GET", "alerts", c.status, c.body, {{"retry-after", "30"}});
  run();
  EXPECT_TRUE(line("source tenant-a", "token").ok);
  const CheckLine l = line("source tenant-a", "alerts API");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.hint.find(c.hint_part), std::string::npos) << l.hint;
  // Exactly one try: no refresh on 401, no retry on 429 or 5xx.
  EXPECT_EQ(script.count("alerts"), 1u);
  EXPECT_EQ(script.count("oauth2"), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    CheckStatuses, CheckApiHintTest,
    ::testing::Values(
        ApiCase{config::SourceType::kMde, 401,
                R"({"error":{"code":"Unauthorized","message":"audience"}})", "azure_resource"},
        ApiCase{config::SourceType::kGraph, 401, "{}", "scopes"},
        ApiCase{config::SourceType::kMde, 403,
                R"({"error":{"code":"Forbidden","message":"no role"}})",
                "WindowsDefenderATP application permission Alert.Read.All"},
        ApiCase{config::SourceType::kGraph, 403,
                R"({"error":{"code":"Authorization_RequestDenied","message":"no"}})",
                "Microsoft Graph application permission SecurityAlert.Read.All"},
        ApiCase{config::SourceType::kMde, 429,
                R"({"error":{"code":"TooManyRequests","message":"slow down"}})",
                "quota is used up (Retry-After 30 s)"},
        ApiCase{config::SourceType::kMde, 404, "", "check api_url"},
        ApiCase{config::SourceType::kMde, 503, "", "check again later"},
        ApiCase{config::SourceType::kMde, 200, R"({"not":"a page"})", "check api_url"}));

TEST_F(CheckTest, ApiErrorDetailCarriesMicrosoftsMessage) {
  config.sources = {apiSource("tenant-a", config::SourceType::kMde)};
  script.answer("POST", "/oauth2/", 200, kTokenOk);
  script.answer("GET", "alerts", 403,
                R"({"error":{"code":"Forbidden","message":"The application does not have any )"
                R"(of the required application permissions","target":"c0ffee"}})");
  run();
  const CheckLine l = line("source tenant-a", "alerts API");
  EXPECT_NE(l.detail.find("HTTP 403: Forbidden: The application does not have"), std::string::npos)
      << l.detail;
}

// After 2027-02-01 a refusal of /api/alerts is most likely the retirement: the hint says
// so, with the switch to graph for this source, after the usual hint.
class CheckRetiredMdeTest : public CheckTest, public ::testing::WithParamInterface<int> {};

TEST_P(CheckRetiredMdeTest, AfterTheLastDayARefusalSaysToSwitchToGraph) {
  clock.at = std::chrono::sys_days{std::chrono::year{2027} / std::chrono::February / 2};
  config.sources = {apiSource("contoso", config::SourceType::kMde)};
  script.answer("POST", "/oauth2/", 200, kTokenOk);
  script.answer("GET", "/api/alerts", GetParam(), "");
  run();
  const CheckLine l = line("source contoso", "alerts API");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.hint.find("Microsoft turned the Defender for Endpoint API off after 2027-02-01: "
                        "change `type: mde` to `type: graph` and keep `name: contoso`"),
            std::string::npos)
      << l.hint;
  EXPECT_NE(l.hint.find("SecurityAlert.Read.All"), std::string::npos) << l.hint;
  EXPECT_NE(table.find("  hint: "), std::string::npos) << table;
  if (GetParam() == 403) {
    EXPECT_EQ(l.hint.rfind("grant the WindowsDefenderATP application permission", 0), 0u) << l.hint;
  }
}

INSTANTIATE_TEST_SUITE_P(RefusalStatuses, CheckRetiredMdeTest,
                         ::testing::Values(401, 403, 404, 410));

TEST_F(CheckTest, BeforeTheLastDayOrForOtherFailuresNoRetirementHint) {
  auto retired = [this](config::SourceType type, int status) {
    config.sources = {apiSource("contoso", type)};
    script = Script{};
    script.answer("POST", "/oauth2/", 200, kTokenOk);
    script.answer("GET", "alerts", status, "");
    run();
    return line("source contoso", "alerts API").hint.find("turned the Defender for Endpoint") !=
           std::string::npos;
  };
  // 2027-02-01T23:59:59Z: the last second of the last day.
  clock.at = std::chrono::sys_days{std::chrono::year{2027} / std::chrono::February / 1} +
             std::chrono::seconds(86'399);
  EXPECT_FALSE(retired(config::SourceType::kMde, 403));
  EXPECT_FALSE(retired(config::SourceType::kMde, 410));
  clock.at += std::chrono::seconds(1);
  EXPECT_TRUE(retired(config::SourceType::kMde, 410));
  EXPECT_FALSE(retired(config::SourceType::kMde, 503));
  EXPECT_FALSE(retired(config::SourceType::kMde, 429));
  EXPECT_FALSE(retired(config::SourceType::kGraph, 403));
  EXPECT_FALSE(retired(config::SourceType::kGraph, 404));
}

struct NetCase {
  const char* curl_message;
  ErrorCode code;
  const char* hint_part;
  bool names_api_url = true;
};

class CheckNetworkHintTest : public CheckTest, public ::testing::WithParamInterface<NetCase> {};

TEST_P(CheckNetworkHintTest, TransportFailuresNameTheKeysToCheck) {
  const NetCase c = GetParam();
  config.sources = {apiSource("tenant-a", config::SourceType::kMde)};
  script.answer("POST", "/oauth2/", 200, kTokenOk);
  script.fail("GET", "alerts",
              Error(c.code, std::string("GET https://mde.test/api/alerts: ") + c.curl_message));
  run();
  const CheckLine l = line("source tenant-a", "alerts API");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.hint.find(c.hint_part), std::string::npos) << l.hint;
  EXPECT_EQ(l.hint.find("api_url") != std::string::npos, c.names_api_url) << l.hint;
}

INSTANTIATE_TEST_SUITE_P(
    CheckTransport, CheckNetworkHintTest,
    ::testing::Values(
        NetCase{"Couldn't resolve host name (Could not resolve host: mde.test)",
                ErrorCode::kNetwork, "does not resolve"},
        NetCase{"Couldn't connect to server (Failed to connect to mde.test port 443: Connection "
                "refused)",
                ErrorCode::kNetwork, "nothing accepts connections"},
        NetCase{"Timeout was reached (Connection timed out after 10001 milliseconds)",
                ErrorCode::kNetwork, "no answer in time"},
        NetCase{"SSL peer certificate or SSH remote key was not OK (SSL certificate problem: "
                "unable to get local issuer certificate)",
                ErrorCode::kInvalidArgument, "ssl.certificate_authorities"},
        NetCase{"Problem with the SSL CA cert (path? access rights?) (error setting certificate "
                "verify locations:  CAfile: /etc/ca.pem CApath: none)",
                ErrorCode::kInvalidArgument, "the CA file cannot be read", false}));

TEST_F(CheckTest, UrlsInTheMessageDoNotSteerTheHint) {
  config.sources = {apiSource("tenant-a", config::SourceType::kMde)};
  config.sources[0].api_url = "https://ssl-timeout.mde.test";
  script.answer("POST", "/oauth2/", 200, kTokenOk);
  script.fail("GET", "alerts",
              Error(ErrorCode::kNetwork,
                    "GET https://ssl-timeout.mde.test/api/alerts: Couldn't connect to server "
                    "(Failed to connect to ssl-timeout.mde.test port 443: Connection refused)"));
  run();
  const CheckLine l = line("source tenant-a", "alerts API");
  EXPECT_NE(l.hint.find("nothing accepts connections"), std::string::npos) << l.hint;
}

TEST_F(CheckTest, TokenNetworkFailurePointsAtLoginUrlAndProxy) {
  config.sources = {apiSource("tenant-a", config::SourceType::kMde)};
  script.fail("POST", "/oauth2/",
              Error(ErrorCode::kNetwork, "POST https://login.test/x: Couldn't resolve proxy name"));
  run();
  const CheckLine l = line("source tenant-a", "token");
  EXPECT_NE(l.hint.find("proxy_url"), std::string::npos) << l.hint;
}

TEST_F(CheckTest, FileSourceGlobs) {
  fs::create_directories(dir.sub("in"));
  std::ofstream(dir.sub("in/a.ndjson")) << "{}\n";
  fs::create_directories(dir.sub("empty"));
  config::SourceConfig s;
  s.name = "drop";
  s.type = config::SourceType::kFile;
  s.paths = {dir.sub("in/*.ndjson"), dir.sub("empty/*.ndjson"), dir.sub("missing/*/x.ndjson")};
  config.sources = {s};
  run();
  std::vector<CheckLine> files;
  for (const auto& l : lines) {
    if (l.subject == "source drop") files.push_back(l);
  }
  ASSERT_EQ(files.size(), 3u) << table;
  EXPECT_TRUE(files[0].ok);
  EXPECT_NE(files[0].detail.find("1 file matches"), std::string::npos) << files[0].detail;
  EXPECT_TRUE(files[1].ok);
  EXPECT_NE(files[1].detail.find("no file matches yet"), std::string::npos) << files[1].detail;
  EXPECT_FALSE(files[2].ok);
  EXPECT_NE(files[2].detail.find(dir.sub("missing") + " does not exist"), std::string::npos)
      << files[2].detail;
  EXPECT_NE(files[2].hint.find("fix paths"), std::string::npos);
  EXPECT_TRUE(script.requests.empty());
}

TEST_F(CheckTest, StateDirExistingIsProbedAndLeftClean) {
  fs::create_directories(config.state_dir);
  run();
  const CheckLine l = line("state", "state_dir");
  EXPECT_TRUE(l.ok) << l.detail;
  EXPECT_NE(l.detail.find("is writable"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(config.state_dir)) << "the probe file must be removed";
}

TEST_F(CheckTest, StateDirThatIsAFileFails) {
  std::ofstream(config.state_dir) << "x";
  run();
  const CheckLine l = line("state", "state_dir");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.detail.find("not a directory"), std::string::npos) << l.detail;
  // The file output under it cannot be created either.
  EXPECT_FALSE(line("output file", "directory").ok);
}

TEST_F(CheckTest, ElasticsearchUnreachableHostFailsWithoutShowingItsPassword) {
  addElasticsearch("http://elastic:hunter2-password@127.0.0.1:9");
  config.elasticsearch.api_key = {};
  config.elasticsearch.username = "elastic";
  config.elasticsearch.password = config::Secret("hunter2-password");
  script.fail("GET", "127.0.0.1:9",
              Error(ErrorCode::kNetwork,
                    "GET http://127.0.0.1:9/: Couldn't connect to server (Connection refused)"));
  run();
  const CheckLine l = line("elasticsearch http://127.0.0.1:9", "reachable");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.hint.find("outputs.elasticsearch.hosts"), std::string::npos) << l.hint;
  // Nothing more is asked of a host that cannot be reached.
  EXPECT_EQ(script.requests.size(), 1u);
  EXPECT_EQ(table.find("hunter2"), std::string::npos) << table;
}

TEST_F(CheckTest, ElasticsearchWrongCredentials) {
  addElasticsearch();
  script.answer("GET", "es.test:9200/", 401,
                R"({"error":{"type":"security_exception","reason":"unable to authenticate"}})");
  run();
  EXPECT_TRUE(line("elasticsearch https://es.test:9200", "reachable").ok);
  const CheckLine l = line("elasticsearch https://es.test:9200", "credentials");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.detail.find("security_exception"), std::string::npos) << l.detail;
  EXPECT_NE(l.hint.find("id:api_key"), std::string::npos) << l.hint;
  EXPECT_EQ(script.count("_index_template"), 0u);
}

TEST_F(CheckTest, ElasticsearchMissingWritePrivilege) {
  addElasticsearch();
  script.answer("GET", "es.test:9200/", 403, R"({"error":{"type":"security_exception"}})");
  script.answer(
      "POST", "/_security/user/_has_privileges", 200,
      R"({"username":"collector","has_all_requested":false,"cluster":)"
      R"({"manage_index_templates":false},"index":{"logs-microsoft_defender_endpoint.log-*":)"
      R"({"create_doc":true,"auto_configure":false}}})");
  run();
  const CheckLine l = line("elasticsearch https://es.test:9200", "credentials");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.detail.find("without auto_configure"), std::string::npos) << l.detail;
  EXPECT_NE(l.hint.find("create_doc and auto_configure"), std::string::npos) << l.hint;
}

TEST_F(CheckTest, ElasticsearchTemplateMissingOutdatedAndUnreadable) {
  addElasticsearch();
  script.answer("GET", "es.test:9200/_index_template/", 404, R"({"index_templates":[]})");
  script.answer("GET", "es.test:9200/", 200, "{}");
  run();
  CheckLine l = line("elasticsearch https://es.test:9200", "template");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.detail.find("missing"), std::string::npos);
  EXPECT_EQ(l.hint, "run: mdecollect setup -c /etc/mdecollect/mdecollect.yaml");
  // Without a _has_privileges API (OpenSearch, security off), credentials pass on GET /.
  EXPECT_TRUE(line("elasticsearch https://es.test:9200", "credentials").ok);

  script.rules.clear();
  script.answer("GET", "es.test:9200/_index_template/", 200,
                templateBody(output::indexTemplateVersion() ^ 1));
  script.answer("GET", "es.test:9200/", 200, "{}");
  run();
  l = line("elasticsearch https://es.test:9200", "template");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.detail.find("another version"), std::string::npos);
  EXPECT_NE(l.hint.find("mdecollect setup -c"), std::string::npos);

  script.rules.clear();
  script.answer("GET", "es.test:9200/_index_template/", 403,
                R"({"error":{"type":"security_exception","reason":"unauthorized"}})");
  script.answer("GET", "es.test:9200/", 200, "{}");
  run();
  l = line("elasticsearch https://es.test:9200", "template");
  EXPECT_FALSE(l.ok);
  EXPECT_NE(l.hint.find("monitor (or manage_index_templates)"), std::string::npos) << l.hint;
}

TEST_F(CheckTest, NoSecretFromTheConfigIsEverPrinted) {
  config.sources = {apiSource("tenant-a", config::SourceType::kMde),
                    apiSource("tenant-b", config::SourceType::kMde)};
  config.sources[1].client_secret = config::Secret("another-secret-b");
  addElasticsearch();
  // Servers that echo what they were sent: the secrets come back in bodies and messages.
  script.answer("POST", "tenant-guid/oauth2/", 401,
                tokenError("invalid_client", 7000215,
                           std::string("secret ") + kSecret + " and another-secret-b"));
  const std::string encoded = "ZXMta2V5LWlkOmVzLWtleS1zZWNyZXQtNzc=";  // base64(kApiKey)
  script.answer("GET", "es.test:9200/", 401,
                R"({"error":{"type":"security_exception","reason":"bad key )" + encoded + " " +
                    kApiKey + R"("}})");
  run();
  const std::string json = renderCheckJson(lines);
  for (const std::string& secret :
       {std::string(kSecret), std::string("another-secret-b"), std::string(kApiKey),
        std::string("es-key-secret-77"), encoded}) {
    EXPECT_EQ(table.find(secret), std::string::npos) << secret << " in\n" << table;
    EXPECT_EQ(json.find(secret), std::string::npos) << secret << " in\n" << json;
  }
  EXPECT_NE(table.find("***"), std::string::npos) << table;
}

TEST(CheckTableTest, AlignedColumnsHintsUnderFailuresAndASummary) {
  const std::vector<CheckLine> lines = {
      {"config", "valid", true, "/x.yaml: 1 source; outputs: file", ""},
      {"source tenant-a", "token", false, "HTTP 401 invalid_client: AADSTS7000215: bad",
       "paste the secret's Value"},
      {"state", "state_dir", true, "/var/lib/mdecollect is writable", "unused hint"},
      {"source b", "alerts API", false, "HTTP 500", ""},
  };
  EXPECT_EQ(renderCheckTable(lines),
            "CHECK                    RESULT  DETAIL\n"
            "config / valid           pass    /x.yaml: 1 source; outputs: file\n"
            "source tenant-a / token  FAIL    HTTP 401 invalid_client: AADSTS7000215: bad\n"
            "  hint: paste the secret's Value\n"
            "state / state_dir        pass    /var/lib/mdecollect is writable\n"
            "source b / alerts API    FAIL    HTTP 500\n"
            "2 of 4 checks FAILED\n");
  EXPECT_EQ(renderCheckTable({lines[0]}),
            "CHECK           RESULT  DETAIL\n"
            "config / valid  pass    /x.yaml: 1 source; outputs: file\n"
            "all 1 checks passed\n");
}

TEST(CheckTableTest, JsonIsOneValidObject) {
  const std::vector<CheckLine> lines = {
      {"config", "valid", true, "a \"quoted\" path", ""},
      {"state", "state_dir", false, "nope", "make it writable"},
  };
  const std::string json = renderCheckJson(lines);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(simdjson::padded_string(json)).get(root), simdjson::SUCCESS) << json;
  EXPECT_FALSE(bool(root["ok"]));
  simdjson::dom::array checks = root["checks"];
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(std::string_view(checks.at(0)["detail"]), "a \"quoted\" path");
  EXPECT_EQ(std::string_view(checks.at(1)["hint"]), "make it writable");
  EXPECT_TRUE(bool(checks.at(0)["ok"]));
}

TEST(CheckHintTest, UnknownFailuresGetNoHint) {
  EXPECT_EQ(hintFor(HintTopic::kMdeApi, Error(ErrorCode::kHttp, "HTTP 418").withHttpStatus(418)),
            "");
  EXPECT_EQ(hintFor(HintTopic::kElasticsearch, Error(ErrorCode::kInternal, "bug")), "");
}

}  // namespace
}  // namespace mdec::pipeline
