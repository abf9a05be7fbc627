#include "mdecollect/pipeline/shard.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace mdec::pipeline {
namespace {

config::Config withSources(int count, std::size_t n) {
  config::Config config;
  config.file = "collector.yaml";
  config.shard.count = count;
  config.shard.line = 7;
  for (std::size_t i = 0; i < n; ++i) {
    config::SourceConfig s;
    s.name = "src-" + std::to_string(1000 + i).substr(1);
    config.sources.push_back(s);
  }
  return config;
}

ShardEnvironment host(const std::string& name) {
  ShardEnvironment env;
  env.hostname = name;
  return env;
}

// The values are fixed for ever: replicas of different builds must agree on the owner.
// (Computed apart from this code, by a Python transcription of FNV-1a and of the paper's
// jump hash.)
TEST(Shard, HashValuesArePinned) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("tenant-a"), 0xc2ef8128e3eb9efbull);
  EXPECT_EQ(jumpHash(0, 10), 0);
  EXPECT_EQ(jumpHash(1, 10), 6);
  EXPECT_EQ(jumpHash(4, 10), 1);
  EXPECT_EQ(jumpHash(0xdeadbeef, 1000), 285);
  const std::vector<std::pair<std::string, std::vector<int>>> pinned = {
      {"tenant-a", {0, 0, 0, 0, 8}}, {"tenant-b", {0, 0, 2, 3, 4}},
      {"contoso", {0, 0, 2, 2, 2}},  {"fabrikam", {0, 1, 1, 1, 6}},
      {"src-042", {0, 1, 1, 1, 4}},  {"Z\xc3\xbcrich", {0, 1, 1, 1, 1}},  // UTF-8 bytes
  };
  const int counts[] = {1, 2, 3, 4, 10};
  for (const auto& [name, shards] : pinned) {
    for (std::size_t i = 0; i < shards.size(); ++i) {
      EXPECT_EQ(shardOf(name, counts[i]), shards[i]) << name << " among " << counts[i];
    }
  }
}

TEST(Shard, EverySourceIsInExactlyOneShard) {
  for (int count = 1; count <= 7; ++count) {
    const config::Config config = withSources(count, 100);
    std::multiset<std::string> seen;
    for (int index = 0; index < count; ++index) {
      config::Config mine = config;
      mine.shard.index = index;
      auto sharded = selectShard(mine, host("anything"));
      ASSERT_TRUE(sharded) << sharded.error().message();
      EXPECT_EQ(sharded->total_sources, 100u);
      EXPECT_EQ(sharded->shard.index, index);
      for (const auto& s : sharded->config.sources) {
        EXPECT_EQ(shardOf(s.name, count), index);
        seen.insert(s.name);
      }
      // Spread: no shard of 100 sources is empty up to 7 shards.
      EXPECT_GT(sharded->config.sources.size(), 0u) << index << " of " << count;
    }
    EXPECT_EQ(seen.size(), 100u) << count;
    for (const auto& s : config.sources) EXPECT_EQ(seen.count(s.name), 1u) << s.name;
  }
}

// Growing by one replica moves sources only to the new one, and about 1/(n + 1) of them.
TEST(Shard, GrowingMovesSourcesOnlyToTheNewReplica) {
  const config::Config config = withSources(1, 1000);
  for (int n = 1; n < 8; ++n) {
    int moved = 0;
    for (const auto& s : config.sources) {
      const int before = shardOf(s.name, n);
      const int after = shardOf(s.name, n + 1);
      if (before != after) {
        EXPECT_EQ(after, n) << s.name;
        ++moved;
      }
    }
    EXPECT_GT(moved, 1000 / (n + 1) / 2) << n;
    EXPECT_LT(moved, 1000 / (n + 1) * 2) << n;
  }
}

TEST(Shard, PodOrdinalIsTheHostNamesTrailingNumber) {
  EXPECT_EQ(podOrdinal("mdecollect-0"), 0);
  EXPECT_EQ(podOrdinal("mdecollect-2"), 2);
  EXPECT_EQ(podOrdinal("my-collector-12"), 12);
  EXPECT_EQ(podOrdinal("mdecollect-3.mdecollect.security.svc.cluster.local"), 3);
  EXPECT_EQ(podOrdinal("mdecollect"), std::nullopt);
  EXPECT_EQ(podOrdinal("mdecollect-"), std::nullopt);
  EXPECT_EQ(podOrdinal("mdecollect-x1"), std::nullopt);
  EXPECT_EQ(podOrdinal("-4"), std::nullopt);
  EXPECT_EQ(podOrdinal("host.example-7"), std::nullopt);  // the first label has no -N
  EXPECT_EQ(podOrdinal("mdecollect-99999999999"), std::nullopt);
  EXPECT_EQ(podOrdinal(""), std::nullopt);
}

