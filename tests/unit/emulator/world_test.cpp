// The emulated tenant, driven with explicit emulated times: no sockets, no sleeps, no clock.
#include "mdecollect/emulator/world.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/emulator/odata.h"
#include "support/world_options.h"

namespace mdec::emulator {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;

using mdec::testing::busyOptions;
using mdec::testing::staticOptions;
const Timestamp kStart = mdec::testing::kWorldStart;

// Past the end of the initial history: every initial alert's lastUpdateTime (at most ~5 s
// after its creation, and the creation clock may run a little past `start`) is behind it.
Timestamp settled(const World& world) { return world.now() + minutes(5); }

core::Instant instantOf(Timestamp t) {
  const auto ns = t.time_since_epoch().count();
  return core::Instant{ns / 1'000'000'000, static_cast<std::int32_t>(ns % 1'000'000'000)};
}

core::Instant parseTime(std::string_view text) {
  auto t = core::parseIsoDateTime(text);
  EXPECT_TRUE(t) << "not a date-time: " << text;
  return t.value_or(core::Instant{});
}

// One alert of a query result, the fields the tests look at.
struct Row {
  std::string id;
  core::Instant last_update_time;
  core::Instant creation_time;
  std::string status;
  std::string severity;
  std::size_t evidence = 0;

  std::pair<std::string, core::Instant> key() const { return {id, last_update_time}; }
};

std::vector<Row> rowsOf(const std::string& value_json) {
  std::vector<Row> rows;
  simdjson::dom::parser parser;
  simdjson::dom::array array;
  const auto error = parser.parse(simdjson::padded_string(value_json)).get(array);
  EXPECT_EQ(error, simdjson::SUCCESS) << "not a JSON array";
  if (error != simdjson::SUCCESS) return rows;
  for (simdjson::dom::element element : array) {
    Row row;
    std::string_view text;
    simdjson::dom::array evidence;
    EXPECT_EQ(element["id"].get(text), simdjson::SUCCESS);
    row.id = std::string(text);
    EXPECT_EQ(element["lastUpdateTime"].get(text), simdjson::SUCCESS);
    row.last_update_time = parseTime(text);
    EXPECT_EQ(element["alertCreationTime"].get(text), simdjson::SUCCESS);
    row.creation_time = parseTime(text);
    EXPECT_EQ(element["status"].get(text), simdjson::SUCCESS);
    row.status = std::string(text);
    EXPECT_EQ(element["severity"].get(text), simdjson::SUCCESS);
    row.severity = std::string(text);
    EXPECT_EQ(element["evidence"].get(evidence), simdjson::SUCCESS) << row.id;
    row.evidence = evidence.size();
    rows.push_back(std::move(row));
  }
  return rows;
}

AlertQuery parse(const QueryParams& params) {
  auto q = parseAlertQuery(params);
  EXPECT_TRUE(q) << q.error().message();
  return q ? *q : AlertQuery{};
}

AlertQuery orderedBy(const char* orderby) {
  QueryParams p;
  p.orderby = orderby;
  return parse(p);
}

AlertQuery filtered(const std::string& filter) {
  QueryParams p;
  p.filter = filter;
  return parse(p);
}

