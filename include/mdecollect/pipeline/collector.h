// `mdecollect run`: every configured source polled on its own thread, every output fed
// from the outbox by its own thread; a clean stop on request within seconds.
//
// The collector is assembled from parts, each made from the configuration by a factory
// (CollectorParts): the state store, an API source's HTTP client and token provider, the
// outputs. realParts() gives the real ones (SQLite, libcurl, Entra ID client credentials,
// the configured outputs); a test gives fakes and runs the same collector in process.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "mdecollect/auth/token_provider.h"
#include "mdecollect/config/config.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/core/result.h"
#include "mdecollect/http/http_client.h"
#include "mdecollect/output/output.h"
#include "mdecollect/output/outputs.h"
#include "mdecollect/state/state_store.h"
#include "mdecollect/telemetry/metrics.h"

namespace mdec::pipeline {

struct RunOptions {
  bool once = false;  // one poll per source, deliver everything, exit
  // What the sources and outputs report, served on http.listen (null: made here).
  std::shared_ptr<telemetry::Metrics> metrics;
  // Only the backfill jobs waiting in the state (no live polls), then deliver and exit
  // (`mdecollect backfill` when no collector runs on the state directory).
  bool backfill_only = false;
  // The caller holds the state directory's RunLock already.
  bool lock_held = false;
};

// What a collector is made of. Every factory is called from the collector's own thread
// before any source or output thread starts, except `source_client` and `tokens`, which a
// source's thread calls when it (re)starts.
struct CollectorParts {
  // The state in `state_dir`.
  std::function<Result<std::unique_ptr<state::StateStore>>(const std::string& state_dir)>
      open_store;
  // The HTTP client of an API source (tracing is wrapped around it by the collector).
  std::function<std::unique_ptr<http::HttpClient>(const config::SourceConfig&)> source_client;
  // The token provider of an API source, talking through its client.
  std::function<std::unique_ptr<auth::TokenProvider>(const config::SourceConfig&, http::HttpClient&,
                                                     core::Clock&)>
      tokens;
  // The configured outputs (all treated alike: none is special-cased by name).
  std::function<std::vector<std::unique_ptr<output::Output>>(const config::Config&,
                                                             const output::OutputContext&)>
      outputs;
};

// SQLite, libcurl (the source's proxy and TLS settings, the partner user agent), Entra ID
// client credentials, output::makeOutputs.
CollectorParts realParts();

// A backfill is collected in slices of this much alert time, between live polls.
inline constexpr std::chrono::hours kBackfillSlice{6};

// Returns the process exit code: 0 when every source polled and every document was
// delivered (--once) or after a requested stop; 1 when --once left a source failed or
// documents undelivered; 2 when the state, an output or the monitoring endpoint
// (http.listen) cannot be opened.
int runCollector(const config::Config& config, const RunOptions& options,
                 const CollectorParts& parts, core::Clock& clock, std::stop_token stop);

// The same on realParts().
int runCollector(const config::Config& config, const RunOptions& options, core::Clock& clock,
                 std::stop_token stop);

}  // namespace mdec::pipeline
