// `mdecollect check`: tries what the configuration needs, once, and prints pass/FAIL lines.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "commands.h"
#include "mdecollect/config/config.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/pipeline/check.h"
#include "mdecollect/pipeline/shard.h"
#include "mdecollect/source/mde_retirement.h"

namespace mdec::app {
namespace {

struct CheckArgs {
  std::string config;
  bool json = false;
};

int runCheck(const CheckArgs& args) {
  auto config = config::loadConfig(args.config);
  if (!config) {
    fmt::print(stderr, "mdecollect check: the configuration has problems:\n{}\n",
               config.error().message());
    return kExitUsage;
  }
  // This replica's sources only (shard: {index, count}).
  auto sharded = pipeline::selectShard(std::move(*config), pipeline::currentShardEnvironment());
  if (!sharded) {
    fmt::print(stderr, "mdecollect check: the configuration has problems:\n{}\n",
               sharded.error().message());
    return kExitUsage;
  }
  config = std::move(sharded->config);
  if (sharded->shard.count > 1) {
    fmt::print(stderr, "note: {}; the other shards' sources are not checked here\n",
               pipeline::shardSummary(*sharded));
  }
  core::SystemClock clock;
  for (const auto& warning : source::mdeRetirementWarnings(*config, clock.now())) {
    fmt::print(stderr, "warning: {}\n", warning);
  }
  pipeline::CheckDeps deps;  // curl and the system clock
  deps.clock = &clock;
  const auto lines = pipeline::runChecks(*config, deps);
  fmt::print("{}",
             args.json ? pipeline::renderCheckJson(lines) : pipeline::renderCheckTable(lines));
  return pipeline::allPassed(lines) ? kExitOk : kExitFailure;
}

}  // namespace

void addCheckCommand(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "check",
      "Try everything the configuration needs, once, and print one pass/FAIL line per check,\n"
      "with a hint under each failure whose cause is known:\n"
      "  - the configuration is valid;\n"
      "  - each mde/graph source: one token request, then one API request for one alert\n"
      "    ($top=1; no paging, the state and its watermarks are not touched);\n"
      "  - each file source: its globs' directories exist (no match yet is fine);\n"
      "  - state_dir and the file output's directory can be written (a probe file is\n"
      "    created and removed);\n"
      "  - each Elasticsearch host: reachable, the credentials accepted (and the write\n"
      "    privileges granted, where the cluster can tell), the index template current.\n"
      "Secrets are never printed.\n"
      "Exit: 0 every check passed, 1 a check failed, 2 the configuration is invalid (every\n"
      "problem listed with its line).");
  cmd->add_option("-c,--config", args->config, "YAML configuration file")->required();
  cmd->add_flag(
      "--json", args->json,
      "Print {\"ok\":...,\"checks\":[{subject,step,ok,detail,hint}]} instead of the table");
  cmd->callback([args, &run] { run = [args] { return runCheck(*args); }; });
}

}  // namespace mdec::app
