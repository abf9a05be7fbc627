#include "mdecollect/pipeline/collector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

#include "mdecollect/auth/token_provider.h"
#include "mdecollect/core/ascii.h"
#include "mdecollect/core/backoff.h"
#include "mdecollect/core/host_port.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/http/http_client.h"
#include "mdecollect/http/tracing_http_client.h"
#include "mdecollect/pipeline/supervise.h"
#include "mdecollect/pipeline/worker_pool.h"
#include "mdecollect/source/api_client.h"
#include "mdecollect/source/file_source.h"
#include "mdecollect/source/mde_retirement.h"
#include "mdecollect/source/pagers.h"
#include "mdecollect/source/source.h"
#include "mdecollect/state/run_lock.h"
#include "mdecollect/state/state_store.h"
#include "mdecollect/telemetry/monitor_server.h"

namespace mdec::pipeline {
namespace {

using std::chrono::milliseconds;

// A quota several sources draw on: Microsoft Graph counts the requests to /security of one
// app in one tenant together (alerts_v2 and incidents alike), so sources that share them
// share one pacer, paced at the lowest rate any of them is given.
struct Quota {
  std::shared_ptr<source::RequestPacer> pacer;
  std::string pacing_file;
};

// Which quota a Graph source draws on: its tenant, client and API host.
std::string quotaKey(const config::SourceConfig& s) {
  if (s.type != config::SourceType::kGraph && s.type != config::SourceType::kGraphIncidents) {
    return {};
  }
  const std::string origin = source::originOf(s.api_url);
  return core::asciiLower(s.tenant_id) + '\n' + s.client_id + '\n' +
         (origin.empty() ? s.api_url : origin);
}

// The quotas shared by two or more sources, by quotaKey(); each pacer is loaded from the
// pacing file of the first source that uses it.
std::map<std::string, Quota> sharedQuotas(const config::Config& config, core::Clock& clock) {
  std::map<std::string, std::vector<const config::SourceConfig*>> groups;
  for (const auto& s : config.sources) {
    if (auto key = quotaKey(s); !key.empty()) groups[key].push_back(&s);
  }
  std::map<std::string, Quota> quotas;
  for (const auto& [key, members] : groups) {
    if (members.size() < 2) continue;
    int per_minute = members.front()->requests_per_minute;
    int per_hour = members.front()->requests_per_hour;
    for (const auto* m : members) {
      per_minute = std::min(per_minute, m->requests_per_minute);
      per_hour = std::min(per_hour, m->requests_per_hour);
    }
    Quota q;
    q.pacer = std::make_shared<source::RequestPacer>(per_minute, per_hour);
    q.pacing_file = config.state_dir + "/pacing-" + members.front()->name + ".txt";
    q.pacer->load(q.pacing_file, clock.now(), clock.steadyNow());
    quotas.emplace(key, std::move(q));
  }
  return quotas;
}

struct Shared {
  const CollectorParts& parts;
  state::StateStore& store;
  output::Delivery& delivery;
  const config::Config& config;
  core::Clock& clock;
  telemetry::Metrics& metrics;
  std::shared_ptr<http::TraceWriter> trace;  // null: tracing off
  std::atomic<int> sources_running{0};
  std::atomic<bool> source_failed{false};
  std::map<std::string, Quota> quotas;  // shared by several sources (sharedQuotas())
};

// Collects a source's backfill jobs (`mdecollect backfill`), slice by slice, between the
// live polls: the same source object, so the same pacing (the quota is shared), paging,
// seen-set and delivery; the live watermark never moves. Progress is saved after each
// slice: a restart goes on from there (the seen-set skips what the cut slice delivered).
class BackfillRunner {
 public:
  BackfillRunner(Shared& shared, const config::SourceConfig& source, source::Source& mde,
                 std::shared_ptr<spdlog::logger> log)
      : shared_(shared), source_(source), mde_(mde), log_(std::move(log)) {}

