// The API client (source/api_client.h) against a scripted HttpClient, a counting token
// provider and a fake clock whose sleeps return at once (and advance it): the HTTP-date and
// Retry-After parsers with every bound, what each status means, the API's error messages,
// the request pacer and its file, and ApiClient::get's token renewal, retries, backoff,
// throttling, stop requests and the server's clock.
#include "mdecollect/source/api_client.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "support/files.h"
#include "support/scoped_umask.h"
#include "support/temp_dir.h"

namespace mdec::source {
namespace {

using mdec::testing::TempDir;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

constexpr std::int64_t kRfcExample = 784111777;      // Sun, 06 Nov 1994 08:49:37 GMT
constexpr std::int64_t kYear9999End = 253402300799;  // Fri, 31 Dec 9999 23:59:59 GMT
constexpr std::int64_t kClockStart = 1'800'000'000;  // Fri, 15 Jan 2027 08:00:00 GMT
constexpr const char* kToken = "eyJ0-SECRET-access-token-1";
constexpr const char* kHuge = "99999999999999999999";  // 20 digits: over int64

using core::formatHttpDate;

// ---- fakes ----

// Wall and steady time that move only when slept; every sleep is recorded.
class FakeClock : public core::Clock {
 public:
  WallTime wall{seconds(kClockStart)};
  SteadyTime steady{seconds(10'000)};
  std::vector<milliseconds> sleeps;
  std::function<void()> on_sleep;  // e.g. a stop request arriving while asleep

  WallTime now() const override { return wall; }
  SteadyTime steadyNow() const override { return steady; }
  bool sleepFor(milliseconds d, std::stop_token stop) override {
    sleeps.push_back(d);
    if (on_sleep) on_sleep();
    if (stop.stop_requested()) return false;
    wall += d;
    steady += d;
    return true;
  }
  milliseconds slept() const {
    milliseconds total{0};
    for (auto d : sleeps) total += d;
    return total;
  }
};

// Hands out kToken, then "<kToken>-renewed-N" after each forced refresh.
class FakeTokens : public auth::TokenProvider {
 public:
  int calls = 0;
  int forced = 0;
  std::deque<Error> failures;  // returned (in order) before any token
  std::string current = kToken;

  int failing_refreshes = 0;  // forced refreshes that fail (kNetwork) before one succeeds

  Result<std::string> token(bool refresh) override {
    ++calls;
    if (refresh && failing_refreshes > 0) {
      --failing_refreshes;
      return Error(ErrorCode::kNetwork, "login.test: connection reset");
    }
    if (!failures.empty()) {
      Error e = failures.front();
      failures.pop_front();
      return e;
    }
    if (refresh) {
      ++forced;
      current = std::string(kToken) + "-renewed-" + std::to_string(forced);
    }
    return current;
  }
  std::uint64_t refreshes() const override { return static_cast<std::uint64_t>(forced) + 1; }
};

http::HttpResponse response(int status, std::string body = {},
                            std::map<std::string, std::string> headers = {}) {
  http::HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

// Answers each request with the next scripted result; records every request.
class ScriptedHttp : public http::HttpClient {
 public:
  std::deque<Result<http::HttpResponse>> answers;
  std::vector<http::HttpRequest> requests;

  void answer(int status, std::string body = {}, std::map<std::string, std::string> headers = {}) {
    answers.emplace_back(response(status, std::move(body), std::move(headers)));
  }
  void fail(Error e) { answers.emplace_back(std::move(e)); }

  Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    requests.push_back(request);
    if (answers.empty()) {
      ADD_FAILURE() << "unscripted request #" << requests.size() << " to " << request.url;
      return Error(ErrorCode::kNetwork, "unscripted");
    }
    auto next = std::move(answers.front());
    answers.pop_front();
    return next;
  }
};

std::optional<std::string> headerOf(const http::HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

const std::string kPage = R"({"@odata.context":"x","value":[{"id":"a1"}]})";
const std::string kForbidden =
    R"({"error":{"code":"Forbidden","message":"Missing application roles. API required roles: Alert.Read.All","target":"4a1b"}})";
const std::string kGraphForbidden =
    R"({"error":{"code":"Forbidden","message":"Missing role permissions on the request.",)"
    R"("innerError":{"date":"2027-01-15T08:00:00","request-id":"r-1","client-request-id":"c-1"}}})";
constexpr const char* kUrl = "https://api.test/api/alerts?$top=1000";

class ApiClientTest : public ::testing::Test {
 protected:
  ApiClientTest() {
    config.name = "api-client-test";
    config.requests_per_minute = 100;
    config.requests_per_hour = 1500;
  }

  ApiClient& make(ApiProfile profile = mdeProfile(), ApiClientOptions options = {}) {
    client = std::make_unique<ApiClient>(config, std::move(profile), http, tokens, clock,
                                         std::move(options));
    return *client;
  }
  Result<std::string> get(std::stop_token stop = {}) { return client->get(kUrl, stop); }

  // No error message ever shows the token (it is a credential).
  static void expectNoToken(const Result<std::string>& r) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message().find("SECRET"), std::string::npos) << r.error().message();
  }

  core::Instant clockInstant() const { return core::toInstant(clock.now()); }

  config::SourceConfig config;
  FakeClock clock;
  FakeTokens tokens;
  ScriptedHttp http;
  std::unique_ptr<ApiClient> client;
};

}  // namespace

// ---- parseHttpDate ----

TEST(HttpDateTest, ParsesTheThreeFormsOfRfc9110) {
  EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample);   // IMF-fixdate
  EXPECT_EQ(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), kRfcExample);  // RFC 850
  EXPECT_EQ(parseHttpDate("Sun Nov  6 08:49:37 1994"), kRfcExample);        // asctime
  EXPECT_EQ(parseHttpDate("Wed Nov 16 08:49:37 1994"), kRfcExample + 10 * 86400);
  EXPECT_EQ(parseHttpDate("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(parseHttpDate(formatHttpDate(kClockStart)), kClockStart);
  EXPECT_EQ(parseHttpDate("Fri, 15 Jan 2027 08:00:00 GMT"), kClockStart);
}

TEST(HttpDateTest, Rfc850TwoDigitYearsAre1970To2069) {
  EXPECT_EQ(parseHttpDate("Thursday, 01-Jan-70 00:00:00 GMT"), 0);
  EXPECT_EQ(parseHttpDate("Tuesday, 01-Jan-69 00:00:00 GMT"), 3124224000);  // 2069
}

TEST(HttpDateTest, RejectsWrongDayAndMonthNames) {
  EXPECT_FALSE(parseHttpDate("Sux, 06 Nov 1994 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("sun, 06 Nov 1994 08:49:37 GMT"));  // case-sensitive
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nox 1994 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("Sun, 06 nov 1994 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("Sun, 06 November 1994 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("Sunday, 06-Nox-94 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("Sux Nov  6 08:49:37 1994"));
  EXPECT_FALSE(parseHttpDate("Sun Nox  6 08:49:37 1994"));
}

// RFC 9110's day-name-l (Monday..Sunday): anything else before the comma is not a date.
TEST(HttpDateTest, Rfc850RequiresARealDayName) {
  EXPECT_FALSE(parseHttpDate("Funday, 06-Nov-94 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("Sun, 06-Nov-94 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("x, y, 06-Nov-94 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate(", 06-Nov-94 08:49:37 GMT"));
}

TEST(HttpDateTest, ChecksTheCalendar) {
  EXPECT_FALSE(parseHttpDate("Wed, 29 Feb 1995 00:00:00 GMT"));  // not a leap year
  EXPECT_FALSE(parseHttpDate("Mon, 29 Feb 2100 00:00:00 GMT"));  // century, not leap
  EXPECT_FALSE(parseHttpDate("Wednesday, 29-Feb-95 00:00:00 GMT"));
  EXPECT_FALSE(parseHttpDate("Wed Feb 29 00:00:00 1995"));
  EXPECT_EQ(parseHttpDate("Thu, 29 Feb 1996 00:00:00 GMT"), 825552000);
  EXPECT_EQ(parseHttpDate("Tue, 29 Feb 2000 12:00:00 GMT"), 951825600);  // 400-year leap
  EXPECT_FALSE(parseHttpDate("Mon, 30 Feb 2004 00:00:00 GMT"));
  EXPECT_FALSE(parseHttpDate("Sat, 31 Apr 2027 00:00:00 GMT"));
  EXPECT_FALSE(parseHttpDate("Sat, 00 Jan 2027 00:00:00 GMT"));
  EXPECT_FALSE(parseHttpDate("Sat, 32 Jan 2027 00:00:00 GMT"));
  EXPECT_FALSE(parseHttpDate("Fri, 15 Jan 2027 24:00:00 GMT"));
  EXPECT_FALSE(parseHttpDate("Fri, 15 Jan 2027 08:60:00 GMT"));
}

TEST(HttpDateTest, YearBounds) {
  EXPECT_EQ(parseHttpDate("Fri, 31 Dec 9999 23:59:59 GMT"), kYear9999End);
  EXPECT_EQ(parseHttpDate("Fri Dec 31 23:59:59 9999"), kYear9999End);
  EXPECT_FALSE(parseHttpDate("Sat, 01 Jan 10000 00:00:00 GMT"));
  EXPECT_FALSE(parseHttpDate("Sat Jan  1 00:00:00 10000"));
  EXPECT_FALSE(parseHttpDate("Wed, 31 Dec 1969 23:59:59 GMT"));
  EXPECT_FALSE(parseHttpDate("Wed Dec 31 23:59:59 1969"));
  EXPECT_FALSE(parseHttpDate("Sat, 01 Jan 0000 00:00:00 GMT"));
}

TEST(HttpDateTest, SecondSixtyIsALeapSecondAndSixtyOneIsNot) {
  // 23:59:60 (a leap second) is the instant the next minute starts, in Unix time.
  EXPECT_EQ(parseHttpDate("Sat, 31 Dec 2016 23:59:60 GMT"), 1483228800);
  EXPECT_FALSE(parseHttpDate("Sat, 31 Dec 2016 23:59:61 GMT"));
  EXPECT_FALSE(parseHttpDate("Saturday, 31-Dec-16 23:59:61 GMT"));
  EXPECT_FALSE(parseHttpDate("Sat Dec 31 23:59:61 2016"));
}

TEST(HttpDateTest, RejectsTrailingJunkAndNearMisses) {
  EXPECT_FALSE(parseHttpDate(""));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT "));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMTx"));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
  EXPECT_FALSE(parseHttpDate(" Sun, 06 Nov 1994 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 1994 08:49:37 UTC"));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 1994 08:49:37"));
  EXPECT_FALSE(parseHttpDate("Sun, 6 Nov 1994 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 94 08:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("Sun, 06 Nov 1994 8:49:37 GMT"));
  EXPECT_FALSE(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT!"));
  EXPECT_FALSE(parseHttpDate("Sun Nov  6 08:49:37 1994 "));
  EXPECT_FALSE(parseHttpDate("Sun Nov  6 08:49:37 19945"));
  EXPECT_FALSE(parseHttpDate("1994-11-06T08:49:37Z"));
  EXPECT_FALSE(parseHttpDate("784111777"));
  EXPECT_FALSE(parseHttpDate(std::string_view("Sun, 06 Nov 1994 08:49:37 GMT\0", 30)));
}

// ---- parseRetryAfter ----

TEST(RetryAfterTest, DelaySeconds) {
  EXPECT_EQ(parseRetryAfter("120", kClockStart), seconds(120));
  EXPECT_EQ(parseRetryAfter("0", kClockStart), seconds(0));
  EXPECT_EQ(parseRetryAfter("1", kClockStart), seconds(1));
  EXPECT_EQ(parseRetryAfter("3600", kClockStart), seconds(3600));
  EXPECT_EQ(parseRetryAfter(" 120\t", kClockStart), seconds(120));  // OWS around the value
}

TEST(RetryAfterTest, LeadingZeros) {
  EXPECT_EQ(parseRetryAfter("0120", kClockStart), seconds(120));
  EXPECT_EQ(parseRetryAfter("000", kClockStart), seconds(0));
  // More leading zeros than any integer type has digits: still 120.
  EXPECT_EQ(parseRetryAfter(std::string(40, '0') + "120", kClockStart), seconds(120));
}

TEST(RetryAfterTest, AnyNumberOfDigitsIsBounded) {
  EXPECT_EQ(parseRetryAfter("3601", kClockStart), kMaxRetryAfter);
  EXPECT_EQ(parseRetryAfter("999999999", kClockStart), kMaxRetryAfter);   // 9 digits
  EXPECT_EQ(parseRetryAfter("1000000000", kClockStart), kMaxRetryAfter);  // 10 digits
  EXPECT_EQ(parseRetryAfter("9223372036854775807", kClockStart), kMaxRetryAfter);
  std::optional<seconds> huge;
  EXPECT_NO_THROW(huge = parseRetryAfter(kHuge, kClockStart));
  EXPECT_EQ(huge, kMaxRetryAfter);
  EXPECT_EQ(parseRetryAfter(std::string(1000, '9'), kClockStart), kMaxRetryAfter);
}

TEST(RetryAfterTest, JunkIsNotAValue) {
  for (const char* v : {"-5", "-1", "+5", "abc", "", " ", "1.5", "1e3", "0x10", "12abc", "1 2",
                        "120s", "Retry-After: 5", "\xff"}) {
    EXPECT_EQ(parseRetryAfter(v, kClockStart), std::nullopt) << "'" << v << "'";
  }
}

TEST(RetryAfterTest, HttpDateIsMeasuredFromTheServersNow) {
  EXPECT_EQ(parseRetryAfter(formatHttpDate(kClockStart + 30), kClockStart), seconds(30));
  EXPECT_EQ(parseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", kRfcExample), seconds(30));
  EXPECT_EQ(parseRetryAfter("Sun Nov  6 08:50:07 1994", kRfcExample), seconds(30));
  EXPECT_EQ(parseRetryAfter(formatHttpDate(kClockStart), kClockStart), seconds(0));
  EXPECT_EQ(parseRetryAfter(formatHttpDate(kClockStart - 30), kClockStart), seconds(0));  // past
  EXPECT_EQ(parseRetryAfter("Thu, 01 Jan 1970 00:00:00 GMT", kClockStart), seconds(0));
  EXPECT_EQ(parseRetryAfter(formatHttpDate(kClockStart + 7200), kClockStart), kMaxRetryAfter);
  EXPECT_EQ(parseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", kClockStart), kMaxRetryAfter);
  EXPECT_EQ(parseRetryAfter("Sat, 01 Jan 10000 00:00:00 GMT", kClockStart), std::nullopt);
}

TEST(RetryAfterTest, ServerNowAtTheEdgesOfWhatAClockCanSay) {
  // server_now is a Unix time (our clock plus at most a year): far past and far future.
  constexpr std::int64_t kFarFuture = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(parseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", kFarFuture), seconds(0));
  EXPECT_EQ(parseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", kYear9999End), seconds(0));
  EXPECT_EQ(parseRetryAfter("Thu, 01 Jan 1970 00:00:01 GMT", -1), seconds(2));
  EXPECT_EQ(parseRetryAfter("Thu, 01 Jan 1970 00:00:00 GMT", -100'000'000'000), kMaxRetryAfter);
  EXPECT_EQ(parseRetryAfter("120", std::numeric_limits<std::int64_t>::min()), seconds(120));
}

// ---- classifyStatus ----

TEST(ApiClientStatusTest, ClassifiesEachStatus) {
  EXPECT_EQ(classifyStatus(200), StatusClass::kOk);
  EXPECT_EQ(classifyStatus(401), StatusClass::kRenewToken);
  EXPECT_EQ(classifyStatus(403), StatusClass::kRefused);
  EXPECT_EQ(classifyStatus(429), StatusClass::kThrottled);
  EXPECT_EQ(classifyStatus(408), StatusClass::kRetry);
  EXPECT_EQ(classifyStatus(500), StatusClass::kRetry);
  EXPECT_EQ(classifyStatus(502), StatusClass::kRetry);
  EXPECT_EQ(classifyStatus(503), StatusClass::kRetry);
  EXPECT_EQ(classifyStatus(599), StatusClass::kRetry);
  EXPECT_EQ(classifyStatus(400), StatusClass::kBadRequest);
  EXPECT_EQ(classifyStatus(404), StatusClass::kFailed);
  EXPECT_EQ(classifyStatus(201), StatusClass::kFailed);
  EXPECT_EQ(classifyStatus(302), StatusClass::kFailed);
  EXPECT_EQ(classifyStatus(600), StatusClass::kFailed);
  EXPECT_EQ(classifyStatus(0), StatusClass::kFailed);
}

// ---- apiErrorMessage ----

TEST(ApiClientErrorMessageTest, DefenderErrorBody) {
  EXPECT_EQ(apiErrorMessage(kForbidden),
            "Forbidden: Missing application roles. API required roles: Alert.Read.All");
}

TEST(ApiClientErrorMessageTest, GraphErrorBody) {
  EXPECT_EQ(apiErrorMessage(kGraphForbidden),
            "Forbidden: Missing role permissions on the request.");
  // Spaced as a person would write it: a JSON parser, not a string search.
  EXPECT_EQ(apiErrorMessage("{ \"error\" : {\n  \"message\" : \"m\",\n  \"code\" : \"C\" } }"),
            "C: m");
}

TEST(ApiClientErrorMessageTest, CodeOrMessageAlone) {
  EXPECT_EQ(apiErrorMessage(R"({"error":{"code":"TooManyRequests"}})"), "TooManyRequests");
  EXPECT_EQ(apiErrorMessage(R"({"error":{"message":"slow down"}})"), "slow down");
  EXPECT_EQ(apiErrorMessage(R"({"error":{"code":"X","message":""}})"), "X");
}

TEST(ApiClientErrorMessageTest, NotThatShapeGivesTheStartOfTheBody) {
  EXPECT_EQ(apiErrorMessage("<html>502 Bad Gateway</html>"), "<html>502 Bad Gateway</html>");
  EXPECT_EQ(apiErrorMessage(R"({"error":"invalid_client"})"), R"({"error":"invalid_client"})");
  EXPECT_EQ(apiErrorMessage(R"({"error":{"code":5}})"), R"({"error":{"code":5}})");
  EXPECT_EQ(apiErrorMessage("[1,2]"), "[1,2]");
  EXPECT_EQ(apiErrorMessage(""), "");
}

TEST(ApiClientErrorMessageTest, ControlCharactersAreReplaced) {
  // Escaped in the JSON message ...
  const std::string json =
      R"({"error":{"code":"Bad\nCode","message":"line1\r\nINFO forged\u001b[31mred\u007f"}})";
  const std::string m = apiErrorMessage(json);
  EXPECT_EQ(m, "Bad Code: line1  INFO forged [31mred ");
  // ... and raw in a body that is not JSON.
  const std::string raw = apiErrorMessage("oops\nINFO forged\r\x1b[2Jx\t\x7f\x01");
  EXPECT_EQ(raw, "oops INFO forged  [2Jx   ");
  for (const std::string& s : {m, raw}) {
    for (char c : s) {
      EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7f) << "in: " << s;
    }
  }
}

TEST(ApiClientErrorMessageTest, LongBodiesAreCut) {
  const std::string body(100'000, 'x');
  EXPECT_LE(apiErrorMessage(body).size(), 400u);
  EXPECT_FALSE(apiErrorMessage(body).empty());
  EXPECT_EQ(apiErrorMessage(body).find_first_not_of('x'), std::string::npos);
}

// The header promises at most 400 bytes.
TEST(ApiClientErrorMessageTest, LongJsonMessagesAreCutToTheDocumentedBound) {
  const std::string body =
      R"({"error":{"code":"BadRequest","message":")" + std::string(10'000, 'm') + R"("}})";
  const std::string m = apiErrorMessage(body);
  EXPECT_TRUE(m.starts_with("BadRequest: mmm"));
  EXPECT_LE(m.size(), 400u);
}

// ---- RequestPacer ----

TEST(RequestPacerTest, NothingSentNoWait) {
  RequestPacer pacer(100, 1500);
  EXPECT_EQ(pacer.waitBefore(SteadyTime(hours(5))), milliseconds(0));
}

TEST(RequestPacerTest, PerMinuteLimit) {
  RequestPacer pacer(3, 0);  // 0: no hourly limit
  const SteadyTime t0(hours(5));
  pacer.record(t0);
  pacer.record(t0 + seconds(1));
  EXPECT_EQ(pacer.waitBefore(t0 + seconds(2)), milliseconds(0));
  pacer.record(t0 + seconds(2));
  // The 4th may go when the 1st is a minute old, plus the slack (kPacingSlack, 1 s).
  EXPECT_EQ(pacer.waitBefore(t0 + seconds(2)), seconds(59));
  EXPECT_EQ(pacer.waitBefore(t0 + seconds(59)), seconds(2));
  // Just past the minute on its own (no wait before): the slack still holds it back. The API
  // counts arrivals: had the 1st arrived late, this one would be inside its minute.
  EXPECT_EQ(pacer.waitBefore(t0 + seconds(60)), seconds(1));
  EXPECT_EQ(pacer.waitBefore(t0 + seconds(60) + milliseconds(999)), milliseconds(1));
  EXPECT_EQ(pacer.waitBefore(t0 + seconds(61)), milliseconds(0));
  pacer.record(t0 + seconds(61));
  // Now the window holds the 2nd, 3rd and 4th: the 5th waits for the 2nd to age.
  EXPECT_EQ(pacer.waitBefore(t0 + seconds(61)), seconds(1));
}

TEST(RequestPacerTest, PerHourLimit) {
  RequestPacer pacer(100, 2);
  const SteadyTime t0(hours(5));
  pacer.record(t0);
  pacer.record(t0 + minutes(10));
  EXPECT_EQ(pacer.waitBefore(t0 + minutes(10)), minutes(50) + seconds(1));
  EXPECT_EQ(pacer.waitBefore(t0 + minutes(59)), minutes(1) + seconds(1));
  EXPECT_EQ(pacer.waitBefore(t0 + minutes(60)), seconds(1));  // the slack, as per minute
  EXPECT_EQ(pacer.waitBefore(t0 + minutes(60) + seconds(1)), milliseconds(0));
}

TEST(RequestPacerTest, TheLongerOfTheTwoLimitsWins) {
  RequestPacer pacer(2, 3);
  const SteadyTime t0(hours(5));
  pacer.record(t0);
  pacer.record(t0 + seconds(1));
  EXPECT_EQ(pacer.waitBefore(t0 + seconds(1)), seconds(60));  // minute
  pacer.record(t0 + seconds(61));
  // The hour's window holds three: the 4th waits until the 1st is an hour old.
  EXPECT_EQ(pacer.waitBefore(t0 + seconds(61)), seconds(3600 - 61 + 1));
}

TEST(RequestPacerTest, DeferUntilIsHonouredAndBounded) {
  RequestPacer pacer(100, 1500);
  const SteadyTime now(hours(5));
  pacer.deferUntil(now + seconds(30), now);
  EXPECT_EQ(pacer.waitBefore(now), seconds(30) + milliseconds(100));
  pacer.deferUntil(now + seconds(10), now);  // an earlier deferral does not shorten it
  EXPECT_EQ(pacer.waitBefore(now), seconds(30) + milliseconds(100));
  pacer.deferUntil(now + hours(10'000), now);  // cut to kMaxRetryAfter
  EXPECT_EQ(pacer.waitBefore(now), kMaxRetryAfter + milliseconds(100));
  EXPECT_EQ(pacer.waitBefore(now + kMaxRetryAfter), milliseconds(0));
}

namespace {

using mdec::testing::permissionsOf;
using mdec::testing::readFile;
using mdec::testing::writeFile;

const WallTime kWall{seconds(kClockStart)};
const SteadyTime kSteady{hours(5)};
constexpr std::int64_t kWallMs = kClockStart * 1000;

}  // namespace

TEST(RequestPacerTest, SaveCreatesTheFile0600EvenUnderUmask0) {
  TempDir dir;
  const std::string path = dir.sub("pacing");
  RequestPacer pacer(100, 1500);
  pacer.record(kSteady - seconds(10));
  {
    mdec::testing::ScopedUmask zero(0);
    pacer.save(path, kWall, kSteady);
  }
  EXPECT_EQ(permissionsOf(path.c_str()), 0600);
  EXPECT_EQ(readFile(path), std::to_string(kWallMs - 10'000) + "\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(RequestPacerTest, SaveFixesTheModeOfALeftoverTemporaryFile) {
  TempDir dir;
  const std::string path = dir.sub("pacing");
  writeFile(path + ".tmp", "left over\n");
  ASSERT_EQ(::chmod((path + ".tmp").c_str(), 0666), 0);
  RequestPacer pacer(100, 1500);
  pacer.deferUntil(kSteady + seconds(30), kSteady);
  {
    mdec::testing::ScopedUmask zero(0);
    pacer.save(path, kWall, kSteady);
  }
  EXPECT_EQ(permissionsOf(path.c_str()), 0600);
  EXPECT_EQ(readFile(path), "defer " + std::to_string(kWallMs + 30'000) + "\n");
}

TEST(RequestPacerTest, SaveAndLoadKeepTheLastHour) {
  TempDir dir;
  const std::string path = dir.sub("pacing");
  RequestPacer before(2, 1500);
  before.record(kSteady - minutes(90));  // older than an hour: dropped on load
  before.record(kSteady - seconds(20));
  before.record(kSteady - seconds(10));
  before.deferUntil(kSteady + seconds(30), kSteady);
  before.save(path, kWall, kSteady);

  // Restarted 5 s later, with a steady clock that started again from elsewhere.
  const SteadyTime steady2(hours(1));
  RequestPacer after(2, 1500);
  after.load(path, kWall + seconds(5), steady2);
  // The deferral has 25 s to run; the minute window (20 s ago, 10 s ago) 35 s and the slack.
  EXPECT_EQ(after.waitBefore(steady2), seconds(36));
  EXPECT_EQ(after.waitBefore(steady2 + seconds(36)), milliseconds(0));
}

TEST(RequestPacerTest, LoadedDeferralIsBounded) {
  TempDir dir;
  const std::string path = dir.sub("pacing");
  const std::vector<std::string> far_lines = {
      "defer 253402300799000",  // year 9999 in ms
      "defer 9223372036854775807",
      std::string("defer ") + kHuge,  // 20 digits: not a number we can hold
  };
  for (const auto& line : far_lines) {
    writeFile(path, line + "\n");
    RequestPacer pacer(100, 1500);
    EXPECT_NO_THROW(pacer.load(path, kWall, kSteady)) << line;
    const auto wait = pacer.waitBefore(kSteady);
    EXPECT_LE(wait, kMaxRetryAfter + milliseconds(100)) << line;
    EXPECT_EQ(pacer.waitBefore(kSteady + kMaxRetryAfter), milliseconds(0)) << line;
  }
  writeFile(path, "defer 253402300799000\n");
  RequestPacer pacer(100, 1500);
  pacer.load(path, kWall, kSteady);
  EXPECT_EQ(pacer.waitBefore(kSteady), kMaxRetryAfter + milliseconds(100));
}

TEST(RequestPacerTest, LoadIgnoresJunkLines) {
  TempDir dir;
  const std::string path = dir.sub("pacing");
  const std::string valid = std::to_string(kWallMs - 1000);
  writeFile(path, "junk\n\nabc123\n12x\n 123\ndefer\ndefer \ndefer abc\ndefer -5\n1.5\n" + valid +
                      "\n" + valid + "junk\n" + std::to_string(kWallMs + 60'000) +  // future
                      "\n" + std::string(kHuge) + "\n\x01\xff\n");
  RequestPacer two(2, 1500);
  two.load(path, kWall, kSteady);
  EXPECT_EQ(two.waitBefore(kSteady), milliseconds(0)) << "only one line is a request";
  RequestPacer one(1, 1500);
  one.load(path, kWall, kSteady);
  EXPECT_EQ(one.waitBefore(kSteady), seconds(60));  // 59 s of the minute and the slack
}

TEST(RequestPacerTest, LoadOfAMissingFileIsNothing) {
  TempDir dir;
  RequestPacer pacer(1, 1);
  pacer.load(dir.sub("absent"), kWall, kSteady);
  EXPECT_EQ(pacer.waitBefore(kSteady), milliseconds(0));
}

// A request line holding a very negative number is ignored like any other junk (it once
// made load() compute `now_ms - *ms` past INT64_MAX).
TEST(RequestPacerTest, LoadIgnoresExtremeNegativeTimes) {
  TempDir dir;
  const std::string path = dir.sub("pacing");
  writeFile(path, "-9223372036854775808\n-9000000000000000000\ndefer -9223372036854775808\n");
  RequestPacer pacer(1, 1);
  pacer.load(path, kWall, kSteady);
  EXPECT_EQ(pacer.waitBefore(kSteady), milliseconds(0));
}

// ---- ApiClient::get ----

TEST_F(ApiClientTest, OkReturnsTheBody) {
  http.answer(200, kPage);
  make();
  auto r = get();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(*r, kPage);
  ASSERT_EQ(http.requests.size(), 1u);
  const auto& req = http.requests[0];
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.url, kUrl);
  EXPECT_EQ(headerOf(req, "Authorization"), std::string("Bearer ") + kToken);
  EXPECT_EQ(headerOf(req, "Accept"), "application/json");
  EXPECT_TRUE(headerOf(req, "User-Agent").has_value());
  EXPECT_EQ(headerOf(req, "Prefer"), std::nullopt);  // Defender: no Prefer
  EXPECT_EQ(req.timeout, config.request_timeout);
  EXPECT_TRUE(clock.sleeps.empty());
  EXPECT_EQ(tokens.forced, 0);
  EXPECT_EQ(client->counters().requests, 1u);
  EXPECT_EQ(client->counters().retries, 0u);
}

TEST_F(ApiClientTest, BuildsTheBodyInTheCallersBuffer) {
  http.answer(200, kPage);
  ApiClientOptions options;
  options.max_response_bytes = 12345;
  make(mdeProfile(), options);
  std::string buffer;
  auto r = client->get(kUrl, {}, &buffer);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(http.requests.size(), 1u);
  EXPECT_EQ(http.requests[0].body_buffer, &buffer);
  EXPECT_EQ(http.requests[0].max_response_bytes, 12345u);
}

TEST_F(ApiClientTest, A401RenewsTheTokenOnce) {
  http.answer(401, R"({"error":{"code":"Unauthorized","message":"expired"}})");
  http.answer(200, kPage);
  make();
  auto r = get();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(*r, kPage);
  EXPECT_EQ(tokens.forced, 1);
  ASSERT_EQ(http.requests.size(), 2u);
  EXPECT_EQ(headerOf(http.requests[0], "Authorization"), std::string("Bearer ") + kToken);
  EXPECT_EQ(headerOf(http.requests[1], "Authorization"),
            std::string("Bearer ") + kToken + "-renewed-1");
  EXPECT_TRUE(clock.sleeps.empty());
}

// When the renewal after a 401 fails for a passing reason (kNetwork), it is tried again
// before the next send: the token the API has just refused is never sent again.
TEST_F(ApiClientTest, AFailedRenewalIsTriedAgainBeforeTheNextSend) {
  tokens.failing_refreshes = 1;
  http.answer(401, R"({"error":{"code":"Unauthorized","message":"expired"}})");
  http.answer(200, kPage);
  make();
  auto r = get();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  ASSERT_EQ(http.requests.size(), 2u);
  EXPECT_EQ(headerOf(http.requests[1], "Authorization"),
            std::string("Bearer ") + kToken + "-renewed-1")
      << "the refused token was sent again";
  EXPECT_EQ(clock.sleeps.size(), 1u);  // one backoff after the failed renewal
}

TEST_F(ApiClientTest, A401ThatSurvivesRenewalIsAnAuthErrorWithTheHint) {
  for (int i = 0; i < 3; ++i) {
    http.answer(401, R"({"error":{"code":"Unauthorized","message":"bad audience"}})");
  }
  make();
  auto r = get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kAuth);
  EXPECT_EQ(r.error().httpStatus(), 401);
  EXPECT_NE(r.error().message().find("Unauthorized: bad audience"), std::string::npos);
  EXPECT_NE(r.error().message().find("Alert.Read.All"), std::string::npos) << r.error().message();
  EXPECT_FALSE(r.error().retryable());
  EXPECT_EQ(http.requests.size(), 3u);
  EXPECT_EQ(tokens.forced, 2);
  expectNoToken(r);
}

TEST_F(ApiClientTest, A403IsAnAuthErrorWithTheApisMessageAndTheMdeHint) {
  http.answer(403, kForbidden);
  make(mdeProfile());
  auto r = get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kAuth);
  EXPECT_EQ(r.error().httpStatus(), 403);
  const std::string& m = r.error().message();
  EXPECT_NE(m.find("Forbidden: Missing application roles"), std::string::npos) << m;
  EXPECT_NE(m.find("WindowsDefenderATP application permission Alert.Read.All"), std::string::npos)
      << m;
  EXPECT_EQ(http.requests.size(), 1u);  // not retried, no renewal
  EXPECT_EQ(tokens.forced, 0);
  EXPECT_TRUE(clock.sleeps.empty());
  expectNoToken(r);
}

TEST_F(ApiClientTest, GraphProfileSendsPreferAndGivesTheGraphHint) {
  http.answer(403, kGraphForbidden);
  make(graphProfile());
  auto r = get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kAuth);
  const std::string& m = r.error().message();
  EXPECT_NE(m.find("Missing role permissions on the request."), std::string::npos) << m;
  EXPECT_NE(m.find("SecurityAlert.Read.All"), std::string::npos) << m;
  ASSERT_EQ(http.requests.size(), 1u);
  EXPECT_EQ(headerOf(http.requests[0], "Prefer"), "include-unknown-enum-members");
  EXPECT_EQ(headerOf(http.requests[0], "Authorization"), std::string("Bearer ") + kToken);
  expectNoToken(r);
}

TEST_F(ApiClientTest, ServerErrorsAreRetriedWithGrowingBackoff) {
  http.answer(500, R"({"error":{"code":"InternalServerError","message":"x"}})");
  http.answer(500);
  http.answer(200, kPage);
  make();  // backoff_base 500 ms: attempt k waits in [base·2^k / 2, base·2^k]
  auto r = get();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(*r, kPage);
  ASSERT_EQ(clock.sleeps.size(), 2u);
  EXPECT_GE(clock.sleeps[0], milliseconds(250));
  EXPECT_LE(clock.sleeps[0], milliseconds(500));
  EXPECT_GE(clock.sleeps[1], milliseconds(500));
  EXPECT_LE(clock.sleeps[1], milliseconds(1000));
  EXPECT_GE(clock.sleeps[1], clock.sleeps[0]);
  EXPECT_EQ(client->counters().retries, 2u);
  EXPECT_EQ(client->counters().requests, 3u);
}

TEST_F(ApiClientTest, BackoffIsBoundedByBackoffMax) {
  ApiClientOptions options;
  options.backoff_base = milliseconds(400);
  options.backoff_max = milliseconds(1000);
  options.max_attempts = 8;
  for (int i = 0; i < 7; ++i) http.answer(503);
  http.answer(200, kPage);
  make(mdeProfile(), options);
  auto r = get();
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(clock.sleeps.size(), 7u);
  for (auto d : clock.sleeps) {
    EXPECT_GE(d, milliseconds(200));
    EXPECT_LE(d, options.backoff_max);
  }
}

TEST_F(ApiClientTest, A429WithAHugeRetryAfterWaitsTheBoundThenGoesOn) {
  http.answer(429, R"({"error":{"code":"TooManyRequests","message":"quota"}})",
              {{"retry-after", kHuge}});
  http.answer(200, kPage);
  make();
  Result<std::string> r = Error(ErrorCode::kInternal, "not run");
  EXPECT_NO_THROW(r = get());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(*r, kPage);
  // Retry-After is cut to kMaxRetryAfter (its 50 ms of slack does not pass the pacer's
  // bound, RequestPacer::deferUntil), and the pacer adds its own 100 ms.
  ASSERT_EQ(clock.sleeps.size(), 1u);
  EXPECT_EQ(clock.sleeps[0], kMaxRetryAfter + milliseconds(100));
  EXPECT_EQ(client->counters().throttled, 1u);
  EXPECT_EQ(http.requests.size(), 2u);
}

TEST_F(ApiClientTest, A429WaitsAsRetryAfterSays) {
  http.answer(429, "", {{"retry-after", "120"}});
  http.answer(200, kPage);
  make();
  auto r = get();
  ASSERT_TRUE(r.has_value());
  // 120 s + the client's 50 ms + the pacer's 100 ms.
  ASSERT_EQ(clock.sleeps.size(), 1u);
  EXPECT_EQ(clock.sleeps[0], seconds(120) + milliseconds(150));
}

TEST_F(ApiClientTest, A429WithAFarFutureDateWaitsTheBound) {
  http.answer(429, "", {{"retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"}});
  http.answer(200, kPage);
  make();
  auto r = get();
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(clock.sleeps.size(), 1u);
  EXPECT_EQ(clock.sleeps[0], kMaxRetryAfter + milliseconds(100));
}

TEST_F(ApiClientTest, A429RetryAfterDateIsReadOnTheServersClock) {
  // The server is 5 minutes ahead and asks for 30 s on its clock: 30 s, not 5 min 30 s.
  const std::int64_t server_now = kClockStart + 300;
  http.answer(
      429, "",
      {{"date", formatHttpDate(server_now)}, {"retry-after", formatHttpDate(server_now + 30)}});
  http.answer(200, kPage);
  make();
  auto r = get();
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(clock.sleeps.size(), 1u);
  EXPECT_EQ(clock.sleeps[0], seconds(30) + milliseconds(150));
}

TEST_F(ApiClientTest, A429WithAJunkRetryAfterBacksOff) {
  ApiClientOptions options;
  options.backoff_base = milliseconds(400);
  options.backoff_max = milliseconds(1000);
  for (const char* junk : {"-1", "soon", "1.5", ""}) {
    http.answer(429, "", {{"retry-after", junk}});
  }
  http.answer(429);  // no Retry-After at all
  http.answer(200, kPage);
  make(mdeProfile(), options);
  auto r = get();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  ASSERT_EQ(clock.sleeps.size(), 5u);
  for (auto d : clock.sleeps) {
    EXPECT_GE(d, milliseconds(200));
    EXPECT_LE(d, options.backoff_max + milliseconds(100));  // + the pacer's slack
  }
  EXPECT_EQ(client->counters().throttled, 5u);
}

TEST_F(ApiClientTest, ThrottledUntilMaxAttemptsGivesTheLast429) {
  ApiClientOptions options;
  options.max_attempts = 3;
  for (int i = 0; i < 3; ++i) {
    http.answer(429, R"({"error":{"code":"TooManyRequests","message":"slow"}})",
                {{"retry-after", "7"}});
  }
  make(mdeProfile(), options);
  auto r = get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kThrottled);
  EXPECT_EQ(r.error().httpStatus(), 429);
  EXPECT_EQ(r.error().retryAfter(), seconds(7));
  EXPECT_TRUE(r.error().retryable());
  EXPECT_EQ(http.requests.size(), 3u);
  EXPECT_EQ(client->counters().throttled, 3u);
  expectNoToken(r);
}

TEST_F(ApiClientTest, ServerErrorsUntilMaxAttemptsGiveTheLast503) {
  ApiClientOptions options;
  options.max_attempts = 3;
  http.answer(500);
  http.answer(502);
  http.answer(503, "<html>Service Unavailable</html>");
  make(mdeProfile(), options);
  auto r = get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kHttp);
  EXPECT_EQ(r.error().httpStatus(), 503);
  EXPECT_TRUE(r.error().retryable());
  EXPECT_EQ(http.requests.size(), 3u);
  EXPECT_EQ(clock.sleeps.size(), 2u);  // no wait after the last attempt
  expectNoToken(r);
}

TEST_F(ApiClientTest, ClientErrorsAreNotRetried) {
  http.answer(400, R"({"error":{"code":"InvalidInput","message":"bad $filter"}})");
  http.answer(404, R"({"error":{"code":"NotFound","message":"no such route"}})");
  make();
  auto bad = get();
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kHttp);
  EXPECT_EQ(bad.error().httpStatus(), 400);
  EXPECT_NE(bad.error().message().find("InvalidInput: bad $filter"), std::string::npos);
  EXPECT_EQ(http.requests.size(), 1u);
  auto missing = get();
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().httpStatus(), 404);
  EXPECT_EQ(http.requests.size(), 2u);
  EXPECT_TRUE(clock.sleeps.empty());
  expectNoToken(bad);
  expectNoToken(missing);
}

TEST_F(ApiClientTest, TooLargeIsReturnedAtOnce) {
  http.fail(Error(ErrorCode::kTooLarge, "the response is over 512 MiB"));
  http.answer(200, kPage);  // must not be asked for
  make();
  auto r = get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kTooLarge);
  EXPECT_EQ(http.requests.size(), 1u);
  EXPECT_TRUE(clock.sleeps.empty());
}

TEST_F(ApiClientTest, ATransportErrorIsRetried) {
  http.fail(Error(ErrorCode::kNetwork, "connection reset"));
  http.answer(200, kPage);
  make();
  auto r = get();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(*r, kPage);
  EXPECT_EQ(http.requests.size(), 2u);
  ASSERT_EQ(clock.sleeps.size(), 1u);
  EXPECT_LE(clock.sleeps[0], milliseconds(500));
  EXPECT_EQ(client->counters().retries, 1u);
}

TEST_F(ApiClientTest, TransportErrorsUntilMaxAttemptsGiveTheLastOne) {
  ApiClientOptions options;
  options.max_attempts = 2;
  http.fail(Error(ErrorCode::kNetwork, "connection reset"));
  http.fail(Error(ErrorCode::kNetwork, "timed out"));
  make(mdeProfile(), options);
  auto r = get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kNetwork);
  EXPECT_EQ(r.error().message(), "timed out");
}

TEST_F(ApiClientTest, ATokenRefusalIsReturnedWithoutARequest) {
  tokens.failures.push_back(Error(ErrorCode::kAuth, "invalid_client: AADSTS7000215"));
  make();
  auto r = get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kAuth);
  EXPECT_TRUE(http.requests.empty());
}

TEST_F(ApiClientTest, ARetryableTokenFailureIsRetried) {
  tokens.failures.push_back(Error(ErrorCode::kNetwork, "login.test unreachable"));
  http.answer(200, kPage);
  make();
  auto r = get();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(http.requests.size(), 1u);
  EXPECT_EQ(clock.sleeps.size(), 1u);
}

TEST_F(ApiClientTest, AStopRequestedBeforehandStopsAtOnce) {
  http.answer(200, kPage);
  make();
  std::stop_source stop;
  stop.request_stop();
  auto r = get(stop.get_token());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
  EXPECT_EQ(r.error().message(), "stopped");
  EXPECT_TRUE(http.requests.empty());
  EXPECT_EQ(clock.slept(), milliseconds(0));
}

TEST_F(ApiClientTest, AStopDuringABackoffStops) {
  http.answer(503);
  http.answer(200, kPage);
  make();
  std::stop_source stop;
  clock.on_sleep = [&] { stop.request_stop(); };
  auto r = get(stop.get_token());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "stopped");
  EXPECT_EQ(http.requests.size(), 1u);
}

TEST_F(ApiClientTest, AStopDuringAThrottleWaitStops) {
  http.answer(429, "", {{"retry-after", "3600"}});
  http.answer(200, kPage);
  make();
  std::stop_source stop;
  clock.on_sleep = [&] { stop.request_stop(); };
  auto r = get(stop.get_token());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "stopped");
  EXPECT_EQ(http.requests.size(), 1u);
}

TEST_F(ApiClientTest, ServerNowFollowsTheDateHeader) {
  make();
  EXPECT_EQ(client->serverNow(), clockInstant());
  http.answer(200, kPage, {{"date", formatHttpDate(kClockStart + 300)}});
  ASSERT_TRUE(get().has_value());
  core::Instant expected = clockInstant();
  expected.seconds += 300;
  EXPECT_EQ(client->serverNow(), expected);
  // Behind works too.
  http.answer(200, kPage, {{"date", formatHttpDate(kClockStart - 600)}});
  ASSERT_TRUE(get().has_value());
  expected = clockInstant();
  expected.seconds -= 600;
  EXPECT_EQ(client->serverNow(), expected);
}

TEST_F(ApiClientTest, ServerNowKeepsOurSubSecondPart) {
  clock.wall += milliseconds(250);
  make();
  http.answer(200, kPage, {{"date", formatHttpDate(kClockStart - 300)}});
  ASSERT_TRUE(get().has_value());
  const core::Instant s = client->serverNow();
  EXPECT_EQ(s.seconds, kClockStart - 300);
  EXPECT_EQ(s.nanos, 250'000'000);
}

TEST_F(ApiClientTest, ADateWithinASecondIsNoOffset) {
  make();
  http.answer(200, kPage, {{"date", formatHttpDate(kClockStart + 1)}});
  ASSERT_TRUE(get().has_value());
  EXPECT_EQ(client->serverNow(), clockInstant());
}

TEST_F(ApiClientTest, ABrokenDateHeaderIsIgnored) {
  for (const std::string& date :
       {std::string("Fri, 31 Dec 9999 23:59:59 GMT"), std::string("Thu, 01 Jan 1970 00:00:00 GMT"),
        std::string("garbage"), std::string(""), std::string(kHuge),
        formatHttpDate(kClockStart + 2 * 365 * 86400)}) {
    http.answer(200, kPage, {{"date", date}});
    make();
    ASSERT_TRUE(get().has_value());
    EXPECT_EQ(client->serverNow(), clockInstant()) << date;
  }
}

TEST_F(ApiClientTest, ABrokenDateHeaderKeepsTheLastGoodOffset) {
  make();
  http.answer(200, kPage, {{"date", formatHttpDate(kClockStart + 300)}});
  http.answer(200, kPage, {{"date", "Fri, 31 Dec 9999 23:59:59 GMT"}});
  ASSERT_TRUE(get().has_value());
  ASSERT_TRUE(get().has_value());
  EXPECT_EQ(client->serverNow().seconds, clockInstant().seconds + 300);
}

TEST_F(ApiClientTest, TheTokenIsInNoErrorMessage) {
  // Each failure path, with a body that tries to echo the request back.
  const std::string echo = R"({"error":{"code":"Echo","message":"you sent Authorization"}})";
  ApiClientOptions options;
  options.max_attempts = 2;
  const std::vector<std::vector<int>> scripts = {{401, 401, 401}, {403},      {400}, {404},
                                                 {429, 429},      {500, 503}, {302}};
  for (const auto& statuses : scripts) {
    for (int s : statuses) http.answer(s, echo, {{"retry-after", "1"}});
    make(graphProfile(), options);
    auto r = get();
    ASSERT_FALSE(r.has_value()) << statuses[0];
    expectNoToken(r);
    EXPECT_TRUE(http.answers.empty()) << statuses[0];
    http.answers.clear();
  }
}

TEST_F(ApiClientTest, ThePacingFileIsWritten0600AndPacesARestart) {
  TempDir dir;
  ApiClientOptions options;
  options.pacing_file = dir.sub("pacing");
  config.requests_per_minute = 1;
  http.answer(200, kPage);
  {
    mdec::testing::ScopedUmask zero(0);
    make(mdeProfile(), options);
    ASSERT_TRUE(get().has_value());
  }
  EXPECT_EQ(permissionsOf(options.pacing_file.c_str()), 0600);
  EXPECT_EQ(readFile(options.pacing_file), std::to_string(kClockStart * 1000) + "\n");
  // A client made 10 s later waits out the minute before its first request.
  clock.wall += seconds(10);
  clock.steady += seconds(10);
  http.answer(200, kPage);
  make(mdeProfile(), options);
  ASSERT_TRUE(get().has_value());
  ASSERT_EQ(clock.sleeps.size(), 1u);
  EXPECT_EQ(clock.sleeps[0], seconds(50) + kPacingSlack);
}

TEST_F(ApiClientTest, ClientSidePacingWaitsBeforeTheQuotaIsExceeded) {
  config.requests_per_minute = 2;
  for (int i = 0; i < 3; ++i) http.answer(200, kPage);
  make();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(get().has_value());
  ASSERT_EQ(clock.sleeps.size(), 1u);
  EXPECT_EQ(clock.sleeps[0], seconds(60) + kPacingSlack);
}

}  // namespace mdec::source
