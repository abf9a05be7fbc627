#include "mdecollect/pipeline/shard.h"

#include <unistd.h>

#include <array>
#include <charconv>
#include <cstdlib>
#include <map>
#include <utility>
#include <vector>

namespace mdec::pipeline {
namespace {

// "collector.yaml:7: shard.index: what".
Error indexProblem(const config::Config& config, const std::string& what) {
  return Error(ErrorCode::kInvalidArgument,
               config.file + ":" + std::to_string(config.shard.line) + ": shard.index: " + what);
}

std::optional<int> wholeNumber(std::string_view text) {
  int value = 0;
  const char* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, value);
  if (text.empty() || r.ec != std::errc() || r.ptr != end || value < 0) return std::nullopt;
  return value;
}

}  // namespace

std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

int jumpHash(std::uint64_t key, int count) {
  std::int64_t b = -1;
  std::int64_t j = 0;
  while (j < count) {
    b = j;
    key = key * 2862933555777941757ull + 1;
    j = static_cast<std::int64_t>(
        static_cast<double>(b + 1) *
        (static_cast<double>(std::int64_t{1} << 31) / static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<int>(b);
}

int shardOf(std::string_view name, int count) {
  return count <= 1 ? 0 : jumpHash(fnv1a64(name), count);
}

ShardEnvironment currentShardEnvironment() {
  ShardEnvironment env;
  if (const char* v = std::getenv("MDEC_SHARD_INDEX"); v != nullptr) env.index_variable = v;
  if (const char* h = std::getenv("HOSTNAME"); h != nullptr && *h != '\0') {
    env.hostname = h;
  } else {
    std::array<char, 256> name{};
    if (::gethostname(name.data(), name.size() - 1) == 0) env.hostname = name.data();
  }
  return env;
}

std::optional<int> podOrdinal(std::string_view hostname) {
  const std::string_view label = hostname.substr(0, hostname.find('.'));
  const auto dash = label.rfind('-');
  if (dash == std::string_view::npos || dash == 0) return std::nullopt;
  const std::string_view digits = label.substr(dash + 1);
  if (digits.empty() || digits.size() > 9) return std::nullopt;
  for (const char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return wholeNumber(digits);
}

Result<Shard> resolveShard(const config::Config& config, const ShardEnvironment& env) {
  Shard shard;
  shard.count = config.shard.count;
  if (!config.shard.index_auto) {
    shard.index = config.shard.index;
    shard.origin = "configured";
    if (shard.index < 0 || shard.index >= shard.count) {
      return indexProblem(config, std::to_string(shard.index) + " is not less than shard.count (" +
                                      std::to_string(shard.count) + ")");
    }
    return shard;
  }
  if (env.index_variable) {
    const auto index = wholeNumber(*env.index_variable);
    if (!index) {
      return indexProblem(
          config, "auto: MDEC_SHARD_INDEX is '" + *env.index_variable + "', not a whole number");
    }
    shard.index = *index;
    shard.origin = "MDEC_SHARD_INDEX";
  } else {
    const auto ordinal = podOrdinal(env.hostname);
    if (!ordinal) {
      return indexProblem(
          config, "auto: the host name '" + env.hostname +
                      "' does not end in -N (a StatefulSet pod's ordinal), and MDEC_SHARD_INDEX "
                      "is not set; set one of them, or a number");
    }
    shard.index = *ordinal;
    shard.origin = "the host name '" + env.hostname + "'";
  }
  if (shard.index >= shard.count) {
    return indexProblem(config,
                        "auto: " + shard.origin + " gives shard " + std::to_string(shard.index) +
                            ", which is not less than shard.count (" + std::to_string(shard.count) +
                            "): run at most shard.count replicas");
  }
  return shard;
}

Result<ShardedConfig> selectShard(config::Config config, const ShardEnvironment& env) {
  auto shard = resolveShard(config, env);
  if (!shard) return std::move(shard.error());
  ShardedConfig sharded;
  sharded.shard = std::move(*shard);
  sharded.total_sources = config.sources.size();
  std::vector<config::SourceConfig> mine;
  for (auto& s : config.sources) {
    if (shardOf(s.name, sharded.shard.count) == sharded.shard.index) mine.push_back(std::move(s));
  }
  config.sources = std::move(mine);
  sharded.config = std::move(config);
  return sharded;
}

std::string shardSummary(const ShardedConfig& sharded) {
  std::string text = "shard " + std::to_string(sharded.shard.index) + " of " +
                     std::to_string(sharded.shard.count) + ": " +
                     std::to_string(sharded.config.sources.size()) + " of " +
                     std::to_string(sharded.total_sources) + " sources";
  if (sharded.shard.origin != "configured" && !sharded.shard.origin.empty()) {
    text += " (index from " + sharded.shard.origin + ")";
  }
  return text;
}

std::string renderShardPlan(const config::Config& config, int count,
                            std::optional<int> from_count) {
  std::vector<std::size_t> per_shard(static_cast<std::size_t>(count), 0);
  std::vector<std::size_t> per_old(static_cast<std::size_t>(from_count.value_or(1)), 0);
  std::map<std::pair<int, int>, std::vector<std::string>> moves;  // (from, to) -> names
  std::string rows;
  std::size_t moving = 0;
  for (const auto& s : config.sources) {
    const int shard = shardOf(s.name, count);
    ++per_shard[static_cast<std::size_t>(shard)];
    rows += s.name + "\t" + std::to_string(shard);
    if (from_count) {
      const int old = shardOf(s.name, *from_count);
      ++per_old[static_cast<std::size_t>(old)];
      rows += "\t" + std::to_string(old) + (old == shard ? "\tstays" : "\tmoves");
      if (old != shard) {
        ++moving;
        moves[{old, shard}].push_back(s.name);
      }
    }
    rows += "\n";
  }
  std::string text = "# shard plan: " + std::to_string(config.sources.size()) + " sources, " +
                     std::to_string(count) + " shard" + (count == 1 ? "" : "s");
  if (from_count) {
    text += " (from " + std::to_string(*from_count) + "): " + std::to_string(moving) + " source" +
            (moving == 1 ? "" : "s") + " move";
  }
  text += "\n# source\tshard" + std::string(from_count ? "\tfrom\tmove" : "") + "\n" + rows;
  for (int i = 0; i < count; ++i) {
    text += "# shard " + std::to_string(i) + ": " +
            std::to_string(per_shard[static_cast<std::size_t>(i)]) + " sources";
    if (from_count && i < *from_count) {
      text += " (was " + std::to_string(per_old[static_cast<std::size_t>(i)]) + ")";
    }
    text += "\n";
  }
  for (const auto& [pair, names] : moves) {
    text += "# from shard " + std::to_string(pair.first) + " to shard " +
            std::to_string(pair.second) + ":";
    for (const auto& name : names) text += " " + name;
    text += "\n";
  }
  return text;
}

}  // namespace mdec::pipeline