  // Runs slices until `deadline` (none: until every job is done or failed), a stop
  // request, or no job is left. Returns false when a job failed in this call.
  bool run(std::optional<std::chrono::steady_clock::time_point> deadline, std::stop_token stop) {
    bool ok = true;
    for (int guard = 0; guard < 1'000'000; ++guard) {
      if (stop.stop_requested()) return ok;
      if (deadline && shared_.clock.steadyNow() >= *deadline) return ok;
      auto jobs = shared_.store.backfills(source_.name);
      if (!jobs) {
        log_->error("backfill: {}", jobs.error().message());
        return false;
      }
      state::BackfillJob* job = nullptr;
      for (auto& j : *jobs) {
        if (j.state == "queued" || j.state == "running") {
          job = &j;
          break;
        }
      }
      if (job == nullptr) return ok;
      auto from = core::parseIsoDateTime(job->position);
      auto until = core::parseIsoDateTime(job->until);
      if (!from || !until) {
        job->state = "failed";
        job->message = "the job's times cannot be read";
        (void)shared_.store.updateBackfill(*job);
        ok = false;
        continue;
      }
      if (job->state == "queued") {
        log_->info("backfill {}: collecting {} to {} in slices of {} h", job->id, job->since,
                   job->until, kBackfillSlice.count());
      }
      job->state = "running";
      core::Instant end = *from;
      end.seconds += std::chrono::duration_cast<std::chrono::seconds>(kBackfillSlice).count();
      if (*until < end) end = *until;
      Result<source::PollStats> stats = source::PollStats{};
      if (*from < *until) stats = mde_.pollRange(*from, end, stop);
      if (!stats) {
        const Error& e = stats.error();
        ++failures_;
        job->message = e.message();
        const bool refused =
            e.code() == ErrorCode::kAuth || e.code() == ErrorCode::kInvalidArgument;
        if (refused || failures_ >= 5) {
          job->state = "failed";
          ok = false;
          log_->error("backfill {} failed at {}: {}", job->id, job->position, e.message());
        } else {
          log_->warn("backfill {}: slice from {} failed, tried again later: {}", job->id,
                     job->position, e.message());
        }
        if (auto s = shared_.store.updateBackfill(*job); !s) {
          log_->error("backfill: {}", s.error().message());
        }
        if (job->state == "failed") {
          failures_ = 0;
          continue;
        }
        // Between live polls: tried again after the next one. On its own (no deadline):
        // tried again now (the source already backed off within the slice).
        if (deadline) return ok;
        continue;
      }
      if (stats->stopped) return ok;  // the slice is read again next time
      failures_ = 0;
      job->position = core::formatRfc3339(end, 7);
      ++job->slices;
      job->alerts += stats->alerts;
      job->documents += stats->documents;
      job->message.clear();
      if (!(end < *until)) job->state = "done";
      if (auto s = shared_.store.updateBackfill(*job); !s) {
        log_->error("backfill: {}", s.error().message());
        return false;
      }
      if (job->state == "done") {
        log_->info("backfill {} done: {} to {}, {} slices, {} alerts fetched, {} documents",
                   job->id, job->since, job->until, job->slices, job->alerts, job->documents);
      } else {
        log_->info("backfill {}: up to {} ({} slices, {} alerts fetched, {} documents)", job->id,
                   job->position, job->slices, job->alerts, job->documents);
      }
    }
    return ok;
  }

 private:
  Shared& shared_;
  const config::SourceConfig& source_;
  source::Source& mde_;
  std::shared_ptr<spdlog::logger> log_;
  int failures_ = 0;  // consecutive failed slices
};

// The outbox bound (max_spool_bytes): before each page (API sources) or poll (file
// sources), polling waits while the outbox is full, so a long first poll or a throttled one
// pauses between pages too (not with --once: its outputs drain only after the sources are
// done).
std::optional<state::StateStore::OutboxSize> outboxFull(Shared& shared) {
  auto size = shared.store.outboxSize();
  if (!size || size->bytes < shared.config.max_spool_bytes) return std::nullopt;
  return *size;
}

constexpr const char* kBackpressure =
    "backpressure: the outbox is full (max_spool_bytes); polling paused until the outputs "
    "catch up";

std::function<void(std::stop_token)> roomWaiter(Shared& shared, telemetry::SourceMetrics& metrics,
                                                std::shared_ptr<spdlog::logger> log) {
  return [&shared, &metrics, log](std::stop_token token) {
    for (int waited = 0; !token.stop_requested(); ++waited) {
      const auto full = outboxFull(shared);
      if (!full) {
        if (waited > 0) {
          metrics.setStateIf(telemetry::State::kCollecting, {telemetry::State::kDegraded});
        }
        return;
      }
      if (waited == 0) {
        log->warn("outbox full ({} documents, {} bytes): polling paused until outputs catch up",
                  full->documents, full->bytes);
      }
      metrics.setState(telemetry::State::kDegraded, kBackpressure);
      if (!shared.clock.sleepFor(milliseconds(1000), token)) return;
    }
  };
}

// A source and what it talks through (an API source's HTTP client and token provider).
struct SourceParts {
  std::unique_ptr<http::HttpClient> client;
  std::unique_ptr<auth::TokenProvider> tokens;
  std::unique_ptr<source::Source> source;
};

SourceParts makeSource(Shared& shared, const config::SourceConfig& source,
                       telemetry::SourceMetrics& metrics, bool once,
                       std::shared_ptr<spdlog::logger> log) {
  source::SourceOptions options;
  options.metrics = &metrics;
  if (!once) options.wait_for_room = roomWaiter(shared, metrics, log);
  SourceParts parts;
  if (source.type == config::SourceType::kFile) {
    parts.source = source::makeFileSourceOf(source, shared.delivery, std::move(options));
    return parts;
  }
  parts.client = http::makeTracingClient(shared.parts.source_client(source), shared.trace,
                                         "source." + source.name);
  parts.tokens = shared.parts.tokens(source, *parts.client, shared.clock);
  options.api.pacing_file = shared.config.state_dir + "/pacing-" + source.name + ".txt";
  if (auto q = shared.quotas.find(quotaKey(source)); q != shared.quotas.end()) {
    options.api.shared_pacer = q->second.pacer;
    options.api.pacing_file = q->second.pacing_file;
  }
  parts.source = source::makeApiSource(source, shared.delivery, *parts.client, *parts.tokens,
                                       shared.clock, std::move(options));
  return parts;
}

// One source in the schedule: what it talks through (made at its first turn, made again
// after it threw), its backfill runner and its restart backoff.
struct Slot {
  Slot(Shared& shared, const config::SourceConfig& c)
      : config(c),
        metrics(shared.metrics.source(c.name, config::sourceTypeName(c.type))),
        log(source::sourceLogger(c.name)) {}

