#include "mdecollect/config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace mdec::config {
namespace {

using std::chrono::milliseconds;

constexpr const char* kSecret = "S3cr3t-Value-123";

// A temp directory per test; configs are written into it as config.yml.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "mdec-config-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/config.yml";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    for (const auto& name : set_env_) unsetenv(name.c_str());
  }

  std::string write(const std::string& name, const std::string& content) {
    const std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  Result<Config> load(const std::string& yaml) {
    write("config.yml", yaml);
    return loadConfig(path_);
  }
  // The error message of a config that must not load.
  std::string errorOf(const std::string& yaml) {
    auto r = load(yaml);
    if (r) {
      ADD_FAILURE() << "the config loaded:\n" << yaml;
      return {};
    }
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().message().find(kSecret), std::string::npos) << r.error().message();
    return r.error().message();
  }
  // "FILE:LINE: KEY: " starts a line of `message` that contains `what`.
  void expectProblem(const std::string& message, int line, const std::string& key,
                     const std::string& what) {
    const std::string prefix = path_ + ":" + std::to_string(line) + ": " + key + ": ";
    std::istringstream lines(message);
    for (std::string l; std::getline(lines, l);) {
      if (l.rfind(prefix, 0) == 0 && l.find(what, prefix.size()) != std::string::npos) return;
    }
    ADD_FAILURE() << "no line '" << prefix << "...' mentioning '" << what << "' in:\n" << message;
  }
  static int lineCount(const std::string& message) {
    return static_cast<int>(std::count(message.begin(), message.end(), '\n')) + 1;
  }
  void setEnv(const std::string& name, const std::string& value) {
    setenv(name.c_str(), value.c_str(), 1);
    set_env_.push_back(name);
  }

  std::string dir_;
  std::string path_;
  std::vector<std::string> set_env_;
};

// The smallest valid config: one mde source, everything else defaulted.
const std::string kMinimal = R"(sources:
  - name: tenant-a
    type: mde
    tenant_id: 11111111-2222-3333-4444-555555555555
    client_id: app-1
    client_secret: S3cr3t-Value-123
)";

