// The mdecollect subcommands; each registers itself on the CLI11 app and returns the
// exit code it wants when it ran.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace mdec::app {

// Exit codes scripts can rely on.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // runtime failure (an input could not be read, ...)
inline constexpr int kExitUsage = 2;    // bad command line or configuration

// Adds `map` to `app`; `run` is set to the function that executes it.
void addMapCommand(CLI::App& app, std::function<int()>& run);
// Adds `run`, `check-config` and `setup`.
void addRunCommands(CLI::App& app, std::function<int()>& run);
// Adds `check` (every source, state directory and output tried once).
void addCheckCommand(CLI::App& app, std::function<int()>& run);

// Adds `backfill` (a past range of one source, without moving its watermark).
void addBackfillCommand(CLI::App& app, std::function<int()>& run);

// Adds `shard-plan` and `state export | import | forget` (moving sources between replicas).
void addStateCommands(CLI::App& app, std::function<int()>& run);

}  // namespace mdec::app
