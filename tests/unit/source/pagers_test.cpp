// The pagers alone, against a scripted API (an in-memory set of alert versions answering
// window queries as the API may: sorted or not, $skip honoured or not) and a fake clock:
// every version in the range must be committed, whatever the order; the watermark only
// rises, only over complete windows, and never past the server's time.
#include "mdecollect/source/pagers.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace mdec::source {
namespace {

using core::Instant;

constexpr std::int64_t kSecond = 1'000'000'000;

Instant at(std::int64_t seconds, std::int32_t nanos = 0) { return Instant{seconds, nanos}; }

// 2026-12-01T00:00:00Z
constexpr std::int64_t kBase = 1'796'083'200;

struct Alert {
  std::string id;
  Instant time;
};

enum class Order {
  kHonoured,  // $orderby honoured: by time, then id
  kById,      // $orderby ignored: by id (unrelated to time)
  kReversed,  // by time, newest first
  kShuffled,  // a fixed pseudo-random order (stable across requests)
};

// An API over a fixed set of alerts.
class ScriptedApi {
 public:
  std::vector<Alert> alerts;
  Order order = Order::kHonoured;
  bool honour_skip = true;          // false: probes' $skip is ignored
  bool refuse_orderby = false;      // answer 400 while $orderby is sent
  std::size_t too_large_above = 0;  // kTooLarge when $top is above this (0: never)
  int too_large_times = 1'000'000;  // ... for this many requests
  Instant now = at(kBase + 86400);  // the server's clock

  std::uint64_t requests = 0;
  std::uint64_t probes = 0;
  std::vector<WindowQuery> queries;
  std::vector<Alert> last_page;  // what the last fetch returned
  std::multiset<std::string> committed;
  std::vector<Instant> watermarks;

  std::function<void(ScriptedApi&)> on_fetch;  // before each answer (a world that moves)

  Result<PageFacts> fetch(const WindowQuery& q) {
    if (on_fetch) on_fetch(*this);
    ++requests;
    if (q.probe) ++probes;
    queries.push_back(q);
    if (refuse_orderby && q.orderby) {
      return Error(ErrorCode::kHttp, "HTTP 400 from the API: $orderby").withHttpStatus(400);
    }
    if (too_large_above > 0 && q.top > too_large_above && too_large_times > 0) {
      --too_large_times;
      return Error(ErrorCode::kTooLarge, "response over the limit");
    }
    std::vector<Alert> match;
    for (const auto& a : alerts) {
      if (a.time < q.window.from) continue;
      if (q.window.to && !(a.time < *q.window.to)) continue;
      match.push_back(a);
    }
    sortForOrder(match, q.orderby);
    const std::size_t skip = honour_skip || !q.probe ? std::min(q.skip, match.size()) : 0;
    std::vector<Alert> page(
        match.begin() + static_cast<std::ptrdiff_t>(skip),
        match.begin() + static_cast<std::ptrdiff_t>(std::min(match.size(), skip + q.top)));
    PageFacts facts;
    facts.alerts = page.size();
    for (const auto& a : page) facts.times.push_back(a.time);
    if (!q.probe) last_page = std::move(page);  // a probe's alerts are never committed
    return facts;
  }

  Status commit(std::optional<Instant> wm) {
    for (const auto& a : last_page) committed.insert(a.id);
    last_page.clear();
    if (wm) watermarks.push_back(*wm);
    return okStatus();
  }

  WindowPager pager(std::size_t page_size, int restore_after = 8) {
    return WindowPager(
        PagerSettings{page_size, restore_after}, [this](const WindowQuery& q) { return fetch(q); },
        [this](std::optional<Instant> wm) { return commit(wm); }, [this] { return now; }, nullptr);
  }

  // Every alert in [from, until) committed at least once.
  std::vector<std::string> missing(Instant from, std::optional<Instant> until = {}) const {
    std::vector<std::string> out;
    for (const auto& a : alerts) {
      if (a.time < from || (until && !(a.time < *until))) continue;
      if (committed.count(a.id) == 0) out.push_back(a.id + "@" + core::formatRfc3339(a.time, 7));
    }
    return out;
  }

