#include "mdecollect/http/tracing_http_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mdecollect/output/elasticsearch_output.h"
#include "support/files.h"
#include "support/json_pointer.h"
#include "support/temp_dir.h"

namespace mdec::http {
namespace {

using mdec::testing::Json;
using mdec::testing::TempDir;
using std::chrono::microseconds;

using Handler = std::function<Result<HttpResponse>(const HttpRequest&)>;

class FakeClient final : public HttpClient {
 public:
  explicit FakeClient(Handler handler) : handler_(std::move(handler)) {}
  Result<HttpResponse> send(const HttpRequest& request) override { return handler_(request); }

 private:
  Handler handler_;
};

HttpResponse respond(int status, std::string body,
                     std::map<std::string, std::string> headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

std::vector<std::string> readLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path, std::ios::binary);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

using mdec::testing::readFile;

class TracingTest : public ::testing::Test {
 protected:
  std::shared_ptr<TraceWriter> open(std::vector<std::string> secrets = {},
                                    std::uint64_t max_body = 4096) {
    TraceOptions options;
    options.path = dir_.sub("trace/requests.ndjson");
    options.max_body_bytes = max_body;
    auto w = TraceWriter::open(options, std::move(secrets));
    EXPECT_TRUE(w) << w.error().message();
    return w ? *w : nullptr;
  }
  std::string path() const { return dir_.sub("trace/requests.ndjson"); }

  // The line written for one exchange (formatLine: what write() writes).
  static std::string lineFor(const TraceWriter& w, const HttpRequest& request,
                             const Result<HttpResponse>& response) {
    return w.formatLine("source.test", request, response, microseconds(12345));
  }

  TempDir dir_{"mdec-trace"};
};

// --- the line -------------------------------------------------------------------------------

TEST_F(TracingTest, ForwardsAndWritesOneLinePerExchange) {
  auto w = open();
  ASSERT_TRUE(w);
  int calls = 0;
  auto client = makeTracingClient(
      std::make_unique<FakeClient>([&](const HttpRequest& r) {
        ++calls;
        return Result<HttpResponse>(
            respond(200, "{\"value\":[]}\n" + r.url, {{"content-type", "application/json"}}));
      }),
      w, "source.tenant-a");
  HttpRequest request;
  request.url = "https://api.example/api/alerts?$top=10";
  request.headers = {{"Accept", "application/json"}};
  auto r = client->send(request);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"value\":[]}\nhttps://api.example/api/alerts?$top=10");
  request.method = "POST";
  request.body = "{\"a\":\"\\u00e9\\\"\"}";
  ASSERT_TRUE(client->send(request));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(w->lines(), 2u);
  EXPECT_EQ(w->writeErrors(), 0u);

