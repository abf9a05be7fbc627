// The incidents' settings: the faults incidents_expand_fail_above and incidents_item_fail (YAML
// `faults:` and POST /_emulator/faults bodies), incident_permission and the
// SecurityIncident.Read.All role; off or granted by default; bad values name their key.
#include <gtest/gtest.h>

#include <string>

#include "mdecollect/emulator/server.h"
#include "support/files.h"

namespace mdec::emulator {
namespace {

class ConfigFile : public testing::TempFile {
 public:
  explicit ConfigFile(const std::string& text)
      : TempFile("emulator.yaml", text, "mdec-emuincidents") {}
};

TEST(EmulatorConfigIncidents, OffAndGrantedByDefault) {
  const Faults f;
  EXPECT_EQ(f.incidents_expand_fail_above, 0u);
  EXPECT_FALSE(f.incidents_item_fail);
  const EmulatorConfig c;
  EXPECT_TRUE(c.incident_permission);
  EXPECT_TRUE(ClientConfig{}.incident_read);
}

TEST(EmulatorConfigIncidents, TheYamlFileSetsThem) {
  ConfigFile file(R"(incident_permission: false
tenants:
  - {tenant: t, client_id: a, client_secret: s, roles: [SecurityAlert.Read.All]}
  - {tenant: t, client_id: b, client_secret: s, roles: [SecurityIncident.Read.All]}
faults:
  incidents_expand_fail_above: 100
  incidents_item_fail: true
)");
  EmulatorConfig config;
  const mdec::Status s = loadEmulatorConfig(file.path(), config);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_FALSE(config.incident_permission);
  EXPECT_EQ(config.faults.incidents_expand_fail_above, 100u);
  EXPECT_TRUE(config.faults.incidents_item_fail);
  ASSERT_EQ(config.clients.size(), 2u);
  EXPECT_TRUE(config.clients[0].graph_read);
  EXPECT_FALSE(config.clients[0].incident_read);
  EXPECT_FALSE(config.clients[1].graph_read);
  EXPECT_TRUE(config.clients[1].incident_read);
}

TEST(EmulatorConfigIncidents, RunTimeChangesAndBadValues) {
  Faults faults;
  OrderMode orderby = OrderMode::kHonour;
  NextLinkMode next_link = NextLinkMode::kNone;
  ASSERT_TRUE(applyFaultsText(R"({"incidents_expand_fail_above": 3, "incidents_item_fail": true})",
                              faults, orderby, next_link));
  EXPECT_EQ(faults.incidents_expand_fail_above, 3u);
  EXPECT_TRUE(faults.incidents_item_fail);
  for (const char* bad :
       {R"({"incidents_expand_fail_above": -1})", R"({"incidents_expand_fail_above": "many"})",
        R"({"incidents_item_fail": "perhaps"})"}) {
    Faults f;
    const mdec::Status s = applyFaultsText(bad, f, orderby, next_link);
    ASSERT_FALSE(s) << bad;
    EXPECT_NE(s.error().message().find("incidents_"), std::string::npos) << s.error().message();
  }
}

}  // namespace
}  // namespace mdec::emulator
