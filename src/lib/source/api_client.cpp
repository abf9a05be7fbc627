#include "mdecollect/source/api_client.h"

#include <fcntl.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <limits>

#include "mdecollect/core/private_file.h"

namespace mdec::source {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::string_view kUserAgent = "MdatpPartner-mdecollect/" MDEC_VERSION_STRING;

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool done() const { return i_ == s_.size(); }
  bool lit(std::string_view t) {
    if (s_.substr(i_, t.size()) != t) return false;
    i_ += t.size();
    return true;
  }
  // Exactly n digits (n <= 4).
  bool num(int n, unsigned& out) {
    unsigned v = 0;
    for (int k = 0; k < n; ++k) {
      if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') return false;
      v = v * 10 + static_cast<unsigned>(s_[i_++] - '0');
    }
    out = v;
    return true;
  }
  // One of `names` (3-letter, case-sensitive as RFC 9110 says); its index.
  template <std::size_t N>
  bool oneOf(const std::array<std::string_view, N>& names, unsigned& index) {
    for (std::size_t k = 0; k < N; ++k) {
      if (lit(names[k])) {
        index = static_cast<unsigned>(k);
        return true;
      }
    }
    return false;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kDays = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

std::optional<std::int64_t> unixSeconds(unsigned year, unsigned month, unsigned day, unsigned hour,
                                        unsigned minute, unsigned second) {
  static constexpr std::array<unsigned, 12> kLengths = {31, 29, 31, 30, 31, 30,
                                                        31, 31, 30, 31, 30, 31};
  if (year < 1970 || year > 9999 || day < 1 || day > kLengths[month] || hour > 23 || minute > 59 ||
      second > 60) {
    return std::nullopt;
  }
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 1 && day == 29 && !leap) return std::nullopt;
  return core::daysFromCivil(year, month + 1, day) * 86400 + hour * 3600 + minute * 60 + second;
}

// Writes `text` to `path` through a temporary file created 0600 and renamed over it.
void writePrivateFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  auto file = core::openPrivateFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW);
  if (!file) return;  // pacing memory is best effort
  bool ok = true;
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(file->fd.get(), text.data() + done, text.size() - done);
    if (n <= 0)
      ok = false;
    else
      done += static_cast<std::size_t>(n);
  }
  file->fd.reset();
  if (ok) std::rename(tmp.c_str(), path.c_str());
}

}  // namespace

std::shared_ptr<spdlog::logger> sourceLogger(const std::string& source_name) {
  const std::string name = "source." + source_name;
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::default_logger()->clone(name);
  spdlog::register_logger(logger);
  return logger;
}

std::optional<std::int64_t> parseHttpDate(std::string_view text) {
  unsigned day = 0, month = 0, year = 0, hour = 0, minute = 0, second = 0, ignored = 0;
  {  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    Reader r(text);
    if (r.oneOf(kDays, ignored) && r.lit(", ") && r.num(2, day) && r.lit(" ") &&
        r.oneOf(kMonths, month) && r.lit(" ") && r.num(4, year) && r.lit(" ") && r.num(2, hour) &&
        r.lit(":") && r.num(2, minute) && r.lit(":") && r.num(2, second) && r.lit(" GMT") &&
        r.done()) {
      return unixSeconds(year, month, day, hour, minute, second);
    }
  }
  {  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (two-digit years: 1970..2069)
    Reader r(text);
    unsigned yy = 0;
    if (r.oneOf(kLongDays, ignored) && r.lit(", ") && r.num(2, day) && r.lit("-") &&
        r.oneOf(kMonths, month) && r.lit("-") && r.num(2, yy) && r.lit(" ") && r.num(2, hour) &&
        r.lit(":") && r.num(2, minute) && r.lit(":") && r.num(2, second) && r.lit(" GMT") &&
        r.done()) {
      return unixSeconds(yy < 70 ? 2000 + yy : 1900 + yy, month, day, hour, minute, second);
    }
  }
  {  // asctime: Sun Nov  6 08:49:37 1994
    Reader r(text);
    if (r.oneOf(kDays, ignored) && r.lit(" ") && r.oneOf(kMonths, month) && r.lit(" ") &&
        (r.lit(" ") ? r.num(1, day) : r.num(2, day)) && r.lit(" ") && r.num(2, hour) &&
        r.lit(":") && r.num(2, minute) && r.lit(":") && r.num(2, second) && r.lit(" ") &&
        r.num(4, year) && r.done()) {
      return unixSeconds(year, month, day, hour, minute, second);
    }
  }
  return std::nullopt;
}