std::vector<std::string> idsOf(const std::vector<Row>& rows) {
  std::vector<std::string> ids;
  for (const Row& r : rows) ids.push_back(r.id);
  return ids;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Everything a VersionInfo says, comparable.
using VersionKey = std::tuple<std::string, Timestamp, std::size_t, Timestamp, bool, bool>;
std::vector<VersionKey> keysOf(const std::vector<VersionInfo>& versions) {
  std::vector<VersionKey> keys;
  for (const VersionInfo& v : versions) {
    keys.emplace_back(v.id, v.last_update_time, v.evidence, v.visible_since, v.latest, v.served);
  }
  return keys;
}

int statusRank(const std::string& status) {
  if (status == "Unknown" || status == "New") return 0;
  if (status == "InProgress") return 1;
  if (status == "Resolved") return 2;
  ADD_FAILURE() << "unexpected status " << status;
  return -1;
}

// ---------------------------------------------------------------------------------------
// Determinism and population

TEST(World, SameOptionsGiveTheSameWorldWhateverTheSteps) {
  const WorldOptions options = busyOptions();
  World stepped(options);
  World jumped(options);
  const Timestamp end = settled(stepped) + hours(6);
  // Small irregular steps, with queries in between (which must not change the outcome).
  Timestamp t = stepped.now();
  for (int i = 0; t < end; ++i) {
    t = std::min(end, t + seconds(37 + (i % 5) * 311));
    stepped.advanceTo(t);
    if (i % 7 == 0) stepped.query(AlertQuery{}, OrderMode::kHonour, /*mark_served=*/false);
    stepped.advanceTo(t - minutes(1));  // going back is ignored
  }
  jumped.advanceTo(end - hours(3));
  jumped.advanceTo(end);
  ASSERT_EQ(stepped.now(), end);
  ASSERT_EQ(jumped.now(), end);

  EXPECT_EQ(stepped.alertCount(), jumped.alertCount());
  EXPECT_EQ(keysOf(stepped.versions()), keysOf(jumped.versions()));
  for (const char* orderby : {"lastUpdateTime desc", "alertCreationTime asc"}) {
    AlertQuery q = orderedBy(orderby);
    q.expand_evidence = true;
    const QueryPage a = stepped.query(q, OrderMode::kHonour);
    const QueryPage b = jumped.query(q, OrderMode::kHonour);
    EXPECT_EQ(a.value_json, b.value_json) << orderby;
    EXPECT_EQ(a.count, b.count);
    EXPECT_EQ(a.matched, b.matched);
  }
  const QueryPage a = stepped.query(AlertQuery{}, OrderMode::kIgnore);
  const QueryPage b = jumped.query(AlertQuery{}, OrderMode::kIgnore);
  EXPECT_EQ(a.value_json, b.value_json);
  // Serving is recorded the same way too.
  EXPECT_EQ(keysOf(stepped.versions()), keysOf(jumped.versions()));
}

TEST(World, DifferentSeedsGiveDifferentWorlds) {
  World a(busyOptions(1));
  World b(busyOptions(2));
  const Timestamp end = settled(a) + hours(2);
  a.advanceTo(end);
  b.advanceTo(end);
  std::set<std::string> ids_a;
  for (const VersionInfo& v : a.versions()) ids_a.insert(v.id);
  std::size_t shared = 0;
  for (const VersionInfo& v : b.versions()) shared += ids_a.count(v.id);
  EXPECT_EQ(shared, 0u);
  EXPECT_NE(a.query(AlertQuery{}, OrderMode::kIgnore).value_json,
            b.query(AlertQuery{}, OrderMode::kIgnore).value_json);
}

TEST(World, InitialPopulationIsTheConfiguredCount) {
  for (std::size_t n : {std::size_t{1}, std::size_t{37}, std::size_t{400}}) {
    SCOPED_TRACE(n);
    World world(staticOptions(n));
    EXPECT_EQ(world.alertCount(), n);
    world.advanceTo(settled(world));
    const auto versions = world.versions();
    ASSERT_EQ(versions.size(), n);
    std::set<std::string> ids;
    for (const VersionInfo& v : versions) {
      ids.insert(v.id);
      EXPECT_TRUE(v.latest);
      EXPECT_FALSE(v.served);
      EXPECT_EQ(v.visible_since, v.last_update_time);  // late_fraction 0
    }
    EXPECT_EQ(ids.size(), n);
    const QueryPage page = world.query(AlertQuery{}, OrderMode::kHonour);
    EXPECT_EQ(page.count, n);
    EXPECT_EQ(page.matched, n);
    EXPECT_EQ(rowsOf(page.value_json).size(), n);
  }
}

// Regression: the history used to run past `start` by up to an hour (random gaps), and the
// world then opened that late, so the emulator's clock ran ahead of the real one.
TEST(World, InitialHistoryEndsBeforeStartAndTheWorldOpensAtStart) {
  for (std::uint64_t seed : {1, 5, 11, 17}) {
    for (std::size_t n : {std::size_t{37}, std::size_t{200}, std::size_t{300}, std::size_t{600}}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + ", " + std::to_string(n) + " alerts");
      WorldOptions options = staticOptions(n, seed);
      options.late_fraction = 0.2;
      World world(options);
      EXPECT_EQ(world.now(), kStart) << formatApiTime(world.now());
      world.advanceTo(kStart + minutes(6));
      const auto rows = rowsOf(
          world.query(orderedBy("alertCreationTime asc"), OrderMode::kHonour, false).value_json);
      ASSERT_EQ(rows.size(), n);
      // Created inside about `history` (6 h) before start; updated at most ~5 s later.
      EXPECT_LT(rows.back().creation_time, instantOf(kStart));
      EXPECT_GT(rows.back().creation_time, instantOf(kStart - hours(1)));
      EXPECT_GE(rows.front().creation_time, instantOf(kStart - hours(9)));
      EXPECT_LE(rows.front().creation_time, instantOf(kStart - hours(3)));
      for (const Row& r : rows) {
        EXPECT_LE(r.last_update_time, instantOf(kStart + seconds(5))) << r.id;
      }
    }
  }
}