 private:
  void sortForOrder(std::vector<Alert>& v, bool orderby) const {
    const auto by_time = [](const Alert& a, const Alert& b) {
      return a.time != b.time ? a.time < b.time : a.id < b.id;
    };
    const auto by_id = [](const Alert& a, const Alert& b) { return a.id < b.id; };
    switch (orderby ? order : (order == Order::kHonoured ? Order::kById : order)) {
      case Order::kHonoured:
        std::sort(v.begin(), v.end(), by_time);
        break;
      case Order::kById:
        std::sort(v.begin(), v.end(), by_id);
        break;
      case Order::kReversed:
        std::sort(v.begin(), v.end(),
                  [&](const Alert& a, const Alert& b) { return by_time(b, a); });
        break;
      case Order::kShuffled:
        std::sort(v.begin(), v.end(), [](const Alert& a, const Alert& b) {
          return std::hash<std::string>{}(a.id) < std::hash<std::string>{}(b.id);
        });
        break;
    }
  }
};

// n alerts over `span_s` seconds before the server's now, ids unrelated to times.
std::vector<Alert> spread(std::size_t n, std::int64_t span_s, std::uint64_t seed,
                          Instant now = at(kBase + 86400)) {
  std::mt19937_64 rng(seed);
  std::vector<Alert> out;
  for (std::size_t i = 0; i < n; ++i) {
    const auto offset =
        static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(span_s * 1000));
    out.push_back({"da" + std::to_string(rng() % 1'000'000'007) + "_" + std::to_string(i),
                   addNanos(now, -offset * 1'000'000 - kSecond)});
  }
  return out;
}

void expectWatermarksRiseAndStayBelow(const ScriptedApi& api, Instant cap) {
  for (std::size_t i = 1; i < api.watermarks.size(); ++i) {
    EXPECT_LT(api.watermarks[i - 1], api.watermarks[i]) << "the watermark went back at " << i;
  }
  for (const auto& wm : api.watermarks) {
    EXPECT_LE(wm, cap) << core::formatRfc3339(wm, 7) << " is past the server's time";
  }
}

Instant cap(const ScriptedApi& api) {
  return addNanos(
      api.now, std::chrono::duration_cast<std::chrono::nanoseconds>(kClockSkewAllowance).count());
}

TEST(WindowPagerTest, OrderHonouredSmallPagesUsesKeysetPagingAndIsComplete) {
  ScriptedApi api;
  api.alerts = spread(40, 3600, 1);
  auto pager = api.pager(4);
  const Instant from = addNanos(api.now, -7200 * kSecond);
  ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
  EXPECT_TRUE(api.missing(from).empty());
  EXPECT_GT(api.probes, 0u) << "a sorted full page is believed only after a probe";
  // Keyset paging: two requests a page (page + probe), not a split tree; each page after the
  // first starts at the previous one's last time (read again), so 40 alerts take 14 pages.
  EXPECT_LE(api.requests, 2u * 14 + 2);
  ASSERT_FALSE(api.watermarks.empty());
  EXPECT_EQ(api.watermarks.back(),
            std::max_element(api.alerts.begin(), api.alerts.end(), [](auto& a, auto& b) {
              return a.time < b.time;
            })->time);
  expectWatermarksRiseAndStayBelow(api, cap(api));
}

// The issue's case: with page_size 4 and an API that returns alerts in id order, a full page
// whose times happen to ascend was taken as sorted, and 27 of 40 alerts were never read.
TEST(WindowPagerTest, OrderIgnoredPagesThatOnlyLookSortedLoseNothing) {
  for (std::uint64_t seed = 1; seed <= 30; ++seed) {
    for (std::size_t page : {1u, 2u, 3u, 4u}) {
      ScriptedApi api;
      api.order = Order::kById;
      api.alerts = spread(40, 3600, seed);
      auto pager = api.pager(page);
      const Instant from = addNanos(api.now, -7200 * kSecond);
      ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
      const auto missing = api.missing(from);
      EXPECT_TRUE(missing.empty())
          << "seed " << seed << ", page " << page << ": " << missing.size() << " of 40 never read";
      expectWatermarksRiseAndStayBelow(api, cap(api));
    }
  }
}

TEST(WindowPagerTest, EveryOrderEveryPageSizeIsComplete) {
  for (Order order : {Order::kHonoured, Order::kById, Order::kReversed, Order::kShuffled}) {
    for (bool skip : {true, false}) {
      for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        ScriptedApi api;
        api.order = order;
        api.honour_skip = skip || order == Order::kHonoured;  // ties still need $skip
        api.alerts = spread(60, 600, seed * 7 + static_cast<std::uint64_t>(order));
        // A few ties, some across page boundaries.
        for (int t = 0; t < 6; ++t)
          api.alerts.push_back({"tie" + std::to_string(t), api.alerts[3].time});
        auto pager = api.pager(1 + seed % 5);
        const Instant from = addNanos(api.now, -3600 * kSecond);
        ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
        EXPECT_TRUE(api.missing(from).empty())
            << "order " << static_cast<int>(order) << " skip " << skip << " seed " << seed;
        expectWatermarksRiseAndStayBelow(api, cap(api));
      }
    }
  }
}