std::optional<seconds> parseRetryAfter(std::string_view value, std::int64_t server_now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // Any number of digits: past the bound, the bound (no conversion can overflow).
    while (value.size() > 1 && value.front() == '0') value.remove_prefix(1);
    if (value.size() > 9) return kMaxRetryAfter;
    std::int64_t n = 0;
    std::from_chars(value.data(), value.data() + value.size(), n);
    return seconds(std::min<std::int64_t>(n, kMaxRetryAfter.count()));
  }
  if (auto at = parseHttpDate(value)) {
    // Compared before subtracting: server_now may be anything an int64 holds.
    if (server_now >= *at) return seconds(0);
    if (server_now <= *at - kMaxRetryAfter.count()) return kMaxRetryAfter;
    return seconds(*at - server_now);  // within (0, kMaxRetryAfter)
  }
  return std::nullopt;
}

StatusClass classifyStatus(int status) {
  if (status == 200) return StatusClass::kOk;
  if (status == 401) return StatusClass::kRenewToken;
  if (status == 403) return StatusClass::kRefused;
  if (status == 429) return StatusClass::kThrottled;
  if (status == 408 || (status >= 500 && status <= 599)) return StatusClass::kRetry;
  if (status == 400) return StatusClass::kBadRequest;
  return StatusClass::kFailed;
}

std::string apiErrorMessage(std::string_view body) {
  std::string message;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::dom::element error;
  if (parser.parse(body.data(), body.size()).get(root) == simdjson::SUCCESS &&
      root["error"].get(error) == simdjson::SUCCESS && error.is_object()) {
    std::string_view code;
    std::string_view text;
    if (error["code"].get(code) != simdjson::SUCCESS) code = {};
    if (error["message"].get(text) != simdjson::SUCCESS) text = {};
    message = std::string(code);
    if (!text.empty()) message += (message.empty() ? "" : ": ") + std::string(text);
  }
  if (message.empty()) message = std::string(body.substr(0, 200));
  if (message.size() > 400) message.resize(400);
  // One line, whatever the API sent (no forged log lines, no terminal escapes).
  for (char& c : message) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return message;
}

ApiProfile mdeProfile() {
  return ApiProfile{
      "the application needs the WindowsDefenderATP application permission Alert.Read.All "
      "with admin consent",
      {}};
}

ApiProfile graphProfile() {
  return ApiProfile{
      "the application needs the Microsoft Graph application permission "
      "SecurityAlert.Read.All with admin consent",
      // Newer enum members instead of unknownFutureValue (graph.md).
      {{"Prefer", "include-unknown-enum-members"}}};
}

ApiProfile graphIncidentsProfile(bool include_unknown_enum_members) {
  ApiProfile p{
      "the application needs the Microsoft Graph application permission "
      "SecurityIncident.Read.All with admin consent",
      {}};
  if (include_unknown_enum_members) p.extra_headers = graphProfile().extra_headers;
  return p;
}

// ---- RequestPacer ----

milliseconds RequestPacer::waitBefore(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  return waitLocked(now);
}

milliseconds RequestPacer::reserve(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  const milliseconds wait = waitLocked(now);
  if (wait.count() <= 0) sent_.push_back(now);
  return wait;
}