TEST(World, ArrivalsFollowTheConfiguredRate) {
  WorldOptions options = staticOptions(10);
  options.new_alerts_per_hour = 300;
  World world(options);
  const Timestamp opened = world.now();
  world.advanceTo(opened + hours(40));  // about 12,000 expected
  const std::size_t arrived = world.alertCount() - 10;
  EXPECT_GT(arrived, 12000u * 8 / 10);
  EXPECT_LT(arrived, 12000u * 12 / 10);
  // Arrivals are created after the opening, and spread over the whole span.
  AlertQuery q = filtered("alertCreationTime ge " + formatApiTime(opened));
  const std::size_t after_open = world.query(q, OrderMode::kHonour, false).matched;
  EXPECT_GE(after_open, arrived - 5);  // the last few may not be visible yet
  q = filtered("alertCreationTime ge " + formatApiTime(opened + hours(35)));
  const std::size_t last_five_hours = world.query(q, OrderMode::kHonour, false).matched;
  EXPECT_GT(last_five_hours, 1500u * 7 / 10);
  EXPECT_LT(last_five_hours, 1500u * 13 / 10);
}

TEST(World, NoArrivalsOrUpdatesWhenTheRatesAreZero) {
  World world(staticOptions(50));
  world.advanceTo(settled(world));
  const auto before = keysOf(world.versions());
  world.advanceTo(world.now() + hours(24 * 30));
  EXPECT_EQ(world.alertCount(), 50u);
  EXPECT_EQ(keysOf(world.versions()), before);
}

// ---------------------------------------------------------------------------------------
// Updates

TEST(World, UpdatesAddNewerVersionsAndStatusOnlyMovesForward) {
  WorldOptions options = staticOptions(300);
  options.updates_per_hour = 200;
  World world(options);
  const Timestamp opened = world.now();
  world.advanceTo(settled(world));
  std::map<std::string, Row> before;
  for (Row& r : rowsOf(world.query(AlertQuery{}, OrderMode::kHonour, false).value_json)) {
    before.emplace(r.id, std::move(r));
  }
  ASSERT_EQ(before.size(), 300u);
  const Timestamp then = world.now();
  world.advanceTo(then + hours(3));  // about 600 updates expected

  const auto versions = world.versions();
  EXPECT_EQ(world.alertCount(), 300u);
  EXPECT_GT(versions.size(), 300u + 600u * 7 / 10);
  EXPECT_LT(versions.size(), 300u + 600u * 13 / 10);
  // Per alert, versions come in order of lastUpdateTime, each newer than the last.
  std::map<std::string, std::vector<VersionInfo>> by_id;
  for (const VersionInfo& v : versions) by_id[v.id].push_back(v);
  for (auto& [id, list] : by_id) {
    for (std::size_t i = 1; i < list.size(); ++i) {
      EXPECT_GT(list[i].last_update_time, list[i - 1].last_update_time) << id;
      EXPECT_GT(list[i].last_update_time, opened) << id;  // updates begin when the world opens
    }
  }

  std::size_t changed = 0;
  std::size_t resolved_now = 0;
  for (const Row& after : rowsOf(world.query(AlertQuery{}, OrderMode::kHonour).value_json)) {
    const Row& old = before.at(after.id);
    if (old.status == "Resolved") {
      EXPECT_EQ(after.last_update_time, old.last_update_time) << "a resolved alert changed";
    }
    if (after.last_update_time != old.last_update_time) {
      ++changed;
      EXPECT_GT(after.last_update_time, old.last_update_time);
      EXPECT_GE(statusRank(after.status), statusRank(old.status)) << after.id;
      EXPECT_GT(by_id.at(after.id).size(), 1u);
    } else {
      EXPECT_EQ(after.status, old.status);
      EXPECT_LE(by_id.at(after.id).back().last_update_time, then) << after.id;
    }
    resolved_now += after.status == "Resolved";
  }
  EXPECT_GT(changed, 100u);
  std::size_t resolved_before = 0;
  for (const auto& [id, r] : before) resolved_before += r.status == "Resolved";
  EXPECT_GT(resolved_now, resolved_before);
}

