// The monitoring endpoint over loopback: what it serves, a port already taken, a stop
// right after the start (the race that made a fast `run --once` hang), and its bounds:
// methods, bodies, headers, idle connections, a prompt stop with clients still connected.
#include "mdecollect/telemetry/monitor_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mdecollect/core/unique_fd.h"

namespace mdec::telemetry {
namespace {

using core::UniqueFd;
using std::chrono::steady_clock;

// A plain TCP connection to 127.0.0.1:`port` (invalid when it cannot be made).
UniqueFd connectTo(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return UniqueFd();
  }
  return fd;
}

bool sendAll(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// What the server sends until it closes the connection (or resets it), or `limit` passes.
std::string readUntilClosed(int fd, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  std::string out;
  const auto deadline = steady_clock::now() + limit;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// True when the server has closed (or reset) the connection, seen within `limit` (what it
// sent before, an answer, is skipped).
bool closedByServer(int fd, std::chrono::milliseconds limit) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(limit.count())) <= 0) return false;
  char buf[4096];
  for (int i = 0; i < 64; ++i) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
  return false;
}

struct Running {
  Running() {
    metrics.source("a", "mde").setState(State::kCollecting);
    auto started = startMonitorServer("127.0.0.1", 0, metrics, clock);
    EXPECT_TRUE(started) << started.error().message();
    if (started) server = std::move(*started);
  }
  int port() const { return server ? server->port() : 0; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port());
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(5, 0);
    c.set_write_timeout(5, 0);
    return c;
  }

  Metrics metrics;
  core::SystemClock clock;
  std::unique_ptr<MonitorServer> server;
};

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
  EXPECT_NE(
      res->body.find(R"(mdecollect_source_state{source="a",type="mde",state="collecting"} 1)"),
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

// Regression: every method was read (with its body, unbounded) before the 404.
TEST(MonitorServerTest, OnlyGetAndHeadAreServed) {
  Running r;
  ASSERT_GT(r.port(), 0);
  auto client = r.client();
  auto res = client.Post("/health", "{}", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  EXPECT_EQ(res->get_header_value("Allow"), "GET, HEAD");
  res = client.Put("/metrics", "x", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  res = client.Delete("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  res = client.Options("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);

  res = client.Head("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(res->body.empty());
  res = client.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

// Regression: a request body had no size limit (cpp-httplib's default is unlimited).
TEST(MonitorServerTest, ALargeBodyIsRefusedWithoutBeingRead) {
  Running r;
  ASSERT_GT(r.port(), 0);
  {
    UniqueFd fd = connectTo(r.port());
    ASSERT_TRUE(fd.valid());
    ASSERT_TRUE(
        sendAll(fd.get(), "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" +
                              std::string(8192, 'a')));
    const std::string answer = readUntilClosed(fd.get());
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 413") << answer;
    EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  }
  {
    UniqueFd fd = connectTo(r.port());
    ASSERT_TRUE(fd.valid());
    ASSERT_TRUE(sendAll(fd.get(),
                        "GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "ffff\r\n" +
                            std::string(4096, 'b')));
    const std::string answer = readUntilClosed(fd.get());
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 413") << answer;
  }
  {
    // A POST with a large body: 405 (the body is never read) or refused while sending.
    auto client = r.client();
    auto res = client.Post("/metrics", std::string(1 << 20, 'c'), "text/plain");
    if (res) {
      EXPECT_TRUE(res->status == 405 || res->status == 413) << res->status;
    }
  }
  // Headers without end, and the server is still there.
  {
    UniqueFd fd = connectTo(r.port());
    ASSERT_TRUE(fd.valid());
    std::string headers = "GET /health HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 1000; ++i) headers += "X-Filler-" + std::to_string(i) + ": 0123456789\r\n";
    sendAll(fd.get(), headers);  // may fail once the server has closed
    const std::string answer = readUntilClosed(fd.get());
    EXPECT_TRUE(answer.empty() || answer.substr(0, 12) == "HTTP/1.1 431") << answer;
  }
  auto res = r.client().Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(MonitorServerTest, AConnectionKeptAliveServesSeveralRequests) {
  Running r;
  ASSERT_GT(r.port(), 0);
  UniqueFd fd = connectTo(r.port());
  ASSERT_TRUE(fd.valid());
  // Two requests at once (pipelined), the second closing the connection.
  ASSERT_TRUE(sendAll(fd.get(),
                      "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string answer = readUntilClosed(fd.get());
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 200") << answer;
  EXPECT_NE(answer.find("HTTP/1.1 404"), std::string::npos) << answer;
}

// Regression: every connection took one of two worker threads for as long as it stayed
// idle (the keep-alive timeout), and the queue in front of them had no bound: a few idle
// connections kept /health from answering, many grew the queue without limit.
TEST(MonitorServerTest, ManyIdleConnectionsDoNotStopHealthFromAnswering) {
  Running r;
  ASSERT_GT(r.port(), 0);
  constexpr int kIdle = 150;
  std::vector<UniqueFd> idle;
  const auto start = steady_clock::now();
  for (int i = 0; i < kIdle && steady_clock::now() - start < std::chrono::seconds(20); ++i) {
    idle.push_back(connectTo(r.port()));
    ASSERT_TRUE(idle.back().valid()) << i;
  }
  ASSERT_EQ(idle.size(), static_cast<std::size_t>(kIdle));

  const auto asked = steady_clock::now();
  auto client = r.client();
  auto res = client.Get("/health");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(steady_clock::now() - asked, std::chrono::seconds(3));
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  // Bounded: the server keeps at most 64 connections (it closed the oldest to make room).
  std::vector<bool> closed(idle.size(), false);
  int count = 0;
  const auto until = steady_clock::now() + std::chrono::seconds(3);
  while (count < kIdle - 64 && steady_clock::now() < until) {
    for (std::size_t i = 0; i < idle.size(); ++i) {
      if (!closed[i] && closedByServer(idle[i].get(), std::chrono::milliseconds(0))) {
        closed[i] = true;
        ++count;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(count, kIdle - 64);
}

TEST(MonitorServerTest, StopsPromptlyWithClientsStillConnected) {
  Running r;
  ASSERT_GT(r.port(), 0);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(connectTo(r.port()));
  // One in the middle of its headers, one that sent a request and does not read.
  ASSERT_TRUE(sendAll(clients[0].get(), "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  ASSERT_TRUE(sendAll(clients[1].get(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(r.client().Get("/health"));
  const auto asked = steady_clock::now();
  r.server->stop();
  EXPECT_LT(steady_clock::now() - asked, std::chrono::seconds(1));
  for (auto& fd : clients) EXPECT_TRUE(closedByServer(fd.get(), std::chrono::seconds(1)));
}

}  // namespace
}  // namespace mdec::telemetry