milliseconds RequestPacer::waitLocked(std::chrono::steady_clock::time_point now) {
  while (!sent_.empty() && now - sent_.front() >= std::chrono::hours(1) + kPacingSlack) {
    sent_.erase(sent_.begin());
  }
  milliseconds wait{0};
  // A Retry-After is waited out with a little to spare.
  if (defer_until_ > now) {
    wait = duration_cast<milliseconds>(defer_until_ - now) + milliseconds(100);
  }
  // The windows are longer by kPacingSlack, whether the request waited or came on its own
  // just past the window (the server counts arrivals, we count departures).
  if (per_hour_ > 0 && sent_.size() >= static_cast<std::size_t>(per_hour_)) {
    const auto free_at = sent_[sent_.size() - static_cast<std::size_t>(per_hour_)] +
                         std::chrono::hours(1) + kPacingSlack;
    wait = std::max(wait, duration_cast<milliseconds>(free_at - now));
  }
  if (per_minute_ > 0 && sent_.size() >= static_cast<std::size_t>(per_minute_)) {
    const auto free_at = sent_[sent_.size() - static_cast<std::size_t>(per_minute_)] +
                         std::chrono::minutes(1) + kPacingSlack;
    wait = std::max(wait, duration_cast<milliseconds>(free_at - now));
  }
  return wait;
}

void RequestPacer::record(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  sent_.push_back(now);
}

void RequestPacer::deferUntil(std::chrono::steady_clock::time_point until,
                              std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  until = std::min(until, now + kMaxRetryAfter);
  if (until > defer_until_) defer_until_ = until;
}

void RequestPacer::save(const std::string& path, std::chrono::system_clock::time_point wall_now,
                        std::chrono::steady_clock::time_point steady_now) const {
  std::lock_guard lock(mu_);
  std::string text;
  const auto wallMs = [&](std::chrono::steady_clock::time_point t) {
    return duration_cast<milliseconds>(wall_now.time_since_epoch()).count() +
           duration_cast<milliseconds>(t - steady_now).count();
  };
  if (defer_until_ > steady_now) text += "defer " + std::to_string(wallMs(defer_until_)) + "\n";
  for (const auto& t : sent_) text += std::to_string(wallMs(t)) + "\n";
  writePrivateFile(path, text);
}

void RequestPacer::load(const std::string& path, std::chrono::system_clock::time_point wall_now,
                        std::chrono::steady_clock::time_point steady_now) {
  std::lock_guard lock(mu_);
  std::ifstream in(path);
  const std::int64_t now_ms = duration_cast<milliseconds>(wall_now.time_since_epoch()).count();
  const auto number = [](std::string_view s) -> std::optional<std::int64_t> {
    std::int64_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
    return v;
  };
  std::string line;
  for (int lines = 0; lines < 100'000 && std::getline(in, line); ++lines) {
    std::string_view s(line);
    const bool defer = s.starts_with("defer ");
    if (defer) s.remove_prefix(6);
    const auto ms = number(s);
    if (!ms) continue;
    if (defer) {
      // A deferral is honoured up to the bound, whatever the file says.
      if (*ms > now_ms) {
        const auto ahead = std::min<std::int64_t>(*ms - now_ms, kMaxRetryAfter.count() * 1000);
        defer_until_ = std::max(defer_until_, steady_now + milliseconds(ahead));
      }
      continue;
    }
    if (*ms > now_ms || *ms <= now_ms - 3'600'000) continue;  // no subtraction can overflow
    sent_.push_back(steady_now - milliseconds(now_ms - *ms));
  }
  std::sort(sent_.begin(), sent_.end());
}

// ---- ApiClient ----