// ---------------------------------------------------------------------------------------
// Late arrival and the latest flag

// A version found in a reference world, and the version of the same alert before it.
struct LateCase {
  VersionInfo version;
  std::optional<VersionInfo> previous;
};

TEST(World, LateVersionsStayHiddenUntilVisibleAndTheOlderOneIsServedMeanwhile) {
  WorldOptions options = staticOptions(40);
  options.new_alerts_per_hour = 30;
  options.updates_per_hour = 120;
  options.late_fraction = 1.0;
  options.late_max = minutes(30);
  World reference(options);
  const Timestamp end = reference.now() + hours(4);
  reference.advanceTo(end);

  // An update (with an earlier version visible by the middle of its delay) and a new alert.
  std::map<std::string, std::vector<VersionInfo>> by_id;
  for (const VersionInfo& v : reference.versions()) {
    EXPECT_GT(v.visible_since, v.last_update_time) << "late_fraction 1: every version is late";
    by_id[v.id].push_back(v);
  }
  for (auto& [id, list] : by_id) {
    std::sort(list.begin(), list.end(), [](const VersionInfo& a, const VersionInfo& b) {
      return a.last_update_time < b.last_update_time;
    });
    for (std::size_t i = 0; i < list.size(); ++i) {
      // At most late_max late, unless held back behind the previous version of the alert.
      Timestamp bound = list[i].last_update_time + minutes(30);
      if (i > 0) bound = std::max(bound, list[i - 1].visible_since);
      EXPECT_LE(list[i].visible_since, bound) << id;
      if (i > 0) {
        EXPECT_GE(list[i].visible_since, list[i - 1].visible_since) << id;
      }
    }
  }
  std::optional<LateCase> update;
  std::optional<LateCase> arrival;
  for (const auto& [id, list] : by_id) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      const VersionInfo& v = list[i];
      if (v.visible_since - v.last_update_time < seconds(10)) continue;
      const Timestamp middle = v.last_update_time + (v.visible_since - v.last_update_time) / 2;
      if (i > 0 && !update && list[i - 1].visible_since <= middle) {
        update = LateCase{v, list[i - 1]};
      }
      if (i == 0 && !arrival && v.last_update_time > reference.now() - hours(3)) {
        arrival = LateCase{v, std::nullopt};
      }
    }
  }
  ASSERT_TRUE(update) << "no late update with a visible predecessor";
  ASSERT_TRUE(arrival) << "no late new alert";

  for (const LateCase& c : {*update, *arrival}) {
    const VersionInfo& v = c.version;
    SCOPED_TRACE(v.id);
    World world(options);
    const Timestamp middle = v.last_update_time + (v.visible_since - v.last_update_time) / 2;
    world.advanceTo(middle);
    auto has = [&v](const std::vector<VersionInfo>& list) {
      return std::any_of(list.begin(), list.end(), [&v](const VersionInfo& x) {
        return x.id == v.id && x.last_update_time == v.last_update_time;
      });
    };
    auto shown = [&world, &v]() -> std::optional<Row> {
      for (Row& r : rowsOf(world.query(AlertQuery{}, OrderMode::kHonour, false).value_json)) {
        if (r.id == v.id) return r;
      }
      return std::nullopt;
    };
    EXPECT_FALSE(has(world.versions()));
    const std::optional<Row> meanwhile = shown();
    if (c.previous) {
      ASSERT_TRUE(meanwhile);
      EXPECT_EQ(meanwhile->last_update_time, instantOf(c.previous->last_update_time));
      ASSERT_TRUE(world.alertJson(v.id, false, false));
    } else {
      EXPECT_FALSE(meanwhile);
      EXPECT_FALSE(world.alertJson(v.id, false, false));
    }
    // A filter window that covers the version's lastUpdateTime does not find it yet.
    const std::string around =
        "lastUpdateTime ge " + formatApiTime(v.last_update_time - seconds(1)) +
        " and lastUpdateTime le " + formatApiTime(v.last_update_time + seconds(1));
    for (const Row& r :
         rowsOf(world.query(filtered(around), OrderMode::kHonour, false).value_json)) {
      EXPECT_FALSE(r.id == v.id && r.last_update_time == instantOf(v.last_update_time));
    }

    world.advanceTo(v.visible_since - milliseconds(1));
    EXPECT_FALSE(has(world.versions()));
    world.advanceTo(v.visible_since);
    EXPECT_TRUE(has(world.versions()));
    const std::optional<Row> after = shown();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->last_update_time, instantOf(v.last_update_time));
    EXPECT_TRUE(world.alertJson(v.id, false, false));
  }
}

