// What the collector is doing, for /metrics (Prometheus text format) and /health (JSON):
// per source its requests, alerts, documents, retries, throttling, token refreshes,
// watermark and state; per (source, output) what was delivered, stored already,
// dead-lettered or refused for now; the outbox; log messages by level.
//
// Counters are atomics or behind one small mutex: sources, outputs and the HTTP server
// update and read them from their own threads. Nothing here ever holds a secret: states
// carry the same error messages the log shows (which never include one).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace mdec::telemetry {

// A source: starting → authenticating → collecting; degraded while throttled, while the
// outbox is full (backpressure) or after a poll failed for a retryable reason; failing
// when credentials, permissions or configuration are refused.
// An output: starting → ok; degraded while deliveries fail and are retried; failing when
// its credentials are refused.
enum class State { kStarting, kAuthenticating, kCollecting, kOk, kDegraded, kFailing };

const char* stateName(State state);

class SourceMetrics {
 public:
  SourceMetrics(std::string name, std::string type)
      : name_(std::move(name)), type_(std::move(type)) {}

  const std::string& name() const { return name_; }
  const std::string& type() const { return type_; }

  // One API or token request answered with `status` (0: no HTTP answer at all).
  void request(int status);
  std::map<int, std::uint64_t> requestsByStatus() const;

  void setState(State state, std::string reason = {});
  // Moves to `state` only from one of `from` (e.g. back to collecting only from
  // authenticating or a throttled degradation, never over a failure).
  void setStateIf(State state, std::initializer_list<State> from, std::string reason = {});
  std::pair<State, std::string> state() const;

  std::atomic<std::uint64_t> alerts_fetched{0};      // alert versions received
  std::atomic<std::uint64_t> documents_produced{0};  // documents mapped from new versions
  std::atomic<std::uint64_t> error_documents{0};     // of which error documents
  std::atomic<std::uint64_t> future_versions{0};     // new versions stamped in the future
  std::atomic<std::uint64_t> dates_dropped{0};       // incidents: evidence dates that did not parse
  std::atomic<std::uint64_t> restarts{0};            // restarted after an unexpected failure
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> throttled{0};        // 429 answers waited out
  std::atomic<std::uint64_t> token_refreshes{0};  // tokens fetched
  std::atomic<std::uint64_t> polls{0};
  std::atomic<std::uint64_t> poll_failures{0};
  std::atomic<std::int64_t> watermark_unix_ms{0};     // 0: none yet
  std::atomic<std::int64_t> last_success_unix_ms{0};  // end of the last poll that succeeded
  // The API's clock minus ours (from its Date header): the lag is measured on its clock.
  std::atomic<std::int64_t> server_offset_ms{0};

 private:
  const std::string name_;
  const std::string type_;
  mutable std::mutex mu_;
  std::map<int, std::uint64_t> requests_;
  State state_ = State::kStarting;
  std::string reason_;
};

class OutputMetrics {
 public:
  explicit OutputMetrics(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  void setState(State state, std::string reason = {});
  std::pair<State, std::string> state() const;

 private:
  const std::string name_;
  mutable std::mutex mu_;
  State state_ = State::kStarting;
  std::string reason_;
};

// What became of documents at an output.
enum class Outcome { kDelivered, kDuplicate, kDeadLettered, kFailed };

// The collector's schedule (pipeline/collector.cpp): its workers and the sources' turns.
struct SchedulerMetrics {
  std::atomic<std::int64_t> workers{0};          // threads running the polls
  std::atomic<std::int64_t> turns_in_flight{0};  // polls (with their backfill slices) running
  std::atomic<std::int64_t> turns_waiting{0};    // 1 when a turn is due and the pool is full
  std::atomic<std::int64_t> start_delay_ms{0};   // how late the last started turn was
  std::atomic<std::uint64_t> turns{0};           // turns started
};

class Metrics {
 public:
  Metrics();

  SchedulerMetrics& scheduler() { return scheduler_; }

  // Registered before the threads start; the references stay valid.
  SourceMetrics& source(const std::string& name, const std::string& type);
  OutputMetrics& output(const std::string& name);
  // nullptr when not registered.
  SourceMetrics* findSource(std::string_view name);

  void documents(std::string_view source, std::string_view output, Outcome outcome,
                 std::uint64_t count);
  std::uint64_t documentsOf(std::string_view source, std::string_view output,
                            Outcome outcome) const;

  // Read at each scrape: documents and bytes waiting in the outbox (nullopt: unknown).
  struct OutboxSize {
    std::uint64_t documents = 0;
    std::uint64_t bytes = 0;
  };
  void setOutboxProbe(std::function<std::optional<OutboxSize>()> probe, std::uint64_t max_bytes);

  // Log messages by level ("warn", "error", ...), counted by the logging sink.
  void logMessage(std::string_view level);
  std::uint64_t logMessages(std::string_view level) const;

  // The Prometheus text exposition format (version 0.0.4).
  std::string prometheus(std::chrono::system_clock::time_point now) const;

  struct Health {
    int http_status = 200;  // 503 when a source or an output is failing
    std::string json;
  };
  Health health(std::chrono::system_clock::time_point now) const;

 private:
  std::optional<OutboxSize> outboxNow() const;

  const std::chrono::system_clock::time_point started_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<SourceMetrics>> sources_;  // in the order registered
  // By name: ten thousand sources registered one by one (a scan each was quadratic).
  std::map<std::string, SourceMetrics*, std::less<>> source_index_;
  std::vector<std::unique_ptr<OutputMetrics>> outputs_;
  std::map<std::tuple<std::string, std::string, Outcome>, std::uint64_t, std::less<>> documents_;
  std::map<std::string, std::uint64_t, std::less<>> log_messages_;
  std::function<std::optional<OutboxSize>()> outbox_probe_;
  std::uint64_t outbox_max_bytes_ = 0;
  SchedulerMetrics scheduler_;
};

// Counts a batch's outcomes per source locally, then hands them to Metrics at once: one
// lock and a few keys per batch instead of one per document. The sources' names must
// outlive it (they point into the batch).
class DocumentTally {
 public:
  void add(std::string_view source, Outcome outcome, std::uint64_t count = 1) {
    for (auto& e : entries_) {
      if (e.source == source && e.outcome == outcome) {
        e.count += count;
        return;
      }
    }
    entries_.push_back({source, outcome, count});
  }
  // Adds everything to `metrics` under `output` and starts over.
  void flush(Metrics* metrics, std::string_view output) {
    if (metrics != nullptr) {
      for (const auto& e : entries_) metrics->documents(e.source, output, e.outcome, e.count);
    }
    entries_.clear();
  }

 private:
  struct Entry {
    std::string_view source;
    Outcome outcome;
    std::uint64_t count;
  };
  std::vector<Entry> entries_;
};

// "2026-11-28T06:01:02.123Z" (or 2026-…Z with any fraction) → Unix milliseconds; 0 when
// the text is not a time.
std::int64_t unixMillisOf(std::string_view iso_time);

}  // namespace mdec::telemetry
