// The emulator's client credentials in its YAML config (issue 16): tenants[].client_certificate
// (a PEM certificate, read and checked at load), tenants[].federated (a federated identity
// credential), at least one credential per client, and the top-level `cloud`. Every problem
// names its key and line.
#include <gtest/gtest.h>

#include <string>

#include "mdecollect/emulator/server.h"
#include "support/emulator_test_pki.h"
#include "support/files.h"
#include "support/temp_dir.h"

namespace mdec::emulator {
namespace {

using mdec::testing::TempDir;
using mdec::testing::TestKey;
using mdec::testing::writeFile;

// One RSA key for the whole file (generating one takes a while).
const TestKey& rsaKey() {
  static const TestKey key("emulator-config-test");
  return key;
}

// A directory with the config file and the certificates it names.
class ConfigDir {
 public:
  ConfigDir() : dir_("mdec-emucreds") {
    writeFile(dir_.sub("client.pem"), rsaKey().certificatePem());
    writeFile(dir_.sub("issuer.pem"), rsaKey().certificatePem());
  }
  std::string path(const std::string& name) const { return dir_.sub(name); }
  // Loads `yaml` (written as emulator.yaml) into `config`; "" or the problem text.
  std::string load(const std::string& yaml, EmulatorConfig& config) const {
    writeFile(path("emulator.yaml"), yaml);
    const mdec::Status s = loadEmulatorConfig(path("emulator.yaml"), config);
    return s ? std::string() : s.error().message();
  }
  std::string problemOf(const std::string& yaml) const {
    EmulatorConfig config;
    return load(yaml, config);
  }
  std::string file() const { return path("emulator.yaml"); }