TEST(World, OnlyTheNewestVisibleVersionIsLatest) {
  World world(busyOptions());
  world.advanceTo(settled(world) + hours(8));
  std::map<std::string, std::vector<VersionInfo>> by_id;
  const auto versions = world.versions();
  Timestamp previous_visible{};
  for (const VersionInfo& v : versions) {
    EXPECT_GE(v.visible_since, previous_visible) << "versions() is in order of visibility";
    EXPECT_LE(v.visible_since, world.now());
    previous_visible = v.visible_since;
    by_id[v.id].push_back(v);
  }
  std::size_t with_history = 0;
  for (const auto& [id, list] : by_id) {
    const auto newest =
        std::max_element(list.begin(), list.end(), [](const VersionInfo& a, const VersionInfo& b) {
          return a.last_update_time < b.last_update_time;
        });
    std::size_t latest = 0;
    for (const VersionInfo& v : list) {
      latest += v.latest;
      EXPECT_EQ(v.latest, &v == &*newest) << id;
    }
    EXPECT_EQ(latest, 1u) << id;
    with_history += list.size() > 1;
  }
  EXPECT_GT(with_history, 50u);
  // The API shows exactly the latest versions.
  std::set<std::pair<std::string, core::Instant>> latest;
  for (const VersionInfo& v : versions) {
    if (v.latest) latest.emplace(v.id, instantOf(v.last_update_time));
  }
  std::set<std::pair<std::string, core::Instant>> shown;
  for (const Row& r : rowsOf(world.query(AlertQuery{}, OrderMode::kHonour).value_json)) {
    shown.insert(r.key());
  }
  EXPECT_EQ(shown, latest);
}

TEST(World, VersionsOfOneAlertAreListedOldestFirst) {
  WorldOptions options = busyOptions(5);
  options.late_fraction = 1.0;
  options.late_max = minutes(45);
  options.updates_per_hour = 600;
  World world(options);
  world.advanceTo(settled(world) + hours(6));
  std::map<std::string, Timestamp> last_seen;
  std::size_t repeated = 0;
  for (const VersionInfo& v : world.versions()) {
    auto [it, fresh] = last_seen.emplace(v.id, v.last_update_time);
    if (fresh) continue;
    ++repeated;
    EXPECT_GT(v.last_update_time, it->second) << v.id;
    it->second = v.last_update_time;
  }
  EXPECT_GT(repeated, 100u);
}

// ---------------------------------------------------------------------------------------
// Served flags

TEST(World, QueriesMarkWhatTheyReturnAsServed) {
  World world(staticOptions(120));
  world.advanceTo(settled(world));
  AlertQuery all = orderedBy("lastUpdateTime asc");
  world.query(all, OrderMode::kHonour, /*mark_served=*/false);
  const std::string first_id = rowsOf(world.query(all, OrderMode::kHonour, false).value_json)[0].id;
  EXPECT_TRUE(world.alertJson(first_id, true, /*mark_served=*/false));
  for (const VersionInfo& v : world.versions()) EXPECT_FALSE(v.served) << v.id;

  AlertQuery page = all;
  page.top = 25;
  page.skip = 10;
  std::set<std::string> returned;
  for (const Row& r : rowsOf(world.query(page, OrderMode::kHonour).value_json)) {
    returned.insert(r.id);
  }
  ASSERT_EQ(returned.size(), 25u);
  ASSERT_EQ(returned.count(first_id), 0u);
  for (const VersionInfo& v : world.versions()) EXPECT_EQ(v.served, returned.count(v.id) == 1);

  EXPECT_TRUE(world.alertJson(first_id, false));
  std::size_t served = 0;
  for (const VersionInfo& v : world.versions()) {
    served += v.served;
    if (v.id == first_id) {
      EXPECT_TRUE(v.served);
    }
  }
  EXPECT_EQ(served, 26u);
}

