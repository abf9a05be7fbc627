// The whole collector in process, assembled from its parts over fakes: a scripted Defender
// API (an HttpClient), a token provider that never refuses, a clock that sleeps by moving
// on, the real SQLite state behind a store that can "crash", and the real file and
// Elasticsearch outputs (the latter talking to the fake Elasticsearch on loopback).
//
// A crash is injected at the store seam at every write the collector makes, before and
// after the write reaches SQLite: from that instant every store call throws and the run is
// stopped, leaving the files, the outbox and Elasticsearch as a SIGKILL would. The collector
// is then started again on the same state; every alert version must end up exactly once in
// the files and exactly once in Elasticsearch.
#include "mdecollect/pipeline/collector.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/output/outputs.h"
#include "support/fake_defender_api.h"
#include "support/fake_elasticsearch.h"
#include "support/forwarding_store.h"
#include "support/temp_dir.h"

namespace mdec::pipeline {
namespace {

namespace fs = std::filesystem;
using testing::FakeApi;
using testing::FakeClock;
using testing::FakeElasticsearch;
using testing::FakeTokens;

struct InjectedCrash : std::runtime_error {
  InjectedCrash() : std::runtime_error("injected crash") {}
};

// Owns the real store, so that the forwarding base can refer to it.
struct OwnedStore {
  std::unique_ptr<state::StateStore> inner;
};

// Counts the writes; at write number `crash_at` (1-based; 0: never) it crashes, before or
// after the write reaches the real store. After a crash every call throws.
class CrashingStore final : private OwnedStore, public testing::ForwardingStore {
 public:
  struct Plan {
    int crash_at = 0;
    bool after_write = false;
    std::atomic<int> writes{0};
    std::atomic<bool> crashed{false};
    std::stop_source* stop = nullptr;
  };

  CrashingStore(std::unique_ptr<state::StateStore> real, Plan& plan)
      : OwnedStore{std::move(real)}, ForwardingStore(*inner), plan_(plan) {}

  Result<std::optional<std::string>> watermark(const std::string& s) override {
    alive();
    return ForwardingStore::watermark(s);
  }
  Result<std::vector<bool>> seen(const std::string& s,
                                 const std::vector<state::Version>& v) override {
    alive();
    return ForwardingStore::seen(s, v);
  }
  Result<std::optional<std::string>> seenSince(const std::string& s) override {
    alive();
    return ForwardingStore::seenSince(s);
  }
  Result<std::vector<state::OutboxDocument>> readOutbox(std::int64_t a, std::size_t m,
                                                        std::size_t b) override {
    alive();
    return ForwardingStore::readOutbox(a, m, b);
  }
  Result<std::int64_t> ackedSeq(const std::string& o) override {
    alive();
    return ForwardingStore::ackedSeq(o);
  }
  Result<std::optional<state::FileCheckpoint>> fileCheckpoint(const std::string& o) override {
    alive();
    return ForwardingStore::fileCheckpoint(o);
  }
  Result<OutboxSize> outboxSize() override {
    alive();
    return ForwardingStore::outboxSize();
  }
  Result<std::optional<std::string>> collectedSince(const std::string& s) override {
    alive();
    return ForwardingStore::collectedSince(s);
  }

  Status pruneSeen(const std::string& s, const std::string& b) override {
    return write([&] { return ForwardingStore::pruneSeen(s, b); });
  }
  Status commitPage(const state::PageCommit& p) override {
    return write([&] { return ForwardingStore::commitPage(p); });
  }
  Status commitPages(const std::vector<state::PageCommit>& p) override {
    return write([&] { return ForwardingStore::commitPages(p); });
  }
  Result<std::int64_t> beginStagedPage(const std::string& source) override {
    std::int64_t page = 0;
    auto status = write([&]() -> Status {
      auto id = ForwardingStore::beginStagedPage(source);
      if (!id) return std::move(id.error());
      page = *id;
      return okStatus();
    });
    if (!status) return std::move(status.error());
    return page;
  }
  Status stage(std::int64_t p, const std::vector<state::NewDocument>& d) override {
    return write([&] { return ForwardingStore::stage(p, d); });
  }
  Status dropStaged(std::int64_t p) override {
    return write([&] { return ForwardingStore::dropStaged(p); });
  }
  Status registerOutput(const std::string& o) override {
    return write([&] { return ForwardingStore::registerOutput(o); });
  }
  Status acknowledge(const std::string& o, std::int64_t seq,
                     const std::optional<state::FileCheckpoint>& c) override {
    return write([&] { return ForwardingStore::acknowledge(o, seq, c); });
  }
  Status unregisterOutput(const std::string& o) override {
    return write([&] { return ForwardingStore::unregisterOutput(o); });
  }
  Status setCollectedSince(const std::string& s, const std::string& f) override {
    return write([&] { return ForwardingStore::setCollectedSince(s, f); });
  }

