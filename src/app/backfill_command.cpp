// `mdecollect backfill`: collect a past range of one source without moving its watermark.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include "commands.h"
#include "mdecollect/config/config.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/units.h"
#include "mdecollect/http/tracing_http_client.h"
#include "mdecollect/pipeline/collector.h"
#include "mdecollect/pipeline/shard.h"
#include "mdecollect/state/run_lock.h"
#include "mdecollect/state/state_store.h"
#include "mdecollect/telemetry/logging.h"
#include "stop_signals.h"

namespace mdec::app {
namespace {

struct BackfillArgs {
  std::string config;
  std::string source;
  std::string since;
  std::string until;
  bool no_wait = false;
  bool force = false;
};

// An ISO 8601 time, or a duration before now ("7d", "48h", "30m").
std::optional<core::Instant> parseWhen(const std::string& text, core::Instant now) {
  if (auto t = core::parseIsoDateTime(text)) return t;
  auto d = core::parseDuration(text);
  if (!d) return std::nullopt;
  core::Instant t = now;
  t.seconds -= std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  return t;
}

std::string progressLine(const state::BackfillJob& j) {
  return fmt::format(
      "backfill {} [{}]: up to {} of {} .. {}; {} slices, {} alerts fetched, {} "
      "documents{}",
      j.id, j.state, j.position, j.since, j.until, j.slices, j.alerts, j.documents,
      j.message.empty() ? "" : "; last error: " + j.message);
}

std::optional<state::BackfillJob> findJob(state::StateStore& store, const std::string& source,
                                          std::int64_t id) {
  auto jobs = store.backfills(source);
  if (!jobs) return std::nullopt;
  for (auto& j : *jobs) {
    if (j.id == id) return j;
  }
  return std::nullopt;
}

int runBackfill(const BackfillArgs& args) {
  auto config = config::loadConfig(args.config);
  if (!config) {
    fmt::print(stderr, "mdecollect backfill: the configuration has problems:\n{}\n",
               config.error().message());
    return kExitUsage;
  }
  const bool configured = std::any_of(config->sources.begin(), config->sources.end(),
                                      [&args](const auto& s) { return s.name == args.source; });
  if (!configured) {
    fmt::print(stderr, "mdecollect backfill: {} has no source named '{}'\n", args.config,
               args.source);
    return kExitUsage;
  }
  // This replica's sources only: the state of another shard's source is on its replica.
  auto sharded = pipeline::selectShard(std::move(*config), pipeline::currentShardEnvironment());
  if (!sharded) {
    fmt::print(stderr, "mdecollect backfill: the configuration has problems:\n{}\n",
               sharded.error().message());
    return kExitUsage;
  }
  config = std::move(sharded->config);
  const config::SourceConfig* source = nullptr;
  for (const auto& s : config->sources) {
    if (s.name == args.source) source = &s;
  }
  if (source == nullptr) {
    fmt::print(stderr,
               "mdecollect backfill: source '{}' belongs to shard {} of {}; this replica is "
               "shard {} ({}): run the backfill on the replica of shard {}\n",
               args.source, pipeline::shardOf(args.source, sharded->shard.count),
               sharded->shard.count, sharded->shard.index, pipeline::shardSummary(*sharded),
               pipeline::shardOf(args.source, sharded->shard.count));
    return kExitUsage;
  }
  if (source->type == config::SourceType::kFile) {
    fmt::print(stderr,
               "mdecollect backfill: source '{}' reads files; only mde and graph sources can "
               "be backfilled\n",
               args.source);
    return kExitUsage;
  }
  const core::Instant now = core::toInstant(std::chrono::system_clock::now());
  const auto since = parseWhen(args.since, now);
  const auto until =
      args.until.empty() ? std::optional<core::Instant>(now) : parseWhen(args.until, now);
  if (!since || !until) {
    fmt::print(stderr,
               "mdecollect backfill: --since/--until take an ISO 8601 time "
               "(2026-11-01T00:00:00Z) or a duration before now (7d, 48h, 30m); got '{}'\n",
               !since ? args.since : args.until);
    return kExitUsage;
  }
  if (!(*since < *until)) {
    fmt::print(stderr, "mdecollect backfill: --since must be before --until\n");
    return kExitUsage;
  }

  auto metrics = std::make_shared<telemetry::Metrics>();
  telemetry::LoggingOptions logging;
  logging.metrics = metrics.get();
  logging.secrets = http::secretValues(*config);
  telemetry::setupLogging(config->logging, logging);

  // Beside a running collector: the pages it is staging are its own.
  auto store = state::openSqliteStore(config->state_dir, state::StagedOnOpen::kKeep);
  if (!store) {
    fmt::print(stderr, "mdecollect backfill: cannot open the state in '{}': {}\n",
               config->state_dir, store.error().message());
    return kExitFailure;
  }
  // The live poll delivered everything from where its coverage began: a backfill stops
  // there, or the file output would get those alerts a second time.
  core::Instant end = *until;
  auto covered = (*store)->collectedSince(source->name);
  auto watermark = (*store)->watermark(source->name);
  if (covered && *covered && !args.force) {
    if (auto from = core::parseIsoDateTime(**covered); from && *from < end) {
      if (!(*since < *from)) {
        fmt::print(
            "nothing to backfill: source {} has been collected live from {} on (use "
            "--force to collect that range again)\n",
            source->name, **covered);
        return kExitOk;
      }
      fmt::print(
          "source {} has been collected live from {} on: the backfill stops there "
          "(--force collects the range again)\n",
          source->name, **covered);
      end = *from;
    }
  } else if (covered && !*covered && watermark && *watermark && !args.force) {
    fmt::print(
        "note: the state does not record where source {}'s live collection began (it "
        "is older than this version): alerts already collected in the range reach the "
        "file output again (Elasticsearch stores them once)\n",
        source->name);
  }
  state::BackfillJob job;
  job.source = source->name;
  job.since = core::formatRfc3339(*since, 7);
  job.until = core::formatRfc3339(end, 7);
  job.position = job.since;
  auto id = (*store)->addBackfill(job);
  if (!id) {
    fmt::print(stderr, "mdecollect backfill: {}\n", id.error().message());
    return kExitFailure;
  }
  fmt::print("backfill {} queued: source {}, {} .. {}\n", *id, job.source, job.since, job.until);

  // SIGINT/SIGTERM stop what this process does (the job itself stays recorded).
  StopSignals signals;

  auto lock = state::RunLock::tryAcquire(config->state_dir);
  if (!lock) {
    fmt::print(stderr, "mdecollect backfill: {}\n", lock.error().message());
    return kExitFailure;
  }
  if (*lock) {
    // No collector runs on this state: collect and deliver here, then exit.
    fmt::print("no collector is running on {}: collecting here\n", config->state_dir);
    config::Config here = *config;
    here.http.enabled = false;
    pipeline::RunOptions options;
    options.once = true;
    options.backfill_only = true;
    options.lock_held = true;
    options.metrics = metrics;
    core::SystemClock clock;
    const int rc = pipeline::runCollector(here, options, clock, signals.token());
    auto done = findJob(**store, job.source, *id);
    if (done) fmt::print("{}\n", progressLine(*done));
    if (signals.stopped()) {
      fmt::print(
          "stopped at {}; the job stays recorded and the next `mdecollect run` on "
          "this state_dir goes on with it\n",
          done ? done->position : job.since);
      return kExitOk;
    }
    if (rc != 0 || !done || done->state != "done") return kExitFailure;
    return kExitOk;
  }
  fmt::print("a collector (pid {}) runs on {}: it collects the range between its live polls\n",
             state::RunLock::holder(config->state_dir), config->state_dir);
  if (args.no_wait) return kExitOk;
  std::string last;
  core::SystemClock clock;
  for (;;) {
    auto current = findJob(**store, job.source, *id);
    if (!current) {
      fmt::print(stderr, "mdecollect backfill: job {} is gone from the state\n", *id);
      return kExitFailure;
    }
    const std::string line = progressLine(*current);
    if (line != last) {
      fmt::print("{}\n", line);
      std::fflush(stdout);
      last = line;
    }
    if (current->state == "done") return kExitOk;
    if (current->state == "failed") return kExitFailure;
    if (!clock.sleepFor(std::chrono::milliseconds(1000), signals.token())) {
      fmt::print("no longer following; the running collector goes on with backfill {}\n", *id);
      return kExitOk;
    }
  }
}

}  // namespace

void addBackfillCommand(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<BackfillArgs>();
  CLI::App* cmd = app.add_subcommand(
      "backfill",
      "Collect a past range of one API source (graph, graph_incidents or mde) through the\n"
      "same paging, seen-set and outputs, without moving its live watermark. The job is\n"
      "recorded in the state; a collector running on the same state_dir takes it up\n"
      "between its live polls (the source's quota is shared) and this command follows its\n"
      "progress; when none runs, this command collects and delivers itself. Progress is\n"
      "saved after each 6-hour slice of alert time, so a stopped backfill goes on where it\n"
      "was.\n"
      "Times: ISO 8601 (2026-11-01T00:00:00Z) or a duration before now (7d, 48h).\n"
      "The range ends where the source's live collection began (the live poll has the\n"
      "rest); --force collects it all again: the file output then gets those alerts twice\n"
      "(Elasticsearch stores each document once: the _id is the same).\n"
      "Exit: 0 done (or queued, with --no-wait), 1 failed, 2 usage or configuration error.");
  cmd->add_option("-c,--config", args->config, "YAML configuration file")->required();
  cmd->add_option("--source", args->source, "Name of the source to backfill")->required();
  cmd->add_option("--since", args->since, "Start of the range (inclusive)")->required();
  cmd->add_option("--until", args->until, "End of the range (exclusive; default: now)");
  cmd->add_flag("--no-wait", args->no_wait,
                "With a running collector: return once the job is queued");
  cmd->add_flag("--force", args->force,
                "Collect the range even where the live poll has collected it already");
  cmd->callback([args, &run] { run = [args] { return runBackfill(*args); }; });
}

}  // namespace mdec::app
