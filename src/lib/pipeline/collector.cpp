#include "mdecollect/pipeline/collector.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "mdecollect/auth/token_provider.h"
#include "mdecollect/http/http_client.h"
#include "mdecollect/output/elasticsearch_output.h"
#include "mdecollect/output/es_setup.h"
#include "mdecollect/output/file_output.h"
#include "mdecollect/source/file_source.h"
#include "mdecollect/source/mde_source.h"
#include "mdecollect/state/state_store.h"

namespace mdec::pipeline {
namespace {

using std::chrono::milliseconds;

// Logs a repeated failure once, then again only every `every` occurrences: a source
// that keeps failing does not flood the log.
class RepeatLimiter {
 public:
  bool shouldLog(const std::string& message) {
    if (message != last_) {
      last_ = message;
      count_ = 0;
    }
    return count_++ % 10 == 0;
  }
  std::uint64_t repeats() const { return count_; }

 private:
  std::string last_;
  std::uint64_t count_ = 0;
};

struct Shared {
  state::StateStore& store;
  output::Delivery& delivery;
  const config::Config& config;
  core::Clock& clock;
  std::atomic<int> sources_running{0};
  std::atomic<bool> source_failed{false};
};

void runMdeSource(Shared& shared, const config::SourceConfig& source, bool once,
                  std::stop_token stop) {
  auto log = spdlog::default_logger()->clone("source." + source.name);
  http::CurlClientOptions http_options;
  http_options.proxy_url = source.proxy_url;
  http_options.tls.verify = source.ssl.verify;
  http_options.tls.ca_file = source.ssl.ca_file;
  http_options.user_agent = "MdatpPartner-mdecollect/" MDEC_VERSION_STRING;
  auto client = http::makeCurlClient(http_options);
  auto tokens = auth::makeClientCredentialsProvider(source, *client, shared.clock);
  source::MdeSourceOptions mde_options;
  mde_options.pacing_file = shared.config.state_dir + "/pacing-" + source.name + ".txt";
  auto mde = source::makeMdeSource(source, shared.delivery, *client, *tokens, shared.clock,
                                   mde_options);
  RepeatLimiter repeats;
  while (!stop.stop_requested()) {
    auto size = shared.store.outboxSize();
    if (size && size->bytes >= shared.config.max_spool_bytes && !once) {
      log->warn("outbox full ({} documents, {} bytes): polling paused until outputs catch up",
                size->documents, size->bytes);
      shared.clock.sleepFor(milliseconds(1000), stop);
      continue;
    }
    auto stats = mde->poll(stop);
    milliseconds wait = source.interval;
    if (stats) {
      const auto& s = *stats;
      log->info("poll: {} alerts fetched ({} new versions), {} documents written ({} error), "
                "{} requests, {} retries, {} throttled, watermark {}, lag {}s",
                s.alerts, s.new_versions, s.documents, s.errors, s.requests, s.retries,
                s.throttled, s.watermark.value_or("none"), s.lag ? s.lag->count() : 0);
    } else {
      const Error& e = stats.error();
      if (repeats.shouldLog(e.message())) {
        log->error("poll failed: {}{}", e.message(),
                   repeats.repeats() > 1
                       ? fmt::format(" (repeated {} times)", repeats.repeats() - 1)
                       : std::string());
      }
      if (once) shared.source_failed = true;
      // A refused credential, permission or certificate is configuration: retry slowly.
      if (e.code() == ErrorCode::kAuth || e.code() == ErrorCode::kInvalidArgument) {
        wait = std::max<milliseconds>(source.interval * 4, milliseconds(60'000));
      }
    }
    if (once) break;
    shared.clock.sleepFor(wait, stop);
  }
}

void runFileSource(Shared& shared, const config::SourceConfig& source, bool once,
                   std::stop_token stop) {
  auto log = spdlog::default_logger()->clone("source." + source.name);
  auto files = source::makeFileSource(source, shared.delivery);
  RepeatLimiter repeats;
  const milliseconds wait = std::min<milliseconds>(source.interval, milliseconds(1000));
  while (!stop.stop_requested()) {
    auto stats = files->poll();
    if (stats) {
      if (stats->lines > 0 || once) {
        log->info("poll: {} files, {} lines read, {} documents written ({} error)",
                  stats->files, stats->lines, stats->documents, stats->errors);
      }
    } else {
      if (repeats.shouldLog(stats.error().message())) {
        log->error("poll failed: {}", stats.error().message());
      }
      if (once) shared.source_failed = true;
    }
    if (once) break;
    shared.clock.sleepFor(wait, stop);
  }
}

// Feeds one output from the outbox. With `once`, returns when the sources are done and
// the outbox holds nothing more for it.
bool runOutput(Shared& shared, output::Output& out, bool once, std::stop_token stop) {
  auto log = spdlog::default_logger()->clone("output." + out.name());
  int failures = 0;
  std::uint64_t delivered = 0;
  RepeatLimiter repeats;
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
      continue;
    }
    // A delivery that acknowledged part of the batch (some items must be sent again) made
    // progress: the backoff starts over rather than growing.
    auto now_acked = shared.store.ackedSeq(out.name());
    failures = (now_acked && *now_acked > *acked) ? 1 : failures + 1;
    if (repeats.shouldLog(s.error().message())) {
      log->error("delivery failed ({} documents wait in the outbox): {}{}", batch->size(),
                 s.error().message(),
                 repeats.repeats() > 1
                     ? fmt::format(" (repeated {} times)", repeats.repeats() - 1)
                     : std::string());
    }
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
Status catchUp(state::StateStore& store, output::Output& out) {
  std::uint64_t delivered = 0;
  for (;;) {
    auto acked = store.ackedSeq(out.name());
    if (!acked) return acked.error();
    auto batch = store.readOutbox(*acked, out.maxBatchDocuments(), out.maxBatchBytes());
    if (!batch) return batch.error();
    if (batch->empty()) break;
    if (auto s = out.deliver(*batch, store); !s) return s;
    delivered += batch->size();
  }
  if (delivered > 0) {
    spdlog::info("output {}: {} documents waiting from before delivered", out.name(), delivered);
  }
  return okStatus();
}

}  // namespace

void setupLogging(const config::LoggingConfig& logging) {
  auto logger = std::make_shared<spdlog::logger>(
      "mdecollect", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (logging.format == "json") {
    logger->set_pattern(
        R"({"@timestamp":"%Y-%m-%dT%H:%M:%S.%eZ","log.level":"%l","log.logger":"%n","message":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(spdlog::level::from_str(logging.level));
  spdlog::set_default_logger(logger);
}

int runCollector(const config::Config& config, const RunOptions& options, core::Clock& clock,
                 std::stop_token stop) {
  auto log = spdlog::default_logger();
  auto store = state::openSqliteStore(config.state_dir);
  if (!store) {
    log->error("cannot open the state in '{}': {}", config.state_dir, store.error().message());
    return 2;
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
    outputs.push_back(
        output::makeElasticsearchOutput(config.elasticsearch, std::move(es), es_counters));
  }
  for (auto& out : outputs) {
    if (auto s = (*store)->registerOutput(out->name()); !s) {
      log->error("output {}: {}", out->name(), s.error().message());
      return 2;
    }
    if (auto s = out->open(**store); !s) {
      log->error("output {}: {}", out->name(), s.error().message());
      return 2;
    }
  }
  // Outputs that can be written directly take each page as it is mapped; the others are
  // fed from the outbox by a thread of their own.
  std::vector<output::Output*> direct;
  std::vector<output::Output*> queued;
  for (auto& out : outputs) {
    if (out->direct() != nullptr) {
      if (auto s = catchUp(**store, *out); !s) {
        log->error("output {}: {}", out->name(), s.error().message());
        return 2;
      }
      direct.push_back(out.get());
    } else {
      queued.push_back(out.get());
    }
  }
  output::Delivery delivery(**store, direct, !queued.empty());
  Shared shared{**store, delivery, config, clock};
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
        try {
          if (source.type == config::SourceType::kFile) {
            runFileSource(shared, source, options.once, token);
          } else {
            runMdeSource(shared, source, options.once, token);
          }
        } catch (const std::exception& e) {
          spdlog::error("source {} stopped: {}", source.name, e.what());
          shared.source_failed = true;
        }
        --shared.sources_running;
      });
    }
    for (output::Output* out : queued) {
      threads.emplace_back([&shared, out, &options, &output_failures,
                            token = stopper.get_token()] {
        try {
          if (!runOutput(shared, *out, options.once, token)) ++output_failures;
        } catch (const std::exception& e) {
          spdlog::error("output {} stopped: {}", out->name(), e.what());
          ++output_failures;
        }
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
