// Sources partitioned across replicas: `shard: {index, count}` in the configuration.
//
// A source belongs to shard shardOf(name, count): Lamping and Veach's jump consistent hash
// ("A Fast, Minimal Memory, Consistent Hash Algorithm", 2014) of the 64-bit FNV-1a hash of
// the name's UTF-8 bytes. Both are fixed here, never std::hash: every replica, build and
// machine computes the same owner. Jump hash moves as few sources as can be when count
// changes: growing from n to n + 1 replicas moves about 1/(n + 1) of the sources, each to
// the new replica, and none between the old ones (a hash modulo count would move most).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mdecollect/config/config.h"
#include "mdecollect/core/result.h"

namespace mdec::pipeline {

// FNV-1a, 64 bits: offset basis 14695981039346656037, prime 1099511628211, over the bytes.
std::uint64_t fnv1a64(std::string_view bytes);

// Jump consistent hash of `key` into [0, count); count >= 1.
int jumpHash(std::uint64_t key, int count);

// The shard (0 .. count - 1) that owns the source named `name` among `count`.
int shardOf(std::string_view name, int count);

// Where `index: auto` looks: MDEC_SHARD_INDEX when set, else the host name's trailing -N.
struct ShardEnvironment {
  std::optional<std::string> index_variable;  // MDEC_SHARD_INDEX
  std::string hostname;                       // HOSTNAME, or gethostname()
};
ShardEnvironment currentShardEnvironment();

// A StatefulSet pod's ordinal: the trailing -N of the host name's first label
// ("mdecollect-2" and "mdecollect-2.mdecollect.ns.svc" give 2); nullopt when there is none.
std::optional<int> podOrdinal(std::string_view hostname);

struct Shard {
  int index = 0;
  int count = 1;
  std::string origin;  // where the index came from, for the log ("the host name 'x-1'")
};

// The configured shard with `index: auto` resolved. The error names the file, the line and
// the key: "collector.yaml:7: shard.index: ...".
Result<Shard> resolveShard(const config::Config& config, const ShardEnvironment& env);

struct ShardedConfig {
  config::Config config;  // with only this shard's sources, in their configured order
  Shard shard;
  std::size_t total_sources = 0;  // in the configuration
};

// The configuration as this replica runs it: only the sources of its shard.
Result<ShardedConfig> selectShard(config::Config config, const ShardEnvironment& env);

// "shard 1 of 3: 34 of 100 sources" (and where the index came from).
std::string shardSummary(const ShardedConfig& sharded);

// Each source and the shard that owns it among `count`, one line each; with `from_count`
// also its shard among from_count and whether it moves, then the moves by replica pair:
// what an operator exports and imports (README: Past one machine).
std::string renderShardPlan(const config::Config& config, int count, std::optional<int> from_count);

}  // namespace mdec::pipeline