ApiClient::ApiClient(const config::SourceConfig& config, ApiProfile profile,
                     http::HttpClient& client, auth::TokenProvider& tokens, core::Clock& clock,
                     ApiClientOptions options)
    : config_(config),
      profile_(std::move(profile)),
      client_(client),
      tokens_(tokens),
      clock_(clock),
      options_(std::move(options)),
      pacer_(options_.shared_pacer != nullptr
                 ? options_.shared_pacer
                 : std::make_shared<RequestPacer>(config.requests_per_minute,
                                                  config.requests_per_hour)),
      backoff_({.first = options_.backoff_base, .max = options_.backoff_max, .jitter = true}),
      log_(sourceLogger(config.name)) {
  if (!options_.pacing_file.empty() && options_.shared_pacer == nullptr) {
    pacer_->load(options_.pacing_file, clock_.now(), clock_.steadyNow());
  }
}

core::Instant ApiClient::serverNow() const {
  core::Instant t = core::toInstant(clock_.now());
  const std::int64_t ns = server_offset_.count();
  std::int64_t nanos = t.nanos + ns % 1'000'000'000;
  t.seconds += ns / 1'000'000'000 + nanos / 1'000'000'000;
  nanos %= 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --t.seconds;
  }
  t.nanos = static_cast<std::int32_t>(nanos);
  return t;
}

void ApiClient::savePacing() {
  if (!options_.pacing_file.empty()) {
    pacer_->save(options_.pacing_file, clock_.now(), clock_.steadyNow());
  }
}

bool ApiClient::wait(milliseconds d, std::stop_token stop) {
  if (d.count() <= 0) return !stop.stop_requested();
  return clock_.sleepFor(d, stop);
}

void ApiClient::learnServerTime(const http::HttpResponse& res) {
  const std::string* date = res.header("date");
  if (date == nullptr) return;
  const auto server = parseHttpDate(*date);
  if (!server) return;
  const core::Instant ours = core::toInstant(clock_.now());
  const std::int64_t offset_s = *server - ours.seconds;  // 1970..9999 vs now: no overflow
  const std::int64_t bound = duration_cast<seconds>(kMaxServerOffset).count();
  if (offset_s > bound || offset_s < -bound) return;  // not a clock, a broken header
  // The Date header has whole seconds: an offset under a second is noise.
  server_offset_ = std::abs(offset_s) <= 1 ? std::chrono::nanoseconds(0)
                                           : std::chrono::nanoseconds(seconds(offset_s));
  if (options_.metrics != nullptr) {
    options_.metrics->server_offset_ms = duration_cast<milliseconds>(server_offset_).count();
  }
}

Error ApiClient::statusError(const http::HttpResponse& res, StatusClass cls) {
  const int status = res.status;
  const std::string what = "HTTP " + std::to_string(status) + " from the API";
  switch (cls) {
    case StatusClass::kRenewToken:
    case StatusClass::kRefused:
      return Error(ErrorCode::kAuth, "the API refused the token (HTTP " + std::to_string(status) +
                                         ": " + apiErrorMessage(res.body) + "); " +
                                         profile_.permission_hint)
          .withHttpStatus(status);
    case StatusClass::kThrottled:
      return Error(ErrorCode::kThrottled, "HTTP 429 " + apiErrorMessage(res.body))
          .withHttpStatus(429);
    case StatusClass::kRetry:
      return Error(ErrorCode::kHttp, what).withHttpStatus(status);
    default:
      return Error(ErrorCode::kHttp, what + ": " + apiErrorMessage(res.body))
          .withHttpStatus(status);
  }
}

