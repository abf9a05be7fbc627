// The libcurl client wrapped by the request tracer, against a cpp-httplib server on 127.0.0.1
// (port 0) that plays a token endpoint and an API: the trace holds both exchanges, and
// neither the client secret nor the token it handed out.
#include "mdecollect/http/tracing_http_client.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mdecollect/http/http_client.h"
#include "support/files.h"
#include "support/json_pointer.h"
#include "support/temp_dir.h"

namespace mdec::http {
namespace {

constexpr const char* kClientSecret = "Int3gration~Client/Secret!";
constexpr const char* kToken = "eyJ.SECRET.TOKEN";

// The token endpoint and /api/alerts on 127.0.0.1, port 0; stopped and joined when destroyed.
class LoopbackServer {
 public:
  LoopbackServer() {
    server_.set_keep_alive_timeout(1);  // stop() waits for idle keep-alive workers
    server_.Post("/tenant/oauth2/token", [](const httplib::Request& req, httplib::Response& res) {
      if (req.body.find(std::string("client_secret=") + urlEncode(kClientSecret)) ==
          std::string::npos) {
        res.status = 401;
        res.set_content(R"({"error":"invalid_client"})", "application/json");
        return;
      }
      res.set_content(std::string(R"({"token_type":"Bearer","expires_in":3599,"access_token":")") +
                          kToken + "\"}",
                      "application/json");
    });
    server_.Get("/api/alerts", [](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("Authorization") != std::string("Bearer ") + kToken) {
        res.status = 401;
        return;
      }
      res.set_content(R"({"value":[{"id":"da637","title":"Suspicious process"}]})",
                      "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) return;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 1000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  ~LoopbackServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
};

TEST(TracingHttpClientIntegrationTest, TokenAndApiExchangesAreTracedWithoutSecrets) {
  LoopbackServer server;
  ASSERT_GT(server.port(), 0);
  mdec::testing::TempDir dir("mdec-trace-it");
  TraceOptions options;
  options.path = dir.sub("trace/requests.ndjson");
  auto trace = TraceWriter::open(options, {kClientSecret});
  ASSERT_TRUE(trace) << trace.error().message();

  {
    auto client = makeTracingClient(makeCurlClient(), *trace, "source.tenant-a");

    HttpRequest token;
    token.method = "POST";
    token.url = server.url() + "/tenant/oauth2/token";
    token.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
    token.body = formEncode({{"grant_type", "client_credentials"},
                             {"client_id", "app-1"},
                             {"client_secret", kClientSecret},
                             {"resource", "https://api.securitycenter.microsoft.com"}});
    token.timeout = std::chrono::seconds(10);
    auto got = client->send(token);
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_EQ(got->status, 200) << got->body;
    ASSERT_NE(got->body.find(kToken), std::string::npos);  // the caller gets it whole

    HttpRequest api;
    api.url = server.url() + "/api/alerts?$top=1";
    api.headers = {{"Authorization", std::string("Bearer ") + kToken},
                   {"Accept", "application/json"}};
    api.timeout = std::chrono::seconds(10);
    auto alerts = client->send(api);
    ASSERT_TRUE(alerts) << alerts.error().message();
    ASSERT_EQ(alerts->status, 200);
  }
  EXPECT_EQ((*trace)->lines(), 2u);
  EXPECT_EQ((*trace)->writeErrors(), 0u);

  const std::string text = mdec::testing::readFile(options.path);
  EXPECT_EQ(text.find(kClientSecret), std::string::npos) << text;
  EXPECT_EQ(text.find(urlEncode(kClientSecret)), std::string::npos) << text;
  EXPECT_EQ(text.find(kToken), std::string::npos) << text;
  EXPECT_EQ(text.find("SECRET"), std::string::npos) << text;

  std::vector<std::string> lines;
  std::istringstream split(text);
  for (std::string l; std::getline(split, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 2u) << text;

  mdec::testing::Json first(lines[0]);
  ASSERT_TRUE(first.ok()) << lines[0];
  EXPECT_EQ(first.str("/component"), "source.tenant-a");
  EXPECT_EQ(first.str("/request/method"), "POST");
  EXPECT_EQ(first.str("/request/url"), server.url() + "/tenant/oauth2/token");
  EXPECT_NE(first.str("/request/body").find("client_secret=***"), std::string::npos)
      << first.str("/request/body");
  EXPECT_EQ(first.integer("/response/status"), 200);
  EXPECT_NE(first.str("/response/body").find("\"access_token\":\"***\""), std::string::npos)
      << first.str("/response/body");
  EXPECT_NE(first.str("/response/body").find("\"expires_in\":3599"), std::string::npos);

  mdec::testing::Json second(lines[1]);
  ASSERT_TRUE(second.ok()) << lines[1];
  EXPECT_EQ(second.str("/request/method"), "GET");
  EXPECT_EQ(second.str("/request/url"), server.url() + "/api/alerts?$top=1");
  EXPECT_EQ(second.str("/request/headers/Authorization"), "Bearer ***");
  EXPECT_EQ(second.integer("/response/status"), 200);
  EXPECT_EQ(second.str("/response/headers/content-type"), "application/json");
  EXPECT_NE(second.str("/response/body").find("da637"), std::string::npos);
  EXPECT_TRUE(second.number("/duration_ms").has_value());
}

}  // namespace
}  // namespace mdec::http
