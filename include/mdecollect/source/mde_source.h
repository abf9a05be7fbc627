// The `mde` source: the Defender for Endpoint alerts API, polled so that every alert
// version is delivered exactly once (collection.md). Each poll asks from the watermark
// minus the late-arrival window; a full page splits its time window in two (order of
// results is never trusted; $orderby is only a hint, dropped if the API refuses it); a
// window too narrow to split is paged with $skip. Each page's documents, the versions it
// delivered and — once every earlier window is complete — the new watermark are committed
// in one transaction. Requests are paced within the API quota; 429 waits as Retry-After
// says; faults are retried with exponential backoff and jitter.
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
#include "mdecollect/state/state_store.h"
#include "mdecollect/telemetry/metrics.h"

namespace mdec::source {

struct PollStats {
  std::uint64_t requests = 0;     // API requests sent (retries included)
  std::uint64_t pages = 0;        // pages received whole
  std::uint64_t alerts = 0;       // alert versions received (re-reads included)
  std::uint64_t new_versions = 0; // versions not delivered before
  std::uint64_t documents = 0;    // documents delivered (written, or queued in the outbox)
  std::uint64_t errors = 0;       // error documents among them
  std::uint64_t retries = 0;
  std::uint64_t throttled = 0;    // 429 answers
  std::optional<std::string> watermark;  // after the poll
  std::optional<std::chrono::seconds> lag;  // server now - watermark
  bool stopped = false;           // a stop request ended it early
};

// Extra knobs, for tests and benchmarks.
struct MdeSourceOptions {
  std::chrono::milliseconds backoff_base{500};
  std::chrono::milliseconds backoff_max{60 * 1000};
  int max_attempts = 8;  // per request, before the poll gives up (the next poll retries)
  // Where the times of the last hour's requests are kept across restarts, so that a
  // restarted collector still paces within the quota (empty: not kept).
  std::string pacing_file;
  // Where requests, alerts, documents, retries, throttling, token refreshes, the watermark
  // and the source's state are reported (null: nowhere).
  telemetry::SourceMetrics* metrics = nullptr;
  // Called before each page is fetched; returns once there is room for it (the outbox
  // bound: polling pauses while it is full) or a stop was requested. Empty: no bound.
  std::function<void(std::stop_token)> wait_for_room;
};

class MdeSource {
 public:
  virtual ~MdeSource() = default;
  virtual Result<PollStats> poll(std::stop_token stop) = 0;
  // Collects the versions whose lastUpdateTime is in [since, until) (a backfill): the same
  // paging, seen-set and delivery as poll(), but the watermark stays where it is.
  virtual Result<PollStats> pollRange(const core::Instant& since, const core::Instant& until,
                                      std::stop_token stop) = 0;
};

std::unique_ptr<MdeSource> makeMdeSource(const config::SourceConfig& config,
                                         output::Delivery& delivery, http::HttpClient& client,
                                         auth::TokenProvider& tokens, core::Clock& clock,
                                         MdeSourceOptions options = {});

// Client-side pacing: at most `per_minute` requests in any 60 s and `per_hour` in any hour.
class RequestPacer {
 public:
  RequestPacer(int per_minute, int per_hour) : per_minute_(per_minute), per_hour_(per_hour) {}
  // How long to wait before the next request may be sent.
  std::chrono::milliseconds waitBefore(std::chrono::steady_clock::time_point now);
  void record(std::chrono::steady_clock::time_point now);
  // No request before `until` (a 429's Retry-After); remembered across restarts too.
  void deferUntil(std::chrono::steady_clock::time_point until) {
    if (until > defer_until_) defer_until_ = until;
  }
  // Saves/loads the request times as wall-clock milliseconds, one per line.
  void save(const std::string& path, std::chrono::system_clock::time_point wall_now,
            std::chrono::steady_clock::time_point steady_now) const;
  void load(const std::string& path, std::chrono::system_clock::time_point wall_now,
            std::chrono::steady_clock::time_point steady_now);

 private:
  int per_minute_;
  int per_hour_;
  std::vector<std::chrono::steady_clock::time_point> sent_;  // the last hour, oldest first
  std::chrono::steady_clock::time_point defer_until_{};
};

// "Wed, 21 Oct 2015 07:28:00 GMT" (RFC 7231 IMF-fixdate) -> time; nullopt when not one.
std::optional<std::chrono::system_clock::time_point> parseHttpDate(const std::string& text);

}  // namespace mdec::source
