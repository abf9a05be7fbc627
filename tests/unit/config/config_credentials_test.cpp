// The sign-in keys: one credential of three (secret, certificate, federated assertion file),
// the certificate's files read and checked at load with the key's line, national clouds'
// defaults (overridden by keys set in the file), and token_params.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "mdecollect/config/config.h"
#include "support/collector_test_pki.h"
#include "support/temp_dir.h"

namespace mdec::config {
namespace {

class CredentialsConfigTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    const std::string p = dir_.sub(name);
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  Result<Config> load(const std::string& yaml) { return loadConfig(write("config.yml", yaml)); }
  std::string errorOf(const std::string& yaml) {
    auto r = load(yaml);
    if (r) {
      ADD_FAILURE() << "the config loaded:\n" << yaml;
      return {};
    }
    return r.error().message();
  }
  // "FILE:LINE: KEY: " starts a line of `message` that contains `what`.
  void expectProblem(const std::string& message, int line, const std::string& key,
                     const std::string& what) {
    const std::string prefix =
        dir_.sub("config.yml") + ":" + std::to_string(line) + ": " + key + ": ";
    std::istringstream lines(message);
    for (std::string l; std::getline(lines, l);) {
      if (l.rfind(prefix, 0) == 0 && l.find(what, prefix.size()) != std::string::npos) return;
    }
    ADD_FAILURE() << "no line '" << prefix << "...' mentioning '" << what << "' in:\n" << message;
  }
  // A certificate and key written as cert.pem and key.pem (the key encrypted with `password`).
  void certificate(const std::string& password = "") {
    auto key = testing::makeRsaKey();
    auto cert = testing::makeCertificate(key.get(), "config-test", -60, 86400);
    testing::writeCertificate(dir_.sub("cert.pem"), cert.get());
    testing::writeKey(dir_.sub("key.pem"), key.get(), password);
  }
  std::string head(const std::string& type = "mde") const {
    return "sources:\n  - name: a\n    type: " + type +
           "\n    tenant_id: 11111111-2222-3333-4444-555555555555\n    client_id: app\n";
  }

