// The `graph_incidents` source: Microsoft Graph security incidents (incidents.md), mapped to
// Elastic's m365_defender.incident documents, one per incident and alert.
//
// Paging (incidents.md §3.2): @odata.nextLink is followed verbatim (same origin only). A full
// page without a nextLink continues by lastUpdateDateTime: from the page's largest time
// (`ge`) once a probe proves that no version below it was left out, one instant at a time
// with `eq` and $skip when a whole page shares one time, and with $skip over the rest of
// the window otherwise. $skip stops at 500 (the API refuses more): what lies beyond cannot
// be read; it is logged and fails the poll, and the watermark moves on (holding it would
// stall the source for good). A query paged by nextLinks ends where the API says.
//
// Alerts (§3.3, §5.3): incidents are listed with $expand=alerts. When such a listing keeps
// failing with 5xx (three attempts; large tenants, elastic/integrations #18144), the poll
// starts its window again without $expand and reads each new incident version with its
// alerts alone (GET …/incidents/{id}?$expand=alerts, paced like any request). A version
// whose alerts cannot be read stays undelivered, and holds the watermark, until
// alerts_give_up_after has passed since its first failure; it is then delivered as one
// document that says why.
#include <spdlog/spdlog.h>

#include <map>
#include <set>
#include <unordered_set>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/units.h"
#include "mdecollect/ecs/incident_mapper.h"
#include "mdecollect/http/http_client.h"
#include "source/alert_source.h"
#include "source/map_options.h"

namespace mdec::source {
namespace {

using core::Instant;

constexpr int kMaxSteps = 1'000'000;
constexpr std::size_t kMaxSkip = 500;         // the security API refuses $skip > 500
constexpr int kExpandedListingAttempts = 3;   // §2 alerts_fallback: "after 3 attempts"
constexpr std::size_t kMaxWaiting = 100'000;  // versions remembered waiting for alerts
// After an expanded listing failed, polls list without $expand this long before trying it
// again (each try costs three failing requests of the shared quota).
constexpr std::chrono::minutes kExpandRetryAfter{10};

bool serverError(const Error& e) { return e.httpStatus() && *e.httpStatus() >= 500; }

// What the next listing request asks for (the nextLink aside).
struct Query {
  Instant from;                  // lastUpdateDateTime ge
  std::optional<Instant> until;  // lt
  std::optional<Instant> eq;     // one instant (eq), instead of from/until
  std::size_t skip = 0;
  std::optional<Instant> below;  // a probe: lt this, $top=1
  bool skipping = false;         // $skip over the range: a full page's order was not proven
};

// The listing of [from, until) (until unset: from `from` on).
Query range(const Instant& from, std::optional<Instant> until) {
  Query q;
  q.from = from;
  q.until = until;
  return q;
}

class IncidentSource final : public AlertSource {
 public:
  IncidentSource(const config::SourceConfig& config, output::Delivery& delivery,
                 http::HttpClient& client, auth::TokenProvider& tokens, core::Clock& clock,
                 SourceOptions options)
      : AlertSource(config, delivery, client, tokens, clock, options,
                    graphIncidentsProfile(config.include_unknown_enum_members),
                    "lastUpdateDateTime"),
        steady_(clock),
        mapper_(incidentMapOptions(config)),
        scanner_("lastUpdateDateTime") {}

 protected:
  ecs::LineStats mapVersion(std::string_view element, const std::string& note,
                            ecs::DocumentSink& sink) override {
    if (note.empty()) return mapper_.mapElement(element, sink);
    return mapper_.mapWithoutAlerts(element, note, sink);
  }

  Status collect(const Instant& from, std::optional<Instant> until, std::optional<Instant> floor,
                 bool move_watermark, std::stop_token stop) override {
    stop_ = stop;
    waiting_now_ = 0;
    last_wait_reason_.clear();
    fallback_ = expand_failed_at_ && steady_.steadyNow() - *expand_failed_at_ < kExpandRetryAfter;
    auto s = page(from, until, floor, move_watermark, stop);
    if (s && waiting_now_ > 0) {
      return Error(ErrorCode::kHttp,
                   std::to_string(waiting_now_) + " incident versions wait for their alerts (" +
                       last_wait_reason_ +
                       "); the watermark stays until they are read or alerts_give_up_after (" +
                       core::formatDuration(config_.alerts_give_up_after) + ") has passed");
    }
    return s;
  }

