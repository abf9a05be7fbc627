#include "mdecollect/source/pagers.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <unordered_set>

#include "ecs/url_parts.h"
#include "mdecollect/core/ascii.h"

namespace mdec::source {
namespace {

using core::Instant;

// Windows narrower than this are not split any further; they are paged with $skip.
constexpr std::int64_t kMinWindowNanos = 1'000'000;  // 1 ms
constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
// How far past the server's time an unbounded window's first bounded part reaches.
constexpr std::int64_t kNowSlackNanos = 2 * kNanosPerSecond;
constexpr std::size_t kMaxSkip = 1'000'000;
// Work one run may do before it gives up (a million requests is days of quota).
constexpr int kMaxSteps = 1'000'000;

std::int64_t nanosOf(std::chrono::nanoseconds d) { return d.count(); }

int defaultPort(const std::string& scheme) {
  if (scheme == "https") return 443;
  if (scheme == "http") return 80;
  return -1;
}

}  // namespace

Instant addNanos(Instant t, std::int64_t ns) {
  std::int64_t total = t.nanos + ns % kNanosPerSecond;
  std::int64_t secs = t.seconds + ns / kNanosPerSecond + total / kNanosPerSecond;
  total %= kNanosPerSecond;
  if (total < 0) {
    total += kNanosPerSecond;
    --secs;
  }
  return Instant{secs, static_cast<std::int32_t>(total)};
}

std::string originOf(const std::string& url) {
  const auto parts = ecs::parseUrlParts(url);
  if (!parts) return {};
  const std::string scheme = core::asciiLower(parts->scheme);
  if ((scheme != "http" && scheme != "https") || parts->domain.empty()) return {};
  return scheme + "://" + core::asciiLower(parts->domain) + ":" +
         std::to_string(parts->port.value_or(defaultPort(scheme)));
}

bool sameOrigin(const std::string& link, const std::string& base) {
  const auto parts = ecs::parseUrlParts(link);
  if (!parts || !parts->user_info.empty()) return false;
  const std::string origin = originOf(link);
  return !origin.empty() && origin == originOf(base);
}

Status checkNextLink(const std::string& link, const std::string& api_url,
                     std::unordered_set<std::string>& followed) {
  if (!sameOrigin(link, api_url)) {
    const auto parts = ecs::parseUrlParts(link);
    const std::string where =
        parts ? parts->scheme + "://" + parts->domain +
                    (parts->port ? ":" + std::to_string(*parts->port) : std::string())
              : std::string("a URL that cannot be read");
    return Error(ErrorCode::kHttp, "Graph paging: refused to follow an @odata.nextLink to " +
                                       where + ", another origin than api_url " + api_url +
                                       " (the token is only ever sent there); the poll is "
                                       "tried again later");
  }
  if (!followed.insert(link).second) {
    return Error(ErrorCode::kHttp, "Graph sent the same @odata.nextLink twice (a loop)");
  }
  return okStatus();
}

std::string apiTime(const core::Instant& t) { return core::formatRfc3339(t, 7); }

// ---- WindowPager ----

WindowPager::WindowPager(PagerSettings settings, Fetch fetch, Commit commit, Now server_now,
                         std::shared_ptr<spdlog::logger> log)
    : settings_(settings),
      fetch_(std::move(fetch)),
      commit_(std::move(commit)),
      server_now_(std::move(server_now)),
      log_(log ? std::move(log) : spdlog::default_logger()),
      page_size_(std::max<std::size_t>(1, settings.page_size)) {}

Result<WindowPager::Fetched> WindowPager::fetchPage(WindowQuery query) {
  for (int tries = 0; tries < 64; ++tries) {
    query.top = query.probe ? 1 : page_size_;
    query.orderby = orderby_;
    auto page = fetch_(query);
    if (page) {
      if (query.probe) ++probes_;
      if (!query.probe && page_size_ < settings_.page_size &&
          ++good_pages_ >= settings_.restore_after) {
        page_size_ = std::min(settings_.page_size, page_size_ * 2);
        good_pages_ = 0;
        log_->info("page size raised again to {}", page_size_);
      }
      return Fetched{std::move(*page), query.top};
    }
    const Error& e = page.error();
    if (e.code() == ErrorCode::kTooLarge && !query.probe && page_size_ > 1) {
      page_size_ = std::max<std::size_t>(1, page_size_ / 2);
      good_pages_ = 0;
      log_->warn("response over the size limit: page size halved to {}", page_size_);
      continue;
    }
    if (e.httpStatus() == 400 && orderby_) {
      orderby_ = false;
      log_->warn("the API refused $orderby ({}); continuing without it", e.message());
      continue;
    }
    return e;
  }
  return Error(ErrorCode::kInternal, "the page size could not be made small enough");
}

std::optional<Instant> WindowPager::watermarkBelow(const std::optional<Instant>& bound) {
  if (!move_watermark_) return std::nullopt;
  // Never past the server's time when the run began (plus the skew allowance): a version
  // stamped while the run pages, on a window already read, and visible only later (late
  // arrival) is then read again by the next poll's overlap however long the run takes. So
  // too an alert stamped in the future cannot hold the watermark ahead of every alert
  // still to come.
  const Instant cap = addNanos(began_, nanosOf(kClockSkewAllowance));
  Instant limit = bound && *bound <= cap ? *bound : addNanos(cap, 1);
  auto it = fetched_.lower_bound(limit);  // first >= limit
  if (it == fetched_.begin()) return std::nullopt;
  const Instant candidate = *std::prev(it);
  if (best_ && candidate <= *best_) return std::nullopt;
  best_ = candidate;
  return candidate;
}

Status WindowPager::run(Instant from, std::optional<Instant> until, std::optional<Instant> floor,
                        bool move_watermark, std::stop_token stop) {
  fetched_.clear();
  best_ = floor;
  move_watermark_ = move_watermark;
  began_ = server_now_();
  stopped_ = false;
  probes_ = 0;
  bool order_doubted = false;  // a probe showed the API's order is not to be trusted
  std::deque<Window> windows{Window{from, until}};
  int steps = 0;
  while (!windows.empty()) {
    if (stop.stop_requested()) {
      stopped_ = true;
      return okStatus();
    }
    if (++steps > kMaxSteps) {
      return Error(ErrorCode::kInternal, "a poll took more than a million steps");
    }
    const Window w = windows.front();
    bool replaced = false;  // the front window was narrowed or split: look at it again
    for (std::size_t skip = 0; !replaced;) {
      if (stop.stop_requested()) {
        stopped_ = true;
        return okStatus();
      }
      WindowQuery query;
      query.window = w;
      query.skip = skip;
      auto fetched = fetchPage(query);
      if (!fetched) {
        if (stop.stop_requested()) {
          stopped_ = true;
          return okStatus();
        }
        return fetched.error();
      }
      const PageFacts& page = fetched->facts;
      const bool full = page.alerts >= fetched->top;
      fetched_.insert(page.times.begin(), page.times.end());
      if (!full) {
        // A short page completes its window: the watermark may move to the largest time
        // fetched below the window's end.
        if (auto s = commit_(watermarkBelow(w.to)); !s) return s;
        windows.pop_front();
        break;
      }
      // The page is committed now, before anything else is asked: its alerts are safe
      // whatever comes next (a fault, a stop, a crash).
      if (auto s = commit_(std::nullopt); !s) return s;
      if (skip == 0 && orderby_ && !order_doubted && page.times.size() == page.alerts &&
          std::is_sorted(page.times.begin(), page.times.end()) && page.times.back() > w.from) {
        // It looks sorted. Believe it only if nothing below its last time was left out.
        const Instant last = page.times.back();
        const auto below = static_cast<std::size_t>(
            std::lower_bound(page.times.begin(), page.times.end(), last) - page.times.begin());
        WindowQuery probe;
        probe.window = Window{w.from, last};
        probe.skip = below;
        probe.probe = true;
        auto checked = fetchPage(probe);
        if (!checked) {
          if (stop.stop_requested()) {
            stopped_ = true;
            return okStatus();
          }
          return checked.error();
        }
        if (checked->facts.alerts == 0) {
          // Keyset paging: everything below `last` is in (the next commit's watermark can
          // say so); the window goes on from there (ties at `last` are read again and
          // skipped by the seen-set).
          windows.front().from = last;
          replaced = true;
          continue;
        }
        order_doubted = true;
        log_->warn(
            "a full page looked sorted by lastUpdateTime but was not complete below its "
            "last time (the API does not honour $orderby): splitting windows instead");
      }
      if (skip == 0) {
        const Instant now = server_now_();
        if (!w.to) {
          // Unbounded and full: a bounded part, split as any other, and the rest. The bounded
          // part reaches just past the server's time; when `from` is already past it (alerts
          // stamped in the future), ever further, so that any time is reached in a few steps.
          Instant end = addNanos(now, kNowSlackNanos);
          if (!(w.from < end)) {
            const std::int64_t ahead = std::max<std::int64_t>(86400, w.from.seconds - now.seconds);
            end = Instant{w.from.seconds + ahead, w.from.nanos};
          }
          windows.pop_front();
          windows.push_front(Window{end, std::nullopt});
          windows.push_front(Window{w.from, end});
          replaced = true;
          continue;
        }
        // Wider than 64 bits of nanoseconds (292 years: alerts stamped far in the future) is
        // split by whole seconds; only a window under a millisecond is paged with $skip.
        const auto width = core::nanosBetween(w.from, *w.to);
        if (!width || *width > kMinWindowNanos) {
          const Instant mid =
              width ? addNanos(w.from, *width / 2)
                    : Instant{w.from.seconds + (w.to->seconds - w.from.seconds) / 2, w.from.nanos};
          windows.pop_front();
          windows.push_front(Window{mid, *w.to});
          windows.push_front(Window{w.from, mid});
          replaced = true;
          continue;
        }
      }
      skip += fetched->top;
      if (skip > kMaxSkip) {
        return Error(ErrorCode::kInternal,
                     "more than a million alerts share one millisecond of lastUpdateTime");
      }
    }
  }
  return okStatus();
}

// ---- NextLinkPager ----

NextLinkPager::NextLinkPager(PagerSettings settings, std::string api_url, Fetch fetch,
                             Commit commit, Now server_now, std::shared_ptr<spdlog::logger> log)
    : settings_(settings),
      api_url_(std::move(api_url)),
      fetch_(std::move(fetch)),
      commit_(std::move(commit)),
      server_now_(std::move(server_now)),
      log_(log ? std::move(log) : spdlog::default_logger()),
      page_size_(std::max<std::size_t>(1, settings.page_size)) {}

Status NextLinkPager::run(const FirstUrl& first_url, std::optional<Instant> floor,
                          bool move_watermark, std::stop_token stop) {
  stopped_ = false;
  // The watermark moves at most to the server's time when the run began: an alert updated
  // while it pages (its new version can land on a page already read, since pages are
  // ordered by creation) is then read again by the next poll's overlap.
  const Instant began = server_now_();
  std::set<Instant> fetched;
  std::unordered_set<std::string> links;
  std::string next;
  for (int pages = 0;; ++pages) {
    if (stop.stop_requested()) {
      stopped_ = true;
      return okStatus();
    }
    if (pages > kMaxSteps) {
      return Error(ErrorCode::kInternal, "Graph kept sending @odata.nextLink (a million pages)");
    }
    const bool first = next.empty();
    auto page = fetch_(first ? first_url(page_size_, orderby_) : next);
    if (!page) {
      if (stop.stop_requested()) {
        stopped_ = true;
        return okStatus();
      }
      const Error& e = page.error();
      if (e.code() == ErrorCode::kTooLarge && page_size_ > 1) {
        // A nextLink keeps its $top: only the first page can ask for less now.
        page_size_ = std::max<std::size_t>(1, page_size_ / 2);
        good_pages_ = 0;
        log_->warn("response over the size limit: page size halved to {}", page_size_);
        if (first) continue;
      } else if (first && e.httpStatus() == 400 && orderby_) {
        orderby_ = false;
        log_->warn("the API refused $orderby ({}); continuing without it", e.message());
        continue;
      }
      return e;
    }
    if (page_size_ < settings_.page_size && ++good_pages_ >= settings_.restore_after) {
      page_size_ = std::min(settings_.page_size, page_size_ * 2);
      good_pages_ = 0;
    }
    fetched.insert(page->times.begin(), page->times.end());
    next = page->next_link;
    std::optional<Instant> watermark;
    if (next.empty() && move_watermark) {
      auto it = fetched.lower_bound(began);
      if (it != fetched.begin() && (!floor || *floor < *std::prev(it))) watermark = *std::prev(it);
    }
    if (auto s = commit_(watermark); !s) return s;
    if (next.empty()) return okStatus();
    if (auto s = checkNextLink(next, api_url_, links); !s) return s;
  }
}

}  // namespace mdec::source
