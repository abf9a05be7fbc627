#include "mdecollect/pipeline/collector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "mdecollect/auth/token_provider.h"
#include "mdecollect/http/http_client.h"
#include "mdecollect/http/tracing_http_client.h"
#include "mdecollect/output/elasticsearch_output.h"
#include "mdecollect/output/es_setup.h"
#include "mdecollect/output/file_output.h"
#include "mdecollect/source/file_source.h"
#include "mdecollect/source/source.h"
#include "mdecollect/pipeline/supervise.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/state/run_lock.h"
#include "mdecollect/state/state_store.h"
#include "mdecollect/telemetry/monitor_server.h"

namespace mdec::pipeline {
namespace {

using std::chrono::milliseconds;

struct Shared {
  state::StateStore& store;
  output::Delivery& delivery;
  const config::Config& config;
  core::Clock& clock;
  telemetry::Metrics& metrics;
  std::shared_ptr<http::TraceWriter> trace;  // null: tracing off
  std::atomic<int> sources_running{0};
  std::atomic<bool> source_failed{false};
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
  bool run(std::optional<std::chrono::steady_clock::time_point> deadline,
           std::stop_token stop) {
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
        const bool refused = e.code() == ErrorCode::kAuth || e.code() == ErrorCode::kInvalidArgument;
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
  http::CurlClientOptions http_options;
  http_options.proxy_url = source.proxy_url;
  http_options.tls.verify = source.ssl.verify;
  http_options.tls.ca_file = source.ssl.ca_file;
  http_options.user_agent = "MdatpPartner-mdecollect/" MDEC_VERSION_STRING;
  parts.client = http::makeTracingClient(http::makeCurlClient(http_options), shared.trace,
                                         "source." + source.name);
  parts.tokens = auth::makeClientCredentialsProvider(source, *parts.client, shared.clock);
  options.api.pacing_file = shared.config.state_dir + "/pacing-" + source.name + ".txt";
  parts.source = source::makeApiSource(source, shared.delivery, *parts.client, *parts.tokens,
                                       shared.clock, std::move(options));
  return parts;
}

// Polls a source until stopped (once: one poll); backfill slices between live polls.
void pollSource(Shared& shared, const config::SourceConfig& config, source::Source& source,
                telemetry::SourceMetrics& metrics, bool once, bool backfill_only,
                std::shared_ptr<spdlog::logger> log, std::stop_token stop) {
  std::optional<BackfillRunner> backfill;
  if (source.backfills()) backfill.emplace(shared, config, source, log);
  if (backfill_only) {
    if (backfill && !backfill->run(std::nullopt, stop)) shared.source_failed = true;
    return;
  }
  const bool file = config.type == config::SourceType::kFile;
  while (!stop.stop_requested()) {
    metrics.setStateIf(telemetry::State::kCollecting, {telemetry::State::kDegraded},
                       std::string());
    auto stats = source.poll(stop);
    milliseconds wait = file ? std::min<milliseconds>(config.interval, milliseconds(1000))
                             : milliseconds(config.interval);
    ++metrics.polls;
    if (stats) {
      const auto& s = *stats;
      if (!s.stopped) {
        metrics.last_success_unix_ms = std::chrono::duration_cast<milliseconds>(
                                           shared.clock.now().time_since_epoch())
                                           .count();
        metrics.setStateIf(telemetry::State::kCollecting,
                           {telemetry::State::kStarting, telemetry::State::kAuthenticating,
                            telemetry::State::kDegraded, telemetry::State::kFailing});
      }
      // Full after this poll: say so now, not only when the next poll waits for room.
      if (!once && outboxFull(shared)) metrics.setState(telemetry::State::kDegraded, kBackpressure);
      if (!file || s.alerts > 0 || once) log->info("{}", source.summary(s));
    } else {
      const Error& e = stats.error();
      ++metrics.poll_failures;
      // A refused credential, permission or certificate is configuration: failing. Anything
      // else is retried: degraded.
      const bool refused = e.code() == ErrorCode::kAuth || e.code() == ErrorCode::kInvalidArgument;
      metrics.setState(refused ? telemetry::State::kFailing : telemetry::State::kDegraded,
                       "last poll failed: " + e.message());
      // (A failure that repeats is written at most once a minute: the logging sink.)
      log->error("poll failed: {}", e.message());
      if (once) shared.source_failed = true;
      // A refused credential, permission or certificate is configuration: retry slowly.
      if (refused) {
        wait = std::max<milliseconds>(config.interval * 4, milliseconds(60'000));
      }
    }
    if (once) break;
    // Backfill slices until the next poll is due; a job queued meanwhile is taken up
    // within a couple of seconds.
    const auto next_poll = shared.clock.steadyNow() + wait;
    for (int guard = 0; guard < 1'000'000 && !stop.stop_requested(); ++guard) {
      if (backfill) backfill->run(next_poll, stop);
      const auto left =
          std::chrono::duration_cast<milliseconds>(next_poll - shared.clock.steadyNow());
      if (left.count() <= 0) break;
      if (!shared.clock.sleepFor(std::min<milliseconds>(left, milliseconds(2000)), stop)) break;
    }
  }
}

// A source's thread: made, polled, and — when anything in it throws — reported failing
// and made again after a backoff.
void runSource(Shared& shared, const config::SourceConfig& config, bool once,
               bool backfill_only, std::stop_token stop) {
  auto log = source::sourceLogger(config.name);
  telemetry::SourceMetrics& metrics =
      shared.metrics.source(config.name, config::sourceTypeName(config.type));
  if (backfill_only && config.type == config::SourceType::kFile) return;
  bool restarted = false;
  SuperviseOptions options;
  options.once = once;
  const bool ok = supervise(
      [&] {
        auto parts = makeSource(shared, config, metrics, once, log);
        if (config.type != config::SourceType::kFile && !restarted) {
          metrics.setState(telemetry::State::kAuthenticating);
        }
        pollSource(shared, config, *parts.source, metrics, once, backfill_only, log, stop);
      },
      [&](const std::string& reason, milliseconds wait) {
        restarted = true;
        ++metrics.restarts;
        const std::string said =
            "the source failed unexpectedly (" + reason + ")" +
            (wait.count() > 0 ? "; started again in " + std::to_string(wait.count() / 1000) + " s"
                              : std::string());
        metrics.setState(telemetry::State::kFailing, said);
        log->error("{}", said);
      },
      shared.clock, stop, options);
  if (!ok) shared.source_failed = true;
}

// Counts a batch an output acknowledged whole, per source (the Elasticsearch output counts
// its items itself).
void countDelivered(telemetry::Metrics& metrics, const output::Output& out,
                    const std::vector<state::OutboxDocument>& batch) {
  if (out.name() == "elasticsearch") return;
  telemetry::DocumentTally tally;
  for (const auto& d : batch) tally.add(d.source, telemetry::Outcome::kDelivered);
  tally.flush(&metrics, out.name());
}

// Feeds one output from the outbox. With `once`, returns when the sources are done and
// the outbox holds nothing more for it.
bool runOutput(Shared& shared, output::Output& out, bool once, std::stop_token stop) {
  auto log = spdlog::default_logger()->clone("output." + out.name());
  telemetry::OutputMetrics& metrics = shared.metrics.output(out.name());
  int failures = 0;
  std::uint64_t delivered = 0;
  std::mt19937_64 rng(std::random_device{}());
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
        if (delivered > 0) log->info("{} documents delivered", delivered);
        return true;
      }
      shared.clock.sleepFor(milliseconds(100), stop);
      continue;
    }
    auto s = out.deliver(*batch, shared.store);
    if (s) {
      failures = 0;
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
    failures = (now_acked && *now_acked > *acked) ? 1 : failures + 1;
    log->error("delivery failed ({} documents wait in the outbox): {}", batch->size(),
               s.error().message());
    if (!s.error().retryable() && once) return false;
    // Exponential backoff with jitter (half to all of the step), at most 30 s; refused
    // credentials wait longer.
    const std::int64_t cap = s.error().code() == ErrorCode::kAuth
                                 ? 60'000
                                 : std::min<std::int64_t>(30'000, 500LL << std::min(failures, 6));
    std::uniform_int_distribution<std::int64_t> jitter(cap / 2, cap);
    const milliseconds backoff(jitter(rng));
    // On a stop request the documents stay in the outbox for the next start.
    if (!shared.clock.sleepFor(backoff, stop)) return false;
  }
}

// Says how to fix a missing or outdated index template; never stops the run (the
// documents wait in the outbox while the cluster is unreachable).
void checkIndexTemplate(const config::ElasticsearchOutputConfig& config) {
  output::EsTransport transport(config);
  auto state = output::templateState(config, transport);
  if (!state) {
    spdlog::warn("elasticsearch: cannot check the index template: {}", state.error().message());
  } else if (*state == output::TemplateState::kMissing) {
    spdlog::warn("elasticsearch: the index template is missing, so documents would get "
                 "Elasticsearch's default mappings; install it with: mdecollect setup -c FILE");
  } else if (*state == output::TemplateState::kOutdated) {
    spdlog::warn("elasticsearch: the index template is from another version of mdecollect "
                 "(or another ILM policy); update it with: mdecollect setup -c FILE");
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

}  // namespace

int runCollector(const config::Config& config, const RunOptions& options, core::Clock& clock,
                 std::stop_token stop) {
  auto log = spdlog::default_logger();
  std::optional<state::RunLock> lock;
  if (!options.lock_held) {
    auto acquired = state::RunLock::tryAcquire(config.state_dir);
    if (!acquired) {
      log->error("{}", acquired.error().message());
      return 2;
    }
    if (!*acquired) {
      log->error("another mdecollect run (pid {}) is using the state directory '{}'; one "
                 "collector per state_dir",
                 state::RunLock::holder(config.state_dir), config.state_dir);
      return 2;
    }
    lock = std::move(*acquired);
  }
  auto store = state::openSqliteStore(config.state_dir);
  if (!store) {
    log->error("cannot open the state in '{}': {}", config.state_dir, store.error().message());
    return 2;
  }
  auto metrics = options.metrics ? options.metrics : std::make_shared<telemetry::Metrics>();
  // Every source and output is listed from the start (state "starting").
  for (const auto& source : config.sources) {
    metrics->source(source.name, config::sourceTypeName(source.type));
  }
  metrics->setOutboxProbe(
      [&store]() -> std::optional<telemetry::Metrics::OutboxSize> {
        auto size = (*store)->outboxSize();
        if (!size) return std::nullopt;
        return telemetry::Metrics::OutboxSize{size->documents, size->bytes};
      },
      config.max_spool_bytes);
  // The probe reads this store: it goes before the store does.
  struct ProbeReset {
    telemetry::Metrics& m;
    ~ProbeReset() { m.setOutboxProbe(nullptr, 0); }
  } probe_reset{*metrics};
  std::shared_ptr<http::TraceWriter> trace;
  if (config.tracing.enabled) {
    http::TraceOptions t;
    t.path = config.tracing.path;
    t.max_body_bytes = config.tracing.max_body_bytes;
    t.rotate_bytes = config.tracing.rotate_bytes;
    t.keep_files = config.tracing.keep_files;
    auto opened = http::TraceWriter::open(t, http::secretValues(config));
    if (!opened) {
      log->error("tracing: {}", opened.error().message());
      return 2;
    }
    trace = std::move(*opened);
    log->warn("tracing every HTTP request and response to {} (secrets redacted; turn "
              "tracing.enabled off when done)",
              config.tracing.path);
  }
  std::unique_ptr<telemetry::MonitorServer> monitor;
  if (config.http.enabled) {
    auto server = telemetry::startMonitorServer(config.http.host, config.http.port, *metrics,
                                                clock);
    if (!server) {
      log->error("{}", server.error().message());
      return 2;
    }
    monitor = std::move(*server);
    log->info("monitoring on http://{}:{} (/metrics, /health)",
              config.http.host.find(':') != std::string::npos ? "[" + config.http.host + "]"
                                                               : config.http.host,
              monitor->port());
  }
  std::vector<std::unique_ptr<output::Output>> outputs;
  if (config.file_output.enabled) outputs.push_back(output::makeFileOutput(config.file_output));
  if (config.stdout_output.enabled) outputs.push_back(output::makeFdOutput(1, "stdout"));
  auto es_counters = options.es_counters ? options.es_counters
                                         : std::make_shared<output::ElasticsearchCounters>();
  if (config.elasticsearch.enabled) {
    checkIndexTemplate(config.elasticsearch);
    output::ElasticsearchOutputOptions es;
    es.dead_letter_path = config.state_dir + "/dead-letter-elasticsearch.ndjson";
    es.metrics = metrics.get();
    if (trace) {
      es.client = http::makeTracingClient(output::makeElasticsearchClient(config.elasticsearch),
                                          trace, "output.elasticsearch");
    }
    outputs.push_back(
        output::makeElasticsearchOutput(config.elasticsearch, std::move(es), es_counters));
  }
  for (auto& out : outputs) {
    metrics->output(out->name());
    if (auto s = (*store)->registerOutput(out->name()); !s) {
      log->error("output {}: {}", out->name(), s.error().message());
      return 2;
    }
    if (auto s = out->open(**store); !s) {
      log->error("output {}: {}", out->name(), s.error().message());
      return 2;
    }
  }
  // An output no longer configured is forgotten: otherwise the documents waiting for it
  // would stay in the outbox for ever, count against max_spool_bytes and pause polling.
  if (auto registered = (*store)->registeredOutputs()) {
    for (const auto& name : *registered) {
      const bool configured = std::any_of(outputs.begin(), outputs.end(),
                                          [&name](const auto& o) { return o->name() == name; });
      if (configured) continue;
      log->warn("output {} is no longer configured: forgotten, with the documents that waited "
                "only for it (configured again, it starts with the documents collected from "
                "then on)",
                name);
      if (auto s = (*store)->unregisterOutput(name); !s) {
        log->error("{}", s.error().message());
        return 2;
      }
    }
  }
  // Outputs that can be written directly take each page as it is mapped; the others are
  // fed from the outbox by a thread of their own.
  std::vector<output::Output*> direct;
  std::vector<output::Output*> queued;
  for (auto& out : outputs) {
    if (out->direct() != nullptr) {
      if (auto s = catchUp(**store, *out, *metrics); !s) {
        log->error("output {}: {}", out->name(), s.error().message());
        return 2;
      }
      metrics->output(out->name()).setState(telemetry::State::kOk);
      direct.push_back(out.get());
    } else {
      queued.push_back(out.get());
    }
  }
  output::Delivery delivery(**store, direct, !queued.empty());
  delivery.setMetrics(metrics.get());
  Shared shared{**store, delivery, config, clock, *metrics, trace};
  log->info("mdecollect {} starting: {} source(s), {} output(s), state in {}{}",
            MDEC_VERSION_STRING, config.sources.size(), outputs.size(), config.state_dir,
            options.once ? " (--once)" : "");

  std::stop_source stopper;
  std::stop_callback forward(stop, [&stopper] { stopper.request_stop(); });
  std::atomic<int> output_failures{0};
  {
    std::vector<std::jthread> threads;
    shared.sources_running = static_cast<int>(config.sources.size());
    for (const auto& source : config.sources) {
      threads.emplace_back([&shared, &source, &options, token = stopper.get_token()] {
        runSource(shared, source, options.once, options.backfill_only, token);
        --shared.sources_running;
      });
    }
    for (output::Output* out : queued) {
      threads.emplace_back([&shared, out, &options, &output_failures,
                            token = stopper.get_token()] {
        bool delivered = true;
        SuperviseOptions supervision;
        supervision.once = options.once;
        const bool ok = supervise(
            [&] { delivered = runOutput(shared, *out, options.once, token); },
            [&](const std::string& reason, milliseconds wait) {
              const std::string said =
                  "the output failed unexpectedly (" + reason + ")" +
                  (wait.count() > 0
                       ? "; started again in " + std::to_string(wait.count() / 1000) + " s"
                       : std::string());
              shared.metrics.output(out->name()).setState(telemetry::State::kFailing, said);
              spdlog::error("output {}: {}", out->name(), said);
            },
            shared.clock, token, supervision);
        if (!ok || !delivered) ++output_failures;
      });
    }
  }  // joins every thread
  if (config.elasticsearch.enabled) {
    log->info("elasticsearch: {} created, {} duplicates (already stored), {} dead-lettered, "
              "{} items sent again, {} bulk requests ({} failed)",
              es_counters->created.load(), es_counters->duplicates.load(),
              es_counters->dead_lettered.load(), es_counters->item_retries.load(),
              es_counters->bulk_requests.load(), es_counters->failed_requests.load());
  }
  if (stop.stop_requested()) {
    log->info("stopped");
    return 0;
  }
  if (shared.source_failed || output_failures > 0) return 1;
  return 0;
}

}  // namespace mdec::pipeline
