#include "mdecollect/telemetry/monitor_server.h"

#include <httplib.h>

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <thread>

namespace mdec::telemetry {
namespace {

class HttplibMonitorServer final : public MonitorServer {
 public:
  HttplibMonitorServer(const Metrics& metrics, const core::Clock& clock)
      : metrics_(metrics), clock_(clock) {
    // Two workers are plenty for a scraper and a health probe.
    server_.new_task_queue = [] { return new httplib::ThreadPool(2); };
    // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which would let a second
    // collector share the port silently instead of being told it is taken.
    server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    server_.set_keep_alive_timeout(5);
    server_.set_read_timeout(5, 0);
    server_.set_write_timeout(5, 0);
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_.prometheus(clock_.now()), "text/plain; version=0.0.4; charset=utf-8");
    });
    server_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      auto h = metrics_.health(clock_.now());
      res.status = h.http_status;
      res.set_content(std::move(h.json), "application/json");
    });
    server_.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("mdecollect " MDEC_VERSION_STRING
                      "\n/metrics  Prometheus text format\n/health   JSON; HTTP 503 when a "
                      "source or an output is failing\n",
                      "text/plain; charset=utf-8");
    });
  }

  ~HttplibMonitorServer() override { stop(); }

  Status bind(const std::string& host, int port) {
    if (port == 0) {
      port_ = server_.bind_to_any_port(host);
      if (port_ < 0) port_ = 0;
    } else if (server_.bind_to_port(host, port)) {
      port_ = port;
    }
    if (port_ <= 0) {
      const int err = errno;
      return Error(ErrorCode::kInvalidArgument,
                   "http.listen: cannot listen on " + host + ":" + std::to_string(port) + " (" +
                       (err != 0 ? std::strerror(err) : "bind failed") +
                       "); set http.listen to a free port, or http.enabled: false");
    }
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      done_ = true;
    });
    // stop() only stops a server that is running: until the thread has entered its accept
    // loop, it would do nothing and the join would wait for ever (a `run --once` that ends
    // within milliseconds hit this).
    for (int i = 0; i < 10'000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return okStatus();
  }

  int port() const override { return port_; }

  void stop() override {
    if (!thread_.joinable()) return;
    // Asked again until the loop has ended: a stop that came before the loop began would
    // not be seen by it.
    while (!done_) {
      server_.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    thread_.join();
  }

 private:
  const Metrics& metrics_;
  const core::Clock& clock_;
  httplib::Server server_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  int port_ = 0;
};

}  // namespace

Result<std::unique_ptr<MonitorServer>> startMonitorServer(const std::string& host, int port,
                                                          const Metrics& metrics,
                                                          const core::Clock& clock) {
  auto server = std::make_unique<HttplibMonitorServer>(metrics, clock);
  errno = 0;
  if (auto s = server->bind(host, port); !s) return s.error();
  return std::unique_ptr<MonitorServer>(std::move(server));
}

}  // namespace mdec::telemetry