TEST(World, ServedVersionsStayServedAndTheirSuccessorsAreNot) {
  WorldOptions options = staticOptions(60);
  options.updates_per_hour = 60;
  World world(options);
  world.advanceTo(settled(world));
  std::set<std::pair<std::string, core::Instant>> returned;
  for (const Row& r : rowsOf(world.query(AlertQuery{}, OrderMode::kIgnore).value_json)) {
    returned.insert(r.key());
  }
  ASSERT_EQ(returned.size(), 60u);
  world.advanceTo(world.now() + hours(2));
  std::set<std::pair<std::string, core::Instant>> served;
  std::size_t newer = 0;
  for (const VersionInfo& v : world.versions()) {
    if (v.served) served.emplace(v.id, instantOf(v.last_update_time));
    if (v.latest && !returned.count({v.id, instantOf(v.last_update_time)})) {
      ++newer;
      EXPECT_FALSE(v.served) << v.id;
    }
  }
  EXPECT_EQ(served, returned);
  EXPECT_GT(newer, 10u);
}

// ---------------------------------------------------------------------------------------
// Ordering and paging

bool timesInOrder(const Row& a, const Row& b, bool by_creation, bool descending) {
  const core::Instant ka = by_creation ? a.creation_time : a.last_update_time;
  const core::Instant kb = by_creation ? b.creation_time : b.last_update_time;
  if (ka != kb) return descending ? ka > kb : ka < kb;
  return a.id < b.id;  // ties by id
}

TEST(World, HonoursOrderByWithTiesBrokenById) {
  World world(busyOptions());
  world.advanceTo(settled(world) + hours(3));
  const std::size_t total = world.query(AlertQuery{}, OrderMode::kHonour, false).matched;
  ASSERT_GT(total, 300u);
  struct Case {
    const char* orderby;
    bool by_creation;
    bool descending;
  };
  for (const Case& c :
       {Case{"lastUpdateTime", false, false}, Case{"lastUpdateTime asc", false, false},
        Case{"lastUpdateTime desc", false, true}, Case{"alertCreationTime asc", true, false},
        Case{"alertCreationTime desc", true, true}}) {
    SCOPED_TRACE(c.orderby);
    const auto rows =
        rowsOf(world.query(orderedBy(c.orderby), OrderMode::kHonour, false).value_json);
    ASSERT_EQ(rows.size(), total);
    std::size_t ties = 0;
    for (std::size_t i = 1; i < rows.size(); ++i) {
      EXPECT_TRUE(timesInOrder(rows[i - 1], rows[i], c.by_creation, c.descending))
          << rows[i - 1].id << " before " << rows[i].id;
      const auto& a = c.by_creation ? rows[i - 1].creation_time : rows[i - 1].last_update_time;
      const auto& b = c.by_creation ? rows[i].creation_time : rows[i].last_update_time;
      ties += a == b;
    }
    if (!c.by_creation) {
      EXPECT_GT(ties, 0u) << "lastUpdateTime is coarse: ties are common";
    }
  }
}

TEST(World, IgnoredOrderByGivesTheSameSetInAFixedOtherOrder) {
  World world(busyOptions());
  world.advanceTo(settled(world) + hours(3));
  const AlertQuery q = orderedBy("lastUpdateTime asc");
  const auto honoured = idsOf(rowsOf(world.query(q, OrderMode::kHonour, false).value_json));
  const auto ignored = idsOf(rowsOf(world.query(q, OrderMode::kIgnore, false).value_json));
  const auto again = idsOf(rowsOf(world.query(q, OrderMode::kIgnore, false).value_json));
  const auto unordered =
      idsOf(rowsOf(world.query(AlertQuery{}, OrderMode::kHonour, false).value_json));
  const auto rejected_mode =
      idsOf(rowsOf(world.query(AlertQuery{}, OrderMode::kReject, false).value_json));
  EXPECT_EQ(sorted(ignored), sorted(honoured));
  EXPECT_NE(ignored, honoured);
  EXPECT_EQ(ignored, again);
  EXPECT_EQ(ignored, unordered);  // no $orderby: the same arbitrary order
  EXPECT_EQ(ignored, rejected_mode);
  // Not sorted by either time, in either direction.
  for (const char* orderby : {"lastUpdateTime asc", "lastUpdateTime desc", "alertCreationTime asc",
                              "alertCreationTime desc"}) {
    EXPECT_NE(ignored,
              idsOf(rowsOf(world.query(orderedBy(orderby), OrderMode::kHonour, false).value_json)))
        << orderby;
  }
}