TEST(Shard, IndexAutoFromTheHostNameOrTheVariable) {
  config::Config config = withSources(3, 10);
  config.shard.index_auto = true;
  auto shard = resolveShard(config, host("mdecollect-2"));
  ASSERT_TRUE(shard) << shard.error().message();
  EXPECT_EQ(shard->index, 2);
  EXPECT_EQ(shard->count, 3);
  EXPECT_NE(shard->origin.find("mdecollect-2"), std::string::npos);

  ShardEnvironment env = host("mdecollect-2");
  env.index_variable = "1";  // the variable wins over the host name
  shard = resolveShard(config, env);
  ASSERT_TRUE(shard) << shard.error().message();
  EXPECT_EQ(shard->index, 1);
  EXPECT_EQ(shard->origin, "MDEC_SHARD_INDEX");

  auto sharded = selectShard(config, host("mdecollect-1"));
  ASSERT_TRUE(sharded);
  EXPECT_EQ(shardSummary(*sharded),
            "shard 1 of 3: " + std::to_string(sharded->config.sources.size()) +
                " of 10 sources (index from the host name 'mdecollect-1')");
}

TEST(Shard, IndexAutoThatCannotBeDerivedIsAnErrorNamingTheKeyAndLine) {
  config::Config config = withSources(3, 10);
  config.shard.index_auto = true;
  const std::string prefix = "collector.yaml:7: shard.index: auto: ";

  auto shard = resolveShard(config, host("collector-host"));
  ASSERT_FALSE(shard);
  EXPECT_EQ(shard.error().message().rfind(prefix, 0), 0u) << shard.error().message();
  EXPECT_NE(shard.error().message().find("'collector-host' does not end in -N"), std::string::npos);

  shard = resolveShard(config, host("mdecollect-3"));  // a fourth replica, count 3
  ASSERT_FALSE(shard);
  EXPECT_EQ(shard.error().message().rfind(prefix, 0), 0u) << shard.error().message();
  EXPECT_NE(shard.error().message().find("not less than shard.count (3)"), std::string::npos);

  ShardEnvironment env = host("mdecollect-0");
  for (const char* bad : {"x", "-1", "", "1.5", "99999999999999"}) {
    env.index_variable = bad;
    shard = resolveShard(config, env);
    ASSERT_FALSE(shard) << bad;
    EXPECT_EQ(shard.error().message().rfind(prefix, 0), 0u) << shard.error().message();
  }
  env.index_variable = "3";
  EXPECT_FALSE(resolveShard(config, env));
}

TEST(Shard, ByDefaultThereIsOneShardWithEverySource) {
  config::Config config = withSources(1, 5);
  auto sharded = selectShard(config, host("mdecollect-4"));
  ASSERT_TRUE(sharded) << sharded.error().message();
  EXPECT_EQ(sharded->shard.index, 0);
  EXPECT_EQ(sharded->config.sources.size(), 5u);
  EXPECT_EQ(shardSummary(*sharded), "shard 0 of 1: 5 of 5 sources");
}

TEST(Shard, ThePlanListsEachSourcesOwnerAndWhatMoves) {
  config::Config config = withSources(2, 0);
  for (const char* name : {"tenant-a", "tenant-b", "contoso", "fabrikam"}) {
    config::SourceConfig s;
    s.name = name;
    config.sources.push_back(s);
  }
  EXPECT_EQ(renderShardPlan(config, 3, 2),
            "# shard plan: 4 sources, 3 shards (from 2): 2 sources move\n"
            "# source\tshard\tfrom\tmove\n"
            "tenant-a\t0\t0\tstays\n"
            "tenant-b\t2\t0\tmoves\n"
            "contoso\t2\t0\tmoves\n"
            "fabrikam\t1\t1\tstays\n"
            "# shard 0: 1 sources (was 3)\n"
            "# shard 1: 1 sources (was 1)\n"
            "# shard 2: 2 sources\n"
            "# from shard 0 to shard 2: tenant-b contoso\n");
  EXPECT_EQ(renderShardPlan(config, 1, std::nullopt),
            "# shard plan: 4 sources, 1 shard\n"
            "# source\tshard\n"
            "tenant-a\t0\ntenant-b\t0\ncontoso\t0\nfabrikam\t0\n"
            "# shard 0: 4 sources\n");
}

}  // namespace
}  // namespace mdec::pipeline
