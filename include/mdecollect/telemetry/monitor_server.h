// The monitoring endpoint (http.listen, default 127.0.0.1:5066): GET /metrics (Prometheus
// text format) and GET /health (JSON, HTTP 503 when a source or output is failing), on
// threads of its own (cpp-httplib parses; monitor_server.cpp holds the connections). Its
// resources are bounded whatever a client does: GET and HEAD only (else 405), no request
// body (413 over 1 KiB), request line and headers within 16 KiB and 5 s, at most 64
// connections (one more is answered 503), idle ones closed after 5 s; idle connections
// never hold a thread, so /health answers while they wait.
#pragma once

#include <memory>
#include <string>

#include "mdecollect/core/clock.h"
#include "mdecollect/core/result.h"
#include "mdecollect/telemetry/metrics.h"

namespace mdec::telemetry {

class MonitorServer {
 public:
  virtual ~MonitorServer() = default;
  // The port it listens on (the one chosen when the config said 0).
  virtual int port() const = 0;
  // Stops serving (also done by the destructor).
  virtual void stop() = 0;
};

// Binds `host`:`port` and serves until stopped. A port already in use, or an address that
// cannot be bound, is an error that names it.
Result<std::unique_ptr<MonitorServer>> startMonitorServer(const std::string& host, int port,
                                                          const Metrics& metrics,
                                                          const core::Clock& clock);

}  // namespace mdec::telemetry