 private:
  Status page(const Instant& from, std::optional<Instant> until, std::optional<Instant> floor,
              bool move_watermark, std::stop_token stop) {
    // The watermark moves at most to the server's time when the run began (as
    // NextLinkPager's): a version stamped meanwhile is read again by the next overlap. That
    // time is taken once the first answer has told the server's clock (a process that has
    // not asked yet knows only its own, which may be behind: the watermark would then stay
    // behind, and each poll read again what lies between).
    std::optional<Instant> began;
    std::set<Instant> fetched;
    std::unordered_set<std::string> links;
    std::unordered_set<std::string> asked;  // the listings built this run: each once
    Query q = range(from, until);
    std::vector<Query> later;  // ranges of this window still to read (after a one-instant page)
    bool chained = false;      // nextLinks were followed since the last listing built here
    std::string next;
    for (int steps = 0;; ++steps) {
      if (stop.stop_requested()) return okStatus();
      if (steps > kMaxSteps) {
        return Error(ErrorCode::kInternal, "Graph incidents: a million pages in one poll");
      }
      const bool first = next.empty();
      if (first) chained = false;
      const std::size_t top = config_.page_size;
      const std::string u = first ? url(q, top) : next;
      if (first && !asked.insert(u).second) {
        return Error(ErrorCode::kInternal,
                     "Graph incidents: paging does not advance (" + u + " asked twice)");
      }
      auto facts = listPage(u, stop);
      if (facts && stop.stop_requested()) {
        // The page may be partial (the fallback stopped between incidents): commit what it
        // holds, and nothing more (never a watermark).
        if (auto s = commitFetched(std::nullopt); !s) return s;
        return okStatus();
      }
      if (!facts) {
        if (stop.stop_requested()) return okStatus();
        const Error& e = facts.error();
        if (!fallback_ && expand() && config_.alerts_fallback && serverError(e)) {
          fallback_ = true;
          expand_failed_at_ = steady_.steadyNow();
          log_->warn(
              "listing incidents with $expand=alerts failed ({}); reading this window again "
              "without it, and each new incident's alerts alone (so do the polls of the "
              "next 10 minutes; then $expand is tried again)",
              e.message());
          next.clear();
          links.clear();
          q = range(from, until);
          later.clear();
          continue;
        }
        if (first && e.httpStatus() == 400 && orderby_) {
          orderby_ = false;
          log_->warn("the API refused $orderby ({}); continuing without it", e.message());
          continue;
        }
        return e;
      }
      if (!began) began = serverNow();
      fetched.insert(facts->times.begin(), facts->times.end());
      next = facts->next_link;
      if (!next.empty()) {
        if (auto s = commitFetched(std::nullopt); !s) return s;
        if (auto s = checkNextLink(next, config_.api_url, links); !s) return s;
        chained = true;
        continue;
      }
      // No nextLink: the last page, unless it is full.
      auto more = continues(q, later, chained, *facts, top, stop);
      if (!more) return more.error();
      if (*more) {
        if (auto s = commitFetched(std::nullopt); !s) return s;
        continue;
      }
      // The window is complete.
      std::optional<Instant> watermark;
      // (Versions past $skip's reach can never be read: they do not hold the watermark,
      // which would stall the source for good; the poll fails so that /health says so.)
      if (move_watermark && waiting_now_ == 0) {
        auto it = fetched.lower_bound(*began);
        if (it != fetched.begin() && (!floor || *floor < *std::prev(it))) {
          watermark = *std::prev(it);
        }
      }
      if (auto s = commitFetched(watermark); !s) return s;
      if (overflowed_ > 0) {
        const std::size_t n = overflowed_;
        overflowed_ = 0;
        return Error(ErrorCode::kHttp,
                     std::to_string(n) +
                         " listing(s) held more than 500 incident versions at one time, which "
                         "$skip cannot reach (see the log)");
      }
      return okStatus();
    }
  }

