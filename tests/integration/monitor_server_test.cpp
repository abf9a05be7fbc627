// The monitoring endpoint over loopback: what it serves, a port already taken, and a stop
// right after the start (the race that made a fast `run --once` hang).
#include "mdecollect/telemetry/monitor_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

namespace mdec::telemetry {
namespace {

TEST(MonitorServerTest, ServesMetricsAndHealth) {
  Metrics metrics;
  metrics.source("a", "mde").setState(State::kCollecting);
  core::SystemClock clock;
  auto server = startMonitorServer("127.0.0.1", 0, metrics, clock);
  ASSERT_TRUE(server) << server.error().message();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(5, 0);

  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/plain; version=0.0.4"),
            std::string::npos);
  EXPECT_NE(res->body.find(R"(mdecollect_source_state{source="a",type="mde",state="collecting"} 1)"),
            std::string::npos)
      << res->body;

  res = client.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  EXPECT_NE(res->body.find(R"("status":"ok")"), std::string::npos) << res->body;

  metrics.source("a", "mde").setState(State::kFailing, "invalid_client");
  res = client.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);

  res = client.Get("/nothing");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST(MonitorServerTest, APortInUseIsAnErrorThatNamesIt) {
  Metrics metrics;
  core::SystemClock clock;
  auto first = startMonitorServer("127.0.0.1", 0, metrics, clock);
  ASSERT_TRUE(first) << first.error().message();
  const int port = (*first)->port();
  auto second = startMonitorServer("127.0.0.1", port, metrics, clock);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("cannot listen on 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << second.error().message();
}

// Regression: a stop that came before the server thread entered its accept loop was lost,
// and the join waited for ever.
TEST(MonitorServerTest, StopRightAfterStartReturns) {
  Metrics metrics;
  core::SystemClock clock;
  for (int i = 0; i < 50; ++i) {
    auto server = startMonitorServer("127.0.0.1", 0, metrics, clock);
    ASSERT_TRUE(server) << server.error().message();
    (*server)->stop();
  }
}

}  // namespace
}  // namespace mdec::telemetry