// A bulk update: more alerts share one lastUpdateTime than a page holds.
TEST(WindowPagerTest, EqualTimesBeyondAPageArePagedWithSkip) {
  for (Order order : {Order::kHonoured, Order::kById}) {
    ScriptedApi api;
    api.order = order;
    const Instant t = addNanos(api.now, -600 * kSecond);
    for (int i = 0; i < 23; ++i) api.alerts.push_back({"bulk" + std::to_string(i), t});
    api.alerts.push_back({"before", addNanos(t, -kSecond)});
    api.alerts.push_back({"after", addNanos(t, kSecond)});
    auto pager = api.pager(4);
    const Instant from = addNanos(api.now, -3600 * kSecond);
    ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
    EXPECT_TRUE(api.missing(from).empty()) << "order " << static_cast<int>(order);
    bool skipped = false;
    for (const auto& q : api.queries) skipped = skipped || (q.skip > 0 && !q.probe);
    EXPECT_TRUE(skipped) << "the tie is read with $skip";
    ASSERT_FALSE(api.watermarks.empty());
    EXPECT_EQ(api.watermarks.back(), addNanos(t, kSecond));
  }
}

TEST(WindowPagerTest, MoreAlertsInOneMillisecondThanAPageHolds) {
  ScriptedApi api;
  api.order = Order::kShuffled;
  const Instant t = addNanos(api.now, -60 * kSecond);
  for (int i = 0; i < 9; ++i)
    api.alerts.push_back({"ms" + std::to_string(i), addNanos(t, i * 100)});
  auto pager = api.pager(4);
  const Instant from = addNanos(api.now, -3600 * kSecond);
  ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
  EXPECT_TRUE(api.missing(from).empty());
}

TEST(WindowPagerTest, TiesAcrossAPageBoundaryWithKeysetPaging) {
  ScriptedApi api;
  const Instant t = addNanos(api.now, -60 * kSecond);
  // Pages of 4: the first page ends inside a run of ties at t+1s.
  api.alerts = {{"a", t},
                {"b", t},
                {"c", addNanos(t, kSecond)},
                {"d", addNanos(t, kSecond)},
                {"e", addNanos(t, kSecond)},
                {"f", addNanos(t, kSecond)},
                {"g", addNanos(t, 2 * kSecond)}};
  auto pager = api.pager(4);
  const Instant from = addNanos(t, -kSecond);
  ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
  EXPECT_TRUE(api.missing(from).empty());
  // The watermark never claimed t+1s before every tie there was read.
  for (std::size_t i = 0; i < api.watermarks.size(); ++i) {
    if (api.watermarks[i] == addNanos(t, kSecond)) {
      EXPECT_GE(api.committed.count("f"), 1u);
    }
  }
}