  // After a page without a nextLink: whether the window goes on (and how: `q` changes, or
  // the next range left for later is taken up). A query whose pages carried nextLinks
  // (`chained`) ended where the API said: a last page that happens to be full is complete.
  // Only a full page the API gave no nextLink at all is continued here.
  Result<bool> continues(Query& q, std::vector<Query>& later, bool chained, const PageFacts& facts,
                         std::size_t top, std::stop_token stop) {
    const bool full = facts.alerts >= top && !facts.times.empty() && !chained;
    // This query is done: the next range left for later, if any.
    const auto next_range = [&] {
      if (later.empty()) return false;
      q = later.back();
      later.pop_back();
      return true;
    };
    if (q.eq) {
      if (full && q.skip + top <= kMaxSkip) {
        q.skip += top;
        return true;
      }
      if (full) overflow(*q.eq);
      return next_range();
    }
    if (!full) return next_range();
    if (q.skipping) {
      if (q.skip + top > kMaxSkip) {
        overflow(q.from);
        return next_range();
      }
      q.skip += top;
      return true;
    }
    const Instant largest = *std::max_element(facts.times.begin(), facts.times.end());
    const Instant smallest = *std::min_element(facts.times.begin(), facts.times.end());
    if (largest == smallest) {
      // A whole page at one instant T: T is paged with eq and $skip, then what lies below
      // it in this range (the page says nothing of it: versions before T may come after
      // the page in the API's order) and what lies after it.
      const Instant t = largest;
      // (The next instant Graph can write is 100 ns on: 7 fraction digits.)
      later.push_back(range(addNanos(t, 100), q.until));
      if (q.from < t) later.push_back(range(q.from, t));
      q = range(q.from, q.until);
      q.eq = t;
      return true;
    }
    std::size_t below = 0;
    for (const auto& t : facts.times) below += t < largest ? 1 : 0;
    auto proven = provenBelow(q, largest, below, stop);
    if (!proven) return proven.error();
    if (*proven && q.from < largest) {
      q.from = largest;  // ge: the versions at `largest` not on the page come next
    } else {
      q.skipping = true;
      q.skip = top;
    }
    return true;
  }

  bool expand() const { return config_.include_alerts; }

  void overflow(const Instant& at) {
    ++overflowed_;
    log_->error(
        "more than {} incident versions at or after {} without a nextLink: $skip cannot reach "
        "the rest (the API refuses more); they are left unread",
        kMaxSkip, apiTime(at));
  }

  std::string url(const Query& q, std::size_t top) const {
    std::string filter;
    if (q.eq) {
      filter = "lastUpdateDateTime eq " + apiTime(*q.eq);
    } else {
      filter = "lastUpdateDateTime ge " + apiTime(q.from);
      const std::optional<Instant> lt = q.below ? q.below : q.until;
      if (lt) filter += " and lastUpdateDateTime lt " + apiTime(*lt);
    }
    std::string u = baseUrl() + "/v1.0/security/incidents?$filter=" + http::urlEncode(filter);
    // Ordered by creation, as the graph source: an update keeps an incident's place, so a
    // position-based nextLink cannot skip one (ordered by lastUpdateDateTime, an update
    // moves its incident behind the pages still to come and the next page starts late).
    if (orderby_ && !q.below) u += "&$orderby=" + http::urlEncode("createdDateTime asc");
    u += "&$top=" + std::to_string(q.below ? 1 : top);
    if (q.skip > 0) u += "&$skip=" + std::to_string(q.skip);
    if (expand() && !fallback_ && !q.below) u += "&$expand=alerts";
    return u;
  }

  // Whether the listing [q.from, below) holds no version beyond the `count` a full page
  // showed below `below`: one request for the one after them.
  Result<bool> provenBelow(const Query& q, const Instant& below, std::size_t count,
                           std::stop_token stop) {
    if (count > kMaxSkip) return false;
    Query probe = range(q.from, q.until);
    probe.skip = count;
    probe.below = below;
    auto body = getBody(url(probe, 1), stop);
    if (!body) return body.error();
    body->append(ecs::kLinePadding, ' ');
    auto scan = scanner_.scan(*body, body->size() - ecs::kLinePadding, false);
    if (!scan) return Error(ErrorCode::kParse, "Graph incidents: " + scan.error().message());
    return scan->alerts.empty();
  }

