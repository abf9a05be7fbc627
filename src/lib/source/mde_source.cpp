#include "mdecollect/source/mde_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <map>
#include <random>
#include <set>

#include "ecs/line_scanner.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/ecs/graph_translate.h"
#include "mdecollect/ecs/mapper.h"

namespace mdec::source {
namespace {

using core::Instant;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Windows narrower than this are not split any further; they are paged with $skip.
constexpr std::int64_t kMinWindowNanos = 1'000'000;  // 1 ms

Instant addNanos(Instant t, std::int64_t ns) {
  std::int64_t total = t.nanos + ns % 1'000'000'000;
  std::int64_t secs = t.seconds + ns / 1'000'000'000 + total / 1'000'000'000;
  total %= 1'000'000'000;
  if (total < 0) {
    total += 1'000'000'000;
    --secs;
  }
  return Instant{secs, static_cast<std::int32_t>(total)};
}

std::string apiTime(const Instant& t) { return core::formatRfc3339(t, 7); }

// The API writes lastUpdateTime with 0..7 fraction digits; the seen-set and the watermark
// use one fixed form so that equal times compare equal.
std::optional<std::string> normalizeTime(std::string_view text) {
  auto t = core::parseIsoDateTime(text);
  if (!t) return std::nullopt;
  return apiTime(*t);
}

struct Window {
  Instant from;
  std::optional<Instant> to;  // unbounded: "until now"
};

// Hands each document of the new versions to the page being delivered; the documents of
// an element whose alert the page scan could not identify are held back (see commit()).
class PageSink : public ecs::DocumentSink {
 public:
  struct Held {
    std::string id;
    std::string body;
    bool error;
    state::Version key;
  };
  explicit PageSink(output::Delivery::Page& page) : page_(page) {}
  void holdNext(bool hold) { hold_ = hold; }
  void onDocument(const ecs::DocumentView& d) override {
    if (d.error) ++errors;
    if (!hold_) {
      page_.add(d.id, d.json);
      return;
    }
    held.push_back(Held{std::string(d.id), std::string(d.json), d.error, keyOf(d)});
  }
  // The seen-set key of a document whose alert the page scan could not identify.
  static state::Version keyOf(const ecs::DocumentView& d) {
    if (d.alert_id.empty() && d.last_update_time.empty()) return {"!" + std::string(d.id), {}};
    return {std::string(d.alert_id),
            normalizeTime(d.last_update_time).value_or(std::string(d.last_update_time))};
  }
  std::vector<Held> held;
  std::uint64_t errors = 0;

 private:
  output::Delivery::Page& page_;
  bool hold_ = false;
};

class MdeSourceImpl : public MdeSource {
 public:
  MdeSourceImpl(const config::SourceConfig& config, output::Delivery& delivery,
                http::HttpClient& client, auth::TokenProvider& tokens, core::Clock& clock,
                MdeSourceOptions options)
      : config_(config),
        delivery_(delivery),
        store_(delivery.store()),
        client_(client),
        tokens_(tokens),
        clock_(clock),
        options_(options),
        mapper_(mapOptions(config)),
        graph_(config.type == config::SourceType::kGraph),
        pacer_(config.requests_per_minute, config.requests_per_hour),
        page_size_(config.page_size),
        rng_(std::random_device{}()),
        log_(loggerFor(config.name)),
        own_metrics_(options.metrics != nullptr
                         ? nullptr
                         : std::make_unique<telemetry::SourceMetrics>(
                               config.name, config::sourceTypeName(config.type))),
        m_(options.metrics != nullptr ? *options.metrics : *own_metrics_) {
    if (!options_.pacing_file.empty()) {
      pacer_.load(options_.pacing_file, clock_.now(), clock_.steadyNow());
    }
    if (auto wm = store_.watermark(config_.name); wm && *wm) {
      m_.watermark_unix_ms = telemetry::unixMillisOf(**wm);
    }
  }

  ~MdeSourceImpl() override { (void)waitCommit(); }

