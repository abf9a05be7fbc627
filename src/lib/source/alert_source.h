// What the two API sources (mde_source.cpp, graph_source.cpp) share: the API client, the
// page scan, the seen-set, mapping, the page commits on a thread of their own, the
// watermark's bounds, pruning and the poll's stats. Each subclass says how it pages
// (collect()) and, for Graph, how an alert becomes a Defender one (translate()).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mdecollect/core/fiber.h"
#include "mdecollect/ecs/mapper.h"
#include "mdecollect/source/api_client.h"
#include "mdecollect/source/page_scan.h"
#include "mdecollect/source/pagers.h"
#include "mdecollect/source/source.h"
#include "mdecollect/state/state_store.h"

namespace mdec::source {

// The seen-set is kept this long beyond the overlap (late_arrival_window), so that the
// versions a poll reads again are still known after a short outage or a slow poll.
inline constexpr std::chrono::hours kSeenSetMargin{1};

class AlertSource : public Source {
 public:
  AlertSource(const config::SourceConfig& config, output::Delivery& delivery,
              http::HttpClient& client, auth::TokenProvider& tokens, core::Clock& clock,
              SourceOptions options, ApiProfile profile, std::string time_key);
  ~AlertSource() override;

  Result<PollStats> poll(std::stop_token stop) final;
  bool backfills() const final { return true; }
  Result<PollStats> pollRange(const core::Instant& since, const core::Instant& until,
                              std::stop_token stop) final;
  std::string summary(const PollStats& stats) const final;
  void trim() override;

 protected:
  // Reads every version in [from, until) (until unset: from `from` on) through fetch() and
  // commitFetched(); the watermark moves (above `floor`) only with `move_watermark`.
  virtual Status collect(const core::Instant& from, std::optional<core::Instant> until,
                         std::optional<core::Instant> floor, bool move_watermark,
                         std::stop_token stop) = 0;
  // The Defender shape of an alert, when it needs one (Graph); false: map it as it is.
  virtual bool translate(std::string_view alert, std::string& out);
  // Maps one new version (a page element followed by at least kLinePadding readable bytes).
  // `note` is what holdPage() was given for it ("" normally). By default: translate(), then
  // the alert mapper.
  virtual ecs::LineStats mapVersion(std::string_view element, const std::string& note,
                                    ecs::DocumentSink& sink);

  // GETs one page and scans it. A page to deliver is held until commitFetched(); a probe's
  // is dropped at once. `max_attempts` > 0: the API client's attempts for this request.
  Result<PageFacts> fetch(const std::string& url, bool probe, bool next_link, std::stop_token stop,
                          int max_attempts = 0);
  // GETs a body as it is (the API client's retries and pacing; `max_attempts` as fetch()'s).
  Result<std::string> getBody(const std::string& url, std::stop_token stop, int max_attempts = 0);
  // Holds a page the source put together itself ({"value":[...]}), as fetch() holds one it
  // GETs; notes[i] goes to mapVersion() with the i-th element (missing: "").
  Result<PageFacts> holdPage(std::string body, std::vector<std::string> notes);
  // Which of `versions` were delivered already (after every page handed over is committed).
  Result<std::vector<bool>> delivered(const std::vector<state::Version>& versions);
  // Hands the held page to the committer, with the new watermark when set.
  Status commitFetched(std::optional<core::Instant> watermark);

  core::Instant serverNow() const { return api_.serverNow(); }
  std::string baseUrl() const;

  const config::SourceConfig& config_;
  std::shared_ptr<spdlog::logger> log_;
  SourceOptions options_;

 private:
  struct Page {
    std::string body;  // followed by ecs::kLinePadding spare bytes
    std::size_t size = 0;
    ScannedPage scan;
    core::Instant future_after;      // versions later than this are stamped in the future
    core::Instant now;               // the server's time when it was fetched
    std::vector<std::string> notes;  // holdPage()'s, by element
  };
  Result<PageFacts> hold(Page page, bool probe, bool next_link);

  Status runCollect(const core::Instant& from, std::optional<core::Instant> until,
                    std::optional<core::Instant> floor, bool move_watermark, std::stop_token stop);
  Status commit(Page& page, const std::optional<core::Instant>& watermark);
  Status waitCommit();
  std::string takeBuffer();
  Result<PollStats> finish();

  output::Delivery& delivery_;
  state::StateStore& store_;
  core::Clock& clock_;
  ApiClient api_;
  PageScanner scanner_;
  ecs::Mapper mapper_;
  std::string translated_;  // the Defender shape of the alert being mapped
  std::unique_ptr<telemetry::SourceMetrics> own_metrics_;  // when none was given
  telemetry::SourceMetrics& m_;

  std::optional<Page> held_;    // fetched, not yet handed to the committer
  core::Task<Status> pending_;  // the commit in progress (beside the fetch: fiber.h)
  std::mutex buffers_mu_;
  std::vector<std::string> buffers_;  // bodies of committed pages, for reuse
  std::optional<core::Instant> best_watermark_;
  PollStats stats_;
  ApiClient::Counters counters_at_start_;
};

std::unique_ptr<Source> makeMdeAlertSource(const config::SourceConfig& config,
                                           output::Delivery& delivery, http::HttpClient& client,
                                           auth::TokenProvider& tokens, core::Clock& clock,
                                           SourceOptions options);
std::unique_ptr<Source> makeIncidentSource(const config::SourceConfig& config,
                                           output::Delivery& delivery, http::HttpClient& client,
                                           auth::TokenProvider& tokens, core::Clock& clock,
                                           SourceOptions options);
std::unique_ptr<Source> makeGraphAlertSource(const config::SourceConfig& config,
                                             output::Delivery& delivery, http::HttpClient& client,
                                             auth::TokenProvider& tokens, core::Clock& clock,
                                             SourceOptions options);

}  // namespace mdec::source
