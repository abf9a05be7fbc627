// One client for the alert APIs (Defender for Endpoint /api/alerts and Microsoft Graph
// alerts_v2), used by every API source and by `mdecollect check`: the token and its renewal
// after a 401, client-side pacing within the quota, Retry-After, retries with backoff and
// jitter, and what each HTTP status means — decided here and nowhere else.
//
// Every number taken from the network is bounded before it is used: a Retry-After of any
// length of digits, an HTTP-date in year 9999, a negative or junk value, a Date header
// years away from our clock all become bounded waits and offsets, never an exception or
// an overflow.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mdecollect/auth/token_provider.h"
#include "mdecollect/config/config.h"
#include "mdecollect/core/backoff.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/result.h"
#include "mdecollect/http/http_client.h"
#include "mdecollect/telemetry/metrics.h"

namespace spdlog {
class logger;
}

namespace mdec::source {

// The logger "source.<name>" (made once, shared by everything that works for the source).
std::shared_ptr<spdlog::logger> sourceLogger(const std::string& source_name);

// The longest wait a Retry-After can impose: the API's quota windows are a minute and an
// hour, so a longer one is nonsense and is cut to this.
inline constexpr std::chrono::seconds kMaxRetryAfter{3600};
// The API's clock is believed only this far from ours (further is a broken Date header).
inline constexpr std::chrono::hours kMaxServerOffset{24 * 365};

// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 IMF-fixdate; also the obsolete RFC 850 and
// asctime forms) → seconds since the Unix epoch; nullopt when it is not one, or its year is
// outside 1970..9999.
std::optional<std::int64_t> parseHttpDate(std::string_view text);

// How long a Retry-After value asks to wait, bounded to [0, kMaxRetryAfter]: delay-seconds
// (any number of digits: more than the bound is the bound), or an HTTP-date (measured from
// the server's `server_now`, Unix seconds; a past date is no wait). nullopt for anything
// else (negative, junk, empty): the caller backs off as without the header.
std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value,
                                                    std::int64_t server_now);

// What an HTTP status from an alerts API means to a client.
enum class StatusClass {
  kOk,          // 200
  kRenewToken,  // 401: renew the token once and try again
  kRefused,     // 403 (and 401 after a renewal): a permission or audience problem
  kThrottled,   // 429: wait as Retry-After says
  kRetry,       // 408, 5xx: a passing fault, retried with backoff
  kBadRequest,  // 400: the query was refused
  kFailed,      // anything else: not retried within the poll
};
StatusClass classifyStatus(int status);

// The API's own error message from its error body ({"error":{"code","message"}}), read
// with a real parser ("<code>: <message>"); the start of the body when it is not that
// shape. At most 400 bytes, on one line (control characters replaced by spaces).
std::string apiErrorMessage(std::string_view body);

// What differs between the two APIs for the client.
struct ApiProfile {
  // Said after a 401/403 that survives a new token.
  std::string permission_hint;
  // Sent with every request besides Authorization, Accept and User-Agent.
  std::vector<std::pair<std::string, std::string>> extra_headers;
};
ApiProfile mdeProfile();
ApiProfile graphProfile();
// Graph security incidents: the permission SecurityIncident.Read.All; the Prefer header only
// with `include_unknown_enum_members`.
ApiProfile graphIncidentsProfile(bool include_unknown_enum_members);

struct ApiClientOptions {
  std::chrono::milliseconds backoff_base{500};
  std::chrono::milliseconds backoff_max{60 * 1000};
  int max_attempts = 8;  // per request, before get() gives up (the next poll retries)
  // Where the times of the last hour's requests are kept across restarts, so that a
  // restarted collector still paces within the quota (empty: not kept). Created 0600.
  std::string pacing_file;
  std::size_t max_response_bytes = 512u << 20;
  // Where requests, retries, throttling, token refreshes, the server's clock and the
  // source's state are reported (null: nowhere).
  telemetry::SourceMetrics* metrics = nullptr;
  // A pacer shared with the other sources that use the same quota (Graph: one app in one
  // tenant); null: the client paces alone. A shared pacer is loaded by its owner, and saved
  // to pacing_file by every client that uses it.
  std::shared_ptr<class RequestPacer> shared_pacer;
};