  Result<PollStats> pollRange(const Instant& since, const Instant& until,
                              std::stop_token stop) override {
    stats_ = PollStats{};
    range_ = Window{since, until};
    fetched_.clear();
    auto polled = graph_ ? pollGraph(*range_, stop) : pollWindowList({*range_}, stop);
    auto committed = waitCommit();
    range_.reset();
    if (!polled) return polled.error();
    if (!committed) return committed.error();
    return finish();
  }

  Result<PollStats> poll(std::stop_token stop) override {
    stats_ = PollStats{};
    auto polled = pollWindows(stop);
    // Every page handed to the committer is committed (or failed) before the poll ends.
    auto committed = waitCommit();
    if (!polled) return polled.error();
    if (!committed) return committed.error();
    if (!stats_.stopped && best_watermark_) {
      // Versions older than the overlap can never be re-read: forget them (but not those a
      // backfill still in progress may read again after a restart).
      Instant prune_before =
          addNanos(*best_watermark_,
                   -duration_cast<std::chrono::nanoseconds>(config_.late_arrival_window).count() -
                       3600LL * 1'000'000'000);
      if (auto jobs = store_.backfills(config_.name)) {
        for (const auto& job : *jobs) {
          if (job.state != "queued" && job.state != "running") continue;
          if (auto since = core::parseIsoDateTime(job.since); since && *since < prune_before) {
            prune_before = *since;
          }
        }
      }
      if (auto s = store_.pruneSeen(config_.name, apiTime(prune_before)); !s) return s.error();
    }
    return finish();
  }

 private:
  Status pollWindows(std::stop_token stop) {
    auto wm = store_.watermark(config_.name);
    if (!wm) return wm.error();
    std::optional<Instant> watermark;
    if (*wm) watermark = core::parseIsoDateTime(**wm);
    const Instant from =
        watermark ? addNanos(*watermark, -duration_cast<std::chrono::nanoseconds>(
                                              config_.late_arrival_window)
                                              .count())
                  : addNanos(serverNow(), -duration_cast<std::chrono::nanoseconds>(
                                              config_.initial_interval)
                                              .count());
    fetched_.clear();
    best_watermark_ = watermark;
    if (!watermark) {
      // Where live coverage begins (kept once a watermark exists): backfills stop there.
      if (auto s = store_.setCollectedSince(config_.name, apiTime(from)); !s) return s;
    }
    if (graph_) return pollGraph(Window{from, std::nullopt}, stop);
    return pollWindowList({Window{from, std::nullopt}}, stop);
  }

  Status pollWindowList(std::deque<Window> windows, std::stop_token stop) {
    while (!windows.empty()) {
      if (stop.stop_requested()) {
        stats_.stopped = true;
        break;
      }
      Window w = windows.front();
      std::size_t skip = 0;
      bool split = false;
      for (;;) {
        auto page = fetchPage([&] { return buildUrl(w, skip); }, stop);
        if (!page) {
          if (stop.stop_requested()) {
            stats_.stopped = true;
            return okStatus();
          }
          return page.error();
        }
        const bool full = page->alerts >= page_size_;
        for (const auto& t : page->luts) fetched_.insert(t);
        if (!full) {
          // A window that a short page ends is complete: the watermark may move to the
          // largest lastUpdateTime fetched below its end.
          if (auto s = enqueueCommit(std::move(*page), watermarkBelow(w.to)); !s) return s;
          break;
        }
        if (skip == 0 && page->luts_ascending && !page->luts.empty() &&
            page->luts.back() > w.from) {
          // The API honoured $orderby: keyset paging. Everything below the last
          // lastUpdateTime of the page is complete; the window continues from there (ties
          // at that time are read again and skipped by the seen-set).
          const Instant last = page->luts.back();
          if (auto s = enqueueCommit(std::move(*page), watermarkBelow(last)); !s) return s;
          windows.front().from = last;
          split = true;  // go round again with the same (narrowed) window
          break;
        }
        if (auto s = enqueueCommit(std::move(*page), std::nullopt); !s) return s;
        if (skip == 0) {
          const Instant to = w.to ? *w.to : addNanos(serverNow(), 2'000'000'000);
          const auto width = core::nanosBetween(w.from, to);
          if (width && *width > kMinWindowNanos) {
            const Instant mid = addNanos(w.from, *width / 2);
            windows.pop_front();
            windows.push_front(Window{mid, to});
            windows.push_front(Window{w.from, mid});
            split = true;
            break;
          }
          if (!w.to) w.to = to;
        }
        skip += page_size_;
        if (skip > 1'000'000) {
          return Error(ErrorCode::kInternal,
                       "more than a million alerts share one millisecond of lastUpdateTime");
        }
      }
      if (!split) windows.pop_front();
    }
    return okStatus();
  }

  // Graph (graph.md): one window from `from` on, paged by following @odata.nextLink
  // verbatim until a page has none; the window is then complete and the watermark moves
  // with that last page.
  //
  // The watermark moves at most to the server's time when the poll began: an alert updated
  // while the poll pages through (its new version can land on a page already read, since
  // pages are ordered by creation) is then read again by the next poll's overlap, however
  // long this poll took.
  Status pollGraph(const Window w, std::stop_token stop) {
    const Instant began = serverNow();
    std::string next;
    for (std::size_t pages = 0;; ++pages) {
      if (stop.stop_requested()) {
        stats_.stopped = true;
        return okStatus();
      }
      if (pages > 1'000'000) {
        return Error(ErrorCode::kInternal, "Graph kept sending @odata.nextLink (a million pages)");
      }
      auto page = fetchPage([&] { return next.empty() ? buildGraphUrl(w) : next; }, stop);
      if (!page) {
        if (stop.stop_requested()) {
          stats_.stopped = true;
          return okStatus();
        }
        return page.error();
      }
      for (const auto& t : page->luts) fetched_.insert(t);
      next = page->next_link;
      const bool last = next.empty();
      if (auto s = enqueueCommit(std::move(*page), last ? watermarkBelow(began) : std::nullopt);
          !s) {
        return s;
      }
      if (last) return okStatus();
    }
  }

  struct Page {
    std::string next_link;         // Graph's @odata.nextLink (empty: the last page)
    std::string body;              // followed by ecs::kLinePadding spare bytes
    std::size_t size = 0;          // the body's length without them
    std::size_t alerts = 0;
    std::vector<Instant> luts;     // lastUpdateTime of each alert that has a valid one
    bool luts_ascending = true;    // in the order the API sent them
    ecs::ScanResult scan;          // where each alert is in the body
    std::vector<state::Version> versions;  // per alert: (id, normalised lastUpdateTime)
  };

  static ecs::MapOptions mapOptions(const config::SourceConfig& c) {
    ecs::MapOptions o;
    o.preserve_original_event = c.preserve_original_event;
    o.data_stream_namespace = c.data_stream_namespace;
    if (c.tags) o.tags = *c.tags;
    return o;
  }

  static std::shared_ptr<spdlog::logger> loggerFor(const std::string& name) {
    const std::string logger_name = "source." + name;
    if (auto existing = spdlog::get(logger_name)) return existing;
    auto logger = spdlog::default_logger()->clone(logger_name);
    spdlog::register_logger(logger);
    return logger;
  }

  Result<PollStats> finish() {
    if (!options_.pacing_file.empty()) {
      pacer_.save(options_.pacing_file, clock_.now(), clock_.steadyNow());
    }
    auto wm = store_.watermark(config_.name);
    if (wm && *wm) {
      stats_.watermark = **wm;
      if (auto t = core::parseIsoDateTime(**wm)) {
        if (auto ns = core::nanosBetween(*t, serverNow())) {
          stats_.lag = seconds(*ns / 1'000'000'000);
        }
      }
    }
    return stats_;
  }

  Instant serverNow() const {
    return core::toInstant(clock_.now() + server_offset_);
  }

  // The largest lastUpdateTime fetched below `bound` (all of them when unbounded), when it
  // moves the watermark forward.
  std::optional<std::string> watermarkBelow(const std::optional<Instant>& bound) {
    if (range_) return std::nullopt;  // a backfill never moves the watermark
    std::optional<Instant> candidate;
    if (!bound) {
      if (!fetched_.empty()) candidate = *fetched_.rbegin();
    } else {
      auto it = fetched_.lower_bound(*bound);
      if (it != fetched_.begin()) candidate = *std::prev(it);
    }
    if (!candidate || (best_watermark_ && *candidate <= *best_watermark_)) return std::nullopt;
    best_watermark_ = candidate;
    return apiTime(*candidate);
  }

  // Pages are committed on a thread of their own, one at a time and in page order, so that
  // mapping and writing a page overlaps fetching the next (the seen-set lookup is part of
  // the commit, so a page re-reading ties sees every earlier page's versions). At most two
  // pages are in memory: the one being committed and the one being fetched. Returns the
  // failure of the previous commit, if it failed (nothing after it is committed).
  Status enqueueCommit(Page&& page, std::optional<std::string> new_watermark) {
    if (auto s = waitCommit(); !s) return s;
    auto shared = std::make_shared<Page>(std::move(page));
    pending_ = std::async(std::launch::async,
                          [this, shared, watermark = std::move(new_watermark)]() -> Status {
                            auto s = commit(*shared, watermark);
                            std::lock_guard lock(buffers_mu_);
                            buffers_.push_back(std::move(shared->body));
                            return s;
                          });
    return okStatus();
  }

  Status waitCommit() {
    if (!pending_.valid()) return okStatus();
    return pending_.get();
  }

  // A page body's allocation, reused (see HttpRequest::body_buffer).
  std::string takeBuffer() {
    std::lock_guard lock(buffers_mu_);
    if (buffers_.empty()) return {};
    std::string b = std::move(buffers_.back());
    buffers_.pop_back();
    return b;
  }

  Status commit(const Page& page, const std::optional<std::string>& new_watermark) {
    // Which alert versions are new? Only those are mapped.
    auto seen = store_.seen(config_.name, page.versions);
    if (!seen) return seen.error();
    state::PageCommit c;
    c.source = config_.name;
    c.watermark = new_watermark;
    output::Delivery::Page out(delivery_);
    PageSink sink(out);
    for (std::size_t i = 0; i < page.scan.elements.size(); ++i) {
      const bool known = !page.versions[i].alert_id.empty();
      if (known && (*seen)[i]) continue;
      const auto& e = page.scan.elements[i];
      sink.holdNext(!known);
      sink.held.clear();
      const std::string_view element(page.body.data() + e.begin, e.size());
      if (graph_ && translator_.translate(element, translated_)) {
        // The Defender shape of the Graph alert (graph.md), then the unchanged mapper
        // (translate() leaves kLinePadding spare bytes after it).
        mapper_.mapElement(translated_, sink);
      } else {
        // Each alert is followed by the rest of the padded body.
        mapper_.mapElement(element, sink);
      }
      if (known) {
        c.seen.push_back(page.versions[i]);
        continue;
      }
      // No readable id/lastUpdateTime: keyed by the documents' own (content) ids.
      std::vector<state::Version> keys;
      for (const auto& h : sink.held) keys.push_back(h.key);
      auto dup = store_.seen(config_.name, keys);
      if (!dup) return dup.error();
      for (std::size_t d = 0; d < sink.held.size(); ++d) {
        if ((*dup)[d]) {
          if (sink.held[d].error) --sink.errors;
          continue;
        }
        c.seen.push_back(keys[d]);
        out.add(sink.held[d].id, sink.held[d].body);
      }
    }
    stats_.errors += sink.errors;
    stats_.new_versions += c.seen.size();
    stats_.documents += out.documents();
    if (out.documents() == 0 && c.seen.empty() && !c.watermark) return okStatus();
    const std::uint64_t documents = out.documents();
    const std::int64_t watermark = c.watermark ? telemetry::unixMillisOf(*c.watermark) : 0;
    auto s = out.commit(std::move(c));
    if (s) {
      m_.documents_produced += documents;
      m_.error_documents += sink.errors;
      if (watermark != 0) m_.watermark_unix_ms = watermark;
    }
    return s;
  }

  std::string buildGraphUrl(const Window& w) const {
    std::string filter = "lastUpdateDateTime ge " + apiTime(w.from);
    if (w.to) filter += " and lastUpdateDateTime lt " + apiTime(*w.to);
    if (!config_.service_sources.empty()) {
      filter += " and (";
      for (std::size_t i = 0; i < config_.service_sources.size(); ++i) {
        if (i > 0) filter += " or ";
        std::string quoted = config_.service_sources[i];
        // OData string literal: a single quote is doubled.
        for (std::size_t q = quoted.find('\''); q != std::string::npos;
             q = quoted.find('\'', q + 2)) {
          quoted.insert(q, 1, '\'');
        }
        filter += "serviceSource eq '" + quoted + "'";
      }
      filter += ")";
    }
    std::string base = config_.api_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    // Ordered by creation, nextLink pages can only gain items while the world changes
    // (an update keeps its alert's place; a late alert is inserted): whatever a
    // position-based nextLink then reads twice, the seen-set skips, and nothing is skipped.
    // Ordered by lastUpdateDateTime, an update would move its alert out of the pages read
    // so far, and the pages after it would start one item late.
    std::string url = base + "/v1.0/security/alerts_v2?$filter=" + http::urlEncode(filter);
    if (use_orderby_) url += "&$orderby=" + http::urlEncode("createdDateTime asc");
    return url + "&$top=" + std::to_string(page_size_);
  }

  std::string buildUrl(const Window& w, std::size_t skip) const {
    std::string filter = "lastUpdateTime ge " + apiTime(w.from);
    if (w.to) filter += " and lastUpdateTime lt " + apiTime(*w.to);
    std::string base = config_.api_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    std::string url = base + "/api/alerts?$filter=" + http::urlEncode(filter);
    if (use_orderby_) url += "&$orderby=" + http::urlEncode("lastUpdateTime asc");
    url += "&$top=" + std::to_string(page_size_);
    if (skip > 0) url += "&$skip=" + std::to_string(skip);
    url += "&$expand=evidence";
    return url;
  }

  milliseconds backoff(int attempt) {
    const auto cap = std::min<std::int64_t>(
        options_.backoff_max.count(),
        options_.backoff_base.count() * (std::int64_t{1} << std::min(attempt, 20)));
    std::uniform_int_distribution<std::int64_t> jitter(cap / 2, std::max<std::int64_t>(cap / 2, cap));
    return milliseconds(jitter(rng_));
  }

  // Waits (interruptibly); false when stopped.
  bool wait(milliseconds d, std::stop_token stop) {
    if (d.count() <= 0) return !stop.stop_requested();
    return clock_.sleepFor(d, stop);
  }

  void learnServerTime(const http::HttpResponse& res) {
    if (const std::string* date = res.header("date")) {
      if (auto t = parseHttpDate(*date)) {
        server_offset_ = *t - clock_.now();
        m_.server_offset_ms = duration_cast<milliseconds>(server_offset_).count();
      }
    }
  }

  static std::string apiMessage(const std::string& body) {
    // {"error":{"code":"...","message":"..."}}: pull the message out without a parser.
    const auto m = body.find("\"message\":\"");
    if (m == std::string::npos) return body.substr(0, 200);
    const auto start = m + 11;
    const auto end = body.find('"', start);
    return body.substr(start, std::min<std::size_t>(end - start, 300));
  }

  Result<Page> fetchPage(const std::function<std::string()>& url_of, std::stop_token stop) {
    // A 401 renews the token, right before the next send (after any wait), and retries.
    bool refresh_next = false;
    int refreshes_left = 2;
    std::optional<Error> last;
    if (options_.wait_for_room) options_.wait_for_room(stop);
    for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
      if (attempt > 0) {
        ++stats_.retries;
        ++m_.retries;
      }
      if (!wait(pacer_.waitBefore(clock_.steadyNow()), stop)) break;
      auto token = tokens_.token(refresh_next);
      refresh_next = false;
      m_.token_refreshes = tokens_.refreshes();
      if (!token) {
        if (!token.error().retryable()) {
          m_.setState(telemetry::State::kFailing, "token refused: " + token.error().message());
          return token.error();
        }
        last = token.error();
        if (!wait(backoff(attempt), stop)) break;
        continue;
      }
      http::HttpRequest req;
      req.url = url_of();
      req.headers = {{"Authorization", "Bearer " + *token},
                     {"Accept", "application/json"},
                     {"User-Agent", "MdatpPartner-mdecollect/" MDEC_VERSION_STRING}};
      // Newer enum members instead of unknownFutureValue (graph.md).
      if (graph_) req.headers.push_back({"Prefer", "include-unknown-enum-members"});
      req.timeout = config_.request_timeout;
      req.max_response_bytes = 512u << 20;
      std::string buffer = takeBuffer();
      req.body_buffer = &buffer;
      pacer_.record(clock_.steadyNow());
      savePacing();
      ++stats_.requests;
      auto res = client_.send(req);
      m_.request(res ? res->status : 0);
      if (!res) {
        if (res.error().code() == ErrorCode::kTooLarge && page_size_ > 1) {
          page_size_ = std::max<std::size_t>(1, page_size_ / 2);
          log_->warn("response over the size limit: page size halved to {}", page_size_);
          continue;
        }
        last = res.error();
        log_->debug("request failed: {}", res.error().message());
        if (!wait(backoff(attempt), stop)) break;
        continue;
      }
      learnServerTime(*res);
      const int status = res->status;
      if (status == 200) {
        Page page;
        page.body = std::move(res->body);
        page.size = page.body.size();
        page.body.append(ecs::kLinePadding, ' ');
        ecs::ScanResult& scan = page.scan;
        ecs::scanLine(std::string_view(page.body.data(), page.size), scan);
        if (scan.kind != ecs::ScanResult::Kind::kPage) {
          last = Error(ErrorCode::kParse, "the API answered 200 with a body that is not a page of "
                                          "alerts (" + (scan.kind == ecs::ScanResult::Kind::kInvalid
                                                            ? scan.message
                                                            : std::string("no value array")) +
                                          ")");
          if (!wait(backoff(attempt), stop)) break;
          continue;
        }
        page.alerts = scan.elements.size();
        describe(page, graph_ ? "\"lastUpdateDateTime\":\"" : "\"lastUpdateTime\":\"");
        if (graph_) page.next_link = nextLink(page);
        ++stats_.pages;
        stats_.alerts += page.alerts;
        m_.alerts_fetched += page.alerts;
        m_.setStateIf(telemetry::State::kCollecting,
                      {telemetry::State::kStarting, telemetry::State::kAuthenticating,
                       telemetry::State::kDegraded});
        return page;
      }
      if (status == 401 && refreshes_left > 0) {
        --refreshes_left;
        refresh_next = true;
        continue;
      }
      if (status == 401 || status == 403) {
        return Error(ErrorCode::kAuth,
                     "the API refused the token (HTTP " + std::to_string(status) + ": " +
                         apiMessage(res->body) +
                         (graph_ ? "); the application needs the Microsoft Graph application "
                                   "permission SecurityAlert.Read.All with admin consent"
                                 : "); the application needs the WindowsDefenderATP application "
                                   "permission Alert.Read.All with admin consent"))
            .withHttpStatus(status);
      }
      if (status == 429) {
        ++stats_.throttled;
        ++m_.throttled;
        milliseconds d = backoff(attempt);
        if (const std::string* ra = res->header("retry-after")) d = retryAfter(*ra, d);
        pacer_.deferUntil(clock_.steadyNow() + d);
        savePacing();
        last = Error(ErrorCode::kThrottled, "HTTP 429 " + apiMessage(res->body)).withHttpStatus(429);
        log_->warn("throttled by the API: waiting {} ms", d.count());
        m_.setState(telemetry::State::kDegraded,
                    "throttled: waiting " + std::to_string(d.count() / 1000) +
                        " s as the API's Retry-After says");
        continue;  // the pacer waits
      }
      if (status == 400 && use_orderby_) {
        use_orderby_ = false;
        log_->warn("the API refused $orderby ({}); continuing without it", apiMessage(res->body));
        continue;
      }
      if (status >= 500 || status == 408) {
        last = Error(ErrorCode::kHttp, "HTTP " + std::to_string(status) + " from the API")
                   .withHttpStatus(status);
        if (!wait(backoff(attempt), stop)) break;
        continue;
      }
      return Error(ErrorCode::kHttp, "HTTP " + std::to_string(status) + " from the API: " +
                                         apiMessage(res->body))
          .withHttpStatus(status);
    }
    if (stop.stop_requested()) return Error(ErrorCode::kInternal, "stopped");
    return last ? *last : Error(ErrorCode::kNetwork, "request failed");
  }

  void savePacing() {
    if (!options_.pacing_file.empty()) {
      pacer_.save(options_.pacing_file, clock_.now(), clock_.steadyNow());
    }
  }

  milliseconds retryAfter(const std::string& value, milliseconds fallback) {
    std::int64_t secs = 0;
    bool digits = !value.empty();
    for (char c : value) digits = digits && c >= '0' && c <= '9';
    if (digits) {
      secs = std::stoll(value);
      return milliseconds(std::min<std::int64_t>(secs, 3600) * 1000 + 50);
    }
    if (auto t = parseHttpDate(value)) {
      const auto d = duration_cast<milliseconds>(*t - (clock_.now() + server_offset_));
      return std::max(milliseconds(1000), d + milliseconds(50));
    }
    return fallback;
  }

  // Finds each alert's id and lastUpdateTime by a search in its text (the top-level keys
  // of an alert never occur inside its evidence or comments); an alert without them is
  // left to the mapper, which makes an error document of it.
  static std::string_view stringValue(std::string_view alert, std::string_view key) {
    const auto k = alert.find(key);
    if (k == std::string_view::npos) return {};
    const auto start = k + key.size();
    const auto end = alert.find('"', start);
    if (end == std::string_view::npos) return {};
    const std::string_view v = alert.substr(start, end - start);
    return v.find('\\') == std::string_view::npos ? v : std::string_view();
  }

  // Graph's @odata.nextLink, looked for outside the "value" array only.
  static std::string nextLink(const Page& page) {
    static constexpr std::string_view kKey = "\"@odata.nextLink\":\"";
    const std::string_view body(page.body.data(), page.size);
    const auto& elements = page.scan.elements;
    const std::size_t head = elements.empty() ? body.size() : elements.front().begin;
    const std::size_t tail = elements.empty() ? body.size() : elements.back().end;
    for (const std::string_view part : {body.substr(0, head), body.substr(tail)}) {
      const auto k = part.find(kKey);
      if (k == std::string_view::npos) continue;
      const auto start = k + kKey.size();
      const auto end = part.find('"', start);
      if (end == std::string_view::npos) return {};
      std::string link(part.substr(start, end - start));
      // JSON escapes a URL may carry: "\/" (the only one Graph uses).
      for (std::size_t i = link.find("\\/"); i != std::string::npos; i = link.find("\\/", i)) {
        link.erase(i, 1);
      }
      return link;
    }
    return {};
  }

  static void describe(Page& page, std::string_view lut_key) {
    page.luts.reserve(page.scan.elements.size());
    page.versions.resize(page.scan.elements.size());
    for (std::size_t i = 0; i < page.scan.elements.size(); ++i) {
      const auto& e = page.scan.elements[i];
      const std::string_view alert(page.body.data() + e.begin, e.size());
      const std::string_view id = stringValue(alert, "\"id\":\"");
      const std::string_view lut = stringValue(alert, lut_key);
      auto t = core::parseIsoDateTime(lut);
      if (!t) continue;
      if (!page.luts.empty() && *t < page.luts.back()) page.luts_ascending = false;
      page.luts.push_back(*t);
      if (!id.empty()) page.versions[i] = state::Version{std::string(id), apiTime(*t)};
    }
  }

  const config::SourceConfig& config_;
  output::Delivery& delivery_;
  state::StateStore& store_;
  http::HttpClient& client_;
  auth::TokenProvider& tokens_;
  core::Clock& clock_;
  MdeSourceOptions options_;
  ecs::Mapper mapper_;
  const bool graph_;
  ecs::GraphTranslator translator_;
  std::string translated_;  // the Defender shape of the Graph alert being mapped
  RequestPacer pacer_;
  std::size_t page_size_;
  bool use_orderby_ = true;
  std::mt19937_64 rng_;
  std::shared_ptr<spdlog::logger> log_;
  std::chrono::system_clock::duration server_offset_{};
  std::set<Instant> fetched_;
  std::future<Status> pending_;  // the commit in progress
  std::mutex buffers_mu_;
  std::vector<std::string> buffers_;  // bodies of committed pages, for reuse
  std::optional<Instant> best_watermark_;
  std::optional<Window> range_;  // set while a backfill range is collected
  PollStats stats_;
  std::unique_ptr<telemetry::SourceMetrics> own_metrics_;  // when none was given
  telemetry::SourceMetrics& m_;
};

}  // namespace

std::chrono::milliseconds RequestPacer::waitBefore(std::chrono::steady_clock::time_point now) {
  while (!sent_.empty() && now - sent_.front() >= std::chrono::hours(1)) {
    sent_.erase(sent_.begin());
  }
  milliseconds wait{0};
  if (defer_until_ > now) wait = duration_cast<milliseconds>(defer_until_ - now);
  if (per_hour_ > 0 && sent_.size() >= static_cast<std::size_t>(per_hour_)) {
    const auto free_at = sent_[sent_.size() - static_cast<std::size_t>(per_hour_)] +
                         std::chrono::hours(1);
    wait = std::max(wait, duration_cast<milliseconds>(free_at - now));
  }
  if (per_minute_ > 0 && sent_.size() >= static_cast<std::size_t>(per_minute_)) {
    const auto free_at = sent_[sent_.size() - static_cast<std::size_t>(per_minute_)] +
                         std::chrono::minutes(1);
    wait = std::max(wait, duration_cast<milliseconds>(free_at - now));
  }
  // A little slack: the server counts arrivals, we count departures.
  return wait.count() > 0 ? wait + milliseconds(100) : wait;
}

void RequestPacer::record(std::chrono::steady_clock::time_point now) { sent_.push_back(now); }

void RequestPacer::save(const std::string& path, std::chrono::system_clock::time_point wall_now,
                        std::chrono::steady_clock::time_point steady_now) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (defer_until_ > steady_now) {
      const auto wall = wall_now + duration_cast<std::chrono::system_clock::duration>(defer_until_ - steady_now);
      out << "defer " << duration_cast<milliseconds>(wall.time_since_epoch()).count() << '\n';
    }
    for (const auto& t : sent_) {
      const auto wall = wall_now - duration_cast<std::chrono::system_clock::duration>(steady_now - t);
      out << duration_cast<milliseconds>(wall.time_since_epoch()).count() << '\n';
    }
    if (!out) return;  // pacing memory is best effort
  }
  std::rename(tmp.c_str(), path.c_str());
}

void RequestPacer::load(const std::string& path, std::chrono::system_clock::time_point wall_now,
                        std::chrono::steady_clock::time_point steady_now) {
  std::ifstream in(path);
  std::string first;
  if (in >> first) {
    if (first == "defer") {
      std::int64_t until = 0;
      if (in >> until) {
        const std::chrono::system_clock::time_point wall{milliseconds(until)};
        if (wall > wall_now) {
          defer_until_ = steady_now + duration_cast<std::chrono::steady_clock::duration>(wall - wall_now);
        }
      }
    } else {
      in.seekg(0);
    }
  }
  std::int64_t ms = 0;
  while (in >> ms) {
    const std::chrono::system_clock::time_point wall{milliseconds(ms)};
    if (wall > wall_now || wall_now - wall >= std::chrono::hours(1)) continue;
    sent_.push_back(steady_now - duration_cast<std::chrono::steady_clock::duration>(wall_now - wall));
  }
  std::sort(sent_.begin(), sent_.end());
}

std::optional<std::chrono::system_clock::time_point> parseHttpDate(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t);
}

std::unique_ptr<MdeSource> makeMdeSource(const config::SourceConfig& config,
                                         output::Delivery& delivery, http::HttpClient& client,
                                         auth::TokenProvider& tokens, core::Clock& clock,
                                         MdeSourceOptions options) {
  return std::make_unique<MdeSourceImpl>(config, delivery, client, tokens, clock, options);
}

}  // namespace mdec::source