// One alert stamped 2100-01-01 (bad data or a skewed clock): delivered, but the watermark
// stays at the server's time, so the alerts that come after are still read.
TEST(WindowPagerTest, AFutureStampedAlertIsReadButHoldsNoWatermark) {
  ScriptedApi api;
  api.alerts = spread(12, 600, 3);
  api.alerts.push_back({"future", *core::parseIsoDateTime("2100-01-01T00:00:00Z")});
  auto pager = api.pager(100);
  const Instant from = addNanos(api.now, -3600 * kSecond);
  ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
  EXPECT_TRUE(api.missing(from).empty());
  ASSERT_FALSE(api.watermarks.empty());
  const Instant wm = api.watermarks.back();
  expectWatermarksRiseAndStayBelow(api, cap(api));
  // Later: new alerts appear; the next run from the watermark (minus the overlap) gets them.
  api.now = addNanos(api.now, 600 * kSecond);
  api.alerts.push_back({"later1", addNanos(api.now, -5 * kSecond)});
  api.alerts.push_back({"later2", addNanos(api.now, -3 * kSecond)});
  ASSERT_TRUE(pager.run(addNanos(wm, -600 * kSecond), std::nullopt, wm, true, {}));
  EXPECT_EQ(api.committed.count("later1"), 1u);
  EXPECT_EQ(api.committed.count("later2"), 1u);
  EXPECT_EQ(api.watermarks.back(), addNanos(api.now, -3 * kSecond));
}

// A long run (the server's clock moves 5 minutes a request, new alerts keep coming): the
// watermark stays at the server's time when the run began (plus the skew allowance), so a
// version stamped during the run on a window already read, and visible only later, is in
// the next run's overlap however long this run took.
TEST(WindowPagerTest, TheWatermarkStaysBelowTheServerTimeTheRunBegan) {
  for (const Order order : {Order::kHonoured, Order::kById}) {
    ScriptedApi api;
    api.order = order;
    api.now = at(kBase);
    api.alerts = spread(250, 3600, 5, api.now);
    int stamped = 0;
    api.on_fetch = [&stamped](ScriptedApi& a) {
      a.now = addNanos(a.now, 300 * kSecond);
      a.alerts.push_back({"during" + std::to_string(stamped++), a.now});
    };
    const Instant began = api.now;
    auto pager = api.pager(100);
    ASSERT_TRUE(pager.run(addNanos(began, -3600 * kSecond), std::nullopt, std::nullopt, true, {}));
    EXPECT_TRUE(api.missing(addNanos(began, -3600 * kSecond), began).empty());
    ASSERT_FALSE(api.watermarks.empty());
    const Instant run_began_cap = addNanos(
        began, std::chrono::duration_cast<std::chrono::nanoseconds>(kClockSkewAllowance).count());
    expectWatermarksRiseAndStayBelow(api, run_began_cap);
    // Alerts stamped well past that were read: the cap is what held the watermark.
    EXPECT_GT(api.committed.count("during1"), 0u);
    EXPECT_GT(api.now, addNanos(run_began_cap, 600 * kSecond));
  }
}

TEST(WindowPagerTest, MoreFutureStampedAlertsThanAPageHolds) {
  for (Order order : {Order::kHonoured, Order::kById}) {
    ScriptedApi api;
    api.order = order;
    api.alerts = spread(5, 600, 4);
    for (int i = 0; i < 11; ++i) {
      api.alerts.push_back(
          {"f" + std::to_string(i),
           *core::parseIsoDateTime("2100-01-01T00:00:0" + std::to_string(i % 10) + "Z")});
    }
    api.alerts.push_back({"far", *core::parseIsoDateTime("9999-12-31T23:59:59Z")});
    auto pager = api.pager(3);
    const Instant from = addNanos(api.now, -3600 * kSecond);
    ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
    EXPECT_TRUE(api.missing(from).empty()) << "order " << static_cast<int>(order);
    expectWatermarksRiseAndStayBelow(api, cap(api));
    EXPECT_LT(api.requests, 400u);
  }
}