TEST_F(ConfigTest, EveryKey) {
  const std::string ca = write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  auto r = load(R"(state_dir: /var/lib/mdecollect
max_spool_bytes: 64MiB
logging:
  level: debug
  format: json
sources:
  - name: tenant-a
    type: mde
    tenant_id: contoso.onmicrosoft.com
    client_id: app-1
    client_secret: S3cr3t-Value-123
    login_url: http://127.0.0.1:8080/login
    token_url: custom/token
    azure_resource: https://resource.example
    scopes: [https://api.securitycenter.microsoft.com/.default]
    api_url: http://127.0.0.1:8080
    interval: 30s
    initial_interval: 7d
    late_arrival_window: 15m
    page_size: 10000
    proxy_url: http://proxy:3128
    ssl:
      certificate_authorities: )" +
                ca + R"(
      verification_mode: none
    requests_per_minute: 50
    requests_per_hour: 700
    request_timeout: 250ms
    tags: [a, b]
    preserve_original_event: true
    namespace: prod.eu_1
  - name: replay
    type: file
    paths: ["/data/*.ndjson", /more/x.ndjson]
    format: mde
    tags: []
    preserve_original_event: false
    namespace: test
outputs:
  file:
    enabled: true
    path: /out
    rotate_bytes: 5MiB
    keep_files: 3
  stdout:
    enabled: true
)");
  ASSERT_TRUE(r) << r.error().message();
  const Config& c = *r;
  EXPECT_EQ(c.file, path_);
  EXPECT_EQ(c.state_dir, "/var/lib/mdecollect");
  EXPECT_EQ(c.max_spool_bytes, 64u << 20);
  EXPECT_EQ(c.logging.level, "debug");
  EXPECT_EQ(c.logging.format, "json");
  ASSERT_EQ(c.sources.size(), 2u);

  const SourceConfig& m = c.sources[0];
  EXPECT_EQ(m.name, "tenant-a");
  EXPECT_EQ(m.type, SourceType::kMde);
  EXPECT_EQ(m.line, 7);
  EXPECT_EQ(m.tenant_id, "contoso.onmicrosoft.com");
  EXPECT_EQ(m.client_id, "app-1");
  EXPECT_EQ(m.client_secret.reveal(), kSecret);
  EXPECT_EQ(m.client_secret_file, "");
  EXPECT_EQ(m.login_url, "http://127.0.0.1:8080/login");
  EXPECT_EQ(m.token_url, "custom/token");
  EXPECT_EQ(m.azure_resource, "https://resource.example");
  EXPECT_EQ(m.scopes,
            std::vector<std::string>{"https://api.securitycenter.microsoft.com/.default"});
  EXPECT_EQ(m.api_url, "http://127.0.0.1:8080");
  EXPECT_EQ(m.interval, milliseconds(30'000));
  EXPECT_EQ(m.initial_interval, milliseconds(7 * 86'400'000));
  EXPECT_EQ(m.late_arrival_window, milliseconds(15 * 60'000));
  EXPECT_EQ(m.page_size, 10000u);
  EXPECT_EQ(m.proxy_url, "http://proxy:3128");
  EXPECT_EQ(m.ssl.ca_file, ca);
  EXPECT_FALSE(m.ssl.verify);
  EXPECT_EQ(m.requests_per_minute, 50);
  EXPECT_EQ(m.requests_per_hour, 700);
  EXPECT_EQ(m.request_timeout, milliseconds(250));
  EXPECT_EQ(m.tags, std::vector<std::string>({"a", "b"}));
  EXPECT_TRUE(m.preserve_original_event);
  EXPECT_EQ(m.data_stream_namespace, "prod.eu_1");

  const SourceConfig& f = c.sources[1];
  EXPECT_EQ(f.name, "replay");
  EXPECT_EQ(f.type, SourceType::kFile);
  EXPECT_EQ(f.line, 31);
  EXPECT_EQ(f.paths, std::vector<std::string>({"/data/*.ndjson", "/more/x.ndjson"}));
  EXPECT_EQ(f.format, "mde");
  ASSERT_TRUE(f.tags.has_value());
  EXPECT_TRUE(f.tags->empty());
  EXPECT_FALSE(f.preserve_original_event);
  EXPECT_EQ(f.data_stream_namespace, "test");

  EXPECT_TRUE(c.file_output.enabled);
  EXPECT_EQ(c.file_output.path, "/out");
  EXPECT_EQ(c.file_output.rotate_bytes, 5u << 20);
  EXPECT_EQ(c.file_output.keep_files, 3);
  EXPECT_TRUE(c.stdout_output.enabled);
}

TEST_F(ConfigTest, DefaultsWhenKeysAreAbsent) {
  auto r = load(kMinimal);
  ASSERT_TRUE(r) << r.error().message();
  const Config& c = *r;
  const Config d;
  const SourceConfig ds;
  EXPECT_EQ(c.state_dir, "./data");
  EXPECT_EQ(c.max_spool_bytes, 256u << 20);
  EXPECT_EQ(c.logging.level, "info");
  EXPECT_EQ(c.logging.format, "text");
  ASSERT_EQ(c.sources.size(), 1u);
  const SourceConfig& s = c.sources[0];
  EXPECT_EQ(s.line, 2);
  EXPECT_EQ(s.login_url, "https://login.microsoftonline.com");
  EXPECT_EQ(s.token_url, "oauth2/token");
  EXPECT_EQ(s.azure_resource, "https://api.securitycenter.microsoft.com");
  EXPECT_TRUE(s.scopes.empty());
  EXPECT_EQ(s.api_url, "https://api.security.microsoft.com");
  EXPECT_EQ(s.interval, milliseconds(5 * 60'000));
  EXPECT_EQ(s.initial_interval, milliseconds(24 * 3'600'000));
  EXPECT_EQ(s.late_arrival_window, milliseconds(10 * 60'000));
  EXPECT_EQ(s.page_size, 1000u);
  EXPECT_EQ(s.proxy_url, "");
  EXPECT_TRUE(s.ssl.verify);
  EXPECT_EQ(s.ssl.ca_file, "");
  EXPECT_EQ(s.requests_per_minute, 100);
  EXPECT_EQ(s.requests_per_hour, 1500);
  EXPECT_EQ(s.request_timeout, ds.request_timeout);
  EXPECT_FALSE(s.tags.has_value());
  EXPECT_FALSE(s.preserve_original_event);
  EXPECT_EQ(s.data_stream_namespace, "default");
  EXPECT_TRUE(c.file_output.enabled);
  EXPECT_EQ(c.file_output.path, "./data/output");
  EXPECT_EQ(c.file_output.rotate_bytes, 100u << 20);
  EXPECT_EQ(c.file_output.keep_files, 7);
  EXPECT_FALSE(c.stdout_output.enabled);
  EXPECT_EQ(c.max_spool_bytes, d.max_spool_bytes);
}

TEST_F(ConfigTest, NullValuesMeanTheDefault) {
  auto r = load(kMinimal + "    proxy_url:\n    page_size: ~\nlogging:\noutputs:\n  file:\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->sources[0].page_size, 1000u);
  EXPECT_TRUE(r->file_output.enabled);
}

TEST_F(ConfigTest, ScopesSelectTheV2TokenUrl) {
  auto r = load(kMinimal + "    scopes: [https://api.securitycenter.microsoft.com/.default]\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->sources[0].token_url, "oauth2/v2.0/token");
  r = load(kMinimal + "    scopes: [x]\n    token_url: my/token\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->sources[0].token_url, "my/token");
  const std::string e = errorOf(kMinimal + "    scopes: []\n");
  expectProblem(e, 7, "sources[0].scopes", "at least one scope");
}

TEST_F(ConfigTest, StateDirSetsTheDefaultOutputPath) {
  auto r = load("state_dir: /srv/mdec/\n" + kMinimal);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->file_output.path, "/srv/mdec/output");
}

TEST_F(ConfigTest, OutputSelection) {
  // Only stdout configured: the file output is no longer the default.
  auto r = load(kMinimal + "outputs:\n  stdout:\n    enabled: true\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->file_output.enabled);
  EXPECT_TRUE(r->stdout_output.enabled);
  // A file section turns the file output on unless it says otherwise.
  r = load(kMinimal + "outputs:\n  file:\n    keep_files: 2\n  stdout:\n    enabled: true\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->file_output.enabled);
  EXPECT_TRUE(r->stdout_output.enabled);
  // stdout switched off explicitly: the file default stays.
  r = load(kMinimal + "outputs:\n  stdout:\n    enabled: false\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->file_output.enabled);
}

TEST_F(ConfigTest, NoOutputEnabled) {
  std::string e = errorOf(kMinimal + "outputs:\n  file:\n    enabled: false\n");
  expectProblem(e, 7, "outputs", "no output is enabled");
  e = errorOf(kMinimal + "outputs:\n  file:\n    enabled: false\n  stdout:\n    enabled: false\n");
  expectProblem(e, 7, "outputs", "no output is enabled");
}

TEST_F(ConfigTest, FileSource) {
  auto r = load("sources:\n  - name: f\n    type: file\n    paths: [/x/*.ndjson]\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->sources[0].type, SourceType::kFile);
  EXPECT_EQ(r->sources[0].format, "mde");
  std::string e = errorOf("sources:\n  - name: f\n    type: file\n    paths: []\n");
  expectProblem(e, 4, "sources[0].paths", "at least one");
  e = errorOf("sources:\n  - name: f\n    type: file\n    paths: [a, '']\n    format: xml\n");
  expectProblem(e, 4, "sources[0].paths[1]", "must not be empty");
  expectProblem(e, 5, "sources[0].format", "must be mde, graph or graph_incidents, not 'xml'");
}

TEST_F(ConfigTest, UnknownKeys) {
  std::string e = errorOf("colour: blue\n" + kMinimal);
  expectProblem(e, 1, "colour", "unknown key");
  e = errorOf("state_dri: x\n" + kMinimal);
  expectProblem(e, 1, "state_dri", "unknown key; did you mean 'state_dir'?");
  e = errorOf(kMinimal + "    page_sise: 5\n");
  expectProblem(e, 7, "sources[0].page_sise", "did you mean 'page_size'?");
  e = errorOf(kMinimal + "outputs:\n  kafka: {}\n");
  expectProblem(e, 8, "outputs.kafka", "unknown output");
  e = errorOf(kMinimal + "outputs:\n  file:\n    rotate: 5MiB\n");
  expectProblem(e, 9, "outputs.file.rotate", "unknown key");
  e = errorOf(kMinimal + "outputs:\n  stdout:\n    pretty: true\n");
  expectProblem(e, 9, "outputs.stdout.pretty", "unknown key");
  e = errorOf(kMinimal + "    ssl:\n      verify: false\n");
  expectProblem(e, 8, "sources[0].ssl.verify", "unknown key");
  e = errorOf(kMinimal + "logging:\n  colour: true\n");
  expectProblem(e, 8, "logging.colour", "unknown key");
}

TEST_F(ConfigTest, KeysOfTheOtherSourceType) {
  std::string e = errorOf(kMinimal + "    paths: [x]\n");
  expectProblem(e, 7, "sources[0].paths", "'paths' is not a key of an mde source");
  e = errorOf("sources:\n  - name: f\n    type: file\n    paths: [x]\n    client_id: y\n");
  expectProblem(e, 5, "sources[0].client_id", "'client_id' is not a key of a file source");
}

// Every source type suggests its own keys (a graph source once got no suggestion).
TEST_F(ConfigTest, NearMissesOfEveryType) {
  std::string e = errorOf(
      "sources:\n  - name: g\n    type: graph\n    tenant_id: t\n    client_id: c\n"
      "    client_secret: S3cr3t-Value-123\n    servce_sources: [x]\n");
  expectProblem(e, 7, "sources[0].servce_sources", "did you mean 'service_sources'?");
  e = errorOf("sources:\n  - name: f\n    type: file\n    paths: [x]\n    formt: mde\n");
  expectProblem(e, 5, "sources[0].formt", "did you mean 'format'?");
  e = errorOf(kMinimal + "    client_secret_fil: x\n");
  expectProblem(e, 7, "sources[0].client_secret_fil", "did you mean 'client_secret_file'?");
}

TEST_F(ConfigTest, DuplicateYamlKeys) {
  const std::string e = errorOf(kMinimal + "    client_id: again\n");
  expectProblem(e, 7, "sources[0].client_id", "duplicate key");
}

TEST_F(ConfigTest, WrongTypes) {
  std::string e = errorOf("sources:\n  name: x\n");
  expectProblem(e, 1, "sources", "must be a list");
  e = errorOf("state_dir: [a, b]\n" + kMinimal);
  expectProblem(e, 1, "state_dir", "must be a single value, not a list");
  e = errorOf(kMinimal +
              "    page_size: [1]\n    tags: a\n    preserve_original_event: maybe\n"
              "    interval: {a: 1}\n    ssl: full\n");
  expectProblem(e, 7, "sources[0].page_size", "must be a single value");
  expectProblem(e, 8, "sources[0].tags", "must be a list");
  expectProblem(e, 9, "sources[0].preserve_original_event", "must be true or false, not 'maybe'");
  expectProblem(e, 10, "sources[0].interval", "not a mapping");
  expectProblem(e, 11, "sources[0].ssl", "must be a mapping");
  e = errorOf(kMinimal + "outputs: [file]\n");
  expectProblem(e, 7, "outputs", "must be a mapping");
  e = errorOf(kMinimal + "    tags: [a, ~]\n");
  expectProblem(e, 7, "sources[0].tags[1]", "has no value");
  e = errorOf("sources:\n  - just-a-name\n");
  expectProblem(e, 2, "sources[0]", "must be a mapping");
  e = errorOf("- a\n- b\n");
  EXPECT_NE(e.find(path_ + ":1: must be a mapping"), std::string::npos) << e;
}

TEST_F(ConfigTest, BadDurationsAndSizes) {
  std::string e = errorOf("max_spool_bytes: 5 megabytes\n" + kMinimal +
                          "    interval: 5 minutes\n    late_arrival_window: -1s\n"
                          "    initial_interval: 24\n    request_timeout: 10ms\n"
                          "outputs:\n  file:\n    rotate_bytes: 0\n");
  expectProblem(e, 1, "max_spool_bytes", "'5 megabytes' has an unknown unit");
  expectProblem(e, 8, "sources[0].interval", "'5 minutes'");
  expectProblem(e, 9, "sources[0].late_arrival_window", "'-1s' is not a duration");
  expectProblem(e, 10, "sources[0].initial_interval", "'24' needs a unit");
  expectProblem(e, 11, "sources[0].request_timeout", "at least 100ms");
  expectProblem(e, 14, "outputs.file.rotate_bytes", "more than 0");
  e = errorOf(kMinimal + "    interval: 50ms\n");
  expectProblem(e, 7, "sources[0].interval", "must be at least 100ms, not '50ms'");
  auto r = load(kMinimal + "    interval: 100ms\n");
  ASSERT_TRUE(r) << r.error().message();
}

TEST_F(ConfigTest, PageSizeBounds) {
  std::string e = errorOf(kMinimal + "    page_size: 0\n");
  expectProblem(e, 7, "sources[0].page_size", "between 1 and 10000, not 0");
  e = errorOf(kMinimal + "    page_size: 10001\n");
  expectProblem(e, 7, "sources[0].page_size", "between 1 and 10000, not 10001");
  e = errorOf(kMinimal + "    page_size: lots\n");
  expectProblem(e, 7, "sources[0].page_size", "must be a whole number, not 'lots'");
  e = errorOf(kMinimal + "    page_size: 99999999999999999999999\n");
  expectProblem(e, 7, "sources[0].page_size", "between 1 and 10000");
  e = errorOf(kMinimal +
              "    requests_per_minute: 0\n    requests_per_hour: -5\n"
              "outputs:\n  file:\n    keep_files: 0\n");
  expectProblem(e, 7, "sources[0].requests_per_minute", "between 1 and");
  expectProblem(e, 8, "sources[0].requests_per_hour", "between 1 and");
  expectProblem(e, 11, "outputs.file.keep_files", "between 1 and");
}

TEST_F(ConfigTest, Namespaces) {
  for (const char* bad : {"Prod", "a-b", "a:b", "a b", "a/b", "a*b", "a,b", "a#b", "a|b", "''"}) {
    const std::string e = errorOf(kMinimal + "    namespace: " + bad + "\n");
    expectProblem(e, 7, "sources[0].namespace", "must");
  }
  std::string e = errorOf(kMinimal + "    namespace: Prod\n");
  expectProblem(e, 7, "sources[0].namespace", "'Prod' must be lowercase");
  e = errorOf(kMinimal + "    namespace: " + std::string(101, 'a') + "\n");
  expectProblem(e, 7, "sources[0].namespace", "at most 100 bytes, not 101");
  auto r = load(kMinimal + "    namespace: " + std::string(100, 'a') + "\n");
  ASSERT_TRUE(r) << r.error().message();
}

TEST_F(ConfigTest, SourceNames) {
  for (const char* bad : {"'a b'", "a/b", "..", "'é'"}) {
    const std::string e =
        errorOf("sources:\n  - name: " + std::string(bad) + "\n    type: file\n    paths: [x]\n");
    expectProblem(e, 2, "sources[0].name", "letters, digits");
  }
}

TEST_F(ConfigTest, MissingRequiredKeys) {
  std::string e = errorOf("sources:\n  - type: mde\n");
  expectProblem(e, 2, "sources[0].name", "missing");
  expectProblem(e, 2, "sources[0].tenant_id", "missing");
  expectProblem(e, 2, "sources[0].client_id", "missing");
  expectProblem(e, 2, "sources[0].client_secret", "missing");
  e = errorOf("sources:\n  - name: a\n    type: file\n");
  expectProblem(e, 2, "sources[0].paths", "missing");
  e = errorOf("sources:\n  - name: a\n");
  expectProblem(e, 2, "sources[0].type", "missing");
  e = errorOf("sources:\n  - name: a\n    type: splunk\n");
  expectProblem(e, 3, "sources[0].type",
                "must be graph, graph_incidents, mde or file, not 'splunk'");
}

TEST_F(ConfigTest, EmptyStrings) {
  const std::string e = errorOf(R"(sources:
  - name: tenant-a
    type: mde
    tenant_id: ''
    client_id: ""
    client_secret: ''
)");
  expectProblem(e, 4, "sources[0].tenant_id", "must not be empty");
  expectProblem(e, 5, "sources[0].client_id", "must not be empty");
  expectProblem(e, 6, "sources[0].client_secret", "must not be empty");
}

TEST_F(ConfigTest, UrlsAreChecked) {
  const std::string e = errorOf(kMinimal +
                                "    login_url: login.microsoftonline.com\n"
                                "    api_url: ftp://x\n"
                                "    proxy_url: http//user:pw@proxy\n");
  expectProblem(e, 7, "sources[0].login_url", "http:// or https://");
  expectProblem(e, 8, "sources[0].api_url", "http:// or https://");
  expectProblem(e, 9, "sources[0].proxy_url", "must be a URL");
  EXPECT_EQ(e.find("pw@"), std::string::npos) << e;
}

TEST_F(ConfigTest, DuplicateSourceNames) {
  const std::string e = errorOf(kMinimal + R"(  - name: other
    type: file
    paths: [x]
  - name: tenant-a
    type: file
    paths: [y]
)");
  expectProblem(e, 10, "sources[2].name", "'tenant-a' is already the name of sources[0] (line 2)");
  EXPECT_EQ(lineCount(e), 1) << e;
}

TEST_F(ConfigTest, BothSecretAndSecretFile) {
  const std::string file = write("secret", std::string(kSecret) + "\n");
  const std::string e = errorOf(kMinimal + "    client_secret_file: " + file + "\n");
  expectProblem(e, 7, "sources[0]", "client_secret or client_secret_file, not both");
}

TEST_F(ConfigTest, SecretFileIsReadAndTrimmed) {
  const std::string file = write("secret", std::string(kSecret) + " \r\n\n");
  auto r = load(R"(sources:
  - name: a
    type: mde
    tenant_id: t
    client_id: c
    client_secret_file: )" +
                file + "\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->sources[0].client_secret.reveal(), kSecret);
  EXPECT_EQ(r->sources[0].client_secret_file, file);
}

TEST_F(ConfigTest, SecretFileProblems) {
  const std::string base =
      "sources:\n  - name: a\n    type: mde\n    tenant_id: t\n"
      "    client_id: c\n    client_secret_file: ";
  std::string e = errorOf(base + dir_ + "/absent\n");
  expectProblem(e, 6, "sources[0].client_secret_file",
                "cannot read '" + dir_ + "/absent': No such file or directory");
  e = errorOf(base + dir_ + "\n");
  expectProblem(e, 6, "sources[0].client_secret_file", "cannot read '" + dir_ + "'");
  const std::string blank = write("blank", " \n\n");
  e = errorOf(base + blank + "\n");
  expectProblem(e, 6, "sources[0].client_secret_file", "is empty");
}

TEST_F(ConfigTest, EnvironmentVariables) {
  setEnv("MDEC_TEST_TENANT", "tenant-from-env");
  setEnv("MDEC_TEST_SECRET", kSecret);
  setEnv("MDEC_TEST_PAGE", "250");
  setEnv("MDEC_TEST_DIR", "/srv");
  auto r = load(R"(state_dir: ${MDEC_TEST_DIR}/state
sources:
  - name: a
    type: mde
    tenant_id: ${MDEC_TEST_TENANT}
    client_id: "id-$${literal}-$x-$"
    client_secret: ${MDEC_TEST_SECRET}
    page_size: ${MDEC_TEST_PAGE}
    tags: ["${MDEC_TEST_TENANT}", "$${MDEC_TEST_TENANT}"]
)");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->state_dir, "/srv/state");
  EXPECT_EQ(r->file_output.path, "/srv/state/output");
  EXPECT_EQ(r->sources[0].tenant_id, "tenant-from-env");
  EXPECT_EQ(r->sources[0].client_id, "id-${literal}-$x-$");
  EXPECT_EQ(r->sources[0].client_secret.reveal(), kSecret);
  EXPECT_EQ(r->sources[0].page_size, 250u);
  EXPECT_EQ(r->sources[0].tags,
            std::vector<std::string>({"tenant-from-env", "${MDEC_TEST_TENANT}"}));
}

TEST_F(ConfigTest, EnvironmentVariableProblems) {
  unsetenv("MDEC_TEST_UNSET");
  std::string e = errorOf(kMinimal + "    api_url: ${MDEC_TEST_UNSET}\n");
  expectProblem(e, 7, "sources[0].api_url",
                "the environment variable 'MDEC_TEST_UNSET' is not set");
  e = errorOf(kMinimal + "    api_url: ${not a name}\n    proxy_url: ${OPEN\n");
  expectProblem(e, 7, "sources[0].api_url", "not an environment variable name");
  expectProblem(e, 8, "sources[0].proxy_url", "without its closing '}'");
  e = errorOf(kMinimal + "    tags: [a, '${MDEC_TEST_UNSET}']\n");
  expectProblem(e, 7, "sources[0].tags[1]", "'MDEC_TEST_UNSET' is not set");
}

TEST_F(ConfigTest, NoSources) {
  std::string e = errorOf("state_dir: x\n");
  expectProblem(e, 1, "sources", "at least one source is required");
  e = errorOf("");
  expectProblem(e, 1, "sources", "at least one source is required");
  e = errorOf("state_dir: x\nsources: []\n");
  expectProblem(e, 2, "sources", "at least one source is required");
  e = errorOf("state_dir: x\nsources:\n");
  expectProblem(e, 2, "sources", "at least one source is required");
}

TEST_F(ConfigTest, GraphSourceDefaults) {
  auto r = load(
      "sources:\n  - name: tenant-a\n    type: graph\n"
      "    tenant_id: 11111111-2222-3333-4444-555555555555\n    client_id: app-1\n"
      "    client_secret: S3cr3t-Value-123\n");
  ASSERT_TRUE(r) << r.error().message();
  const auto& s = r->sources.at(0);
  EXPECT_EQ(s.type, SourceType::kGraph);
  EXPECT_EQ(s.api_url, "https://graph.microsoft.com");
  EXPECT_EQ(s.scopes, std::vector<std::string>{"https://graph.microsoft.com/.default"});
  EXPECT_EQ(s.token_url, "oauth2/v2.0/token");
  EXPECT_EQ(s.page_size, 1000u);
  EXPECT_EQ(s.requests_per_minute, 150);
  EXPECT_EQ(s.service_sources, std::vector<std::string>{"microsoftDefenderForEndpoint"});
  EXPECT_NE(renderConfig(*r).find("service_sources: [microsoftDefenderForEndpoint]"),
            std::string::npos)
      << renderConfig(*r);
  // Overridden; [] means every product.
  r = load(
      "sources:\n  - name: g\n    type: graph\n    tenant_id: t\n    client_id: c\n"
      "    client_secret: S3cr3t-Value-123\n    api_url: http://127.0.0.1:9\n"
      "    page_size: 500\n    service_sources: []\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->sources[0].api_url, "http://127.0.0.1:9");
  EXPECT_EQ(r->sources[0].page_size, 500u);
  EXPECT_TRUE(r->sources[0].service_sources.empty());
}

TEST_F(ConfigTest, GraphSourceProblems) {
  std::string e = errorOf(
      "sources:\n  - name: g\n    type: graph\n    tenant_id: t\n"
      "    client_id: c\n    client_secret: S3cr3t-Value-123\n"
      "    page_size: 5000\n");
  expectProblem(e, 7, "sources[0].page_size", "");
  e = errorOf(kMinimal + "    service_sources: [a]\n");
  expectProblem(e, 7, "sources[0].service_sources", "graph sources only");
  e = errorOf("sources:\n  - name: g\n    type: graph\n");
  expectProblem(e, 2, "sources[0].tenant_id", "graph source");
  e = errorOf("sources:\n  - name: g\n    type: grap\n");
  expectProblem(e, 3, "sources[0].type", "must be graph, graph_incidents, mde or file");
}

TEST_F(ConfigTest, GraphIncidentsSourceDefaults) {
  auto r = load(
      "sources:\n  - name: incidents\n    type: graph_incidents\n"
      "    tenant_id: 11111111-2222-3333-4444-555555555555\n    client_id: app-1\n"
      "    client_secret: S3cr3t-Value-123\n");
  ASSERT_TRUE(r) << r.error().message();
  const auto& s = r->sources.at(0);
  EXPECT_EQ(s.type, SourceType::kGraphIncidents);
  EXPECT_EQ(s.api_url, "https://graph.microsoft.com");
  EXPECT_EQ(s.scopes, std::vector<std::string>{"https://graph.microsoft.com/.default"});
  EXPECT_EQ(s.token_url, "oauth2/v2.0/token");
  EXPECT_EQ(s.page_size, 50u);
  EXPECT_EQ(s.interval, std::chrono::minutes(1));
  EXPECT_EQ(s.requests_per_minute, 150);
  EXPECT_TRUE(s.include_alerts);
  EXPECT_TRUE(s.alerts_fallback);
  EXPECT_EQ(s.alerts_give_up_after, std::chrono::hours(1));
  EXPECT_FALSE(s.preserve_duplicate_custom_fields);
  EXPECT_TRUE(s.include_unknown_enum_members);
  EXPECT_TRUE(collectsIncidents(s));
  EXPECT_EQ(defaultTags(s), (std::vector<std::string>{"forwarded", "m365_defender-incident"}));
  const std::string shown = renderConfig(*r);
  EXPECT_NE(shown.find("tags: [forwarded, m365_defender-incident]"), std::string::npos) << shown;
  EXPECT_NE(shown.find("alerts_give_up_after: 1h"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("service_sources"), std::string::npos) << shown;
  r = load(
      "sources:\n  - name: incidents\n    type: graph_incidents\n    tenant_id: t\n"
      "    client_id: c\n    client_secret: S3cr3t-Value-123\n    page_size: 20\n"
      "    include_alerts: false\n    alerts_fallback: false\n    alerts_give_up_after: 10m\n"
      "    preserve_duplicate_custom_fields: true\n    include_unknown_enum_members: false\n");
  ASSERT_TRUE(r) << r.error().message();
  const auto& t = r->sources.at(0);
  EXPECT_EQ(t.page_size, 20u);
  EXPECT_FALSE(t.include_alerts);
  EXPECT_FALSE(t.alerts_fallback);
  EXPECT_EQ(t.alerts_give_up_after, std::chrono::minutes(10));
  EXPECT_TRUE(t.preserve_duplicate_custom_fields);
  EXPECT_FALSE(t.include_unknown_enum_members);
  // A file of incidents.
  r = load(
      "sources:\n  - name: f\n    type: file\n    paths: [/x/*.ndjson]\n"
      "    format: graph_incidents\n    preserve_duplicate_custom_fields: true\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(collectsIncidents(r->sources[0]));
  EXPECT_TRUE(r->sources[0].preserve_duplicate_custom_fields);
}

TEST_F(ConfigTest, GraphIncidentsSourceProblems) {
  const std::string head =
      "sources:\n  - name: i\n    type: graph_incidents\n    tenant_id: t\n"
      "    client_id: c\n    client_secret: S3cr3t-Value-123\n";
  // Graph refuses $top over 50 on incidents: the key and its line are named.
  std::string e = errorOf(head + "    page_size: 51\n");
  expectProblem(e, 7, "sources[0].page_size", "50");
  e = errorOf(head + "    service_sources: [a]\n");
  expectProblem(e, 7, "sources[0].service_sources", "not a key of a graph_incidents source");
  // The incident keys belong to incident sources.
  e = errorOf(kMinimal + "    include_alerts: false\n");
  expectProblem(e, 7, "sources[0].include_alerts", "not a key of an mde source");
  e = errorOf(
      "sources:\n  - name: g\n    type: graph\n    tenant_id: t\n    client_id: c\n"
      "    client_secret: S3cr3t-Value-123\n    alerts_fallback: true\n");
  expectProblem(e, 7, "sources[0].alerts_fallback", "not a key of a graph source");
  e = errorOf(head + "    alerts_give_up_after: soon\n");
  expectProblem(e, 7, "sources[0].alerts_give_up_after", "");
}

TEST_F(ConfigTest, ElasticsearchOutput) {
  const std::string ca = write("es-ca.pem", "pem");
  const std::string key_file = write("es-key", "kid:Es-K3y-Value\n");
  auto r = load(kMinimal +
                "outputs:\n  elasticsearch:\n    hosts: [http://es1:9200, https://es2:9200]\n"
                "    api_key_file: " +
                key_file + "\n    ssl:\n      certificate_authorities: " + ca +
                "\n    compression: false\n    bulk_max_bytes: 2MiB\n    bulk_max_docs: 500\n"
                "    bulk_in_flight: 8\n    timeout: 30s\n    ilm_policy: logs-90d\n");
  ASSERT_TRUE(r) << r.error().message();
  const auto& es = r->elasticsearch;
  EXPECT_TRUE(es.enabled);
  EXPECT_EQ(es.hosts, (std::vector<std::string>{"http://es1:9200", "https://es2:9200"}));
  EXPECT_EQ(es.api_key.reveal(), "kid:Es-K3y-Value");
  EXPECT_EQ(es.ssl.ca_file, ca);
  EXPECT_FALSE(es.compression);
  EXPECT_EQ(es.bulk_max_bytes, 2u << 20);
  EXPECT_EQ(es.bulk_max_docs, 500u);
  EXPECT_EQ(es.bulk_in_flight, 8u);
  EXPECT_EQ(es.timeout, std::chrono::seconds(30));
  EXPECT_EQ(es.ilm_policy, "logs-90d");
  // With Elasticsearch configured, the file output is off unless asked for.
  EXPECT_FALSE(r->file_output.enabled);
  const std::string rendered = renderConfig(*r);
  EXPECT_NE(rendered.find("es2:9200"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("api_key_file: " + key_file), std::string::npos) << rendered;
  EXPECT_EQ(rendered.find("Es-K3y-Value"), std::string::npos) << rendered;

  // Defaults, basic auth, and the password masked.
  r = load(kMinimal +
           "outputs:\n  file: {}\n  elasticsearch:\n    hosts: [http://es:9200]\n"
           "    username: elastic\n    password: Es-Passw0rd\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->file_output.enabled);
  EXPECT_TRUE(r->elasticsearch.compression);
  EXPECT_EQ(r->elasticsearch.bulk_max_bytes, 5u << 20);
  EXPECT_EQ(r->elasticsearch.bulk_max_docs, 1000u);
  EXPECT_EQ(r->elasticsearch.bulk_in_flight, 4u);
  EXPECT_EQ(r->elasticsearch.password.reveal(), "Es-Passw0rd");
  EXPECT_EQ(renderConfig(*r).find("Es-Passw0rd"), std::string::npos);
  EXPECT_NE(renderConfig(*r).find("password: \"***\""), std::string::npos) << renderConfig(*r);
}

TEST_F(ConfigTest, ElasticsearchOutputProblems) {
  std::string e = errorOf(kMinimal + "outputs:\n  elasticsearch:\n    api_key: k:v\n");
  expectProblem(e, 8, "outputs.elasticsearch.hosts", "missing");
  e = errorOf(kMinimal + "outputs:\n  elasticsearch:\n    hosts: [es:9200]\n");
  expectProblem(e, 9, "outputs.elasticsearch.hosts", "not an http:// or https:// URL");
  e = errorOf(kMinimal +
              "outputs:\n  elasticsearch:\n    hosts: [http://es]\n    api_key: a:b\n"
              "    username: u\n    password: p\n");
  expectProblem(e, 8, "outputs.elasticsearch", "not both");
  e = errorOf(kMinimal + "outputs:\n  elasticsearch:\n    hosts: [http://es]\n    username: u\n");
  expectProblem(e, 8, "outputs.elasticsearch.password", "missing");
  e = errorOf(kMinimal +
              "outputs:\n  elasticsearch:\n    hosts: [http://es]\n    bulk_max_docs: 0\n");
  expectProblem(e, 10, "outputs.elasticsearch.bulk_max_docs", "");
  for (const char* in_flight : {"0", "33"}) {
    e = errorOf(kMinimal +
                "outputs:\n  elasticsearch:\n    hosts: [http://es]\n    bulk_in_flight: " +
                in_flight + "\n");
    expectProblem(e, 10, "outputs.elasticsearch.bulk_in_flight", "");
  }
  e = errorOf(kMinimal +
              "outputs:\n  elasticsearch:\n    hosts: [http://es]\n    compresion: true\n");
  expectProblem(e, 10, "outputs.elasticsearch.compresion", "unknown key");
  EXPECT_NE(e.find("compression"), std::string::npos) << e;  // the suggestion
  e = errorOf(kMinimal + "outputs:\n  elasticsearch:\n");
  expectProblem(e, 8, "outputs.elasticsearch", "hosts");
}

TEST_F(ConfigTest, SslOptions) {
  const std::string ca = write("ca.pem", "pem");
  auto r = load(kMinimal + "    ssl:\n      certificate_authorities: [" + ca + "]\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->sources[0].ssl.ca_file, ca);
  EXPECT_TRUE(r->sources[0].ssl.verify);
  const std::string e =
      errorOf(kMinimal + "  - name: b\n" + kMinimal.substr(kMinimal.find("    type")) +
              "    ssl:\n      certificate_authorities: [" + ca + ", " + ca +
              "]\n      verification_mode: certificate\n"
              "  - name: c\n" +
              kMinimal.substr(kMinimal.find("    type")) +
              "    ssl:\n      certificate_authorities: " + dir_ + "/none.pem\n");
  expectProblem(e, 13, "sources[1].ssl.certificate_authorities", "one PEM file");
  expectProblem(e, 14, "sources[1].ssl.verification_mode", "must be full or none");
  expectProblem(e, 21, "sources[2].ssl.certificate_authorities", "cannot read");
}

TEST_F(ConfigTest, Logging) {
  const std::string e = errorOf(kMinimal + "logging:\n  level: trace\n  format: xml\n");
  expectProblem(e, 8, "logging.level", "must be debug, info, warn or error, not 'trace'");
  expectProblem(e, 9, "logging.format", "must be text or json, not 'xml'");
}

TEST_F(ConfigTest, SeveralProblemsAtOnceInLineOrder) {
  const std::string e = errorOf(R"(state_dir: ./x
bogus: 1
sources:
  - name: a
    type: mde
    tenant_id: t
    client_id: c
    client_secret: S3cr3t-Value-123
    page_size: 0
    interval: soon
  - name: a
    type: file
    paths: [x]
    namespace: UPPER
outputs:
  file:
    enabled: false
)");
  EXPECT_EQ(lineCount(e), 6) << e;
  expectProblem(e, 2, "bogus", "unknown key");
  expectProblem(e, 9, "sources[0].page_size", "between 1 and 10000");
  expectProblem(e, 10, "sources[0].interval", "'soon' is not a duration");
  expectProblem(e, 11, "sources[1].name", "already the name of sources[0]");
  expectProblem(e, 14, "sources[1].namespace", "must be lowercase");
  expectProblem(e, 15, "outputs", "no output is enabled");
  // Ordered by line.
  EXPECT_LT(e.find(":2: bogus"), e.find(":9: sources[0].page_size"));
  EXPECT_LT(e.find(":14: sources[1].namespace"), e.find(":15: outputs"));
}

TEST_F(ConfigTest, MergeKeysShareSettings) {
  auto r = load(R"(sources:
  - &base
    name: a
    type: mde
    tenant_id: t
    client_id: c
    client_secret: S3cr3t-Value-123
    page_size: 50
  - <<: *base
    name: b
    page_size: 60
)");
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->sources.size(), 2u);
  EXPECT_EQ(r->sources[1].name, "b");
  EXPECT_EQ(r->sources[1].tenant_id, "t");
  EXPECT_EQ(r->sources[1].client_secret.reveal(), kSecret);
  EXPECT_EQ(r->sources[1].page_size, 60u);
}

TEST_F(ConfigTest, YamlSyntaxErrorIsOneLine) {
  const std::string e = errorOf("sources:\n  - name: a\n    type: [mde\n  - name: b\n");
  EXPECT_EQ(lineCount(e), 1) << e;
  EXPECT_EQ(e.rfind(path_ + ":", 0), 0u) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST_F(ConfigTest, MissingConfigFile) {
  auto r = loadConfig(dir_ + "/nope.yml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.error().message(),
            "cannot open the config file '" + dir_ + "/nope.yml': No such file or directory");
}

TEST_F(ConfigTest, SecretNeverInErrors) {
  // Malformed in every way a value can be; other problems in the same source too.
  const std::string head =
      "sources:\n  - name: a\n    type: mde\n    tenant_id: t\n"
      "    client_id: c\n";
  for (const std::string& secret_line : {
           std::string("    client_secret: [S3cr3t-Value-123]\n"),
           std::string("    client_secret: {S3cr3t-Value-123: x}\n"),
           std::string("    client_secret: {x: S3cr3t-Value-123}\n"),
           std::string("    client_secret: S3cr3t-Value-123${\n"),
           std::string("    client_secret: ${S3cr3t-Value-123}\n"),
           std::string("    client_secret: S3cr3t-Value-123${x y}\n"),
           std::string("    client_secret: S3cr3t-Value-123\n    client_secret: other\n"),
           std::string("    client_secret: S3cr3t-Value-123\n    client_secret_file: /nope\n"),
           std::string("    client_secret: S3cr3t-Value-123\n    page_size: 0\n    x: 1\n"),
           std::string("    client_secret: \"S3cr3t-Value-123\\q\"\n"),
           std::string("    client_secret: S3cr3t-Value-123\n  - name: a\n    type: file\n"
                       "    client_secret: S3cr3t-Value-123\n"),
       }) {
    const std::string e = errorOf(head + secret_line);  // errorOf checks for the secret
    EXPECT_FALSE(e.empty()) << secret_line;
  }
  const std::string file = write("secret", kSecret);
  const std::string e = errorOf(head + "    client_secret_file: " + file + "\n    tags: S3cr3t\n");
  expectProblem(e, 7, "sources[0].tags", "must be a list");
}

TEST_F(ConfigTest, SecretPrintsAsMask) {
  std::ostringstream out;
  out << Secret(kSecret);
  EXPECT_EQ(out.str(), "***");
}

TEST_F(ConfigTest, RenderShowsDefaultsAndMasksSecrets) {
  auto r = load(kMinimal + "    proxy_url: http://user:S3cr3t-Value-123@proxy:3128/\n");
  ASSERT_TRUE(r) << r.error().message();
  const std::string text = renderConfig(*r);
  EXPECT_EQ(text.find(kSecret), std::string::npos) << text;
  for (const char* expected : {"state_dir: ./data",
                               "max_spool_bytes: 256MiB",
                               "level: info",
                               "format: text",
                               "name: tenant-a",
                               "type: mde",
                               "client_secret: \"***\"",
                               "login_url: https://login.microsoftonline.com",
                               "token_url: oauth2/token",
                               "azure_resource: https://api.securitycenter.microsoft.com",
                               "scopes: []",
                               "api_url: https://api.security.microsoft.com",
                               "interval: 5m",
                               "initial_interval: 1d",
                               "late_arrival_window: 10m",
                               "page_size: 1000",
                               "proxy_url: http://user:***@proxy:3128/",
                               "certificate_authorities: \"\"",
                               "verification_mode: full",
                               "requests_per_minute: 100",
                               "requests_per_hour: 1500",
                               "request_timeout: 1m",
                               "tags: [microsoft-defender-endpoint, forwarded]",
                               "preserve_original_event: false",
                               "namespace: default",
                               "enabled: true",
                               "path: ./data/output",
                               "rotate_bytes: 100MiB",
                               "keep_files: 7",
                               "enabled: false"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << " not in:\n" << text;
  }
}

TEST_F(ConfigTest, RenderReadsBackAsTheSameConfig) {
  const std::string secret = write("secret", std::string(kSecret) + "\n");
  setEnv("MDEC_TEST_TAG", "from-env");
  auto r = load(R"(state_dir: /state
sources:
  - name: a
    type: mde
    tenant_id: t
    client_id: "has $${dollar}"
    client_secret_file: )" +
                secret + R"(
    scopes: [s1, s2]
    interval: 90s
    tags: ["${MDEC_TEST_TAG}"]
  - name: f
    type: file
    paths: ['/in/*.ndjson']
    namespace: ns
outputs:
  file:
    rotate_bytes: 1000
  stdout:
    enabled: true
)");
  ASSERT_TRUE(r) << r.error().message();
  const std::string text = renderConfig(*r);
  EXPECT_EQ(text.find(kSecret), std::string::npos) << text;
  EXPECT_NE(text.find("client_secret_file: " + secret), std::string::npos) << text;
  EXPECT_EQ(text.find("client_secret:"), std::string::npos) << text;
  EXPECT_NE(text.find("interval: 90s"), std::string::npos) << text;
  EXPECT_NE(text.find("rotate_bytes: 1000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("/in/*.ndjson"), std::string::npos) << text;
  // A file source shows no mde keys.
  EXPECT_EQ(text.find("tenant_id", text.find("name: f")), std::string::npos) << text;

  auto again = load(text);
  ASSERT_TRUE(again) << again.error().message() << "\n" << text;
  EXPECT_EQ(again->sources[0].client_id, "has ${dollar}");
  EXPECT_EQ(again->sources[0].client_secret.reveal(), kSecret);
  EXPECT_EQ(again->sources[0].tags, std::vector<std::string>{"from-env"});
  EXPECT_EQ(renderConfig(*again), text);
}

TEST_F(ConfigTest, HttpAndTracingDefaults) {
  auto r = load("state_dir: /srv/mdec\n" + kMinimal);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->http.enabled);
  EXPECT_EQ(r->http.listen, "127.0.0.1:5066");
  EXPECT_EQ(r->http.host, "127.0.0.1");
  EXPECT_EQ(r->http.port, 5066);
  EXPECT_FALSE(r->tracing.enabled);
  EXPECT_EQ(r->tracing.path, "/srv/mdec/trace/requests.ndjson");
  EXPECT_EQ(r->tracing.max_body_bytes, 4096u);
  EXPECT_EQ(r->tracing.rotate_bytes, 10u << 20);
  EXPECT_EQ(r->tracing.keep_files, 3);
}

TEST_F(ConfigTest, HttpAndTracingKeys) {
  auto r = load(kMinimal +
                "http:\n  enabled: false\n  listen: \"[::1]:0\"\n"
                "tracing:\n  enabled: true\n  path: /t/x.ndjson\n  max_body_bytes: 1KiB\n"
                "  rotate_bytes: 1MiB\n  keep_files: 0\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->http.enabled);
  EXPECT_EQ(r->http.host, "::1");
  EXPECT_EQ(r->http.port, 0);
  EXPECT_TRUE(r->tracing.enabled);
  EXPECT_EQ(r->tracing.path, "/t/x.ndjson");
  EXPECT_EQ(r->tracing.max_body_bytes, 1024u);
  EXPECT_EQ(r->tracing.rotate_bytes, 1u << 20);
  EXPECT_EQ(r->tracing.keep_files, 0);
  const std::string rendered = renderConfig(*r);
  EXPECT_NE(rendered.find("listen: \"[::1]:0\""), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("max_body_bytes: 1KiB"), std::string::npos) << rendered;

  const std::string e = errorOf(kMinimal +
                                "http:\n  listen: localhost\n  port: 3\n"
                                "tracing:\n  rotate_bytes: 10\n");
  expectProblem(e, 8, "http.listen", "expected host:port");
  expectProblem(e, 9, "http.port", "unknown key");
  expectProblem(e, 11, "tracing.rotate_bytes", "at least 4KiB");
  expectProblem(errorOf(kMinimal + "http:\n  listen: 127.0.0.1:70000\n"), 8, "http.listen",
                "expected host:port");
}

TEST_F(ConfigTest, ShardDefaultsToOneShardAndReadsIndexAndCount) {
  auto r = load(kMinimal);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->shard.count, 1);
  EXPECT_EQ(r->shard.index, 0);
  EXPECT_FALSE(r->shard.index_auto);

  r = load("shard:\n  index: 2\n  count: 3\n" + kMinimal);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->shard.index, 2);
  EXPECT_EQ(r->shard.count, 3);
  EXPECT_EQ(r->shard.line, 2);  // of shard.index
  EXPECT_NE(renderConfig(*r).find("shard:\n  index: 2\n  count: 3"), std::string::npos);

  r = load("shard: {index: auto, count: 4}\n" + kMinimal);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->shard.index_auto);
  EXPECT_EQ(r->shard.count, 4);
  EXPECT_NE(renderConfig(*r).find("index: auto"), std::string::npos);

  setEnv("MDEC_TEST_SHARDS", "5");
  r = load("shard:\n  index: auto\n  count: ${MDEC_TEST_SHARDS}\n" + kMinimal);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->shard.count, 5);
}

TEST_F(ConfigTest, ShardProblemsNameTheKeyAndLine) {
  auto message = errorOf("shard:\n  index: 3\n  count: 3\n" + kMinimal);
  expectProblem(message, 2, "shard.index", "must be less than shard.count (3), not 3");
  message = errorOf("shard:\n  count: 0\n" + kMinimal);
  expectProblem(message, 2, "shard.count", "must be between 1 and 10000");
  message = errorOf("shard:\n  index: first\n  count: 2\n" + kMinimal);
  expectProblem(message, 2, "shard.index", "must be a whole number, not 'first'");
  message = errorOf("shard:\n  index: -1\n" + kMinimal);
  expectProblem(message, 2, "shard.index", "must be between 0 and 9999");
  message = errorOf("shard:\n  replicas: 2\n" + kMinimal);
  expectProblem(message, 2, "shard.replicas", "unknown key");
  message = errorOf("shard: 2\n" + kMinimal);
  expectProblem(message, 1, "shard", "must be a mapping");
}

}  // namespace
}  // namespace mdec::config
