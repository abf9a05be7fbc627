// The `mde` source as a whole — API client, page scan, pager, seen-set, mapping, commits —
// over a scripted API (a fake HttpClient answering /api/alerts window queries from a list
// of alerts), a fake clock and a real SQLite state in a temporary directory.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/output/delivery.h"
#include "mdecollect/source/pagers.h"
#include "mdecollect/source/source.h"
#include "mdecollect/state/state_store.h"
#include "support/fake_defender_api.h"
#include "support/temp_dir.h"

namespace mdec::source {
namespace {

using core::Instant;
using testing::FakeApi;
using testing::FakeClock;
using testing::FakeTokens;
using testing::ServedAlert;

class AlertSourceTest : public ::testing::Test {
 protected:
  AlertSourceTest() {
    config.name = "tenant";
    config.type = config::SourceType::kMde;
    config.api_url = "https://mde.test";
    config.page_size = 100;
    config.requests_per_minute = 0;
    config.requests_per_hour = 0;
    config.initial_interval = std::chrono::hours(24);
    config.late_arrival_window = std::chrono::minutes(10);
    auto opened = state::openSqliteStore(tmp.path());
    EXPECT_TRUE(opened) << opened.error().message();
    store = std::move(*opened);
    delivery = std::make_unique<output::Delivery>(*store);
  }

  std::unique_ptr<Source> source() {
    SourceOptions options;
    options.metrics = &metrics;
    options.api.backoff_base = std::chrono::milliseconds(1);
    return makeApiSource(config, *delivery, api, tokens, clock, options);
  }

  // "2026-12-01T00:00:00Z" plus `seconds`.
  std::string time(std::int64_t seconds) {
    return core::formatRfc3339(core::Instant{1'796'083'200 + seconds, 0}, 7);
  }

  std::vector<state::OutboxDocument> outbox() {
    auto docs = store->readOutbox(0, 1'000'000, 1ull << 40);
    EXPECT_TRUE(docs);
    return docs ? *docs : std::vector<state::OutboxDocument>{};
  }

  std::string watermark() {
    auto wm = store->watermark(config.name);
    return wm && *wm ? **wm : std::string("none");
  }

  testing::TempDir tmp;
  config::SourceConfig config;
  std::unique_ptr<state::StateStore> store;
  std::unique_ptr<output::Delivery> delivery;
  FakeApi api;
  FakeTokens tokens;
  FakeClock clock;
  telemetry::SourceMetrics metrics{"tenant", "mde"};
};

// Valid JSON with white space (`"id": "…"`, as a proxy or a future API may send): each alert
// is identified, the watermark moves, and the next poll delivers nothing again.
TEST_F(AlertSourceTest, PrettyPrintedPagesAreIdentifiedAndTheWatermarkMoves) {
  api.pretty = true;
  api.add("da1", time(-300));
  api.add("da2", time(-200));
  api.add("da3", time(-100));
  auto s = source();
  auto first = s->poll({});
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->new_versions, 3u);
  EXPECT_EQ(watermark(), time(-100));
  const auto delivered = outbox().size();
  clock.advance(std::chrono::minutes(1));
  auto second = s->poll({});
  ASSERT_TRUE(second);
  EXPECT_EQ(second->alerts, 3u) << "the overlap reads them again";
  EXPECT_EQ(second->new_versions, 0u);
  EXPECT_EQ(outbox().size(), delivered);
}

// One alert stamped 2100: delivered, counted, logged; the watermark stays at the server's
// time, so an alert updated afterwards is still read.
TEST_F(AlertSourceTest, AFutureStampedAlertDoesNotFreezeTheWatermark) {
  api.add("da1", time(-300));
  api.add("future", "2100-01-01T00:00:00Z");
  auto s = source();
  auto first = s->poll({});
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->new_versions, 2u);
  EXPECT_EQ(first->future, 1u);
  EXPECT_EQ(metrics.future_versions.load(), 1u);
  EXPECT_EQ(watermark(), time(-300));
  clock.advance(std::chrono::minutes(5));
  api.add("da2", time(200));
  auto second = s->poll({});
  ASSERT_TRUE(second);
  EXPECT_EQ(second->new_versions, 1u) << "the later alert arrives; the future one is not again";
  EXPECT_EQ(second->future, 0u);
  EXPECT_EQ(watermark(), time(200));
}

// An alert the scan cannot identify (no id, no time) becomes an error document once, not
// again on every overlapping poll.
TEST_F(AlertSourceTest, AnUnidentifiableAlertIsDeliveredOnceAcrossOverlappingPolls) {
  api.add("da1", time(-300));
  api.alerts.push_back({std::nullopt, R"({"title":"no id","lastUpdateTime":null,"evidence":[]})"});
  auto s = source();
  for (int poll = 0; poll < 4; ++poll) {
    auto r = s->poll({});
    ASSERT_TRUE(r) << r.error().message();
    clock.advance(std::chrono::minutes(2));
  }
  std::map<std::string, int> by_id;
  for (const auto& d : outbox()) ++by_id[d.id];
  ASSERT_GE(by_id.size(), 2u);
  for (const auto& [id, n] : by_id) EXPECT_EQ(n, 1) << id << " delivered " << n << " times";
}

// Raising late_arrival_window past what the seen-set kept must not deliver again.
TEST_F(AlertSourceTest, RaisingLateArrivalWindowDeliversNothingAgain) {
  for (int i = 0; i < 30; ++i) api.add("da" + std::to_string(i), time(-6 * 3600 + i * 600));
  auto s = source();
  auto first = s->poll({});
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->new_versions, 30u);
  const auto delivered = outbox().size();
  config.late_arrival_window = std::chrono::hours(5);
  clock.advance(std::chrono::minutes(1));
  auto again = source();
  auto second = again->poll({});
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->new_versions, 0u);
  EXPECT_EQ(outbox().size(), delivered);
}

// A page that holds one version twice delivers it once.
TEST_F(AlertSourceTest, AVersionTwiceInOnePageIsDeliveredOnce) {
  api.add("da1", time(-300));
  api.add("da1", time(-300));
  auto s = source();
  auto r = s->poll({});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->new_versions, 1u);
  EXPECT_EQ(outbox().size(), 1u);
}

// The API's clock an hour ahead of ours (its Date header): the first poll looks back from
// its time, and the watermark may reach its time.
TEST_F(AlertSourceTest, TheServersClockAheadOfOurs) {
  api.date_header = "Tue, 01 Dec 2026 01:00:00 GMT";  // ours: 00:00:00
  api.add("da1", time(3000));
  auto s = source();
  auto r = s->poll({});
  ASSERT_TRUE(r) << r.error().message();
  r = s->poll({});  // the first answer taught it the server's clock
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(watermark(), time(3000));
}

}  // namespace
}  // namespace mdec::source
