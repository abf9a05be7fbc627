// The collector and the Defender API's retirement (source/mde_retirement.h), in process over
// a scripted API that refuses /api/alerts and a fake clock: each `mde` source is warned
// about once when the run starts, and after 2027-02-01 the poll-failure line carries the
// switch to graph. (The feature is the text of the log: these tests read it.)
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "mdecollect/config/config.h"
#include "mdecollect/pipeline/collector.h"
#include "support/fake_defender_api.h"
#include "support/temp_dir.h"

namespace mdec::pipeline {
namespace {

// Answers every request with `status`.
class RefusingApi final : public http::HttpClient {
 public:
  explicit RefusingApi(int status) : status_(status) {}
  Result<http::HttpResponse> send(const http::HttpRequest&) override {
    http::HttpResponse res;
    res.status = status_;
    res.body = R"({"error":{"code":"Gone","message":"this API is no more"}})";
    return res;
  }

 private:
  int status_;
};

// The default logger (every component's logger is a clone of it) writes into a string.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("mdecollect", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
  std::string text() const { return text_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream text_;
};

std::size_t occurrences(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// One `run --once` of an mde source "contoso" and a graph source "fabrikam" against an API
// that answers `status`, at the fake clock's time plus `days`; returns the log.
std::string runOnce(int status, int days) {
  testing::TempDir tmp{"mdec-retirement"};
  const std::string path = tmp.sub("mdecollect.yaml");
  std::ofstream(path) << "state_dir: " << tmp.sub("state")
                      << "\nhttp:\n  enabled: false\nsources:\n"
                         "  - name: contoso\n    type: mde\n"
                         "    tenant_id: 00000000-0000-4000-8000-000000000001\n    client_id: c\n  "
                         "  client_secret: s\n"
                         "    api_url: https://mde.test\n"
                         "  - name: fabrikam\n    type: graph\n"
                         "    tenant_id: 00000000-0000-4000-8000-000000000001\n    client_id: c\n  "
                         "  client_secret: s\n"
                         "    api_url: https://graph.test\n";
  auto config = config::loadConfig(path);
  EXPECT_TRUE(config) << (config ? "" : config.error().message());
  if (!config) return {};
  CollectorParts parts = realParts();
  parts.source_client = [status](const config::SourceConfig&) {
    return std::make_unique<RefusingApi>(status);
  };
  parts.tokens = [](const config::SourceConfig&, http::HttpClient&, core::Clock&) {
    return std::make_unique<testing::FakeTokens>();
  };
  testing::FakeClock clock;  // 2026-12-01
  clock.advance(std::chrono::hours(24 * days));
  RunOptions options;
  options.once = true;
  CapturedLog log;
  EXPECT_EQ(runCollector(*config, options, parts, clock, std::stop_token()), 1);
  return log.text();
}

TEST(MdeRetirementLogTest, BeforeTheDateEachMdeSourceIsWarnedAboutOnce) {
  const std::string log = runOnce(410, 0);
  EXPECT_EQ(occurrences(log, "type: mde is the legacy"), 1u) << log;
  EXPECT_EQ(occurrences(log,
                        "source contoso: type: mde is the legacy Defender for Endpoint API "
                        "(/api/alerts), which Microsoft turns off after 2027-02-01"),
            1u)
      << log;
  EXPECT_EQ(occurrences(log, "source fabrikam: type: mde"), 0u) << log;
  EXPECT_EQ(occurrences(log, "poll failed: "), 2u) << log;  // both sources refused
  EXPECT_EQ(occurrences(log, "Microsoft turned the Defender for Endpoint API off"), 0u) << log;
}

TEST(MdeRetirementLogTest, AfterTheDateARefusalOfTheMdeSourceCarriesTheSwitch) {
  // 2026-12-01 + 63 days: 2027-02-02.
  for (int status : {403, 404, 410}) {
    const std::string log = runOnce(status, 63);
    EXPECT_EQ(occurrences(log, "which Microsoft turned off after 2027-02-01"), 1u) << log;
    // The mde source's failure line ends with the switch; the graph source's does not.
    EXPECT_EQ(occurrences(log,
                          "Microsoft turned the Defender for Endpoint API off after "
                          "2027-02-01: change `type: mde` to `type: graph` and keep "
                          "`name: contoso`"),
              1u)
        << status << "\n"
        << log;
    EXPECT_EQ(occurrences(log, "poll failed: "), 2u) << log;
  }
  const std::string retry = runOnce(409, 63);
  EXPECT_EQ(occurrences(retry, "Microsoft turned the Defender for Endpoint API off"), 0u) << retry;
}

}  // namespace
}  // namespace mdec::pipeline
