#include "source/alert_source.h"

#include <spdlog/spdlog.h>

#include <unordered_set>

#include "mdecollect/core/iso8601.h"
#include "source/map_options.h"

namespace mdec::source {
namespace {

using core::Instant;
using std::chrono::duration_cast;
using std::chrono::nanoseconds;

std::int64_t nanosOf(std::chrono::milliseconds d) { return duration_cast<nanoseconds>(d).count(); }

// Hands each document of the new versions to the page being delivered; the documents of
// an alert the page scan could not identify are held back (see AlertSource::commit).
class PageSink : public ecs::DocumentSink {
 public:
  struct Held {
    std::string id;
    std::string body;
    bool error;
  };
  explicit PageSink(output::Delivery::Page& page) : page_(page) {}
  void holdNext(bool hold) { hold_ = hold; }
  void onDocument(const ecs::DocumentView& d) override {
    if (d.error) ++errors;
    if (!hold_) {
      page_.add(d.id, d.json);
      return;
    }
    held.push_back(Held{std::string(d.id), std::string(d.json), d.error});
  }
  std::vector<Held> held;
  std::uint64_t errors = 0;

 private:
  output::Delivery::Page& page_;
  bool hold_ = false;
};

}  // namespace

AlertSource::AlertSource(const config::SourceConfig& config, output::Delivery& delivery,
                         http::HttpClient& client, auth::TokenProvider& tokens, core::Clock& clock,
                         SourceOptions options, ApiProfile profile, std::string time_key)
    : config_(config),
      log_(sourceLogger(config.name)),
      options_(options),
      delivery_(delivery),
      store_(delivery.store()),
      clock_(clock),
      api_(config, std::move(profile), client, tokens, clock,
           [&] {
             ApiClientOptions a = options.api;
             if (options.metrics != nullptr) a.metrics = options.metrics;
             return a;
           }()),
      scanner_(std::move(time_key)),
      mapper_(mapOptions(config)),
      own_metrics_(options.metrics != nullptr || options.api.metrics != nullptr
                       ? nullptr
                       : std::make_unique<telemetry::SourceMetrics>(
                             config.name, config::sourceTypeName(config.type))),
      m_(options.metrics != nullptr       ? *options.metrics
         : options.api.metrics != nullptr ? *options.api.metrics
                                          : *own_metrics_) {
  if (auto wm = store_.watermark(config_.name); wm && *wm) {
    m_.watermark_unix_ms = telemetry::unixMillisOf(**wm);
  }
}

AlertSource::~AlertSource() { (void)waitCommit(); }

bool AlertSource::translate(std::string_view, std::string&) { return false; }

ecs::LineStats AlertSource::mapVersion(std::string_view element, const std::string& /*note*/,
                                       ecs::DocumentSink& sink) {
  if (translate(element, translated_)) {
    // translate() leaves kLinePadding spare bytes after it.
    return mapper_.mapElement(translated_, sink);
  }
  // Each alert is followed by the rest of the padded body.
  return mapper_.mapElement(element, sink);
}

Result<std::string> AlertSource::getBody(const std::string& url, std::stop_token stop,
                                         int max_attempts) {
  return api_.get(url, stop, nullptr, max_attempts);
}

Result<std::vector<bool>> AlertSource::delivered(const std::vector<state::Version>& versions) {
  if (auto s = waitCommit(); !s) return s.error();
  return store_.seen(config_.name, versions);
}

Result<PageFacts> AlertSource::holdPage(std::string body, std::vector<std::string> notes) {
  Page page;
  page.body = std::move(body);
  page.size = page.body.size();
  page.body.append(ecs::kLinePadding, ' ');
  page.notes = std::move(notes);
  return hold(std::move(page), false, false);
}

std::string AlertSource::baseUrl() const {
  std::string base = config_.api_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

Result<PollStats> AlertSource::poll(std::stop_token stop) {
  stats_ = PollStats{};
  counters_at_start_ = api_.counters();
  auto wm = store_.watermark(config_.name);
  if (!wm) return wm.error();
  std::optional<Instant> watermark;
  if (*wm) watermark = core::parseIsoDateTime(**wm);
  Instant from = watermark ? addNanos(*watermark, -nanosOf(config_.late_arrival_window))
                           : addNanos(serverNow(), -nanosOf(config_.initial_interval));
  // Below the oldest time the seen-set still covers, versions delivered before would be
  // delivered again (late_arrival_window was raised since): never read there.
  auto floor = store_.seenSince(config_.name);
  if (!floor) return floor.error();
  if (*floor) {
    if (auto f = core::parseIsoDateTime(**floor); f && from < *f) {
      log_->info(
          "reading from {} rather than {}: the seen-set covers no earlier versions (the "
          "overlap grows to late_arrival_window as polls go by)",
          apiTime(*f), apiTime(from));
      from = *f;
    }
  }
  if (!watermark) {
    // Where live coverage begins (kept once a watermark exists): backfills stop there.
    if (auto s = store_.setCollectedSince(config_.name, apiTime(from)); !s) return s.error();
  }
  best_watermark_ = watermark;
  auto collected = runCollect(from, std::nullopt, watermark, true, stop);
  if (!collected) return collected.error();
  if (!stats_.stopped && best_watermark_) {
    // Versions older than the overlap can never be read again: forget them (but not those a
    // backfill still in progress may read again after a restart).
    Instant prune_before =
        addNanos(*best_watermark_, -nanosOf(config_.late_arrival_window) -
                                       duration_cast<nanoseconds>(kSeenSetMargin).count());
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

Result<PollStats> AlertSource::pollRange(const Instant& since, const Instant& until,
                                         std::stop_token stop) {
  stats_ = PollStats{};
  counters_at_start_ = api_.counters();
  auto collected = runCollect(since, until, std::nullopt, false, stop);
  if (!collected) return collected.error();
  return finish();
}

Status AlertSource::runCollect(const Instant& from, std::optional<Instant> until,
                               std::optional<Instant> floor, bool move_watermark,
                               std::stop_token stop) {
  held_.reset();
  auto collected = collect(from, until, floor, move_watermark, stop);
  // Every page handed to the committer is committed (or failed) before the poll ends.
  auto committed = waitCommit();
  held_.reset();
  if (stop.stop_requested()) stats_.stopped = true;
  if (!collected) {
    if (stats_.stopped) return okStatus();
    return collected.error();
  }
  return committed;
}

void AlertSource::trim() {
  scanner_.trim();
  mapper_.trim();
  std::string().swap(translated_);
  std::lock_guard lock(buffers_mu_);
  buffers_.clear();
}

std::string AlertSource::summary(const PollStats& s) const {
  std::string line = fmt::format(
      "poll: {} alerts fetched ({} new versions), {} documents written ({} error), {} "
      "requests, {} retries, {} throttled, watermark {}, lag {}s",
      s.alerts, s.new_versions, s.documents, s.errors, s.requests, s.retries, s.throttled,
      s.watermark.value_or("none"), s.lag ? s.lag->count() : 0);
  if (s.future > 0) {
    line += fmt::format(
        ", {} new versions stamped in the future (delivered; the watermark "
        "stays at the server's time)",
        s.future);
  }
  return line;
}

Result<PageFacts> AlertSource::fetch(const std::string& url, bool probe, bool next_link,
                                     std::stop_token stop, int max_attempts) {
  if (!probe && options_.wait_for_room) options_.wait_for_room(stop);
  // A page whose body is not a page of alerts is retried like a transport fault: the next
  // attempt may be whole (a proxy cut it, the API hiccuped).
  std::optional<Error> last;
  core::Backoff backoff({.first = std::chrono::seconds(2), .max = std::chrono::seconds(4)});
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0 && !clock_.sleepFor(backoff.next(), stop)) break;
    std::string buffer = takeBuffer();
    auto body = api_.get(url, stop, &buffer, max_attempts);
    if (!body) return body.error();
    Page page;
    page.body = std::move(*body);
    page.size = page.body.size();
    page.body.append(ecs::kLinePadding, ' ');
    auto held = hold(std::move(page), probe, next_link);
    if (held) return held;
    last = held.error();
    log_->warn("{}", last->message());
  }
  if (stop.stop_requested()) return Error(ErrorCode::kInternal, "stopped");
  return last ? *last : Error(ErrorCode::kParse, "no page of alerts");
}

Result<PageFacts> AlertSource::hold(Page page, bool probe, bool next_link) {
  auto scanned = scanner_.scan(page.body, page.size, next_link);
  if (!scanned) {
    return Error(ErrorCode::kParse,
                 "the API answered 200 with a body that is not a page of "
                 "alerts: " +
                     scanned.error().message());
  }
  page.scan = std::move(*scanned);
  PageFacts facts;
  facts.alerts = page.scan.alerts.size();
  facts.times.reserve(facts.alerts);
  for (const auto& a : page.scan.alerts) {
    if (a.time) facts.times.push_back(*a.time);
  }
  facts.next_link = page.scan.next_link;
  ++stats_.pages;
  stats_.alerts += facts.alerts;
  m_.alerts_fetched += facts.alerts;
  if (!probe) {
    page.now = serverNow();
    page.future_after = addNanos(page.now, duration_cast<nanoseconds>(kClockSkewAllowance).count());
    held_ = std::move(page);
  }
  return facts;
}

Status AlertSource::commitFetched(std::optional<Instant> watermark) {
  if (!held_) return Error(ErrorCode::kInternal, "no page to commit");
  if (auto s = waitCommit(); !s) return s;
  if (watermark && (!best_watermark_ || *best_watermark_ < *watermark)) {
    best_watermark_ = watermark;
  }
  auto shared = std::make_shared<Page>(std::move(*held_));
  held_.reset();
  // Pages are committed on a thread of their own, one at a time and in page order, so that
  // mapping and writing a page overlaps fetching the next (the seen-set lookup is part of
  // the commit, so a page re-reading ties sees every earlier page's versions). At most two
  // pages are in memory: the one being committed and the one being fetched.
  pending_ = core::Task<Status>([this, shared, watermark]() -> Status {
    auto s = commit(*shared, watermark);
    std::lock_guard lock(buffers_mu_);
    buffers_.push_back(std::move(shared->body));
    return s;
  });
  return okStatus();
}

Status AlertSource::waitCommit() {
  if (!pending_.valid()) return okStatus();
  return pending_.get();
}

std::string AlertSource::takeBuffer() {
  std::lock_guard lock(buffers_mu_);
  if (buffers_.empty()) return {};
  std::string b = std::move(buffers_.back());
  buffers_.pop_back();
  return b;
}

Status AlertSource::commit(Page& page, const std::optional<Instant>& watermark) {
  const auto& alerts = page.scan.alerts;
  // Which alert versions are new? Only those are mapped.
  std::vector<state::Version> versions(alerts.size());
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    if (alerts[i].identified()) versions[i] = {alerts[i].id, apiTime(*alerts[i].time)};
  }
  auto seen = store_.seen(config_.name, versions);
  if (!seen) return seen.error();
  state::PageCommit c;
  c.source = config_.name;
  if (watermark) c.watermark = apiTime(*watermark);
  output::Delivery::Page out(delivery_, config_.name);
  PageSink sink(out);
  std::uint64_t future = 0;
  std::uint64_t dropped_dates = 0;
  // Alerts without an id and a valid time are keyed by their documents' (content) ids, at
  // the time they were delivered: kept as long as any version read at that time, so the
  // overlap does not deliver them again.
  const std::string now_key = apiTime(page.now);
  // A page that holds one version twice delivers it once.
  std::unordered_set<std::string> in_page;
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    const bool known = alerts[i].identified();
    if (known && (*seen)[i]) continue;
    if (known &&
        !in_page.insert(versions[i].alert_id + '\n' + versions[i].last_update_time).second) {
      continue;
    }
    sink.holdNext(!known);
    sink.held.clear();
    const std::string_view element(page.body.data() + alerts[i].begin,
                                   alerts[i].end - alerts[i].begin);
    static const std::string kNoNote;
    dropped_dates +=
        mapVersion(element, i < page.notes.size() ? page.notes[i] : kNoNote, sink).dropped_dates;
    if (known) {
      c.seen.push_back(versions[i]);
      if (page.future_after < *alerts[i].time) {
        ++future;
        log_->warn(
            "alert {} is stamped {}, past the API's clock ({}): delivered; the watermark "
            "stays at the server's time",
            alerts[i].id, apiTime(*alerts[i].time), apiTime(page.now));
      }
      continue;
    }
    std::vector<state::Version> keys;  // looked up with no time: any time matches
    for (const auto& h : sink.held) keys.push_back({"!" + h.id, ""});
    auto dup = store_.seen(config_.name, keys);
    if (!dup) return dup.error();
    for (std::size_t d = 0; d < sink.held.size(); ++d) {
      if ((*dup)[d] || !in_page.insert(keys[d].alert_id).second) {
        if (sink.held[d].error) --sink.errors;
        continue;
      }
      c.seen.push_back({keys[d].alert_id, now_key});
      out.add(sink.held[d].id, sink.held[d].body);
    }
  }
  stats_.errors += sink.errors;
  stats_.new_versions += c.seen.size();
  stats_.documents += out.documents();
  stats_.future += future;
  if (out.documents() == 0 && c.seen.empty() && !c.watermark) return okStatus();
  const std::uint64_t documents = out.documents();
  const std::int64_t watermark_ms = c.watermark ? telemetry::unixMillisOf(*c.watermark) : 0;
  auto s = out.commit(std::move(c));
  if (s) {
    m_.documents_produced += documents;
    m_.error_documents += sink.errors;
    m_.future_versions += future;
    m_.dates_dropped += dropped_dates;
    if (watermark_ms != 0) m_.watermark_unix_ms = watermark_ms;
  }
  return s;
}

