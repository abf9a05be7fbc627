// Many tenants (issue 15): the world's alerts dealt out among partitions (one per generated
// tenant), queries that see one partition, versions that name theirs; and the emulator
// config's tenant_count, threads, slow_tenants and throttled_tenants.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "mdecollect/emulator/server.h"
#include "mdecollect/emulator/world.h"
#include "support/files.h"
#include "support/world_options.h"

namespace mdec::emulator {
namespace {

AlertQuery allAlerts() {
  auto q = parseAlertQuery(QueryParams{});
  EXPECT_TRUE(q);
  return q ? q.value() : AlertQuery{};
}

TEST(WorldTenants, EachPartitionHoldsItsShareAndSeesOnlyIt) {
  WorldOptions options = mdec::testing::staticOptions(60);
  options.partitions = 3;
  World world(options);
  world.advanceTo(world.now() + std::chrono::minutes(10));
  std::map<std::size_t, std::set<std::string>> by_partition;
  for (const VersionInfo& v : world.versions()) by_partition[v.partition].insert(v.id);
  ASSERT_EQ(by_partition.size(), 3U);
  for (const auto& [partition, ids] : by_partition) EXPECT_EQ(ids.size(), 20U) << partition;

  std::set<std::string> seen;
  for (std::size_t p = 0; p < 3; ++p) {
    const QueryPage page = world.query(allAlerts(), OrderMode::kHonour, true, p);
    EXPECT_EQ(page.count, 20U);
    EXPECT_EQ(page.matched, 20U);
    for (const std::string& id : by_partition[p]) {
      EXPECT_NE(page.value_json.find(id), std::string::npos) << id;
      EXPECT_TRUE(world.alertJson(id, false, false, p).has_value());
      EXPECT_FALSE(world.alertJson(id, false, false, (p + 1) % 3).has_value());
      seen.insert(id);
    }
  }
  EXPECT_EQ(seen.size(), 60U);
  // Every version was served through its own partition.
  for (const VersionInfo& v : world.versions()) EXPECT_TRUE(v.served) << v.id;
}

TEST(WorldTenants, ArrivalsAreDealtOutToo) {
  WorldOptions options = mdec::testing::staticOptions(4);
  options.partitions = 4;
  options.new_alerts_per_hour = 3600;
  World world(options);
  world.advanceTo(world.now() + std::chrono::hours(1));
  ASSERT_GT(world.alertCount(), 100U);
  std::map<std::size_t, std::set<std::string>> by_partition;
  for (const VersionInfo& v : world.versions()) by_partition[v.partition].insert(v.id);
  ASSERT_EQ(by_partition.size(), 4U);
  // Alert i goes to partition i % 4: the shares differ by at most one.
  std::size_t least = world.alertCount();
  std::size_t most = 0;
  for (const auto& [partition, ids] : by_partition) {
    least = std::min(least, ids.size());
    most = std::max(most, ids.size());
  }
  EXPECT_LE(most - least, 1U);
}

TEST(WorldTenants, OnePartitionIsTheWorldAsBefore) {
  World one(mdec::testing::staticOptions(50));
  World split_none(mdec::testing::staticOptions(50));
  one.advanceTo(one.now() + std::chrono::minutes(10));
  split_none.advanceTo(split_none.now() + std::chrono::minutes(10));
  const QueryPage a = one.query(allAlerts(), OrderMode::kHonour, false);
  const QueryPage b = split_none.query(allAlerts(), OrderMode::kHonour, false, 0);
  EXPECT_EQ(a.value_json, b.value_json);
  EXPECT_EQ(a.count, 50U);
}

class ConfigFile : public testing::TempFile {
 public:
  explicit ConfigFile(const std::string& text)
      : TempFile("emulator.yaml", text, "mdec-emutenants") {}
};

std::string problemOf(const std::string& yaml, EmulatorConfig& config) {
  ConfigFile file(yaml);
  const mdec::Status s = loadEmulatorConfig(file.path(), config);
  return s ? std::string() : s.error().message();
}

TEST(EmulatorConfigTenants, TenantCountThreadsAndPerTenantFaults) {
  EmulatorConfig config;
  ASSERT_EQ(problemOf(R"(tenant_count: 52
threads: 64
faults:
  slow_tenants: {"00000000-0000-4000-a000-000000000001": 20s}
  throttled_tenants: {"00000000-0000-4000-a000-000000000002": 1m}
)",
                      config),
            "");
  EXPECT_EQ(config.tenant_count, 52U);
  EXPECT_EQ(config.threads, 64);
  EXPECT_EQ(config.faults.slow_tenants.at("00000000-0000-4000-a000-000000000001"),
            std::chrono::seconds(20));
  EXPECT_EQ(config.faults.throttled_tenants.at("00000000-0000-4000-a000-000000000002"),
            std::chrono::seconds(60));
  // POST /_emulator/faults: {} clears.
  OrderMode orderby = OrderMode::kHonour;
  NextLinkMode next_link = NextLinkMode::kNone;
  ASSERT_TRUE(applyFaultsText(R"({"slow_tenants": {}})", config.faults, orderby, next_link));
  EXPECT_TRUE(config.faults.slow_tenants.empty());
  EXPECT_EQ(config.faults.throttled_tenants.size(), 1U);
}

TEST(EmulatorConfigTenants, BadValuesNameTheirKey) {
  EmulatorConfig config;
  EXPECT_NE(problemOf("tenant_count: 0\n", config).find("'tenant_count'"), std::string::npos);
  EXPECT_NE(problemOf("tenant_count: many\n", config).find("'tenant_count'"), std::string::npos);
  EXPECT_NE(problemOf("tenant_count: 2\ntenants:\n  - {tenant: a, client_id: b, "
                      "client_secret: c}\n",
                      config)
                .find("cannot both"),
            std::string::npos);
  EXPECT_NE(problemOf("threads: -1\n", config).find("'threads'"), std::string::npos);
  EXPECT_NE(problemOf("faults: {slow_tenants: {t: soon}}\n", config).find("slow_tenants.t"),
            std::string::npos);
  EXPECT_NE(problemOf("faults: {throttled_tenants: [t]}\n", config).find("throttled_tenants"),
            std::string::npos);
}

TEST(EmulatorConfigTenants, GeneratedClientsFollowTheDocumentedPattern) {
  EXPECT_EQ(generatedTenant(1), "00000000-0000-4000-a000-000000000001");
  EXPECT_EQ(generatedClientId(10000), "00000000-0000-4000-c000-000000010000");
  EXPECT_EQ(generatedClientSecret(52), "tenant-52-secret");
}

}  // namespace
}  // namespace mdec::emulator
