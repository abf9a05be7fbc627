// The emulator's YAML settings for Graph: the SecurityAlert.Read.All role and Graph's quota.
#include <gtest/gtest.h>

#include <string>

#include "mdecollect/emulator/server.h"
#include "support/files.h"

namespace mdec::emulator {
namespace {

// A config file in a fresh temp dir, removed at the end of the test.
class ConfigFile : public testing::TempFile {
 public:
  explicit ConfigFile(const std::string& text) : TempFile("emulator.yaml", text, "mdec-emucfg") {}
};

TEST(EmulatorConfigGraph, RolesGrantEachApiAndGraphHasItsOwnQuota) {
  ConfigFile file(R"(tenants:
  - {tenant: t1, client_id: both, client_secret: s1}
  - {tenant: t1, client_id: defender-only, client_secret: s2, roles: [Alert.Read.All]}
  - {tenant: t1, client_id: graph-only, client_secret: s3, roles: [SecurityAlert.Read.All]}
  - {tenant: t1, client_id: graph-rw, client_secret: s4, roles: [SecurityAlert.ReadWrite.All]}
quota: {per_minute: 100, per_hour: 1500, graph_per_minute: 7}
)");
  EmulatorConfig config;
  const mdec::Status s = loadEmulatorConfig(file.path(), config);
  ASSERT_TRUE(s) << s.error().message();
  ASSERT_EQ(config.clients.size(), 4u);
  EXPECT_TRUE(config.clients[0].alert_read);
  EXPECT_TRUE(config.clients[0].graph_read);
  EXPECT_TRUE(config.clients[1].alert_read);
  EXPECT_FALSE(config.clients[1].graph_read);
  EXPECT_FALSE(config.clients[2].alert_read);
  EXPECT_TRUE(config.clients[2].graph_read);
  EXPECT_TRUE(config.clients[3].graph_read);
  EXPECT_EQ(config.graph_quota_per_minute, 7);
  EXPECT_EQ(config.quota_per_minute, 100);
}

TEST(EmulatorConfigGraph, DefaultsAndUnknownQuotaKeys) {
  EmulatorConfig config;
  EXPECT_EQ(config.graph_quota_per_minute, 150);
  ConfigFile file("quota: {graph_per_hour: 5}\n");
  const mdec::Status s = loadEmulatorConfig(file.path(), config);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("quota.graph_per_hour"), std::string::npos)
      << s.error().message();
}

}  // namespace
}  // namespace mdec::emulator
