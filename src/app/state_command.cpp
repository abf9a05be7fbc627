// `mdecollect shard-plan` and `mdecollect state export | import | forget`: which replica
// owns each source, and moving a source's state to its new owner when shard.count changes.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "mdecollect/config/config.h"
#include "mdecollect/pipeline/shard.h"
#include "mdecollect/state/state_transfer.h"

namespace mdec::app {
namespace {

struct StateArgs {
  std::string config;
  std::string state_dir;
  std::vector<std::string> sources;
  std::string file;
  bool force = false;
  bool missing_ok = false;
  int count = 0;
  int from = 0;
};

// --state-dir, or the configuration's state_dir.
std::optional<std::string> stateDir(const StateArgs& args, const char* command) {
  if (!args.state_dir.empty()) return args.state_dir;
  auto config = config::loadConfig(args.config);
  if (!config) {
    fmt::print(stderr, "mdecollect {}: the configuration has problems:\n{}\n", command,
               config.error().message());
    return std::nullopt;
  }
  return config->state_dir;
}

int runShardPlan(const StateArgs& args) {
  auto config = config::loadConfig(args.config);
  if (!config) {
    fmt::print(stderr, "mdecollect shard-plan: the configuration has problems:\n{}\n",
               config.error().message());
    return kExitUsage;
  }
  const int count = args.count > 0 ? args.count : config->shard.count;
  std::optional<int> from;
  if (args.from > 0) from = args.from;
  fmt::print("{}", pipeline::renderShardPlan(*config, count, from));
  return kExitOk;
}

int runExport(const StateArgs& args) {
  const auto dir = stateDir(args, "state export");
  if (!dir) return kExitUsage;
  auto result = state::exportSources(*dir, args.sources);
  if (!result) {
    fmt::print(stderr, "mdecollect state export: {}\n", result.error().message());
    return kExitFailure;
  }
  // A name the state knows nothing about is most likely a typo: its new owner would start
  // it afresh (its alerts of initial_interval again). Only --missing-ok lets it pass.
  if (!result->without_state.empty() && !args.missing_ok) {
    std::string names;
    for (const auto& name : result->without_state) names += (names.empty() ? "" : ", ") + name;
    fmt::print(stderr,
               "mdecollect state export: {} keeps nothing about: {}; nothing was written "
               "(check the names; --missing-ok exports the others when a source never "
               "collected anything)\n",
               *dir, names);
    return kExitFailure;
  }
  if (args.file.empty() || args.file == "-") {
    std::fwrite(result->json.data(), 1, result->json.size(), stdout);
  } else {
    std::ofstream out(args.file, std::ios::binary | std::ios::trunc);
    out << result->json;
    if (!out.flush()) {
      fmt::print(stderr, "mdecollect state export: cannot write {}\n", args.file);
      return kExitFailure;
    }
  }
  for (const auto& name : result->without_state) {
    fmt::print(stderr, "note: {} keeps nothing about source {}: nothing to move\n", *dir, name);
  }
  fmt::print(stderr, "exported {} source(s) from {}\n", result->exported.size(), *dir);
  return kExitOk;
}

int runImport(const StateArgs& args) {
  const auto dir = stateDir(args, "state import");
  if (!dir) return kExitUsage;
  std::string json;
  if (args.file == "-") {
    json.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(args.file, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "mdecollect state import: cannot open {}\n", args.file);
      return kExitFailure;
    }
    json.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  state::ImportOptions options;
  options.only = args.sources;
  options.force = args.force;
  auto imported = state::importSources(*dir, json, options);
  if (!imported) {
    fmt::print(stderr, "mdecollect state import: {}\n", imported.error().message());
    return kExitFailure;
  }
  for (const auto& name : *imported) fmt::print("imported source {} into {}\n", name, *dir);
  return kExitOk;
}

int runForget(const StateArgs& args) {
  const auto dir = stateDir(args, "state forget");
  if (!dir) return kExitUsage;
  auto forgotten = state::forgetSources(*dir, args.sources);
  if (!forgotten) {
    fmt::print(stderr, "mdecollect state forget: {}\n", forgotten.error().message());
    return kExitFailure;
  }
  for (const auto& name : *forgotten) fmt::print("forgot source {} in {}\n", name, *dir);
  return kExitOk;
}

// -c CONFIG or --state-dir DIR, one of the two.
void addStateDirOptions(CLI::App* cmd, StateArgs& args) {
  auto* config = cmd->add_option("-c,--config", args.config,
                                 "YAML configuration file (its state_dir is used)");
  auto* dir = cmd->add_option("--state-dir", args.state_dir, "The state directory");
  config->excludes(dir);
  dir->excludes(config);
}

void requireStateDir(const StateArgs& args) {
  if (args.config.empty() && args.state_dir.empty()) {
    throw CLI::RequiredError("--config or --state-dir");
  }
}

}  // namespace

void addStateCommands(CLI::App& app, std::function<int()>& run) {
  auto args = std::make_shared<StateArgs>();
  CLI::App* plan = app.add_subcommand(
      "shard-plan",
      "Print which shard owns each source (shard.count of the configuration, or --count),\n"
      "tab-separated; with --from N also the shard each had among N and whether it moves,\n"
      "and the moves by pair of replicas: what `state export` and `state import` move.");
  plan->add_option("-c,--config", args->config, "YAML configuration file")->required();
  plan->add_option("--count", args->count, "Shards (default: the configuration's shard.count)")
      ->check(CLI::Range(1, 10000));
  plan->add_option("--from", args->from, "The shard count before the change")
      ->check(CLI::Range(1, 10000));
  plan->callback([args, &run] { run = [args] { return runShardPlan(*args); }; });

  CLI::App* state = app.add_subcommand(
      "state",
      "Move sources' state between state directories when shard.count changes (README:\n"
      "Past one machine). Each refuses while a collector runs on the state directory.");
  state->require_subcommand(1);
  CLI::App* exp = state->add_subcommand(
      "export",
      "Write the named sources' state (watermark, seen-set, where live collection began,\n"
      "file positions, backfill jobs, pacing) as JSON to standard output or --output.\n"
      "Their documents in the outbox stay: this state directory's collector delivers them.");
  addStateDirOptions(exp, *args);
  exp->add_option("--source", args->sources, "A source to export (repeat for more)")->required();
  exp->add_option("-o,--output", args->file, "Write here instead of standard output");
  exp->add_flag("--missing-ok", args->missing_ok,
                "Skip (with a note) a named source the state keeps nothing about, instead of "
                "failing");
  exp->callback([args, &run] {
    requireStateDir(*args);
    run = [args] { return runExport(*args); };
  });

  CLI::App* imp = state->add_subcommand(
      "import",
      "Read a file written by `state export` (- : standard input) into the state directory.\n"
      "Refuses, importing nothing, when the state already keeps something about one of its\n"
      "sources, unless --force (which replaces it).");
  addStateDirOptions(imp, *args);
  imp->add_option("file", args->file, "The exported file")->required();
  imp->add_option("--source", args->sources, "Import only this source (repeat for more)");
  imp->add_flag("--force", args->force, "Replace what the state keeps about these sources");
  imp->callback([args, &run] {
    requireStateDir(*args);
    run = [args] { return runImport(*args); };
  });

  CLI::App* forget = state->add_subcommand(
      "forget",
      "Forget the named sources' state (after their new owner imported it). Their documents\n"
      "in the outbox stay until every output has them.");
  addStateDirOptions(forget, *args);
  forget->add_option("--source", args->sources, "A source to forget (repeat for more)")->required();
  forget->callback([args, &run] {
    requireStateDir(*args);
    run = [args] { return runForget(*args); };
  });
}

}  // namespace mdec::app
