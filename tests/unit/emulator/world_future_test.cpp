// The future_timestamps fault in the world: a share of versions stamped with a lastUpdateTime
// in 2100, consistently (served, filtered, ordered and reported with that time), drawn apart
// from the world's own events. Emulated time only: no sockets, no sleeps, no clock.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mdecollect/emulator/graph_odata.h"
#include "mdecollect/emulator/odata.h"
#include "mdecollect/emulator/world.h"
#include "support/world_options.h"

namespace mdec::emulator {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

using mdec::testing::busyOptions;
using mdec::testing::staticOptions;

using Key = std::pair<std::string, std::string>;  // (id, lastUpdateTime as served)

WorldOptions withFuture(WorldOptions options, double rate, std::uint64_t seed = 7) {
  options.future_rate = rate;
  options.future_seed = seed;
  return options;
}

// (id, lastUpdateTime text) of every alert in a page's value array; `graph`: Graph's names.
std::vector<Key> keysOf(const std::string& value_json, bool graph = false) {
  std::vector<Key> keys;
  simdjson::dom::parser parser;
  simdjson::dom::array array;
  EXPECT_EQ(parser.parse(simdjson::padded_string(value_json)).get(array), simdjson::SUCCESS);
  for (simdjson::dom::element e : array) {
    std::string_view id;
    std::string_view time;
    EXPECT_EQ(e["id"].get(id), simdjson::SUCCESS);
    EXPECT_EQ(e[graph ? "lastUpdateDateTime" : "lastUpdateTime"].get(time), simdjson::SUCCESS);
    keys.emplace_back(std::string(id), std::string(time));
  }
  return keys;
}

std::set<Key> setOf(const std::vector<Key>& keys) { return {keys.begin(), keys.end()}; }

AlertQuery filtered(const std::string& filter, const char* orderby = nullptr) {
  QueryParams p;
  p.filter = filter;
  if (orderby != nullptr) p.orderby = orderby;
  auto q = parseAlertQuery(p);
  EXPECT_TRUE(q) << q.error().message();
  return q ? *q : AlertQuery{};
}

GraphQuery graphFiltered(const std::string& filter) {
  GraphQueryParams p;
  p.filter = filter;
  p.top = "999";
  auto q = parseGraphQuery(p, 1);
  EXPECT_TRUE(q) << q.error().message();
  return q ? *q : GraphQuery{};
}

bool isFutureText(const std::string& time) { return time.rfind("2100-01-01T00:00:", 0) == 0; }

TEST(WorldFuture, AShareOfVersionsIsStampedInTheFutureEachWithItsOwnTime) {
  World world(withFuture(busyOptions(), 0.2));
  world.advanceTo(world.now() + hours(8));
  const auto versions = world.versions();
  std::map<std::string, std::size_t> number;  // versions of each alert seen so far
  std::size_t future = 0;
  std::set<std::pair<std::string, Timestamp>> keys;
  for (const VersionInfo& v : versions) {
    const std::size_t n = number[v.id]++;
    EXPECT_TRUE(keys.emplace(v.id, v.last_update_time).second) << "a key twice: " << v.id;
    if (!v.future) {
      EXPECT_LT(v.last_update_time, kFutureTime) << v.id;
      continue;
    }
    ++future;
    // 2100-01-01T00:00:00Z plus the version's number within its alert, in seconds.
    EXPECT_EQ(v.last_update_time, kFutureTime + seconds(static_cast<std::int64_t>(n))) << v.id;
    EXPECT_LT(v.visible_since, kFutureTime) << "visibility follows the real time";
  }
  EXPECT_GT(future, versions.size() / 10) << versions.size();
  EXPECT_LT(future, versions.size() * 3 / 10) << versions.size();
}

TEST(WorldFuture, TheApiServesFiltersAndOrdersByTheStampedTime) {
  World world(withFuture(staticOptions(300), 0.1));
  world.advanceTo(world.now() + minutes(5));
  std::set<Key> future;
  std::set<Key> past;
  for (const VersionInfo& v : world.versions()) {
    (v.future ? future : past).emplace(v.id, formatApiTime(v.last_update_time));
  }
  ASSERT_GT(future.size(), 10u);
  for (const Key& k : future) EXPECT_EQ(k.second, "2100-01-01T00:00:00Z") << k.first;

  const auto all = keysOf(world.query(AlertQuery{}, OrderMode::kHonour).value_json);
  std::set<Key> expected = future;
  expected.insert(past.begin(), past.end());
  EXPECT_EQ(setOf(all), expected);
  EXPECT_EQ(setOf(keysOf(
                world.query(filtered("lastUpdateTime ge 2099-12-31T00:00:00Z"), OrderMode::kHonour)
                    .value_json)),
            future);
  EXPECT_EQ(setOf(keysOf(
                world.query(filtered("lastUpdateTime lt 2099-12-31T00:00:00Z"), OrderMode::kHonour)
                    .value_json)),
            past);
  // Newest first: the stamped ones lead.
  const auto ordered =
      keysOf(world
                 .query(filtered("lastUpdateTime gt 2000-01-01T00:00:00Z", "lastUpdateTime desc"),
                        OrderMode::kHonour)
                 .value_json);
  ASSERT_EQ(ordered.size(), all.size());
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    EXPECT_EQ(isFutureText(ordered[i].second), i < future.size()) << i;
  }
  // Graph: the same time as lastUpdateDateTime, and its $filter sees it too.
  EXPECT_EQ(setOf(keysOf(world
                             .queryGraph(graphFiltered("lastUpdateDateTime ge "
                                                       "2099-12-31T00:00:00Z"),
                                         OrderMode::kHonour, true)
                             .value_json,
                         true)),
            future);
  // Each served once: counted once, however often it is served.
  world.query(AlertQuery{}, OrderMode::kHonour);
  EXPECT_EQ(world.futureVersionsServed(), future.size());
  for (const VersionInfo& v : world.versions()) EXPECT_TRUE(v.served);
}