// Windows centuries wide (more than 64 bits of nanoseconds) are split too: $skip is only for
// alerts within one millisecond.
TEST(WindowPagerTest, CenturiesWideWindowsAreSplitNotPagedWithSkip) {
  ScriptedApi api;
  api.order = Order::kById;
  for (int year = 2100; year <= 9900; year += 600) {
    api.alerts.push_back({"y" + std::to_string(year),
                          *core::parseIsoDateTime(std::to_string(year) + "-06-01T00:00:00Z")});
  }
  auto pager = api.pager(2);
  const Instant from = addNanos(api.now, -3600 * kSecond);
  ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
  EXPECT_TRUE(api.missing(from).empty());
  for (const auto& q : api.queries) {
    EXPECT_TRUE(q.probe || q.skip == 0)
        << "paged with $skip from " << core::formatRfc3339(q.window.from, 7);
  }
  EXPECT_TRUE(api.watermarks.empty()) << "no alert at or before the server's time";
}

TEST(WindowPagerTest, ServerClockBehindAndAheadOfOurs) {
  for (std::int64_t skew_s : {-3600, -300, 0, 300, 3600}) {
    ScriptedApi api;
    api.now = at(kBase + 86400 + skew_s);
    api.alerts = spread(30, 1200, 5, api.now);
    auto pager = api.pager(4);
    const Instant from = addNanos(api.now, -3600 * kSecond);
    ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
    EXPECT_TRUE(api.missing(from).empty()) << "skew " << skew_s;
    expectWatermarksRiseAndStayBelow(api, cap(api));
  }
}

TEST(WindowPagerTest, PageSizeIsHalvedOnOversizedResponsesAndRestored) {
  ScriptedApi api;
  api.alerts = spread(80, 3600, 6);
  api.too_large_above = 2;
  api.too_large_times = 2;  // the 8 and then the 4 are refused once each
  auto pager = api.pager(8, /*restore_after=*/3);
  const Instant from = addNanos(api.now, -7200 * kSecond);
  ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
  EXPECT_TRUE(api.missing(from).empty());
  bool saw_two = false;
  for (const auto& q : api.queries) saw_two = saw_two || (!q.probe && q.top == 2);
  EXPECT_TRUE(saw_two) << "halved to 2";
  EXPECT_EQ(pager.pageSize(), 8u) << "raised again after good pages";
}