  const config::SourceConfig& config;
  telemetry::SourceMetrics& metrics;
  std::shared_ptr<spdlog::logger> log;
  SourceParts parts;
  std::optional<BackfillRunner> backfill;
  core::Backoff restart_backoff{{.first = milliseconds(1000), .max = milliseconds(5 * 60'000)}};
  int restarts = 0;
  bool polled = false;  // a live poll ran since the last (re)start
  std::chrono::steady_clock::time_point next_poll{};
};

// A source's live poll; returns the wait before the next one.
milliseconds pollOnce(Shared& shared, Slot& slot, bool once, std::stop_token stop) {
  const auto& config = slot.config;
  auto& metrics = slot.metrics;
  auto& log = slot.log;
  source::Source& source = *slot.parts.source;
  const bool file = config.type == config::SourceType::kFile;
  metrics.setStateIf(telemetry::State::kCollecting, {telemetry::State::kDegraded}, std::string());
  auto stats = source.poll(stop);
  milliseconds wait = file ? std::min<milliseconds>(config.interval, milliseconds(1000))
                           : milliseconds(config.interval);
  ++metrics.polls;
  if (stats) {
    const auto& s = *stats;
    if (!s.stopped) {
      metrics.last_success_unix_ms =
          std::chrono::duration_cast<milliseconds>(shared.clock.now().time_since_epoch()).count();
      metrics.setStateIf(telemetry::State::kCollecting,
                         {telemetry::State::kStarting, telemetry::State::kAuthenticating,
                          telemetry::State::kDegraded, telemetry::State::kFailing});
    }
    // Full after this poll: say so now, not only when the next poll waits for room.
    if (!once && outboxFull(shared)) metrics.setState(telemetry::State::kDegraded, kBackpressure);
    if (!file || s.alerts > 0 || once) log->info("{}", source.summary(s));
    return wait;
  }
  const Error& e = stats.error();
  ++metrics.poll_failures;
  // A refused credential, permission or certificate is configuration: failing. Anything
  // else is retried: degraded.
  const bool refused = e.code() == ErrorCode::kAuth || e.code() == ErrorCode::kInvalidArgument;
  metrics.setState(refused ? telemetry::State::kFailing : telemetry::State::kDegraded,
                   "last poll failed: " + e.message());
  // (A failure that repeats is written at most once a minute: the logging sink.)
  // After the Defender API's last day, its refusal most likely means it is gone.
  const auto retired =
      config.type == config::SourceType::kMde
          ? source::mdeRetiredRefusalHint(config.name, e.httpStatus(), shared.clock.now())
          : std::nullopt;
  if (retired) {
    log->error("poll failed: {}; {}", e.message(), *retired);
  } else {
    log->error("poll failed: {}", e.message());
  }
  if (once) shared.source_failed = true;
  // A refused credential, permission or certificate is configuration: retry slowly.
  if (refused) wait = std::max<milliseconds>(config.interval * 4, milliseconds(60'000));
  return wait;
}

// One turn of a source, in a fiber of the worker pool: made first when it has no parts,
// its live poll when due, then backfill slices until its next poll is due. Returns when its
// next turn is due, or nothing when it is done (--once, backfill only, or given up). When
// anything in it throws, the source is reported failing and made again after a backoff
// that doubles from 1 s up to 5 minutes (as supervise() does for a thread).
std::optional<std::chrono::steady_clock::time_point> turn(Shared& shared, Slot& slot, bool once,
                                                          bool backfill_only,
                                                          std::stop_token stop) {
  const auto& config = slot.config;
  std::string reason;
  try {
    if (!slot.parts.source) {
      slot.parts = makeSource(shared, config, slot.metrics, once, slot.log);
      if (config.type != config::SourceType::kFile && slot.restarts == 0) {
        slot.metrics.setState(telemetry::State::kAuthenticating);
      }
      slot.backfill.reset();
      if (slot.parts.source->backfills()) {
        slot.backfill.emplace(shared, config, *slot.parts.source, slot.log);
      }
    }
    if (backfill_only) {
      if (slot.backfill && !slot.backfill->run(std::nullopt, stop)) shared.source_failed = true;
      slot.backfill.reset();
      slot.parts = SourceParts{};  // done: its memory goes now
      return std::nullopt;
    }
    if (!slot.polled || shared.clock.steadyNow() >= slot.next_poll) {
      const milliseconds wait = pollOnce(shared, slot, once, stop);
      slot.polled = true;
      slot.next_poll = shared.clock.steadyNow() + wait;
    }
    if (once) {
      slot.backfill.reset();
      slot.parts = SourceParts{};  // done: its memory goes now
      return std::nullopt;
    }
    // Backfill slices until the next poll is due (none waiting: returns at once).
    if (slot.backfill && !stop.stop_requested()) slot.backfill->run(slot.next_poll, stop);
    slot.parts.source->trim();
    if (slot.parts.client) slot.parts.client->trim();
    return slot.next_poll;
  } catch (const std::exception& e) {
    reason = e.what();
  } catch (...) {
    reason = "an unknown exception";
  }
  // Outside the handler: nothing below may suspend inside a catch block (fibers share the
  // thread's exception state).
  slot.backfill.reset();
  slot.parts = SourceParts{};
  slot.polled = false;
  const bool final = once || slot.restarts >= 1'000'000;
  const milliseconds wait = final ? milliseconds(0) : slot.restart_backoff.next();
  ++slot.restarts;
  ++slot.metrics.restarts;
  const std::string said =
      "the source failed unexpectedly (" + reason + ")" +
      (wait.count() > 0 ? "; started again in " + std::to_string(wait.count() / 1000) + " s"
                        : std::string());
  slot.metrics.setState(telemetry::State::kFailing, said);
  slot.log->error("{}", said);
  if (final) {
    shared.source_failed = true;
    return std::nullopt;
  }
  return shared.clock.steadyNow() + wait;
}

// Runs every source's turns on the worker pool: a turn is started when it is due, earliest
// first (ties: configuration order), at most `capacity` at once, one per source at a time.
// Returns when every source is done (--once) or on a stop request, after the turns in
// flight have ended.
class Schedule {
 public:
  Schedule(Shared& shared, WorkerPool& pool, bool once, bool backfill_only)
      : shared_(shared), pool_(pool), once_(once), backfill_only_(backfill_only) {
    for (const auto& s : shared.config.sources) {
      if (backfill_only && s.type == config::SourceType::kFile) continue;
      slots_.push_back(std::make_unique<Slot>(shared, s));
    }
    capacity_ = pool.size() * kTurnsPerWorker;
  }

  // Turns in flight at once per worker (each a fiber; most of them wait for an answer).
  static constexpr std::size_t kTurnsPerWorker = 64;
  // How long, after a stop request, answers already requested may take to arrive.
  static constexpr std::chrono::seconds kStopGrace{5};

  void run(std::stop_token stop) {
    const auto start = shared_.clock.steadyNow();
    seq_.assign(slots_.size(), 0);
    busy_.assign(slots_.size(), false);
    for (std::size_t i = 0; i < slots_.size(); ++i) schedule(i, start);
    auto next_backfill_check = start;
    std::size_t active = slots_.size();
    shared_.sources_running = static_cast<int>(active);
    std::stop_callback wake(stop, [this] {
      std::lock_guard lock(mu_);
      cv_.notify_all();
    });
    // On a stop request, answers already on their way are given kStopGrace to arrive: a page
    // that arrives is committed, so the versions it shows are delivered (one superseded
    // before the next run could not be read again). Transfers still waiting then are
    // cancelled: a tenant answering slowly does not hold the stop up longer.
    std::optional<std::chrono::steady_clock::time_point> cancel_at;
    auto& sm = shared_.metrics.scheduler();
    sm.workers = static_cast<std::int64_t>(pool_.size());
    for (std::uint64_t guard = 0; guard < (1ull << 62); ++guard) {
      std::vector<std::pair<std::size_t, std::optional<TimePoint>>> ended;
      {
        std::unique_lock lock(mu_);
        ended.swap(ended_);
      }
      for (const auto& [i, next] : ended) {
        --in_flight_;
        busy_[i] = false;
        if (next && !stop.stop_requested()) {
          schedule(i, *next);
        } else {
          --active;
          --shared_.sources_running;
        }
      }
      if (stop.stop_requested()) {
        if (in_flight_ == 0) break;
        const auto real_now = std::chrono::steady_clock::now();
        if (!cancel_at) {
          cancel_at = real_now + kStopGrace;
        } else if (real_now >= *cancel_at) {
          pool_.cancelTransfers();  // idempotent: later transfers end at once too
          cancel_at = std::chrono::steady_clock::time_point::max();
        }
      }
      // Running (not --once), a collector with no source left — or none at all: a shard
      // that owns none — stays up until stopped: outputs, /health and /metrics go on.
      if (active == 0 && (once_ || backfill_only_)) break;
      const auto now = shared_.clock.steadyNow();
      // A backfill job queued meanwhile (`mdecollect backfill` beside a running collector)
      // is taken up within about 2 seconds: its source's turn starts now, and between its
      // live polls it collects the job's slices.
      if (!once_ && !backfill_only_ && now >= next_backfill_check) {
        next_backfill_check = now + std::chrono::seconds(2);
        wakeForBackfills(now);
      }
      std::int64_t late_ms = -1;
      while (!stop.stop_requested() && !due_.empty() && due_.top().at <= now &&
             in_flight_ < capacity_) {
        const Due d = due_.top();
        due_.pop();
        // Superseded by a later schedule(), or its turn is running: dropped.
        if (d.seq != seq_[d.slot] || busy_[d.slot]) continue;
        busy_[d.slot] = true;
        late_ms = std::max<std::int64_t>(
            late_ms, std::chrono::duration_cast<milliseconds>(now - d.at).count());
        ++in_flight_;
        ++sm.turns;
        pool_.post([this, i = d.slot, stop] {
          std::optional<TimePoint> next;
          next = turn(shared_, *slots_[i], once_, backfill_only_, stop);
          std::lock_guard lock(mu_);
          ended_.emplace_back(i, next);
          cv_.notify_all();
        });
      }
      std::size_t waiting = 0;
      // (Those due now and not started: the pool is at capacity.)
      if (!due_.empty() && due_.top().at <= now) waiting = 1;
      sm.turns_in_flight = static_cast<std::int64_t>(in_flight_);
      sm.turns_waiting = static_cast<std::int64_t>(waiting);
      if (late_ms >= 0) sm.start_delay_ms = late_ms;
      auto wait = milliseconds(1000);
      if (!due_.empty() && in_flight_ < capacity_) {
        wait = std::clamp(std::chrono::ceil<milliseconds>(due_.top().at - now), milliseconds(0),
                          milliseconds(1000));
      }
      if (stop.stop_requested()) wait = milliseconds(100);  // turns ending, or the grace
      std::unique_lock lock(mu_);
      if (ended_.empty() && wait.count() > 0) cv_.wait_for(lock, wait);
    }
    sm.turns_in_flight = 0;
  }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Due {
    TimePoint at;
    std::size_t slot;
    std::uint64_t seq;  // the slot's schedule() it came from
    // The earliest first; ties in configuration order.
    bool operator<(const Due& o) const { return o.at < at || (o.at == at && o.slot < slot); }
  };

  // Slot i's next turn starts at `at` (any earlier schedule of it is dropped).
  void schedule(std::size_t i, TimePoint at) { due_.push({at, i, ++seq_[i]}); }

  // Sources with a queued or running backfill job and no turn running: a turn now.
  void wakeForBackfills(TimePoint now) {
    auto jobs = shared_.store.backfills("");  // every source's (a few rows)
    if (!jobs) return;                        // said when the turn reads them
    for (const auto& job : *jobs) {
      if (job.state != "queued" && job.state != "running") continue;
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        // (Not busy: no turn touches the slot; the last one's writes came through mu_.)
        if (!busy_[i] && slots_[i]->config.name == job.source && slots_[i]->backfill) {
          schedule(i, now);
        }
      }
    }
  }

  Shared& shared_;
  WorkerPool& pool_;
  const bool once_;
  const bool backfill_only_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::uint64_t> seq_;  // by slot: its latest schedule()
  std::vector<bool> busy_;          // by slot: its turn is running
  std::priority_queue<Due> due_;
  std::size_t capacity_ = 0;
  std::size_t in_flight_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::size_t, std::optional<TimePoint>>> ended_;
};

// Counts a batch an output acknowledged whole, per source (unless the output counts its
// items itself).
void countDelivered(telemetry::Metrics& metrics, const output::Output& out,
                    const std::vector<state::OutboxDocument>& batch) {
  if (out.countsDelivered()) return;
  telemetry::DocumentTally tally;
  for (const auto& d : batch) tally.add(d.source, telemetry::Outcome::kDelivered);
  tally.flush(&metrics, out.name());
}

// Feeds one output from the outbox. With `once`, returns when the sources are done and
// the outbox holds nothing more for it.
bool runOutput(Shared& shared, output::Output& out, bool once, std::stop_token stop) {
  auto log = spdlog::default_logger()->clone("output." + out.name());
  telemetry::OutputMetrics& metrics = shared.metrics.output(out.name());
  std::uint64_t delivered = 0;
  // Exponential backoff with jitter (half to all of the step): 1 s doubling to 30 s;
  // refused credentials wait a minute.
  core::Backoff backoff({.first = milliseconds(1000), .max = milliseconds(30'000), .jitter = true});
  core::Backoff refused(
      {.first = milliseconds(60'000), .max = milliseconds(60'000), .jitter = true});
  for (;;) {
    // A stop request ends delivery after the batch in hand; the rest waits in the outbox.
    if (stop.stop_requested()) return true;
    const bool sources_done = shared.sources_running.load() == 0;
    auto acked = shared.store.ackedSeq(out.name());
    if (!acked) {
      log->error("{}", acked.error().message());
      if (!shared.clock.sleepFor(milliseconds(1000), stop)) return false;
      continue;
    }
    auto batch = shared.store.readOutbox(*acked, out.maxBatchDocuments(), out.maxBatchBytes());
    if (!batch) {
      log->error("{}", batch.error().message());
      if (!shared.clock.sleepFor(milliseconds(1000), stop)) return false;
      continue;
    }
    if (batch->empty()) {
      // Nothing waits for it: it is keeping up.
      if (metrics.state().first == telemetry::State::kStarting) {
        metrics.setState(telemetry::State::kOk);
      }
      if ((once && sources_done) || stop.stop_requested()) {
        // (An output that counts its own items reads on past the batch it is handed: its
        // summary says what it delivered.)
        if (delivered > 0 && !out.countsDelivered()) {
          log->info("{} documents delivered", delivered);
        }
        return true;
      }
      shared.clock.sleepFor(milliseconds(100), stop);
      continue;
    }
    auto s = out.deliver(*batch, shared.store);
    if (s) {
      backoff.reset();
      delivered += batch->size();
      countDelivered(shared.metrics, out, *batch);
      metrics.setState(telemetry::State::kOk);
      continue;
    }
    metrics.setState(s.error().code() == ErrorCode::kAuth ? telemetry::State::kFailing
                                                          : telemetry::State::kDegraded,
                     "delivery failed (" + std::to_string(batch->size()) +
                         " documents wait in the outbox): " + s.error().message());
    // A delivery that acknowledged part of the batch (some items must be sent again) made
    // progress: the backoff starts over rather than growing.
    auto now_acked = shared.store.ackedSeq(out.name());
    if (now_acked && *now_acked > *acked) backoff.reset();
    log->error("delivery failed ({} documents wait in the outbox): {}", batch->size(),
               s.error().message());
    if (!s.error().retryable() && once) return false;
    const milliseconds wait =
        s.error().code() == ErrorCode::kAuth ? refused.delay(0) : backoff.next();
    // On a stop request the documents stay in the outbox for the next start.
    if (!shared.clock.sleepFor(wait, stop)) return false;
  }
}

// Delivers to `out` what waits for it in the outbox (from before a restart), so that it
// can then be written directly.
Status catchUp(state::StateStore& store, output::Output& out, telemetry::Metrics& metrics) {
  std::uint64_t delivered = 0;
  for (;;) {
    auto acked = store.ackedSeq(out.name());
    if (!acked) return acked.error();
    auto batch = store.readOutbox(*acked, out.maxBatchDocuments(), out.maxBatchBytes());
    if (!batch) return batch.error();
    if (batch->empty()) break;
    if (auto s = out.deliver(*batch, store); !s) return s;
    delivered += batch->size();
    countDelivered(metrics, out, *batch);
  }
  if (delivered > 0) {
    spdlog::info("output {}: {} documents waiting from before delivered", out.name(), delivered);
  }
  return okStatus();
}

// One output's thread: fed from the outbox under supervision (a throw is reported failing
// and the output started again after a backoff). Returns false when it gave up.
bool superviseOutput(Shared& shared, output::Output& out, bool once, std::stop_token stop) {
  bool delivered = true;
  SuperviseOptions supervision;
  supervision.once = once;
  const bool ok = supervise(
      [&] { delivered = runOutput(shared, out, once, stop); },
      [&](const std::string& reason, milliseconds wait) {
        const std::string said =
            "the output failed unexpectedly (" + reason + ")" +
            (wait.count() > 0 ? "; started again in " + std::to_string(wait.count() / 1000) + " s"
                              : std::string());
        shared.metrics.output(out.name()).setState(telemetry::State::kFailing, said);
        spdlog::error("output {}: {}", out.name(), said);
      },
      shared.clock, stop, supervision);
  return ok && delivered;
}

// A collector being assembled, step by step, then run. Each step that fails says why in
// the log and makes run() return 2.
class Collector {
 public:
  Collector(const config::Config& config, const RunOptions& options, const CollectorParts& parts,
            core::Clock& clock)
      : config_(config), options_(options), parts_(parts), clock_(clock) {}

  int run(std::stop_token stop) {
    if (!lockStateDir() || !openStore()) return 2;
    // The outbox probe reads the store: it goes before the store does.
    struct ProbeReset {
      telemetry::Metrics& m;
      ~ProbeReset() { m.setOutboxProbe(nullptr, 0); }
    } probe_reset{*metrics_};
    if (!startTracing() || !startMonitoring() || !openOutputs() || !forgetRemovedOutputs()) {
      return 2;
    }
    return runThreads(stop);
  }

 private:
  bool lockStateDir() {
    if (options_.lock_held) return true;
    auto acquired = state::RunLock::tryAcquire(config_.state_dir);
    if (!acquired) {
      log_->error("{}", acquired.error().message());
      return false;
    }
    if (!*acquired) {
      log_->error(
          "another mdecollect run (pid {}) is using the state directory '{}'; one "
          "collector per state_dir",
          state::RunLock::holder(config_.state_dir), config_.state_dir);
      return false;
    }
    lock_ = std::move(*acquired);
    return true;
  }

  bool openStore() {
    auto store = parts_.open_store(config_.state_dir);
    if (!store) {
      log_->error("cannot open the state in '{}': {}", config_.state_dir, store.error().message());
      return false;
    }
    store_ = std::move(*store);
    metrics_ = options_.metrics ? options_.metrics : std::make_shared<telemetry::Metrics>();
    // Every source is listed from the start (state "starting").
    for (const auto& source : config_.sources) {
      metrics_->source(source.name, config::sourceTypeName(source.type));
    }
    metrics_->setOutboxProbe(
        [store = store_.get()]() -> std::optional<telemetry::Metrics::OutboxSize> {
          auto size = store->outboxSize();
          if (!size) return std::nullopt;
          return telemetry::Metrics::OutboxSize{size->documents, size->bytes};
        },
        config_.max_spool_bytes);
    return true;
  }

  bool startTracing() {
    if (!config_.tracing.enabled) return true;
    http::TraceOptions t;
    t.path = config_.tracing.path;
    t.max_body_bytes = config_.tracing.max_body_bytes;
    t.rotate_bytes = config_.tracing.rotate_bytes;
    t.keep_files = config_.tracing.keep_files;
    auto opened = http::TraceWriter::open(t, http::secretValues(config_));
    if (!opened) {
      log_->error("tracing: {}", opened.error().message());
      return false;
    }
    trace_ = std::move(*opened);
    log_->warn(
        "tracing every HTTP request and response to {} (secrets redacted; turn "
        "tracing.enabled off when done)",
        config_.tracing.path);
    return true;
  }

  bool startMonitoring() {
    if (!config_.http.enabled) return true;
    auto server =
        telemetry::startMonitorServer(config_.http.host, config_.http.port, *metrics_, clock_);
    if (!server) {
      log_->error("{}", server.error().message());
      return false;
    }
    monitor_ = std::move(*server);
    log_->info("monitoring on http://{} (/metrics, /health)",
               core::formatHostPort(config_.http.host, monitor_->port()));
    return true;
  }

  // Registers and opens every output. An output that can be written directly first
  // delivers what waits for it in the outbox (from before a restart), then takes each page
  // as it is mapped; the others are fed from the outbox by a thread of their own.
  bool openOutputs() {
    outputs_ = parts_.outputs(config_, output::OutputContext{metrics_.get(), trace_});
    for (auto& out : outputs_) {
      metrics_->output(out->name());
      Status s = store_->registerOutput(out->name());
      if (s) s = out->open(*store_);
      if (s && out->direct() != nullptr) s = catchUp(*store_, *out, *metrics_);
      if (!s) {
        log_->error("output {}: {}", out->name(), s.error().message());
        return false;
      }
      if (out->direct() != nullptr) {
        metrics_->output(out->name()).setState(telemetry::State::kOk);
        direct_.push_back(out.get());
      } else {
        queued_.push_back(out.get());
      }
    }
    return true;
  }

  // An output no longer configured is forgotten: otherwise the documents waiting for it
  // would stay in the outbox for ever, count against max_spool_bytes and pause polling.
  bool forgetRemovedOutputs() {
    auto registered = store_->registeredOutputs();
    if (!registered) return true;
    for (const auto& name : *registered) {
      const bool configured = std::any_of(outputs_.begin(), outputs_.end(),
                                          [&name](const auto& o) { return o->name() == name; });
      if (configured) continue;
      log_->warn(
          "output {} is no longer configured: forgotten, with the documents that waited "
          "only for it (configured again, it starts with the documents collected from "
          "then on)",
          name);
      if (auto s = store_->unregisterOutput(name); !s) {
        log_->error("{}", s.error().message());
        return false;
      }
    }
    return true;
  }

  int runThreads(std::stop_token stop) {
    output::Delivery delivery(*store_, direct_, !queued_.empty());
    delivery.setMetrics(metrics_.get());
    Shared shared{parts_, *store_, delivery, config_, clock_, *metrics_, trace_, {}, {}, {}};
    shared.quotas = sharedQuotas(config_, clock_);
    for (const auto& [key, quota] : shared.quotas) {
      log_->info("Graph sources of one app in one tenant share its quota (pacing in {})",
                 quota.pacing_file);
    }
    log_->info("mdecollect {} starting: {} source(s), {} output(s), state in {}{}",
               MDEC_VERSION_STRING, config_.sources.size(), outputs_.size(), config_.state_dir,
               options_.once ? " (--once)" : "");
    for (const auto& warning : source::mdeRetirementWarnings(config_, clock_.now())) {
      log_->warn("{}", warning);
    }
    std::stop_source stopper;
    std::stop_callback forward(stop, [&stopper] { stopper.request_stop(); });
    std::atomic<int> output_failures{0};
    {
      std::vector<std::jthread> threads;
      shared.sources_running = static_cast<int>(config_.sources.size());
      for (output::Output* out : queued_) {
        threads.emplace_back([this, &shared, out, &output_failures, token = stopper.get_token()] {
          if (!superviseOutput(shared, *out, options_.once, token)) ++output_failures;
        });
      }
      // The sources: their polls on the worker pool, scheduled on this thread.
      const int workers = config_.workers > 0 ? config_.workers : WorkerPool::defaultWorkers();
      WorkerPool pool(workers);
      log_->info("{} worker thread(s) run the polls", pool.size());
      Schedule schedule(shared, pool, options_.once, options_.backfill_only);
      schedule.run(stopper.get_token());
      pool.finish();
    }  // joins every thread
    for (const auto& out : outputs_) {
      if (auto said = out->summary(); !said.empty()) log_->info("{}: {}", out->name(), said);
    }
    if (stop.stop_requested()) {
      log_->info("stopped");
      return 0;
    }
    if (shared.source_failed || output_failures > 0) return 1;
    return 0;
  }

  const config::Config& config_;
  const RunOptions& options_;
  const CollectorParts& parts_;
  core::Clock& clock_;
  std::shared_ptr<spdlog::logger> log_ = spdlog::default_logger();
  std::optional<state::RunLock> lock_;
  std::unique_ptr<state::StateStore> store_;
  std::shared_ptr<telemetry::Metrics> metrics_;
  std::shared_ptr<http::TraceWriter> trace_;
  std::unique_ptr<telemetry::MonitorServer> monitor_;
  // Outputs go after the monitoring server (it reads their metrics) and before the store.
  std::vector<std::unique_ptr<output::Output>> outputs_;
  std::vector<output::Output*> direct_;
  std::vector<output::Output*> queued_;
};

}  // namespace

CollectorParts realParts() {
  CollectorParts parts;
  parts.open_store = [](const std::string& state_dir) { return state::openSqliteStore(state_dir); };
  parts.source_client = [](const config::SourceConfig& source) {
    http::CurlClientOptions options;
    options.proxy_url = source.proxy_url;
    options.tls.verify = source.ssl.verify;
    options.tls.ca_file = source.ssl.ca_file;
    options.user_agent = "MdatpPartner-mdecollect/" MDEC_VERSION_STRING;
    return http::makeCurlClient(options);
  };
  parts.tokens = [](const config::SourceConfig& source, http::HttpClient& client,
                    core::Clock& clock) {
    return auth::makeClientCredentialsProvider(source, client, clock);
  };
  parts.outputs = output::makeOutputs;
  return parts;
}

int runCollector(const config::Config& config, const RunOptions& options,
                 const CollectorParts& parts, core::Clock& clock, std::stop_token stop) {
  return Collector(config, options, parts, clock).run(stop);
}

int runCollector(const config::Config& config, const RunOptions& options, core::Clock& clock,
                 std::stop_token stop) {
  return runCollector(config, options, realParts(), clock, stop);
}

}  // namespace mdec::pipeline