TEST(World, TopAndSkipPageThroughTheOrderedSet) {
  World world(busyOptions());
  world.advanceTo(settled(world) + hours(2));
  for (const char* orderby : {"lastUpdateTime asc", "alertCreationTime desc", ""}) {
    for (OrderMode mode : {OrderMode::kHonour, OrderMode::kIgnore}) {
      SCOPED_TRACE(std::string(orderby) + (mode == OrderMode::kHonour ? " honour" : " ignore"));
      AlertQuery q = *orderby != '\0' ? orderedBy(orderby) : AlertQuery{};
      const QueryPage whole = world.query(q, mode, false);
      const auto all = idsOf(rowsOf(whole.value_json));
      ASSERT_EQ(all.size(), whole.matched);
      std::vector<std::string> pages;
      q.top = 37;
      for (std::size_t skip = 0; skip < all.size() + 37; skip += q.top) {
        q.skip = skip;
        const QueryPage page = world.query(q, mode, false);
        EXPECT_EQ(page.matched, all.size());
        EXPECT_EQ(page.count, std::min<std::size_t>(37, all.size() - std::min(skip, all.size())));
        for (std::string& id : idsOf(rowsOf(page.value_json))) pages.push_back(std::move(id));
      }
      EXPECT_EQ(pages, all);
      EXPECT_EQ(std::set<std::string>(pages.begin(), pages.end()).size(), pages.size());
    }
  }
  AlertQuery none;
  none.top = 0;
  const QueryPage empty = world.query(none, OrderMode::kHonour);
  EXPECT_EQ(empty.value_json, "[]");
  EXPECT_EQ(empty.count, 0u);
  EXPECT_GT(empty.matched, 0u);
  AlertQuery beyond;
  beyond.skip = 1'000'000;
  EXPECT_EQ(world.query(beyond, OrderMode::kHonour).value_json, "[]");
}

// ---------------------------------------------------------------------------------------
// Filters and $expand

TEST(World, TimeFiltersSelectExactlyTheWindow) {
  World world(busyOptions());
  world.advanceTo(settled(world) + hours(4));
  const auto all = rowsOf(world.query(AlertQuery{}, OrderMode::kHonour, false).value_json);
  ASSERT_GT(all.size(), 300u);
  const Timestamp from = kStart - hours(2);
  const Timestamp to = kStart + hours(2);
  struct Case {
    std::string filter;
    bool by_creation;
    bool include_from;
    bool include_to;
  };
  const std::string f = formatApiTime(from);
  const std::string t = formatApiTime(to);
  for (const Case& c :
       {Case{"lastUpdateTime ge " + f + " and lastUpdateTime lt " + t, false, true, false},
        Case{"lastUpdateTime gt " + f + " and lastUpdateTime le " + t, false, false, true},
        Case{"alertCreationTime ge " + f + " and alertCreationTime lt " + t, true, true, false}}) {
    SCOPED_TRACE(c.filter);
    std::set<std::string> expected;
    for (const Row& r : all) {
      const core::Instant k = c.by_creation ? r.creation_time : r.last_update_time;
      const bool after = c.include_from ? k >= instantOf(from) : k > instantOf(from);
      const bool before = c.include_to ? k <= instantOf(to) : k < instantOf(to);
      if (after && before) expected.insert(r.id);
    }
    ASSERT_GT(expected.size(), 10u);
    ASSERT_LT(expected.size(), all.size());
    const QueryPage page = world.query(filtered(c.filter), OrderMode::kHonour, false);
    const auto got = idsOf(rowsOf(page.value_json));
    EXPECT_EQ(page.matched, expected.size());
    EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), expected);
  }
  // A tie on the boundary: gt loses the alerts that share the boundary time, ge keeps them.
  const core::Instant boundary = all[all.size() / 2].last_update_time;
  std::size_t at_boundary = 0;
  std::size_t after_boundary = 0;
  for (const Row& r : all) {
    at_boundary += r.last_update_time == boundary;
    after_boundary += r.last_update_time > boundary;
  }
  const std::string b = core::formatRfc3339(boundary, 7);
  EXPECT_EQ(world.query(filtered("lastUpdateTime gt " + b), OrderMode::kHonour, false).matched,
            after_boundary);
  EXPECT_EQ(world.query(filtered("lastUpdateTime ge " + b), OrderMode::kHonour, false).matched,
            after_boundary + at_boundary);
}