// The API counts arrivals and the pacer counts departures (taken before the token and the
// connection): a request that arrives late would put the one a window later inside its
// window. So the pacer's windows are longer by this.
inline constexpr std::chrono::seconds kPacingSlack{1};

// Client-side pacing: at most `per_minute` requests in any 60 s and `per_hour` in any hour
// (each window longer by kPacingSlack). Safe to share between threads (sources that share
// one quota).
class RequestPacer {
 public:
  RequestPacer(int per_minute, int per_hour) : per_minute_(per_minute), per_hour_(per_hour) {}
  // How long to wait before the next request may be sent.
  std::chrono::milliseconds waitBefore(std::chrono::steady_clock::time_point now);
  void record(std::chrono::steady_clock::time_point now);
  // waitBefore() and, when there is nothing to wait, record() in one step: two sources
  // sharing the pacer cannot both take the last free slot.
  std::chrono::milliseconds reserve(std::chrono::steady_clock::time_point now);
  // No request before `until` (a 429's Retry-After), at most kMaxRetryAfter from `now`;
  // remembered across restarts too.
  void deferUntil(std::chrono::steady_clock::time_point until,
                  std::chrono::steady_clock::time_point now);
  // Saves/loads the request times as wall-clock milliseconds, one per line (the file is
  // created 0600; what cannot be read in it is ignored).
  void save(const std::string& path, std::chrono::system_clock::time_point wall_now,
            std::chrono::steady_clock::time_point steady_now) const;
  void load(const std::string& path, std::chrono::system_clock::time_point wall_now,
            std::chrono::steady_clock::time_point steady_now);

 private:
  std::chrono::milliseconds waitLocked(std::chrono::steady_clock::time_point now);

  mutable std::mutex mu_;
  int per_minute_;
  int per_hour_;
  std::vector<std::chrono::steady_clock::time_point> sent_;  // the last hour, oldest first
  std::chrono::steady_clock::time_point defer_until_{};
};

class ApiClient {
 public:
  ApiClient(const config::SourceConfig& config, ApiProfile profile, http::HttpClient& client,
            auth::TokenProvider& tokens, core::Clock& clock, ApiClientOptions options = {});

  // GETs `url` until it answers 200 and returns the body (built in `*buffer` when given, see
  // HttpRequest::body_buffer). Retries transport faults, 408, 5xx and 429 (as Retry-After
  // says, or with backoff) up to max_attempts; renews the token once or twice on 401.
  // Errors: kAuth (the token or the API refused the credentials: not retried), kTooLarge
  // (the body is over the limit: ask for less), kHttp with the status (400, 404, ...: not
  // retried), the last retryable error after max_attempts, or kInternal "stopped".
  // `max_attempts` > 0 overrides the options' for this request.
  Result<std::string> get(const std::string& url, std::stop_token stop,
                          std::string* buffer = nullptr, int max_attempts = 0);

  // Now on the API's clock (ours plus the offset its last Date header showed).
  core::Instant serverNow() const;

  // Totals since the client was made (a poll reports the difference).
  struct Counters {
    std::uint64_t requests = 0;
    std::uint64_t retries = 0;
    std::uint64_t throttled = 0;
  };
  const Counters& counters() const { return counters_; }

  // Writes the pacing memory (pacing_file) now.
  void savePacing();

 private:
  bool wait(std::chrono::milliseconds d, std::stop_token stop);
  void learnServerTime(const http::HttpResponse& res);
  Error statusError(const http::HttpResponse& res, StatusClass cls);

  const config::SourceConfig& config_;
  ApiProfile profile_;
  http::HttpClient& client_;
  auth::TokenProvider& tokens_;
  core::Clock& clock_;
  ApiClientOptions options_;
  std::shared_ptr<RequestPacer> pacer_;
  core::Backoff backoff_;  // by attempt number, jittered
  std::chrono::nanoseconds server_offset_{0};
  Counters counters_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace mdec::source