  const auto lines = readLines(path());
  ASSERT_EQ(lines.size(), 2u);
  Json first(lines[0]);
  ASSERT_TRUE(first.ok()) << lines[0];
  EXPECT_TRUE(std::regex_match(first.str("/@timestamp"),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << first.str("/@timestamp");
  EXPECT_EQ(first.str("/component"), "source.tenant-a");
  EXPECT_EQ(first.str("/request/method"), "GET");
  EXPECT_EQ(first.str("/request/url"), "https://api.example/api/alerts?$top=10");
  EXPECT_EQ(first.str("/request/headers/Accept"), "application/json");
  EXPECT_EQ(first.str("/request/body"), "");
  EXPECT_EQ(first.integer("/request/body_bytes"), 0);
  EXPECT_FALSE(first.has("/request/body_truncated"));
  EXPECT_EQ(first.integer("/response/status"), 200);
  EXPECT_EQ(first.str("/response/headers/content-type"), "application/json");
  EXPECT_EQ(first.str("/response/body"), r->body);
  EXPECT_EQ(first.integer("/response/body_bytes"), static_cast<std::int64_t>(r->body.size()));
  EXPECT_FALSE(first.has("/error"));
  ASSERT_TRUE(first.number("/duration_ms"));
  EXPECT_GE(*first.number("/duration_ms"), 0.0);

  Json second(lines[1]);
  ASSERT_TRUE(second.ok()) << lines[1];
  EXPECT_EQ(second.str("/request/method"), "POST");
  EXPECT_EQ(second.str("/request/body"), request.body);  // escaped and read back unchanged

  // The exact duration, through formatLine.
  Json exact(lineFor(*w, request, respond(204, "")));
  EXPECT_EQ(exact.number("/duration_ms"), 12.345);
}

TEST_F(TracingTest, TransportErrorIsRecorded) {
  auto w = open({"pr0xy-Secret"});
  ASSERT_TRUE(w);
  auto client = makeTracingClient(
      std::make_unique<FakeClient>([](const HttpRequest&) {
        return Result<HttpResponse>(Error(ErrorCode::kNetwork,
                                          "connect to http://u:pr0xy-Secret@proxy:3128 "
                                          "failed: Connection refused"));
      }),
      w, "output.elasticsearch");
  HttpRequest request;
  request.url = "http://es:9200/_bulk";
  auto r = client->send(request);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNetwork);  // the caller sees the error unchanged
  EXPECT_NE(r.error().message().find("pr0xy-Secret"), std::string::npos);

  const auto lines = readLines(path());
  ASSERT_EQ(lines.size(), 1u);
  Json line(lines[0]);
  ASSERT_TRUE(line.ok()) << lines[0];
  EXPECT_EQ(line.str("/component"), "output.elasticsearch");
  EXPECT_FALSE(line.has("/response"));
  EXPECT_EQ(line.str("/error"),
            "network: connect to http://u:***@proxy:3128 failed: Connection refused");
  EXPECT_EQ(lines[0].find("pr0xy"), std::string::npos);
}

// --- redaction ------------------------------------------------------------------------------

TEST_F(TracingTest, BearerHeaderKeepsItsScheme) {
  auto w = open();
  ASSERT_TRUE(w);
  HttpRequest request;
  request.url = "https://api.example/api/alerts";
  request.headers = {{"Authorization", "Bearer eyJ0eXAi.payload.sig"},
                     {"proxy-authorization", "Basic dTpw"},
                     {"Cookie", "session=abc"},
                     {"X-Api-Key", "k-123"},
                     {"Prefer", "include-unknown-enum-members"}};
  Json line(lineFor(
      *w, request,
      respond(200, "{}",
              {{"set-cookie", "session=def; HttpOnly"}, {"www-authenticate", "Bearer realm=x"}})));
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line.str("/request/headers/Authorization"), "Bearer ***");
  EXPECT_EQ(line.str("/request/headers/proxy-authorization"), "Basic ***");
  EXPECT_EQ(line.str("/request/headers/Cookie"), "***");
  EXPECT_EQ(line.str("/request/headers/X-Api-Key"), "***");
  EXPECT_EQ(line.str("/request/headers/Prefer"), "include-unknown-enum-members");
  EXPECT_EQ(line.str("/response/headers/set-cookie"), "***");
  EXPECT_EQ(line.str("/response/headers/www-authenticate"), "Bearer realm=x");

  request.headers = {{"AUTHORIZATION", "opaque-token-without-scheme"}};
  Json bare(lineFor(*w, request, respond(200, "")));
  EXPECT_EQ(bare.str("/request/headers/AUTHORIZATION"), "***");
}

TEST_F(TracingTest, FormBodyClientSecretIsMasked) {
  auto w = open();
  ASSERT_TRUE(w);
  HttpRequest request;
  request.method = "POST";
  request.url = "https://login.example/tenant/oauth2/token";
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  request.body = formEncode({{"grant_type", "client_credentials"},
                             {"client_id", "app-1"},
                             {"client_secret", "Fo rm/S3cret&x=1"},
                             {"client_assertion", "eyJhbGci"},
                             {"refresh_token", "rt-1"},
                             {"resource", "https://api.example"}});
  Json line(lineFor(*w, request, respond(200, "")));
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line.str("/request/body"),
            "grant_type=client_credentials&client_id=app-1&client_secret=***&"
            "client_assertion=***&refresh_token=***&resource=https%3A%2F%2Fapi.example");
  EXPECT_EQ(line.integer("/request/body_bytes"), static_cast<std::int64_t>(request.body.size()));

  // Not a form: a body that only looks like one is left alone (JSON and secrets still apply).
  request.headers = {{"Content-Type", "text/plain"}};
  request.body = "code=1";
  EXPECT_EQ(Json(lineFor(*w, request, respond(200, ""))).str("/request/body"), "code=1");
}