TEST(WorldFuture, NothingServedIsNotCounted) {
  World world(withFuture(staticOptions(100), 0.5));
  world.advanceTo(world.now() + minutes(5));
  world.query(AlertQuery{}, OrderMode::kHonour, /*mark_served=*/false);
  EXPECT_EQ(world.futureVersionsServed(), 0u);
}

TEST(WorldFuture, TheWorldsEventsAreTheSameWithOrWithoutTheFault) {
  World plain(busyOptions());
  World stamped(withFuture(busyOptions(), 0.3));
  const Timestamp end = plain.now() + hours(6);
  plain.advanceTo(end);
  stamped.advanceTo(end);
  const auto a = plain.versions();
  const auto b = stamped.versions();
  ASSERT_EQ(a.size(), b.size());
  std::size_t future = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].id, b[i].id) << i;
    EXPECT_EQ(a[i].visible_since, b[i].visible_since) << i;
    EXPECT_EQ(a[i].evidence, b[i].evidence) << i;
    EXPECT_EQ(a[i].latest, b[i].latest) << i;
    if (b[i].future) {
      ++future;
    } else {
      EXPECT_EQ(a[i].last_update_time, b[i].last_update_time) << i;
    }
  }
  EXPECT_GT(future, 0u);
}

TEST(WorldFuture, AStampStaysAndLaterAlertsKeepArriving) {
  World world(withFuture(busyOptions(), 0.2));
  world.advanceTo(world.now() + hours(2));
  std::map<std::pair<std::string, Timestamp>, bool> before;  // future versions, by key
  Timestamp first_future_visible = Timestamp::max();
  for (const VersionInfo& v : world.versions()) {
    if (!v.future) continue;
    before[{v.id, v.last_update_time}] = true;
    first_future_visible = std::min(first_future_visible, v.visible_since);
  }
  ASSERT_FALSE(before.empty());
  const Timestamp mid = world.now();
  world.advanceTo(mid + hours(4));
  std::size_t kept = 0;
  std::size_t later_plain = 0;
  for (const VersionInfo& v : world.versions()) {
    if (before.count({v.id, v.last_update_time}) != 0) {
      EXPECT_TRUE(v.future);
      ++kept;
    }
    if (!v.future && v.visible_since > mid) ++later_plain;
  }
  EXPECT_EQ(kept, before.size()) << "a future-stamped version changed its time";
  EXPECT_GT(later_plain, 100u) << "versions after the first stamped one must keep coming";
  EXPECT_LT(first_future_visible, mid);
  // ... and a filter on their real times finds them.
  const std::string since = formatApiTime(mid);
  const auto newer = keysOf(world
                                .query(filtered("lastUpdateTime ge " + since +
                                                " and lastUpdateTime lt 2099-01-01T00:00:00Z"),
                                       OrderMode::kHonour)
                                .value_json);
  EXPECT_GT(newer.size(), 50u);
}

TEST(WorldFuture, ARateChangeAppliesToVersionsCreatedFromThenOn) {
  World world(busyOptions());
  const Timestamp t1 = world.now() + hours(1);
  world.advanceTo(t1);
  const auto at_t1 = world.versions();
  for (const VersionInfo& v : at_t1) EXPECT_FALSE(v.future);
  world.setFutureRate(1);
  world.advanceTo(t1 + hours(2));
  std::size_t future = 0;
  std::set<std::pair<std::string, Timestamp>> old_keys;
  for (const VersionInfo& v : at_t1) old_keys.emplace(v.id, v.last_update_time);
  for (const VersionInfo& v : world.versions()) {
    if (v.future) {
      ++future;
      EXPECT_EQ(old_keys.count({v.id, v.last_update_time}), 0u);
    } else {
      // (An alert's lastUpdateTime can be a few seconds after the event that created it.)
      EXPECT_LE(v.last_update_time, t1 + minutes(1))
          << v.id << ": created after the change, not stamped";
    }
  }
  EXPECT_GT(future, 50u);
}

}  // namespace
}  // namespace mdec::emulator