 private:
  TempDir dir_;
};

// "tenants:" with one client whose remaining lines are `body` (each indented by four).
std::string oneClient(const std::string& body) {
  return "tenants:\n"
         "  - tenant: tenant-a\n"
         "    client_id: client-a\n" +
         body;
}

TEST(EmulatorConfigCredentials, ACertificateClientLoadsWithItsThumbprintsAndKey) {
  ConfigDir dir;
  EmulatorConfig config;
  ASSERT_EQ(dir.load(oneClient("    client_certificate: " + dir.path("client.pem") + "\n"), config),
            "");
  ASSERT_EQ(config.clients.size(), 1u);
  const ClientConfig& c = config.clients[0];
  EXPECT_TRUE(c.client_secret.empty());
  ASSERT_TRUE(c.certificate.has_value());
  EXPECT_EQ(c.certificate->path, dir.path("client.pem"));
  EXPECT_EQ(c.certificate->sha256, rsaKey().sha256Thumbprint());
  EXPECT_EQ(c.certificate->sha1, rsaKey().sha1Thumbprint());
  EXPECT_FALSE(c.certificate->public_key_der.empty());
  EXPECT_FALSE(c.federated.has_value());
}

TEST(EmulatorConfigCredentials, ASecretAndACertificateTogether) {
  ConfigDir dir;
  EmulatorConfig config;
  ASSERT_EQ(dir.load(oneClient("    client_secret: s3cret\n    client_certificate: " +
                               dir.path("client.pem") + "\n"),
                     config),
            "");
  EXPECT_EQ(config.clients.at(0).client_secret, "s3cret");
  EXPECT_TRUE(config.clients.at(0).certificate.has_value());
}

TEST(EmulatorConfigCredentials, LoadCertificateReadsTheFirstCertificateOfAFile) {
  TempDir dir("mdec-emucreds");
  // A private key before the certificate, as some tools write them.
  writeFile(dir.sub("both.pem"), rsaKey().privateKeyPem() + rsaKey().certificatePem());
  auto cert = loadCertificate(dir.sub("both.pem"));
  ASSERT_TRUE(cert) << cert.error().message();
  EXPECT_EQ(cert->sha256, rsaKey().sha256Thumbprint());
}

TEST(EmulatorConfigCredentials, AMissingOrBadCertificateNamesTheKeyAndLine) {
  ConfigDir dir;
  writeFile(dir.path("not-pem.pem"), "this is not a certificate\n");
  writeFile(dir.path("key-only.pem"), rsaKey().privateKeyPem());
  writeFile(dir.path("ec.pem"), TestKey("ec", TestKey::Type::kEc).certificatePem());
  struct Case {
    std::string file;
    std::string says;
  };
  for (const Case& c : {Case{dir.path("missing.pem"), "cannot read the certificate file"},
                        Case{dir.path("not-pem.pem"), "is not a PEM X.509 certificate"},
                        Case{dir.path("key-only.pem"), "is not a PEM X.509 certificate"},
                        Case{dir.path("ec.pem"), "does not hold an RSA public key"},
                        Case{"''", "must be the path of a PEM certificate"}}) {
    SCOPED_TRACE(c.file);
    const std::string problem =
        dir.problemOf(oneClient("    client_certificate: " + c.file + "\n"));
    EXPECT_NE(problem.find(dir.file() + ":4: 'tenants[0].client_certificate'"), std::string::npos)
        << problem;
    EXPECT_NE(problem.find(c.says), std::string::npos) << problem;
  }
}

TEST(EmulatorConfigCredentials, AClientWithoutAnyCredentialIsRefused) {
  ConfigDir dir;
  const std::string problem = dir.problemOf(oneClient("    roles: [Alert.Read.All]\n"));
  EXPECT_NE(problem.find(dir.file() + ":2: 'tenants[0]' needs a credential: client_secret, "
                                      "client_certificate or federated"),
            std::string::npos)
      << problem;
  EXPECT_NE(dir.problemOf(oneClient("    client_secret: ''\n"))
                .find(":4: 'tenants[0].client_secret' must not be empty"),
            std::string::npos);
  // tenant and client_id are still required.
  EXPECT_NE(dir.problemOf("tenants:\n  - client_secret: s\n").find("needs tenant and client_id"),
            std::string::npos);
}

TEST(EmulatorConfigCredentials, AFederatedClientLoadsWithTheDefaultAudience) {
  ConfigDir dir;
  EmulatorConfig config;
  ASSERT_EQ(dir.load(oneClient("    federated:\n"
                               "      issuer: https://issuer.example/cluster-1\n"
                               "      subject: system:serviceaccount:ns:name\n"
                               "      issuer_certificate: " +
                               dir.path("issuer.pem") + "\n"),
                     config),
            "");
  const ClientConfig& c = config.clients.at(0);
  ASSERT_TRUE(c.federated.has_value());
  EXPECT_EQ(c.federated->issuer, "https://issuer.example/cluster-1");
  EXPECT_EQ(c.federated->subject, "system:serviceaccount:ns:name");
  EXPECT_EQ(c.federated->audience, "api://AzureADTokenExchange");
  EXPECT_EQ(c.federated->issuer_certificate.sha256, rsaKey().sha256Thumbprint());
  EXPECT_FALSE(c.certificate.has_value());
  EXPECT_TRUE(c.client_secret.empty());

  ASSERT_EQ(dir.load(oneClient("    federated: {issuer: 'https://i', subject: s, audience: aud-x, "
                               "issuer_certificate: " +
                               dir.path("issuer.pem") + "}\n"),
                     config),
            "");
  EXPECT_EQ(config.clients.at(0).federated->audience, "aud-x");
}

TEST(EmulatorConfigCredentials, FederatedKeysAreChecked) {
  ConfigDir dir;
  const std::string cert = dir.path("issuer.pem");
  struct Case {
    std::string federated;  // the value of federated:
    std::string says;
  };
  for (const Case& c : {
           Case{"{subject: s, issuer_certificate: " + cert + "}",
                "'tenants[0].federated.issuer' must be given"},
           Case{"{issuer: 'https://i', issuer_certificate: " + cert + "}",
                "'tenants[0].federated.subject' must be given"},
           Case{"{issuer: 'https://i', subject: s, audience: '', issuer_certificate: " + cert + "}",
                "'tenants[0].federated.audience' must be given"},
           Case{"{issuer: not-a-url, subject: s, issuer_certificate: " + cert + "}",
                "'tenants[0].federated.issuer' must be a URL"},
           Case{"{issuer: 'https://i', subject: s}",
                "'tenants[0].federated.issuer_certificate' must be given"},
           Case{"{issuer: 'https://i', subject: s, issuer_certificate: " + dir.path("none.pem") +
                    "}",
                "'tenants[0].federated.issuer_certificate': cannot read"},
           Case{"{issuer: 'https://i', subject: s, issuer_certificate: " + cert + ", kid: k}",
                "unknown key 'tenants[0].federated.kid'"},
           Case{"just-text", "'tenants[0].federated' must be a mapping"},
       }) {
    SCOPED_TRACE(c.federated);
    const std::string problem = dir.problemOf(oneClient("    federated: " + c.federated + "\n"));
    EXPECT_NE(problem.find(dir.file() + ":4: " + c.says), std::string::npos) << problem;
  }
}

TEST(EmulatorConfigCredentials, CloudNamesEachNationalCloud) {
  ConfigDir dir;
  EXPECT_EQ(EmulatorConfig().cloud, Cloud::kGlobal);
  struct Case {
    const char* name;
    Cloud cloud;
  };
  for (const Case& c : {Case{"global", Cloud::kGlobal}, Case{"usgov", Cloud::kUsGov},
                        Case{"usgov_high", Cloud::kUsGovHigh}, Case{"dod", Cloud::kDod},
                        Case{"china", Cloud::kChina}}) {
    SCOPED_TRACE(c.name);
    EmulatorConfig config;
    ASSERT_EQ(dir.load(std::string("alerts: 5\ncloud: ") + c.name + "\n", config), "");
    EXPECT_EQ(config.cloud, c.cloud);
    EXPECT_EQ(cloudNamed(c.name), c.cloud);
    EXPECT_STREQ(cloudName(c.cloud), c.name);
  }
  const std::string problem = dir.problemOf("alerts: 5\ncloud: usgov-high\n");
  EXPECT_NE(
      problem.find(dir.file() + ":2: 'cloud' must be global, usgov, usgov_high, dod or china, not "
                                "'usgov-high'"),
      std::string::npos)
      << problem;
  EXPECT_FALSE(cloudNamed("Global").has_value());
}

}  // namespace
}  // namespace mdec::emulator