TEST_F(TracingTest, TokenResponseTokensAreMasked) {
  auto w = open();
  ASSERT_TRUE(w);
  HttpRequest request;
  request.method = "POST";
  const std::string body =
      "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"eyJ.a\\\"b\\\\.c\","
      "\"refresh_token\" : \"rt\",\n\"id_token\":\"idt\",\"password\":\"\","
      "\"nested\":{\"api_key\":\"k\",\"client_secret\":\"s\"},\"note\":\"access_token\"}";
  Json line(lineFor(*w, request,
                    respond(200, body, {{"content-type", "application/json; charset=utf-8"}})));
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line.str("/response/body"),
            "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"***\","
            "\"refresh_token\" : \"***\",\n\"id_token\":\"***\",\"password\":\"\","
            "\"nested\":{\"api_key\":\"***\",\"client_secret\":\"***\"},"
            "\"note\":\"access_token\"}");
}

TEST_F(TracingTest, ElasticsearchApiKeyHeaderAndItsBase64Form) {
  // "id:key" as configured: the header carries base64("id:key").
  config::Config config;
  config.elasticsearch.api_key = config::Secret("kid:Es-K3y-Value");
  const std::vector<std::string> secrets = secretValues(config);
  const std::string encoded = "a2lkOkVzLUszeS1WYWx1ZQ==";  // base64("kid:Es-K3y-Value")
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), encoded), secrets.end());
  auto w = open(secrets);
  ASSERT_TRUE(w);
  HttpRequest request;
  request.method = "POST";
  request.url = "http://es:9200/_bulk";
  request.headers = {{"Authorization", "ApiKey " + encoded}};
  request.body = "{\"create\":{}}\n{\"message\":\"the key is " + encoded + "\"}\n";
  const std::string text =
      lineFor(*w, request,
              respond(401,
                      "{\"error\":\"unable to authenticate with provided credentials "
                      "[kid:Es-K3y-Value] and Es-K3y-Value\"}"));
  Json line(text);
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line.str("/request/headers/Authorization"), "ApiKey ***");
  EXPECT_EQ(line.str("/request/body"), "{\"create\":{}}\n{\"message\":\"the key is ***\"}\n");
  EXPECT_EQ(line.str("/response/body"),
            "{\"error\":\"unable to authenticate with provided credentials [***] and ***\"}");
  EXPECT_EQ(text.find("Es-K3y"), std::string::npos);
  EXPECT_EQ(text.find(encoded), std::string::npos);
}

TEST_F(TracingTest, BasicAuth) {
  config::Config config;
  config.elasticsearch.username = "elastic";
  config.elasticsearch.password = config::Secret("Es-Passw0rd");
  const std::vector<std::string> secrets = secretValues(config);
  const std::string encoded = "ZWxhc3RpYzpFcy1QYXNzdzByZA==";  // base64("elastic:Es-Passw0rd")
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), encoded), secrets.end());
  auto w = open(secrets);
  ASSERT_TRUE(w);
  HttpRequest request;
  request.url = "http://es:9200/";
  request.headers = {{"Authorization", "Basic " + encoded}, {"X-Debug", encoded}};
  const std::string text = lineFor(*w, request, respond(200, "password Es-Passw0rd"));
  Json line(text);
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line.str("/request/headers/Authorization"), "Basic ***");
  EXPECT_EQ(line.str("/request/headers/X-Debug"), "***");
  EXPECT_EQ(line.str("/response/body"), "password ***");
  EXPECT_EQ(text.find(encoded), std::string::npos);
  EXPECT_EQ(text.find("Passw0rd"), std::string::npos);
}

TEST_F(TracingTest, ProxyPasswordAndSecretQueryParametersInUrl) {
  auto w = open();
  ASSERT_TRUE(w);
  HttpRequest request;
  request.url = "http://user:P%40ss@proxy:3128/cb?code=abc&state=1&password=x#frag";
  Json line(lineFor(*w, request, respond(200, "")));
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line.str("/request/url"),
            "http://user:***@proxy:3128/cb?code=***&state=1&password=***#frag");

  request.url = "https://user@host/x";  // no password: nothing to hide
  EXPECT_EQ(Json(lineFor(*w, request, respond(200, ""))).str("/request/url"), request.url);
}