TEST(WindowPagerTest, PageSizeOneStillTooLargeIsAnError) {
  ScriptedApi api;
  api.alerts = spread(3, 60, 7);
  api.too_large_above = 0;
  api.too_large_times = 0;
  auto pager = WindowPager(
      PagerSettings{4, 8},
      [](const WindowQuery&) -> Result<PageFacts> {
        return Error(ErrorCode::kTooLarge, "too large");
      },
      [](std::optional<Instant>) { return okStatus(); }, [&] { return api.now; }, nullptr);
  auto s = pager.run(addNanos(api.now, -60 * kSecond), std::nullopt, std::nullopt, true, {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kTooLarge);
  EXPECT_EQ(pager.pageSize(), 1u);
}

TEST(WindowPagerTest, OrderbyRefusedIsDroppedAndStaysComplete) {
  ScriptedApi api;
  api.refuse_orderby = true;
  api.alerts = spread(25, 600, 8);
  auto pager = api.pager(4);
  const Instant from = addNanos(api.now, -3600 * kSecond);
  ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
  EXPECT_FALSE(pager.orderby());
  EXPECT_TRUE(api.missing(from).empty());
}

// An API that sorts the first page and then stops sorting (or ignores $skip in probes).
TEST(WindowPagerTest, AnApiThatSortsOnlySometimesCannotMakeItSkip) {
  ScriptedApi api;
  api.alerts = spread(40, 3600, 9);
  int calls = 0;
  auto pager = WindowPager(
      PagerSettings{4, 8},
      [&](const WindowQuery& q) {
        api.order = (++calls % 3 == 0) ? Order::kById : Order::kHonoured;
        return api.fetch(q);
      },
      [&](std::optional<Instant> wm) { return api.commit(wm); }, [&] { return api.now; }, nullptr);
  const Instant from = addNanos(api.now, -7200 * kSecond);
  ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
  EXPECT_TRUE(api.missing(from).empty());
}

TEST(WindowPagerTest, ABoundedRangeNeverMovesTheWatermark) {
  ScriptedApi api;
  api.order = Order::kById;
  api.alerts = spread(30, 3600, 10);
  auto pager = api.pager(4);
  const Instant from = addNanos(api.now, -1800 * kSecond);
  const Instant until = addNanos(api.now, -600 * kSecond);
  ASSERT_TRUE(pager.run(from, until, std::nullopt, false, {}));
  EXPECT_TRUE(api.missing(from, until).empty());
  EXPECT_TRUE(api.watermarks.empty());
  for (const auto& q : api.queries) {
    EXPECT_LE(q.window.from, until);
    ASSERT_TRUE(q.window.to.has_value());
  }
}

TEST(WindowPagerTest, AWatermarkNeverGoesBelowTheFloor) {
  ScriptedApi api;
  api.alerts = spread(10, 600, 11);
  auto pager = api.pager(100);
  const Instant floor = addNanos(api.now, -kSecond / 2);  // above every alert
  ASSERT_TRUE(pager.run(addNanos(api.now, -3600 * kSecond), std::nullopt, floor, true, {}));
  EXPECT_TRUE(api.watermarks.empty());
}

TEST(WindowPagerTest, AStopEndsTheRunEarly) {
  ScriptedApi api;
  api.alerts = spread(40, 3600, 12);
  std::stop_source stopper;
  int calls = 0;
  auto pager = WindowPager(
      PagerSettings{4, 8},
      [&](const WindowQuery& q) {
        if (++calls == 3) stopper.request_stop();
        return api.fetch(q);
      },
      [&](std::optional<Instant> wm) { return api.commit(wm); }, [&] { return api.now; }, nullptr);
  ASSERT_TRUE(pager.run(addNanos(api.now, -7200 * kSecond), std::nullopt, std::nullopt, true,
                        stopper.get_token()));
  EXPECT_TRUE(pager.stopped());
  EXPECT_LE(calls, 4);
}

TEST(WindowPagerTest, AFetchErrorEndsTheRunWithIt) {
  ScriptedApi api;
  auto pager = WindowPager(
      PagerSettings{4, 8},
      [](const WindowQuery&) -> Result<PageFacts> {
        return Error(ErrorCode::kHttp, "HTTP 503 from the API").withHttpStatus(503);
      },
      [&](std::optional<Instant> wm) { return api.commit(wm); }, [&] { return api.now; }, nullptr);
  auto s = pager.run(addNanos(api.now, -60 * kSecond), std::nullopt, std::nullopt, true, {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().httpStatus(), 503);
}

// Random worlds, orders and page sizes: nothing is ever missing.
TEST(WindowPagerTest, RandomWorldsAreAlwaysComplete) {
  std::mt19937_64 rng(20261206);
  for (int round = 0; round < 150; ++round) {
    ScriptedApi api;
    api.order = static_cast<Order>(rng() % 4);
    api.honour_skip = true;
    const std::size_t n = 1 + rng() % 60;
    api.alerts = spread(n, 1 + static_cast<std::int64_t>(rng() % 3600), rng());
    const std::size_t ties = rng() % 10;
    for (std::size_t t = 0; t < ties && !api.alerts.empty(); ++t) {
      api.alerts.push_back({"t" + std::to_string(t), api.alerts[rng() % api.alerts.size()].time});
    }
    if (rng() % 4 == 0) {
      api.alerts.push_back(
          {"future", addNanos(api.now, static_cast<std::int64_t>(rng() % 100000) * kSecond)});
    }
    const std::size_t page = 1 + rng() % 6;
    auto pager = api.pager(page);
    const Instant from = addNanos(api.now, -7200 * kSecond);
    ASSERT_TRUE(pager.run(from, std::nullopt, std::nullopt, true, {}));
    const auto missing = api.missing(from);
    ASSERT_TRUE(missing.empty()) << "round " << round << ": order " << static_cast<int>(api.order)
                                 << ", page " << page << ", " << missing.size() << " missing";
    expectWatermarksRiseAndStayBelow(api, cap(api));
  }
}

// ---- NextLinkPager ----

struct LinkedApi {
  std::vector<std::vector<Instant>> pages;
  std::vector<std::string> links;  // links[i]: the nextLink of page i ("" : none)
  std::vector<std::string> fetched_urls;
  std::vector<std::optional<Instant>> commits;
  Instant now = at(kBase + 86400);
  int first_too_large = 0;  // the first page answers kTooLarge this many times

  NextLinkPager pager(std::size_t page_size = 4, std::string api_url = "https://graph.test") {
    return NextLinkPager(
        PagerSettings{page_size, 8}, std::move(api_url),
        [this](const std::string& url) -> Result<PageFacts> {
          fetched_urls.push_back(url);
          if (url.rfind("first", 0) == 0 && first_too_large > 0) {
            --first_too_large;
            return Error(ErrorCode::kTooLarge, "too large");
          }
          std::size_t i = 0;
          if (url.rfind("first", 0) != 0) {
            const auto it = std::find(links.begin(), links.end(), url);
            i = static_cast<std::size_t>(it - links.begin()) + 1;
          }
          PageFacts f;
          f.times = pages.at(i);
          f.alerts = f.times.size();
          f.next_link = links.at(i);
          return f;
        },
        [this](std::optional<Instant> wm) {
          commits.push_back(wm);
          return okStatus();
        },
        [this] { return now; }, nullptr);
  }
};

NextLinkPager::FirstUrl firstUrl() {
  return [](std::size_t top, bool orderby) {
    return "first?top=" + std::to_string(top) + (orderby ? "&orderby" : "");
  };
}

TEST(NextLinkPagerTest, FollowsLinksAndMovesTheWatermarkWithTheLastPage) {
  LinkedApi api;
  const Instant t = addNanos(api.now, -60 * kSecond);
  api.pages = {{t, addNanos(t, 1)}, {addNanos(t, 5)}, {addNanos(t, 3)}};
  api.links = {"https://graph.test/v1.0/security/alerts_v2?$skiptoken=a",
               "https://GRAPH.test:443/v1.0/security/alerts_v2?$skiptoken=b", ""};
  auto pager = api.pager();
  ASSERT_TRUE(pager.run(firstUrl(), std::nullopt, true, {}));
  ASSERT_EQ(api.commits.size(), 3u);
  EXPECT_FALSE(api.commits[0]);
  EXPECT_FALSE(api.commits[1]);
  EXPECT_EQ(api.commits[2], addNanos(t, 5));
}

TEST(NextLinkPagerTest, ALinkToAnotherOriginIsRefusedAndNeverFetched) {
  for (const std::string foreign :
       {"http://127.0.0.2:8443/v1.0/security/alerts_v2?$skiptoken=a",
        "http://graph.test/v1.0/security/alerts_v2?$skiptoken=a",        // scheme
        "https://graph.test:8443/v1.0/security/alerts_v2?$skiptoken=a",  // port
        "https://evil.test/v1.0/security/alerts_v2",                     // host
        "https://graph.test.evil.test/x", "https://user@graph.test/x",
        "//graph.test/v1.0/security/alerts_v2", "/v1.0/security/alerts_v2?$skiptoken=a",
        "not a url"}) {
    LinkedApi api;
    api.pages = {{addNanos(api.now, -kSecond)}, {addNanos(api.now, -kSecond / 2)}};
    api.links = {foreign, ""};
    auto pager = api.pager();
    auto s = pager.run(firstUrl(), std::nullopt, true, {});
    ASSERT_FALSE(s) << foreign;
    EXPECT_NE(s.error().message().find("another origin"), std::string::npos) << s.error().message();
    EXPECT_EQ(api.fetched_urls.size(), 1u) << foreign << " was fetched";
    ASSERT_EQ(api.commits.size(), 1u);
    EXPECT_FALSE(api.commits[0]) << "no watermark from an unfinished run";
  }
}

TEST(NextLinkPagerTest, SameOriginRules) {
  EXPECT_TRUE(
      sameOrigin("https://graph.microsoft.com/v1.0/x?$skiptoken=1", "https://graph.microsoft.com"));
  EXPECT_TRUE(sameOrigin("https://graph.microsoft.com:443/v1.0/x", "https://graph.microsoft.com/"));
  EXPECT_TRUE(sameOrigin("http://127.0.0.1:8080/v1.0/x", "http://127.0.0.1:8080"));
  EXPECT_FALSE(sameOrigin("http://127.0.0.2:8080/v1.0/x", "http://127.0.0.1:8080"));
  EXPECT_FALSE(sameOrigin("http://127.0.0.1:8081/v1.0/x", "http://127.0.0.1:8080"));
  EXPECT_FALSE(sameOrigin("http://graph.microsoft.com/v1.0/x", "https://graph.microsoft.com"));
  EXPECT_FALSE(sameOrigin("ftp://graph.microsoft.com/v1.0/x", "ftp://graph.microsoft.com"));
  EXPECT_FALSE(
      sameOrigin("https://user:pw@graph.microsoft.com/v1.0/x", "https://graph.microsoft.com"));
  EXPECT_TRUE(sameOrigin("HTTPS://Graph.Microsoft.COM/x", "https://graph.microsoft.com"));
  // The origin the Graph quota is shared by (collector.cpp): one text per origin.
  EXPECT_EQ(originOf("https://Graph.microsoft.com/v1.0"), "https://graph.microsoft.com:443");
  EXPECT_EQ(originOf("https://graph.microsoft.com:443"), "https://graph.microsoft.com:443");
  EXPECT_EQ(originOf("http://127.0.0.1:8080/x"), "http://127.0.0.1:8080");
  EXPECT_EQ(originOf("http://[::1]/x"), "http://[::1]:80");
  EXPECT_EQ(originOf("ftp://graph.microsoft.com"), "");
  EXPECT_EQ(originOf("not a url"), "");
}

TEST(NextLinkPagerTest, ALoopingLinkIsAnError) {
  LinkedApi api;
  api.pages = {{addNanos(api.now, -kSecond)}, {addNanos(api.now, -kSecond)}};
  api.links = {"https://graph.test/next", "https://graph.test/next"};
  auto pager = api.pager();
  auto s = pager.run(firstUrl(), std::nullopt, true, {});
  ASSERT_FALSE(s);
  EXPECT_LE(api.fetched_urls.size(), 3u);
}

TEST(NextLinkPagerTest, TheWatermarkStaysBelowTheServerTimeTheRunBegan) {
  LinkedApi api;
  api.pages = {{addNanos(api.now, -10 * kSecond), *core::parseIsoDateTime("2100-01-01T00:00:00Z")}};
  api.links = {""};
  auto pager = api.pager();
  ASSERT_TRUE(pager.run(firstUrl(), std::nullopt, true, {}));
  ASSERT_EQ(api.commits.size(), 1u);
  EXPECT_EQ(api.commits[0], addNanos(api.now, -10 * kSecond));
}

TEST(NextLinkPagerTest, AnOversizedFirstPageIsAskedAgainSmaller) {
  LinkedApi api;
  api.first_too_large = 2;
  api.pages = {{addNanos(api.now, -kSecond)}};
  api.links = {""};
  auto pager = api.pager(8);
  ASSERT_TRUE(pager.run(firstUrl(), std::nullopt, true, {}));
  ASSERT_EQ(api.fetched_urls.size(), 3u);
  EXPECT_EQ(api.fetched_urls.back(), "first?top=2&orderby");
}

}  // namespace
}  // namespace mdec::source