  // One listing page: fetched and held (expanded, or without alerts), or, in the fallback,
  // listed without $expand and put together from each new version's own response.
  Result<PageFacts> listPage(const std::string& u, std::stop_token stop) {
    if (!fallback_) {
      return fetch(u, false, true, stop, expand() ? kExpandedListingAttempts : 0);
    }
    if (options_.wait_for_room) options_.wait_for_room(stop);
    auto body = getBody(u, stop);
    if (!body) return body.error();
    const std::size_t size = body->size();
    body->append(ecs::kLinePadding, ' ');
    auto scan = scanner_.scan(*body, size, true);
    if (!scan) {
      return Error(ErrorCode::kParse,
                   "the API answered 200 with a body that is not a page of incidents: " +
                       scan.error().message());
    }
    PageFacts facts;
    facts.alerts = scan->alerts.size();
    facts.next_link = scan->next_link;
    std::vector<state::Version> versions;
    for (const auto& a : scan->alerts) {
      if (a.time) facts.times.push_back(*a.time);
      versions.push_back(a.identified() ? state::Version{a.id, apiTime(*a.time)}
                                        : state::Version{});
    }
    auto seen = delivered(versions);
    if (!seen) return seen.error();
    std::string page = "{\"value\":[";
    std::vector<std::string> notes;
    const auto add = [&](std::string_view element, std::string note) {
      if (!notes.empty()) page += ',';
      page.append(element);
      notes.push_back(std::move(note));
    };
    for (std::size_t i = 0; i < scan->alerts.size(); ++i) {
      const AlertRef& a = scan->alerts[i];
      const std::string_view listed(body->data() + a.begin, a.end - a.begin);
      if (!a.identified()) {
        add(listed, std::string());  // mapped as it is: an error document keeps it
        continue;
      }
      if ((*seen)[i]) continue;
      if (stop.stop_requested()) break;
      const std::string key = versions[i].alert_id + '\n' + versions[i].last_update_time;
      // Three attempts, as the expanded listing's: a failing incident must not hold the
      // page (and the incidents after it) for the client's full retries.
      auto one = getBody(
          baseUrl() + "/v1.0/security/incidents/" + http::urlEncode(a.id) + "?$expand=alerts", stop,
          kExpandedListingAttempts);
      // Stopped: what was read with its alerts is still committed (the page is partial).
      if (stop.stop_requested() && !one) break;
      std::string reason;
      // A fault that may pass (5xx, a cut or garbled answer): the version waits for its
      // alerts until alerts_give_up_after. Returns whether it waits.
      const auto waits = [&](const std::string& why) {
        reason = why;
        const auto now = steady_.steadyNow();
        auto [it, inserted] = waiting_.try_emplace(key, now);
        if (inserted && waiting_.size() > kMaxWaiting) waiting_.erase(waiting_.begin());
        if (now - it->second < config_.alerts_give_up_after) {
          ++waiting_now_;
          last_wait_reason_ = why;
          log_->warn("incident {} ({}): its alerts could not be read ({}); tried again later", a.id,
                     versions[i].last_update_time, why);
          return true;
        }
        log_->error(
            "incident {} ({}): its alerts could not be read for {} ({}): delivered without them",
            a.id, versions[i].last_update_time, core::formatDuration(config_.alerts_give_up_after),
            why);
        return false;
      };
      if (one) {
        // Read for real: one whole object (anything else would break the page it is put
        // in), and this incident (not delivered as another one).
        const std::size_t answer_size = one->size();
        one->append(ecs::kLinePadding, ' ');
        auto read = scanner_.scanObject(*one, answer_size);
        if (!read) {
          if (waits("the answer is " + read.error().message())) continue;
        } else if (!read->identified() || read->id != a.id) {
          reason = "the API answered with another incident ('" + read->id + "')";
        } else {
          const std::string_view text(one->data() + read->begin, read->end - read->begin);
          add(text, std::string());
          if (*read->time == *a.time) {
            waiting_.erase(key);
            continue;
          }
          // Changed since it was listed: the version read is delivered as itself, with its
          // alerts (it may be gone again before a listing shows it; the commit skips it if
          // it was delivered already), and the listed one goes alone (its alerts are no
          // longer there to read).
          reason = "the incident changed (" + apiTime(*read->time) + ") before they were read";
        }
      } else {
        const Error& e = one.error();
        if (e.code() == ErrorCode::kAuth) return e;
        if (e.httpStatus() == 404) {
          reason = "HTTP 404";
        } else if (waits(e.httpStatus() ? "HTTP " + std::to_string(*e.httpStatus())
                                        : e.message())) {
          continue;
        }
      }
      waiting_.erase(key);
      add(listed, reason);
    }
    page += "]}";
    if (auto held = holdPage(std::move(page), std::move(notes)); !held) return held.error();
    return facts;
  }

  core::Clock& steady_;
  ecs::IncidentMapper mapper_;
  PageScanner scanner_;  // listings read in the fallback, probes, single incidents
  std::stop_token stop_;
  bool orderby_ = true;
  bool fallback_ = false;  // this poll lists without $expand
  // When an expanded listing last failed (steady clock); unset: it works, or was not tried.
  std::optional<std::chrono::steady_clock::time_point> expand_failed_at_;
  std::size_t overflowed_ = 0;
  std::size_t waiting_now_ = 0;  // versions of this poll still waiting for their alerts
  std::string last_wait_reason_;
  // Versions whose alerts could not be read: since when (steady clock).
  std::map<std::string, std::chrono::steady_clock::time_point> waiting_;
};

}  // namespace

std::unique_ptr<Source> makeIncidentSource(const config::SourceConfig& config,
                                           output::Delivery& delivery, http::HttpClient& client,
                                           auth::TokenProvider& tokens, core::Clock& clock,
                                           SourceOptions options) {
  return std::make_unique<IncidentSource>(config, delivery, client, tokens, clock, options);
}

}  // namespace mdec::source
