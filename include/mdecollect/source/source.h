// A source: where alerts come from. Three implementations share this one interface — the
// Defender for Endpoint alerts API (`mde`), Microsoft Graph alerts_v2 (`graph`) and NDJSON
// files (`file`) — and the collector drives them all alike: poll, poll again after the
// interval, stop on request.
//
// The API sources deliver every alert version (id, lastUpdateTime) exactly once
// (collection.md): each poll asks from the watermark minus late_arrival_window, pages
// through the API (pagers.h), and commits each page's documents, the versions it
// delivered and — once every earlier window is complete — the new watermark in one
// transaction. The seen-set skips what the overlap reads again; it is kept for the whole
// overlap however late_arrival_window changes (a poll never reads below the oldest time
// the seen-set still covers).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "mdecollect/auth/token_provider.h"
#include "mdecollect/config/config.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/result.h"
#include "mdecollect/http/http_client.h"
#include "mdecollect/output/delivery.h"
#include "mdecollect/source/api_client.h"
#include "mdecollect/telemetry/metrics.h"

namespace mdec::source {

struct PollStats {
  std::uint64_t requests = 0;      // API requests sent (retries and probes included)
  std::uint64_t pages = 0;         // pages received whole
  std::uint64_t alerts = 0;        // alert versions received (re-reads included); file: lines
  std::uint64_t new_versions = 0;  // versions not delivered before
  std::uint64_t documents = 0;     // documents delivered (written, or queued in the outbox)
  std::uint64_t errors = 0;        // error documents among them
  std::uint64_t future = 0;        // new versions stamped past the server's time
  std::uint64_t retries = 0;
  std::uint64_t throttled = 0;              // 429 answers
  std::uint64_t files = 0;                  // file sources: files looked at
  std::optional<std::string> watermark;     // after the poll
  std::optional<std::chrono::seconds> lag;  // server now - watermark
  bool stopped = false;                     // a stop request ended it early
};

class Source {
 public:
  virtual ~Source() = default;
  // One poll: reads what is new and commits it. Returns early (stats.stopped) on a stop
  // request; what it committed stays committed.
  virtual Result<PollStats> poll(std::stop_token stop) = 0;
  // Whether pollRange() can collect a past range (a backfill).
  virtual bool backfills() const = 0;
  // Collects the versions whose lastUpdateTime is in [since, until): the same paging,
  // seen-set and delivery as poll(), but the watermark stays where it is.
  virtual Result<PollStats> pollRange(const core::Instant& since, const core::Instant& until,
                                      std::stop_token stop) = 0;
  // One log line about a poll's stats.
  virtual std::string summary(const PollStats& stats) const = 0;
  // Gives back the memory a poll grew (parsers, page buffers) between polls: a collector of
  // ten thousand sources keeps only what each needs to know.
  virtual void trim() {}
};

struct SourceOptions {
  ApiClientOptions api;  // API sources
  // Called before each page (API sources) or poll (file sources); returns once there is
  // room in the outbox (max_spool_bytes: polling pauses while it is full) or a stop was
  // requested. Empty: no bound.
  std::function<void(std::stop_token)> wait_for_room;
  // Where alerts, documents, error documents, future-stamped versions and the watermark
  // are reported (also passed on to the API client). Null: nowhere.
  telemetry::SourceMetrics* metrics = nullptr;
  int restore_page_size_after = 8;  // pages at a halved page size before it is doubled
};

// `mde` or `graph` (by config.type): talks to the API through `client` with `tokens`.
std::unique_ptr<Source> makeApiSource(const config::SourceConfig& config,
                                      output::Delivery& delivery, http::HttpClient& client,
                                      auth::TokenProvider& tokens, core::Clock& clock,
                                      SourceOptions options = {});

// `file`: NDJSON files (file_source.h), committed through `delivery`.
std::unique_ptr<Source> makeFileSourceOf(const config::SourceConfig& config,
                                         output::Delivery& delivery, SourceOptions options = {});

}  // namespace mdec::source
