// The monitoring endpoint (http.listen, default 127.0.0.1:5066): GET /metrics (Prometheus
// text format) and GET /health (JSON, HTTP 503 when a source or output is failing), served
// by cpp-httplib on two threads of its own.
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