 private:
  void alive() const {
    if (plan_.crashed) throw InjectedCrash();
  }

  template <typename F>
  Status write(F&& forward) {
    alive();
    if (++plan_.writes != plan_.crash_at) return forward();
    if (plan_.after_write) (void)forward();
    plan_.crashed = true;
    if (plan_.stop != nullptr) plan_.stop->request_stop();
    throw InjectedCrash();
  }

  Plan& plan_;
};

// Each source (re)start gets its own client; all of them ask the one scripted API.
class ApiHandle final : public http::HttpClient {
 public:
  explicit ApiHandle(FakeApi& api) : api_(api) {}
  Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    return api_.send(request);
  }

 private:
  FakeApi& api_;
};

class CollectorTest : public ::testing::Test {
 public:
  // 120 alerts over the last 5 hours (pages of 50), ten of them sharing one time.
  CollectorTest() {
    for (int i = 0; i < 120; ++i) {
      const std::int64_t at = i < 10 ? -3600 : -5 * 3600 + i * 60;
      addAlert(id(i), at);
    }
    std::ofstream(tmp_.sub("mdecollect.yaml")) << yaml();
  }

  static std::string id(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "alert-%06d", i);
    return buf;
  }

  // Adds an alert, or replaces its version (the API lists only an alert's latest version).
  void addAlert(const std::string& alert_id, std::int64_t seconds) {
    const std::string when =
        core::formatRfc3339(core::Instant{1'796'083'200 + seconds + clock_elapsed_s_, 0}, 7);
    std::erase_if(api_.alerts, [&](const testing::ServedAlert& a) {
      return a.json.find("\"" + alert_id + "\"") != std::string::npos;
    });
    // The title names the version: documents are counted by it.
    api_.add(alert_id, when, "title of " + alert_id + " at " + when);
    versions_[{alert_id, when}] = 1;
    latest_[alert_id] = when;
  }

  using Version = std::pair<std::string, std::string>;  // alert id, lastUpdateTime
  using Count = std::map<Version, int>;

  // Every version stored at most once, the latest version of every alert exactly once,
  // nothing the API never served. (A version replaced before a poll saw it, or seen by a
  // run that crashed before committing it, is gone from the API: only the latest counts.)
  void expectExactlyOnce(const Count& stored, const std::string& where) const {
    for (const auto& [version, n] : stored) {
      EXPECT_EQ(n, 1) << where << ": " << version.first << " " << version.second;
      EXPECT_TRUE(versions_.count(version)) << where << ": never served: " << version.first;
    }
    for (const auto& [alert_id, when] : latest_) {
      const auto it = stored.find({alert_id, when});
      EXPECT_TRUE(it != stored.end()) << where << ": missing " << alert_id << " " << when;
    }
  }

  static void countVersions(const std::string& document, Count& count) {
    static const std::regex title("title of (alert-[0-9]{6}) at ([0-9T:.Z-]+)");
    std::set<Version> found;
    for (std::sregex_iterator it(document.begin(), document.end(), title), end; it != end; ++it) {
      found.insert({(*it)[1].str(), (*it)[2].str()});
    }
    EXPECT_EQ(found.size(), 1u) << document.substr(0, 300);
    for (const auto& v : found) ++count[v];
  }

  std::string yaml() const {
    return "state_dir: " + tmp_.sub("state") +
           "\n"
           "http:\n  enabled: false\n"
           "sources:\n"
           "  - name: tenant\n"
           "    type: mde\n"
           "    tenant_id: 00000000-0000-4000-8000-000000000001\n"
           "    client_id: 00000000-0000-4000-8000-0000000000c1\n"
           "    client_secret: not-a-real-secret\n"
           "    login_url: https://login.test\n"
           "    api_url: https://mde.test\n"
           "    page_size: 50\n"
           "outputs:\n"
           "  file:\n"
           "    path: " +
           tmp_.sub("out") +
           "\n"
           "  elasticsearch:\n"
           "    hosts: [\"" +
           es_.url() +
           "\"]\n"
           "    bulk_max_docs: 30\n";
  }

  CollectorParts parts(CrashingStore::Plan& plan) {
    CollectorParts p = realParts();
    p.open_store = [&plan](const std::string& dir) -> Result<std::unique_ptr<state::StateStore>> {
      auto real = state::openSqliteStore(dir);
      if (!real) return real.error();
      return std::unique_ptr<state::StateStore>(
          std::make_unique<CrashingStore>(std::move(*real), plan));
    };
    p.source_client = [this](const config::SourceConfig&) {
      return std::make_unique<ApiHandle>(api_);
    };
    p.tokens = [](const config::SourceConfig&, http::HttpClient&, core::Clock&) {
      return std::make_unique<FakeTokens>();
    };
    return p;  // outputs: the real ones, made from the configuration
  }

  // One `run --once`; returns its exit code.
  int runOnce(CrashingStore::Plan& plan) {
    auto config = config::loadConfig(tmp_.sub("mdecollect.yaml"));
    EXPECT_TRUE(config) << (config ? "" : config.error().message());
    if (!config) return -1;
    RunOptions options;
    options.once = true;
    std::stop_source stop;
    plan.stop = &stop;
    const CollectorParts assembled = parts(plan);
    try {
      return runCollector(*config, options, assembled, clock_, stop.get_token());
    } catch (const InjectedCrash&) {
      return -2;  // crashed on the collector's own thread (while it was being assembled)
    }
  }

  // Documents per alert version in the output files.
  Count inFiles() const {
    Count count;
    if (!fs::exists(tmp_.sub("out"))) return count;
    for (const auto& entry : fs::directory_iterator(tmp_.sub("out"))) {
      std::ifstream in(entry.path());
      for (std::string line; std::getline(in, line);) countVersions(line, count);
    }
    return count;
  }

  // Documents per alert version stored in Elasticsearch (any index).
  Count inElasticsearch() const {
    Count count;
    for (const auto& [index, docs] : es_.stored()) {
      for (const auto& [doc_id, body] : docs) countVersions(body, count);
    }
    return count;
  }

  std::int64_t clock_elapsed_s_ = 0;
  testing::TempDir tmp_{"mdec-collector"};
  FakeElasticsearch es_;
  FakeApi api_;
  FakeClock clock_;
  Count versions_;                             // every version the API has served
  std::map<std::string, std::string> latest_;  // alert id → its latest lastUpdateTime
};

TEST_F(CollectorTest, CollectsEveryAlertOnceIntoEveryOutput) {
  CrashingStore::Plan plan;
  EXPECT_EQ(runOnce(plan), 0);
  // Every version was polled: all of them, once.
  EXPECT_EQ(inFiles(), versions_);
  EXPECT_EQ(inElasticsearch(), versions_);
  EXPECT_EQ(versions_.size(), 120u);
  EXPECT_EQ(es_.stats().conflicts, 0);
  EXPECT_GT(plan.writes.load(), 5);  // the pages and the acknowledgements went through it

  // Again, with two alerts updated: their new versions only.
  clock_.advance(std::chrono::minutes(10));
  clock_elapsed_s_ += 600;
  addAlert(id(3), -60);
  addAlert(id(110), -30);
  CrashingStore::Plan again;
  EXPECT_EQ(runOnce(again), 0);
  EXPECT_EQ(versions_.size(), 122u);
  EXPECT_EQ(inFiles(), versions_);
  EXPECT_EQ(inElasticsearch(), versions_);
}

// Crashes at every write of a first run, before and after it reaches SQLite; a second run
// (with an updated alert and a new one meanwhile) completes the collection: exactly once.
// How many writes a run makes varies a little (the Elasticsearch output's batches depend on
// what the outbox holds when it reads): the crash point moves on until a run ends before
// reaching it.
TEST(CollectorCrashTest, ExactlyOnceThroughACrashAtEveryStoreWrite) {
  for (const bool after_write : {false, true}) {
    int crashes = 0;
    for (int at = 1; at <= 200; ++at) {
      SCOPED_TRACE("crash at write " + std::to_string(at) + (after_write ? ", after" : ", before"));
      struct Case : CollectorTest {
        void TestBody() override {}
      } c;
      CrashingStore::Plan crash;
      crash.crash_at = at;
      crash.after_write = after_write;
      (void)c.runOnce(crash);
      const bool crashed = crash.crashed.load();
      c.clock_.advance(std::chrono::minutes(2));
      c.clock_elapsed_s_ += 120;
      c.addAlert(CollectorTest::id(100), -10);
      c.addAlert("alert-999999", -5);
      CrashingStore::Plan recover;
      EXPECT_EQ(c.runOnce(recover), 0);
      EXPECT_FALSE(recover.crashed.load());
      c.expectExactlyOnce(c.inFiles(), "files");
      c.expectExactlyOnce(c.inElasticsearch(), "elasticsearch");
      if (::testing::Test::HasFailure()) return;
      if (!crashed) break;  // the run ended before write `at`: every write was a crash point
      ++crashes;
    }
    // Two registrations, three pages, the Elasticsearch acknowledgements: at least ten.
    std::printf("%d crash points %s the write\n", crashes, after_write ? "after" : "before");
    EXPECT_GE(crashes, 10);
  }
}

}  // namespace
}  // namespace mdec::pipeline