Result<PollStats> AlertSource::finish() {
  api_.savePacing();
  const auto& c = api_.counters();
  stats_.requests = c.requests - counters_at_start_.requests;
  stats_.retries = c.retries - counters_at_start_.retries;
  stats_.throttled = c.throttled - counters_at_start_.throttled;
  auto wm = store_.watermark(config_.name);
  if (wm && *wm) {
    stats_.watermark = **wm;
    if (auto t = core::parseIsoDateTime(**wm)) {
      if (auto ns = core::nanosBetween(*t, serverNow())) {
        stats_.lag = std::chrono::seconds(*ns / 1'000'000'000);
      }
    }
  }
  return stats_;
}

std::unique_ptr<Source> makeApiSource(const config::SourceConfig& config,
                                      output::Delivery& delivery, http::HttpClient& client,
                                      auth::TokenProvider& tokens, core::Clock& clock,
                                      SourceOptions options) {
  if (config.type == config::SourceType::kGraph) {
    return makeGraphAlertSource(config, delivery, client, tokens, clock, std::move(options));
  }
  if (config.type == config::SourceType::kGraphIncidents) {
    return makeIncidentSource(config, delivery, client, tokens, clock, std::move(options));
  }
  return makeMdeAlertSource(config, delivery, client, tokens, clock, std::move(options));
}

}  // namespace mdec::source
