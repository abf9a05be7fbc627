// `mdecollect run` and `mdecollect check-config`.
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <thread>

#include "commands.h"
#include "mdecollect/config/config.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/http/tracing_http_client.h"
#include "mdecollect/output/es_setup.h"
#include "mdecollect/pipeline/collector.h"
#include "mdecollect/pipeline/shard.h"
#include "mdecollect/source/mde_retirement.h"
#include "mdecollect/telemetry/logging.h"
#include "stop_signals.h"

namespace mdec::app {
namespace {

struct RunArgs {
  std::string config;
  bool once = false;
  bool reference = false;
};

int runRun(const RunArgs& args) {
  auto config = config::loadConfig(args.config);
  if (!config) {
    fmt::print(stderr, "mdecollect run: the configuration has problems:\n{}\n",
               config.error().message());
    return kExitUsage;  // a missing file too: systemd does not restart exit 2
  }
  auto secrets = http::secretValues(*config);
  // This replica's sources only (shard: {index, count}).
  auto sharded = pipeline::selectShard(std::move(*config), pipeline::currentShardEnvironment());
  if (!sharded) {
    fmt::print(stderr, "mdecollect run: the configuration has problems:\n{}\n",
               sharded.error().message());
    return kExitUsage;
  }
  auto metrics = std::make_shared<telemetry::Metrics>();
  telemetry::LoggingOptions logging;
  logging.metrics = metrics.get();
  logging.secrets = std::move(secrets);
  telemetry::setupLogging(sharded->config.logging, logging);
  if (sharded->shard.count > 1 || sharded->config.shard.index_auto) {
    spdlog::info("{}", pipeline::shardSummary(*sharded));
  }
  StopSignals signals;
  core::SystemClock clock;
  pipeline::RunOptions options;
  options.once = args.once;
  options.metrics = metrics;
  if (!args.once && sharded->config.sources.empty()) {
    // A shard that owns none of the sources (more replicas than sources) has nothing to
    // poll: it stays up until stopped (the collector keeps running with no source), its
    // outputs delivering what waits in its outbox and its monitoring endpoint answering,
    // rather than exit and be restarted over and over.
    spdlog::warn("{}: nothing to collect here; running until stopped",
                 pipeline::shardSummary(*sharded));
  }
  return pipeline::runCollector(sharded->config, options, clock, signals.token());
}

int runCheckConfig(const RunArgs& args) {
  if (args.reference) {
    fmt::print("{}", config::referenceMarkdown());
    return kExitOk;
  }
  auto config = config::loadConfig(args.config);
  if (!config) {
    fmt::print(stderr, "mdecollect check-config: the configuration has problems:\n{}\n",
               config.error().message());
    return kExitUsage;
  }
  fmt::print("# {}: valid. Effective configuration (secrets shown as ***):\n{}", args.config,
             config::renderConfig(*config));
  const core::SystemClock clock;
  for (const auto& warning : source::mdeRetirementWarnings(*config, clock.now())) {
    fmt::print(stderr, "warning: {}\n", warning);
  }
  return kExitOk;
}

int runSetup(const RunArgs& args) {
  auto config = config::loadConfig(args.config);
  if (!config) {
    fmt::print(stderr, "mdecollect setup: the configuration has problems:\n{}\n",
               config.error().message());
    return kExitUsage;
  }
  if (!config->elasticsearch.enabled) {
    fmt::print(stderr,
               "mdecollect setup: {} has no outputs.elasticsearch section: there is nothing to "
               "set up (the file and stdout outputs need no setup)\n",
               args.config);
    return kExitUsage;
  }
  output::EsTransport transport(config->elasticsearch);
  auto done = output::installIndexTemplates(config->elasticsearch, transport);
  if (!done) {
    fmt::print(stderr, "mdecollect setup: {}\n", done.error().message());
    return kExitFailure;
  }
  fmt::print("{}\n", *done);
  return kExitOk;
}

}  // namespace

void addRunCommands(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand(
      "run",
      "Collect alerts from the configured sources into the configured outputs.\n"
      "Runs until SIGTERM/SIGINT (a clean stop within seconds), or with --once: one poll\n"
      "per source, every document delivered, exit.\n"
      "Serves /metrics (Prometheus) and /health (JSON; 503 when a source or output is\n"
      "failing) on http.listen (default 127.0.0.1:5066). One run per state_dir.\n"
      "Exit: 0 success (or stopped on request), 1 a source or output failed (--once),\n"
      "2 the configuration or the state cannot be used.");
  cmd->add_option("-c,--config", args->config, "YAML configuration file")->required();
  cmd->add_flag("--once", args->once, "One poll cycle per source, deliver, exit");
  cmd->callback([args, &run] { run = [args] { return runRun(*args); }; });

  CLI::App* check = app.add_subcommand(
      "check-config",
      "Validate the configuration and print it as it takes effect (defaults included,\n"
      "secrets as ***). Exit 0 when valid, 2 otherwise (every problem listed with its line).\n"
      "--reference prints every key (type, default, bounds, what it does) as Markdown.");
  auto* config_option = check->add_option("-c,--config", args->config, "YAML configuration file");
  check
      ->add_flag("--reference", args->reference,
                 "Print the reference of every configuration key (Markdown) and exit")
      ->excludes(config_option);
  check->callback([args, config_option, &run] {
    if (!args->reference && config_option->count() == 0) throw CLI::RequiredError("--config");
    run = [args] { return runCheckConfig(*args); };
  });

  CLI::App* setup = app.add_subcommand(
      "setup",
      "Install what the Elasticsearch output needs, idempotently: the index templates for\n"
      "logs-microsoft_defender_endpoint.log-* and logs-m365_defender.incident-* (data\n"
      "streams, explicit ECS 8.11 and integration mappings, no default ingest pipeline,\n"
      "naming outputs.elasticsearch.ilm_policy when set: that policy must exist). Prints\n"
      "what it created, updated or left unchanged. Exit 0 done, 1 the cluster refused or\n"
      "is unreachable, 2 configuration error.");
  setup->add_option("-c,--config", args->config, "YAML configuration file")->required();
  setup->callback([args, &run] { run = [args] { return runSetup(*args); }; });
}

}  // namespace mdec::app