TEST_F(TracingTest, ConfiguredSecretInResponseBodyAndErrorMessage) {
  // A secret with characters that URL-encoding and JSON escaping change.
  const std::string secret = "S3cr3t/Va\"lue\\9";
  auto w = open({secret});
  ASSERT_TRUE(w);
  HttpRequest request;
  request.url = "https://login.example/token";
  const std::string body = "AADSTS7000215: Invalid client secret provided: " + secret +
                           " (as a form value: " + urlEncode(secret) +
                           ", in JSON: S3cr3t\\/Va\\\"lue\\\\9, S3cr3t/Va\\\"lue\\\\9)";
  const std::string text = lineFor(*w, request, respond(401, body));
  Json line(text);
  ASSERT_TRUE(line.ok()) << text;
  EXPECT_EQ(line.str("/response/body"),
            "AADSTS7000215: Invalid client secret provided: *** (as a form value: ***, in JSON: "
            "***, ***)");
  EXPECT_EQ(text.find("S3cr3t"), std::string::npos) << text;

  const std::string error_text =
      lineFor(*w, request, Error(ErrorCode::kAuth, "token request refused for " + secret));
  Json error(error_text);
  ASSERT_TRUE(error.ok()) << error_text;
  EXPECT_EQ(error.str("/error"), "auth: token request refused for ***");
  EXPECT_EQ(error_text.find("S3cr3t"), std::string::npos);
}

TEST_F(TracingTest, SecretThatEscapingWouldSpellIsMaskedInTheEscapedText) {
  // The secret is the six characters a\nb\tc (backslashes included); the body holds the
  // control characters, whose escaped form spells the secret.
  const std::string secret = "a\\nb\\tc";
  auto w = open({secret});
  ASSERT_TRUE(w);
  const std::string text = lineFor(*w, HttpRequest{}, respond(200, "x a\nb\tc y \\a\\nb"));
  Json line(text);
  ASSERT_TRUE(line.ok()) << text;
  EXPECT_EQ(line.str("/response/body"), "x *** y \\a\\nb");
  EXPECT_EQ(text.find(secret), std::string::npos) << text;
  // A match must begin and end on whole escapes: "nb\" is not masked inside "\nb\t".
  auto other = open({"nb\\"});
  ASSERT_TRUE(other);
  const std::string kept = lineFor(*other, HttpRequest{}, respond(200, "\nb\t"));
  EXPECT_TRUE(Json(kept).ok()) << kept;
  EXPECT_EQ(Json(kept).str("/response/body"), "\nb\t");
}

TEST_F(TracingTest, SecretStraddlingTheCutDoesNotLeak) {
  const std::string secret = "ABCDEFGHIJ-straddling-secret";
  auto w = open({secret}, 64);
  ASSERT_TRUE(w);
  // The secret starts 6 bytes before the cut.
  const std::string body = std::string(58, 'x') + secret + std::string(100, 'y');
  const std::string text = lineFor(*w, HttpRequest{}, respond(200, body));
  Json line(text);
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line.str("/response/body"), std::string(58, 'x') + "***");
  EXPECT_EQ(line.boolean("/response/body_truncated"), true);
  EXPECT_EQ(line.integer("/response/body_bytes"), static_cast<std::int64_t>(body.size()));
  EXPECT_EQ(text.find("ABCDEF"), std::string::npos);

  // Masking shortens what comes before the cut: bytes past the cut still never show, so a
  // secret starting past it (and past the window looked at) cannot leak its first part.
  const std::string shrunk = "{\"access_token\":\"" + std::string(30, 't') + "\",\"x\":\"" +
                             std::string(20, 'x') + secret + "\"}";
  const std::string text2 = lineFor(*w, HttpRequest{}, respond(200, shrunk));
  Json line2(text2);
  ASSERT_TRUE(line2.ok());
  EXPECT_EQ(line2.str("/response/body"),
            "{\"access_token\":\"***\",\"x\":\"" + std::string(10, 'x'));
  EXPECT_EQ(text2.find("ABC"), std::string::npos) << text2;

  // A secret key's value still open at the end of the window is masked to there.
  const std::string open_value = "{\"access_token\":\"" + std::string(200, 't') + "\"}";
  Json line3(lineFor(*w, HttpRequest{}, respond(200, open_value)));
  EXPECT_EQ(line3.str("/response/body"), "{\"access_token\":\"***");
  EXPECT_EQ(line3.boolean("/response/body_truncated"), true);
}

