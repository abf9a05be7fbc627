// How the alert sources page through an API, as pure logic over two callbacks — "fetch this
// page" and "commit the page just fetched" — and the server's clock, so that each rule can
// be tried alone against a scripted API (tests/unit/source/pagers_test.cpp).
//
// WindowPager (the Defender API, collection.md): a window of lastUpdateTime is asked for in
// pages of `page_size`; a short page completes its window. A full page means there may be
// more: the window is split in two (or, when it is unbounded, into a bounded part up to the
// server's time and an unbounded rest); a window too narrow to split is paged with $skip.
// $orderby is only a hint: a full page that looks sorted is believed only after a probe —
// one request for the single alert after the page's k alerts below its last time
// ($top=1&$skip=k, lt that time) — comes back empty, which proves the page held every alert
// of the window below that time whatever order the API used. Then the window continues
// from that time (keyset paging); otherwise it is split. An API that ignores $orderby can
// therefore cost requests, never an alert.
//
// NextLinkPager (Microsoft Graph, graph.md): @odata.nextLink is followed verbatim until a
// page has none; a link must have the scheme, host and port of api_url, or the poll fails
// with a clear error and the token is never sent there.
//
// Watermarks: the watermark moves only over windows that are complete, and never past the
// server's time (its Date header) when the run began, plus kClockSkewAllowance: a version
// stamped during a long run and visible late is read again by the next poll's overlap,
// and an alert stamped in the future is delivered but cannot drag the watermark ahead of
// the alerts still to come.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <unordered_set>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/result.h"

namespace spdlog {
class logger;
}

namespace mdec::source {

inline constexpr std::chrono::seconds kClockSkewAllowance{60};

core::Instant addNanos(core::Instant t, std::int64_t ns);

struct Window {
  core::Instant from;
  std::optional<core::Instant> to;  // unset: unbounded
};

struct WindowQuery {
  Window window;
  std::size_t top = 0;
  std::size_t skip = 0;
  bool orderby = true;  // ask for lastUpdateTime asc
  bool probe = false;   // a probe: its alerts are counted, never delivered or committed
};

// What a pager learns of a page it fetched.
struct PageFacts {
  std::size_t alerts = 0;
  std::vector<core::Instant> times;  // the valid times, in the order the API sent them
  std::string next_link;             // Graph's @odata.nextLink ("" : the last page)
};

struct PagerSettings {
  std::size_t page_size = 1000;
  // After this many pages at a halved page size, the size is doubled again (up to page_size).
  int restore_after = 8;
};

class WindowPager {
 public:
  using Fetch = std::function<Result<PageFacts>(const WindowQuery&)>;
  // Commits the page last fetched (never a probe), moving the watermark to `watermark` when
  // set (every version up to it has been committed).
  using Commit = std::function<Status(std::optional<core::Instant> watermark)>;
  using Now = std::function<core::Instant()>;

  WindowPager(PagerSettings settings, Fetch fetch, Commit commit, Now server_now,
              std::shared_ptr<spdlog::logger> log);

  // Reads every version whose time is in [from, until) (until unset: from `from` on). With
  // `move_watermark`, commits carry the new watermark, which only ever rises above `floor`.
  // Returns early, with stopped() true, on a stop request.
  Status run(core::Instant from, std::optional<core::Instant> until,
             std::optional<core::Instant> floor, bool move_watermark, std::stop_token stop);

  bool stopped() const { return stopped_; }
  std::size_t pageSize() const { return page_size_; }
  bool orderby() const { return orderby_; }
  // Requests sent by the last run() that were probes.
  std::uint64_t probes() const { return probes_; }

 private:
  struct Fetched {
    PageFacts facts;
    std::size_t top = 0;
  };
  Result<Fetched> fetchPage(WindowQuery query);
  std::optional<core::Instant> watermarkBelow(const std::optional<core::Instant>& bound);

  PagerSettings settings_;
  Fetch fetch_;
  Commit commit_;
  Now server_now_;
  std::shared_ptr<spdlog::logger> log_;
  std::size_t page_size_;
  int good_pages_ = 0;  // at the current (halved) size
  bool orderby_ = true;
  bool move_watermark_ = false;
  core::Instant began_{};  // the server's time when run() began
  bool stopped_ = false;
  std::uint64_t probes_ = 0;
  std::set<core::Instant> fetched_;
  std::optional<core::Instant> best_;
};

class NextLinkPager {
 public:
  // Fetches a URL: the first page's (built by the source) or a nextLink.
  using Fetch = std::function<Result<PageFacts>(const std::string& url)>;
  using Commit = WindowPager::Commit;
  using Now = WindowPager::Now;
  // The first page's URL for a page size and whether to send $orderby.
  using FirstUrl = std::function<std::string(std::size_t top, bool orderby)>;

  NextLinkPager(PagerSettings settings, std::string api_url, Fetch fetch, Commit commit,
                Now server_now, std::shared_ptr<spdlog::logger> log);

  // Follows the links from FirstUrl until a page has none; the watermark (with
  // `move_watermark`) moves with the last page, to the largest time fetched below the
  // server's time when the run began.
  Status run(const FirstUrl& first_url, std::optional<core::Instant> floor, bool move_watermark,
             std::stop_token stop);

  bool stopped() const { return stopped_; }
  std::size_t pageSize() const { return page_size_; }

 private:
  PagerSettings settings_;
  std::string api_url_;
  Fetch fetch_;
  Commit commit_;
  Now server_now_;
  std::shared_ptr<spdlog::logger> log_;
  std::size_t page_size_;
  int good_pages_ = 0;
  bool orderby_ = true;
  bool stopped_ = false;
};

// Whether `link` is an absolute http(s) URL with the scheme, host and port of `base`
// (ports compared after defaults: http 80, https 443; host case ignored).
bool sameOrigin(const std::string& link, const std::string& base);

// "scheme://host:port" of an http(s) URL, lower case, the default port written out; "" for
// anything else. Two URLs of one origin give the same text.
std::string originOf(const std::string& url);

// Whether an @odata.nextLink may be followed: it has api_url's origin (the token is only
// ever sent there) and was not met before in this run (`followed` remembers it). The error
// says which origin it named, or that it came twice.
Status checkNextLink(const std::string& link, const std::string& api_url,
                     std::unordered_set<std::string>& followed);

// Times as the API sends them, 7 fraction digits and Z: the seen-set's, the watermark's and
// the filters' one form, so that equal times compare equal.
std::string apiTime(const core::Instant& t);

}  // namespace mdec::source