TEST(World, StatusAndSeverityFiltersSelectExactly) {
  World world(busyOptions());
  world.advanceTo(settled(world) + hours(4));
  const auto all = rowsOf(world.query(AlertQuery{}, OrderMode::kHonour, false).value_json);
  std::map<std::string, std::size_t> by_status;
  std::map<std::string, std::size_t> by_severity;
  for (const Row& r : all) {
    ++by_status[r.status];
    ++by_severity[r.severity];
  }
  EXPECT_GE(by_status.size(), 2u);
  EXPECT_GE(by_severity.size(), 3u);
  for (const char* status : {"New", "InProgress", "Resolved", "Unknown"}) {
    const auto rows = rowsOf(
        world.query(filtered(std::string("status eq '") + status + "'"), OrderMode::kHonour, false)
            .value_json);
    EXPECT_EQ(rows.size(), by_status[status]) << status;
    for (const Row& r : rows) EXPECT_EQ(r.status, status);
  }
  for (const char* severity : {"Informational", "Low", "Medium", "High", "UnSpecified"}) {
    const auto rows = rowsOf(world
                                 .query(filtered(std::string("severity eq '") + severity + "'"),
                                        OrderMode::kHonour, false)
                                 .value_json);
    EXPECT_EQ(rows.size(), by_severity[severity]) << severity;
    for (const Row& r : rows) EXPECT_EQ(r.severity, severity);
  }
  // Conditions combine with `and`.
  const std::string from = formatApiTime(kStart);
  std::size_t expected = 0;
  for (const Row& r : all) {
    expected +=
        r.status == "New" && r.severity == "High" && r.last_update_time >= instantOf(kStart);
  }
  const auto rows = rowsOf(world
                               .query(filtered("status eq 'New' and severity eq 'High' and "
                                               "lastUpdateTime ge " +
                                               from),
                                      OrderMode::kHonour, false)
                               .value_json);
  EXPECT_EQ(rows.size(), expected);
}

TEST(World, EvidenceIsEmptyUnlessExpanded) {
  World world(staticOptions(150));
  world.advanceTo(settled(world));
  std::map<std::string, std::size_t> evidence;
  for (const VersionInfo& v : world.versions()) evidence[v.id] = v.evidence;

  AlertQuery q;
  const std::string plain = world.query(q, OrderMode::kHonour, false).value_json;
  q.expand_evidence = true;
  const std::string expanded = world.query(q, OrderMode::kHonour, false).value_json;
  std::size_t total = 0;
  for (const Row& r : rowsOf(plain)) EXPECT_EQ(r.evidence, 0u) << r.id;
  for (const Row& r : rowsOf(expanded)) {
    EXPECT_EQ(r.evidence, evidence.at(r.id)) << r.id;
    total += r.evidence;
  }
  EXPECT_GT(total, 150u);
  EXPECT_NE(plain.find(R"("evidence":[])"), std::string::npos);

  const std::string id = rowsOf(plain)[0].id;
  const auto one_plain = world.alertJson(id, false, false);
  const auto one_expanded = world.alertJson(id, true, false);
  ASSERT_TRUE(one_plain);
  ASSERT_TRUE(one_expanded);
  EXPECT_EQ(rowsOf("[" + *one_plain + "]").at(0).evidence, 0u);
  EXPECT_EQ(rowsOf("[" + *one_expanded + "]").at(0).evidence, evidence.at(id));
  EXPECT_NE(plain.find(*one_plain), std::string::npos);
  EXPECT_NE(expanded.find(*one_expanded), std::string::npos);
}

TEST(World, AlertJsonOfAnUnknownIdIsNothing) {
  World world(staticOptions(20));
  world.advanceTo(settled(world));
  EXPECT_FALSE(world.alertJson("da000000000000000000_1", true));
  EXPECT_FALSE(world.alertJson("", false));
  for (const VersionInfo& v : world.versions()) EXPECT_FALSE(v.served);
}

}  // namespace
}  // namespace mdec::emulator