TEST_F(TracingTest, BodyCutIsUtf8Safe) {
  // "é" is two bytes, "😀" four: no cut point may split them.
  const std::string body =
      "a" + std::string("\xC3\xA9\xF0\x9F\x98\x80") + "\xC3\xA9" + "\xF0\x9F\x98\x80" + "tail";
  for (std::uint64_t max = 1; max < body.size(); ++max) {
    auto w = open({}, max);
    ASSERT_TRUE(w);
    const std::string text = lineFor(*w, HttpRequest{}, respond(200, body));
    Json line(text);  // simdjson validates UTF-8
    ASSERT_TRUE(line.ok()) << "max " << max << ": " << text;
    const std::string cut = line.str("/response/body");
    EXPECT_LE(cut.size(), max);
    EXPECT_GE(cut.size() + 3, max);
    EXPECT_EQ(body.compare(0, cut.size(), cut), 0) << "max " << max;
    EXPECT_EQ(line.boolean("/response/body_truncated"), true);
    EXPECT_EQ(text.find("\xEF\xBF\xBD"), std::string::npos) << "max " << max;  // no U+FFFD
  }
  // Characters that need escaping are cut whole too: the line stays valid JSON.
  const std::string quotes = std::string(10, '"') + std::string(10, '\n') + std::string(10, '\\');
  for (std::uint64_t max = 1; max < quotes.size(); ++max) {
    auto w = open({}, max);
    ASSERT_TRUE(w);
    Json line(lineFor(*w, HttpRequest{}, respond(200, quotes)));
    ASSERT_TRUE(line.ok()) << max;
    EXPECT_EQ(line.str("/response/body"), quotes.substr(0, max));
  }
  // Invalid UTF-8 (a gzip body, say) is written as U+FFFD and the line stays valid.
  auto w = open();
  ASSERT_TRUE(w);
  Json binary(lineFor(*w, HttpRequest{}, respond(200, std::string("\x1F\x8B\x08\x00\xFF", 5))));
  ASSERT_TRUE(binary.ok());
  EXPECT_EQ(binary.integer("/response/body_bytes"), 5);
}

TEST_F(TracingTest, LargeBodyIsCut) {
  const std::string secret = "big-body-secret";
  auto w = open({secret}, 4096);
  ASSERT_TRUE(w);
  std::string body(8u << 20, 'z');
  body.replace(4090, secret.size(), secret);
  body.replace(body.size() - 100, secret.size(), secret);
  const std::string text = lineFor(*w, HttpRequest{}, respond(200, body));
  EXPECT_LT(text.size(), 6000u);
  Json line(text);
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line.str("/response/body"), std::string(4090, 'z') + "***");
  EXPECT_EQ(line.integer("/response/body_bytes"), 8 << 20);
  EXPECT_EQ(line.boolean("/response/body_truncated"), true);
}

// --- the file -------------------------------------------------------------------------------

TEST_F(TracingTest, RotationKeepsFiles) {
  for (int keep : {2, 0}) {
    SCOPED_TRACE("keep_files " + std::to_string(keep));
    TempDir dir("mdec-trace-rotate");
    TraceOptions options;
    options.path = dir.sub("requests.ndjson");
    options.rotate_bytes = 2000;
    options.keep_files = keep;
    auto w = TraceWriter::open(options, {});
    ASSERT_TRUE(w) << w.error().message();
    auto client = makeTracingClient(std::make_unique<FakeClient>([](const HttpRequest& r) {
                                      return Result<HttpResponse>(respond(200, r.body));
                                    }),
                                    *w, "source.rotate");
    for (int i = 0; i < 60; ++i) {
      HttpRequest request;
      request.url = "http://h/" + std::to_string(i);
      request.body = std::string(static_cast<std::size_t>(50 + i), 'b');
      ASSERT_TRUE(client->send(request));
    }
    EXPECT_EQ((*w)->lines(), 60u);
    EXPECT_EQ((*w)->writeErrors(), 0u);

    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      files.push_back(entry.path().filename().string());
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> expected = {"requests.ndjson"};
    for (int i = 1; i <= keep; ++i) expected.push_back("requests.ndjson." + std::to_string(i));
    EXPECT_EQ(files, expected);

    int last = 60;  // newest file first, each file's lines in order: numbers only go down
    for (const auto& name : expected) {
      const std::string text = readFile(dir.sub(name));
      EXPECT_LE(text.size(), 2000u) << name;
      ASSERT_FALSE(text.empty()) << name;
      EXPECT_EQ(text.back(), '\n') << name;
      const auto lines = readLines(dir.sub(name));
      for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        Json line(*it);
        ASSERT_TRUE(line.ok()) << name << ": " << *it;
        const std::string url = line.str("/request/url");
        const int n = std::stoi(url.substr(std::string("http://h/").size()));
        EXPECT_EQ(n, last - 1) << name;
        last = n;
      }
    }
  }
}