  testing::TempDir dir_{"mdec-config-credentials"};
};

TEST_F(CredentialsConfigTest, ACertificateAndItsEncryptedKeyLoad) {
  certificate("pem pass");
  write("password", "pem pass\n");
  auto c = load(head() + "    client_certificate_file: " + dir_.sub("cert.pem") +
                "\n    client_key_file: " + dir_.sub("key.pem") +
                "\n    client_key_password_file: " + dir_.sub("password") +
                "\n    client_assertion_algorithm: RS256\n");
  ASSERT_TRUE(c) << c.error().message();
  const SourceConfig& s = c->sources.at(0);
  EXPECT_EQ(credentialOf(s), Credential::kCertificate);
  EXPECT_EQ(s.client_key_password.reveal(), "pem pass");
  EXPECT_EQ(s.client_assertion_algorithm, "RS256");
  const std::string shown = renderConfig(*c);
  EXPECT_NE(shown.find("client_certificate_file: " + dir_.sub("cert.pem")), std::string::npos);
  EXPECT_NE(shown.find("client_key_password_file: " + dir_.sub("password")), std::string::npos);
  EXPECT_EQ(shown.find("pem pass"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("client_secret"), std::string::npos) << shown;
}

TEST_F(CredentialsConfigTest, AWrongPasswordOrAMissingKeyIsReportedAtItsKey) {
  certificate("right");
  std::string e = errorOf(head() + "    client_certificate_file: " + dir_.sub("cert.pem") +
                          "\n    client_key_file: " + dir_.sub("key.pem") +
                          "\n    client_key_password: wrong\n");
  expectProblem(e, 7, "sources[0].client_key_file", "cannot be decrypted");
  EXPECT_EQ(e.find("wrong"), std::string::npos) << e;
  e = errorOf(head() + "    client_certificate_file: " + dir_.sub("nope.pem") + "\n");
  expectProblem(e, 6, "sources[0].client_certificate_file", "cannot be read");
  e = errorOf(head() + "    client_certificate_file: " + dir_.sub("cert.pem") + "\n");
  expectProblem(e, 6, "sources[0].client_certificate_file", "set client_key_file");
}

TEST_F(CredentialsConfigTest, ExactlyOneCredential) {
  std::string e = errorOf(head());
  expectProblem(e, 2, "sources[0].client_secret",
                "client_secret (or client_secret_file), client_certificate_file or "
                "client_assertion_file");
  write("token", "a.b.c");
  e = errorOf(head() + "    client_secret: s\n    client_assertion_file: " + dir_.sub("token") +
              "\n");
  expectProblem(e, 2, "sources[0]", "set one credential, not several");
  e = errorOf(head() + "    client_secret: s\n    client_key_file: k.pem\n");
  expectProblem(e, 7, "sources[0].client_key_file", "only with client_certificate_file");
  auto federated = load(head("graph") + "    client_assertion_file: " + dir_.sub("token") + "\n");
  ASSERT_TRUE(federated) << federated.error().message();
  EXPECT_EQ(credentialOf(federated->sources.at(0)), Credential::kFederated);
}

TEST_F(CredentialsConfigTest, ACloudSetsTheHostsAndKeysInTheFileWin) {
  auto c =
      load(head("mde") + "    client_secret: s\n    cloud: usgov_high\n" +
           "  - name: b\n    type: graph\n    tenant_id: t.onmicrosoft.com\n    client_id: "
           "app\n    client_secret: s\n    cloud: dod\n" +
           "  - name: c\n    type: graph_incidents\n    tenant_id: t.onmicrosoft.com\n    "
           "client_id: app\n    client_secret: s\n    cloud: china\n" +
           "  - name: d\n    type: mde\n    tenant_id: t.onmicrosoft.com\n    client_id: "
           "app\n    client_secret: s\n    cloud: usgov\n    login_url: https://login.example\n");
  ASSERT_TRUE(c) << c.error().message();
  const auto& s = c->sources;
  EXPECT_EQ(s[0].login_url, "https://login.microsoftonline.us");
  EXPECT_EQ(s[0].api_url, "https://api-gov.securitycenter.microsoft.us");
  EXPECT_EQ(s[0].azure_resource, "https://api-gov.securitycenter.microsoft.us");
  EXPECT_TRUE(s[0].scopes.empty());
  EXPECT_EQ(s[1].login_url, "https://login.microsoftonline.us");
  EXPECT_EQ(s[1].api_url, "https://dod-graph.microsoft.us");
  EXPECT_EQ(s[1].scopes, std::vector<std::string>{"https://dod-graph.microsoft.us/.default"});
  EXPECT_EQ(s[2].login_url, "https://login.chinacloudapi.cn");
  EXPECT_EQ(s[2].api_url, "https://microsoftgraph.chinacloudapi.cn");
  EXPECT_EQ(s[3].login_url, "https://login.example");  // set in the file
  EXPECT_EQ(s[3].api_url, "https://api-gcc.securitycenter.microsoft.us");
  EXPECT_NE(renderConfig(*c).find("cloud: usgov_high"), std::string::npos);
  // Unset: global, as before.
  auto g = load(head("graph") + "    client_secret: s\n");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->sources[0].cloud, "global");
  EXPECT_EQ(g->sources[0].api_url, "https://graph.microsoft.com");
  EXPECT_EQ(g->sources[0].login_url, "https://login.microsoftonline.com");
}

TEST_F(CredentialsConfigTest, DefenderForEndpointHasNoChinaApi) {
  std::string e = errorOf(head("mde") + "    client_secret: s\n    cloud: china\n");
  expectProblem(e, 2, "sources[0].api_url", "no Defender for Endpoint API for cloud 'china'");
  e = errorOf(head("mde") + "    client_secret: s\n    cloud: mars\n");
  expectProblem(e, 7, "sources[0].cloud", "must be global, usgov, usgov_high, dod or china");
  auto explicit_api = load(head("mde") +
                           "    client_secret: s\n    cloud: china\n    api_url: "
                           "https://api.example.cn\n    azure_resource: https://api.example.cn\n");
  EXPECT_TRUE(explicit_api) << explicit_api.error().message();
}

TEST_F(CredentialsConfigTest, TokenParamsAreKeptInOrderButCannotReplaceTheRequestsOwnFields) {
  auto c =
      load(head("graph") + "    client_secret: s\n    token_params:\n      b: 2\n      a: one\n");
  ASSERT_TRUE(c) << c.error().message();
  const std::vector<std::pair<std::string, std::string>> want = {{"b", "2"}, {"a", "one"}};
  EXPECT_EQ(c->sources[0].token_params, want);
  EXPECT_NE(renderConfig(*c).find("token_params: {b: 2, a: one}"), std::string::npos)
      << renderConfig(*c);
  const std::string e =
      errorOf(head("graph") + "    client_secret: s\n    token_params:\n      scope: x\n");
  expectProblem(e, 8, "sources[0].token_params.scope", "a field the collector sets itself");
}

}  // namespace
}  // namespace mdec::config
