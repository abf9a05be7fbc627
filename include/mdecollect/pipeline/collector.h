// `mdecollect run`: every configured source polled on its own thread, every output fed
// from the outbox by its own thread; a clean stop on request within seconds.
#pragma once

#include <chrono>
#include <memory>
#include <stop_token>

#include "mdecollect/config/config.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/output/elasticsearch_output.h"
#include "mdecollect/telemetry/metrics.h"

namespace mdec::pipeline {

struct RunOptions {
  bool once = false;  // one poll per source, deliver everything, exit
  // Where the Elasticsearch output counts what it did (null: not reported).
  std::shared_ptr<output::ElasticsearchCounters> es_counters;
  // What the sources and outputs report, served on http.listen (null: made here).
  std::shared_ptr<telemetry::Metrics> metrics;
  // Only the backfill jobs waiting in the state (no live polls), then deliver and exit
  // (`mdecollect backfill` when no collector runs on the state directory).
  bool backfill_only = false;
  // The caller holds the state directory's RunLock already.
  bool lock_held = false;
};

// A backfill is collected in slices of this much alert time, between live polls.
inline constexpr std::chrono::hours kBackfillSlice{6};

// Returns the process exit code: 0 when every source polled and every document was
// delivered (--once) or after a requested stop; 1 when --once left a source failed or
// documents undelivered; 2 when the state, an output or the monitoring endpoint
// (http.listen) cannot be opened.
int runCollector(const config::Config& config, const RunOptions& options, core::Clock& clock,
                 std::stop_token stop);

}  // namespace mdec::pipeline