TEST_F(TracingTest, ConcurrentWritesKeepEveryLineWhole) {
  TraceOptions options;
  options.path = dir_.sub("concurrent/requests.ndjson");
  options.rotate_bytes = 256u << 10;
  options.keep_files = 100;  // nothing dropped: every line can be counted
  auto w = TraceWriter::open(options, {"thread-secret"});
  ASSERT_TRUE(w) << w.error().message();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 150;
  std::atomic<int> failures{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        auto client = makeTracingClient(std::make_unique<FakeClient>([](const HttpRequest& r) {
                                          return Result<HttpResponse>(respond(200, r.body));
                                        }),
                                        *w, "source.t" + std::to_string(t));
        for (int i = 0; i < kPerThread; ++i) {
          HttpRequest request;
          request.url = "http://h/" + std::to_string(t) + "/" + std::to_string(i);
          const auto size = static_cast<std::size_t>((i * 37) % 3000);
          request.body = std::string(size, static_cast<char>('a' + t)) + "thread-secret";
          if (!client->send(request)) ++failures;
        }
      });
    }
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ((*w)->lines(), static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_EQ((*w)->writeErrors(), 0u);

  std::vector<int> next(kThreads, 0);
  int total = 0;
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.sub("concurrent"))) {
    files.push_back(entry.path().string());
  }
  for (const auto& file : files) {
    const std::string text = readFile(file);
    EXPECT_EQ(text.find("thread-secret"), std::string::npos);
    for (const auto& l : readLines(file)) {
      Json line(l);
      ASSERT_TRUE(line.ok()) << file << ": " << l.substr(0, 200);
      const std::string component = line.str("/component");
      ASSERT_EQ(component.rfind("source.t", 0), 0u) << component;
      ++total;
    }
  }
  EXPECT_EQ(total, kThreads * kPerThread);
  EXPECT_GT(files.size(), 2u);  // it did rotate while the threads wrote
}

TEST_F(TracingTest, OpenFailsWhenTheFileCannotBeOpened) {
  std::ofstream(dir_.sub("file")) << "x";
  TraceOptions options;
  options.path = dir_.sub("file/requests.ndjson");  // its parent is a file
  auto w = TraceWriter::open(options, {});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), ErrorCode::kIo);
  options.path = dir_.path();  // a directory
  w = TraceWriter::open(options, {});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code(), ErrorCode::kIo);
}

TEST_F(TracingTest, WriteErrorsAreCountedAndDoNotFailTheCaller) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  TraceOptions options;
  options.path = "/dev/full";  // every write fails with ENOSPC
  auto w = TraceWriter::open(options, {});
  ASSERT_TRUE(w) << w.error().message();
  auto client = makeTracingClient(std::make_unique<FakeClient>([](const HttpRequest&) {
                                    return Result<HttpResponse>(respond(200, "ok"));
                                  }),
                                  *w, "source.full");
  for (int i = 0; i < 3; ++i) {
    auto r = client->send(HttpRequest{});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "ok");
  }
  EXPECT_EQ((*w)->lines(), 0u);
  EXPECT_EQ((*w)->writeErrors(), 3u);
}

TEST_F(TracingTest, NoWriterMeansTheInnerClient) {
  auto inner = std::make_unique<FakeClient>(
      [](const HttpRequest&) { return Result<HttpResponse>(respond(200, "")); });
  HttpClient* raw = inner.get();
  EXPECT_EQ(makeTracingClient(std::move(inner), nullptr, "x").get(), raw);
}

// --- secretValues ---------------------------------------------------------------------------