Result<std::string> ApiClient::get(const std::string& url, std::stop_token stop,
                                   std::string* buffer, int max_attempts) {
  if (max_attempts <= 0) max_attempts = options_.max_attempts;
  telemetry::SourceMetrics* m = options_.metrics;
  // A 401 renews the token, right before the next send (after any wait), and retries.
  bool refresh_next = false;
  int refreshes_left = 2;
  std::optional<Error> last;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    const bool final_attempt = attempt + 1 >= max_attempts;
    if (attempt > 0) {
      ++counters_.retries;
      if (m != nullptr) ++m->retries;
    }
    // Bounded: each wait is at most kMaxRetryAfter or an hour's pacing.
    bool stopped = false;
    for (int waits = 0; waits < 1000; ++waits) {
      const milliseconds w = pacer_->reserve(clock_.steadyNow());
      if (w.count() <= 0) break;
      if (!wait(w, stop)) {
        stopped = true;
        break;
      }
    }
    if (stopped || stop.stop_requested()) break;
    auto token = tokens_.token(refresh_next);
    if (m != nullptr) m->token_refreshes = tokens_.refreshes();
    if (!token) {
      if (!token.error().retryable()) {
        if (m != nullptr) {
          m->setState(telemetry::State::kFailing, "token refused: " + token.error().message());
        }
        return token.error();
      }
      last = token.error();
      if (final_attempt || !wait(backoff_.delay(attempt), stop)) break;
      continue;
    }
    refresh_next = false;  // renewed (a failed renewal is tried again before the next send)
    http::HttpRequest req;
    req.url = url;
    req.headers = {{"Authorization", "Bearer " + *token},
                   {"Accept", "application/json"},
                   {"User-Agent", std::string(kUserAgent)}};
    for (const auto& h : profile_.extra_headers) req.headers.push_back(h);
    req.timeout = config_.request_timeout;
    req.max_response_bytes = options_.max_response_bytes;
    req.body_buffer = buffer;
    savePacing();
    ++counters_.requests;
    auto res = client_.send(req);
    if (m != nullptr) m->request(res ? res->status : 0);
    if (!res) {
      if (res.error().code() == ErrorCode::kTooLarge) return res.error();
      last = res.error();
      log_->debug("request failed: {}", res.error().message());
      if (final_attempt || !wait(backoff_.delay(attempt), stop)) break;
      continue;
    }
    learnServerTime(*res);
    const StatusClass cls = classifyStatus(res->status);
    switch (cls) {
      case StatusClass::kOk:
        if (m != nullptr) {
          m->setStateIf(telemetry::State::kCollecting,
                        {telemetry::State::kStarting, telemetry::State::kAuthenticating,
                         telemetry::State::kDegraded});
        }
        return std::move(res->body);
      case StatusClass::kRenewToken:
        if (refreshes_left > 0) {
          --refreshes_left;
          refresh_next = true;
          --attempt;  // a renewal is not a failed attempt
          continue;
        }
        return statusError(*res, cls);
      case StatusClass::kRefused:
        return statusError(*res, cls);
      case StatusClass::kThrottled: {
        ++counters_.throttled;
        if (m != nullptr) ++m->throttled;
        const std::string* header = res->header("retry-after");
        const auto asked =
            header != nullptr ? parseRetryAfter(*header, serverNow().seconds) : std::nullopt;
        const milliseconds d =
            asked ? milliseconds(*asked) + milliseconds(50) : backoff_.delay(attempt);
        if (header != nullptr && !asked) {
          log_->warn(
              "the API sent a Retry-After that is not a number of seconds or a date; "
              "backing off {} ms instead",
              d.count());
        }
        pacer_->deferUntil(clock_.steadyNow() + d, clock_.steadyNow());
        savePacing();
        last = statusError(*res, cls);
        if (asked) last->withRetryAfter(*asked);
        log_->warn("throttled by the API: waiting {} ms", d.count());
        if (m != nullptr) {
          m->setState(telemetry::State::kDegraded, "throttled: waiting " +
                                                       std::to_string(d.count() / 1000) +
                                                       " s as the API's Retry-After says");
        }
        continue;  // the pacer waits
      }
      case StatusClass::kRetry:
        last = statusError(*res, cls);
        if (final_attempt || !wait(backoff_.delay(attempt), stop)) attempt = max_attempts;
        continue;
      case StatusClass::kBadRequest:
      case StatusClass::kFailed:
        return statusError(*res, cls);
    }
  }
  if (stop.stop_requested()) return Error(ErrorCode::kInternal, "stopped");
  return last ? *last : Error(ErrorCode::kNetwork, "request failed");
}

}  // namespace mdec::source