config::Config loadYaml(const TempDir& dir, const std::string& yaml) {
  const std::string path = dir.sub("config.yml");
  std::ofstream(path, std::ios::binary) << yaml;
  auto r = config::loadConfig(path);
  EXPECT_TRUE(r) << r.error().message();
  return r ? *r : config::Config{};
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST_F(TracingTest, SecretValuesOfAConfig) {
  const std::string sources = R"(state_dir: )" + dir_.sub("state") + R"(
sources:
  - name: tenant-a
    type: mde
    tenant_id: t-1
    client_id: app-1
    client_secret: Cl1ent-Secret-A
    proxy_url: http://proxyuser:Pr%40xy-Pass@proxy:3128
  - name: tenant-b
    type: graph
    tenant_id: t-2
    client_id: app-2
    client_secret: Cl1ent-Secret-B
  - name: replay
    type: file
    paths: [/data/*.ndjson]
)";
  const config::Config with_key = loadYaml(dir_, sources + R"(outputs:
  elasticsearch:
    hosts: [http://es:9200]
    api_key: kid:Es-K3y-Value
    proxy_url: http://esproxy:Es-Pr0xy@proxy2:8080
)");
  const auto secrets = secretValues(with_key);
  EXPECT_TRUE(contains(secrets, "Cl1ent-Secret-A"));
  EXPECT_TRUE(contains(secrets, "Cl1ent-Secret-B"));
  EXPECT_TRUE(contains(secrets, "Pr%40xy-Pass"));  // as written in the URL
  EXPECT_TRUE(contains(secrets, "Pr@xy-Pass"));    // decoded
  EXPECT_TRUE(contains(secrets, "kid:Es-K3y-Value"));
  EXPECT_TRUE(contains(secrets, "a2lkOkVzLUszeS1WYWx1ZQ=="));  // base64, as in the header
  EXPECT_TRUE(contains(secrets, "Es-K3y-Value"));
  EXPECT_TRUE(contains(secrets, "Es-Pr0xy"));
  EXPECT_FALSE(contains(secrets, ""));
  EXPECT_FALSE(contains(secrets, "app-1"));
  EXPECT_FALSE(contains(secrets, "proxyuser"));
  auto sorted = secrets;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());  // no duplicates

  // username/password (the config allows them or an api_key, not both).
  const config::Config with_password = loadYaml(dir_, sources + R"(outputs:
  elasticsearch:
    hosts: [http://es:9200]
    username: elastic
    password: Es-Passw0rd
)");
  const auto secrets2 = secretValues(with_password);
  EXPECT_TRUE(contains(secrets2, "Es-Passw0rd"));
  EXPECT_TRUE(contains(secrets2, "ZWxhc3RpYzpFcy1QYXNzdzByZA=="));  // base64("elastic:Es-Passw0rd")
  EXPECT_TRUE(contains(secrets2, "Cl1ent-Secret-A"));
  EXPECT_FALSE(contains(secrets2, "elastic"));

  // Through the writer: none of them shows in a line.
  auto w = open(secrets);
  ASSERT_TRUE(w);
  HttpRequest request;
  request.body = "Cl1ent-Secret-A Pr%40xy-Pass Pr@xy-Pass Es-K3y-Value Es-Pr0xy";
  Json line(lineFor(*w, request, respond(200, "")));
  EXPECT_EQ(line.str("/request/body"), "*** *** *** *** ***");
}

TEST_F(TracingTest, GzipRequestBodiesAreShownInflatedCutAndRedacted) {
  auto w = open({"Es-Key-S3cret"}, 64);
  ASSERT_TRUE(w);
  std::string plain = R"({"create":{"_id":"1"}})";
  plain += "\n{\"message\":\"Es-Key-S3cret\"}\n";
  for (int i = 0; i < 200; ++i) plain += "{\"filler\":\"xxxxxxxxxxxxxxxx\"}\n";
  auto packed = output::gzip(plain);
  ASSERT_TRUE(packed);
  HttpRequest request;
  request.method = "POST";
  request.url = "http://127.0.0.1:9200/_bulk";
  request.headers = {{"Content-Type", "application/x-ndjson"}, {"Content-Encoding", "gzip"}};
  request.body = *packed;
  Json line(lineFor(*w, request, Result<HttpResponse>(respond(200, "{}"))));
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line.str("/request/body"), R"({"create":{"_id":"1"}})"
                                       "\n{\"message\":\"***\"}\n{\"filler\":\"xx")
      << line.str("/request/body");
  EXPECT_EQ(line.str("/request/body_encoding"), "gzip");
  EXPECT_TRUE(line.has("/request/body_truncated"));
}

}  // namespace
}  // namespace mdec::http
