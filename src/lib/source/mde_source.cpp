// The `mde` source: the Defender for Endpoint alerts API (/api/alerts), paged by windows of
// lastUpdateTime (WindowPager, pagers.h).
#include "mdecollect/http/http_client.h"
#include "source/alert_source.h"

namespace mdec::source {
namespace {

class MdeAlertSource final : public AlertSource {
 public:
  MdeAlertSource(const config::SourceConfig& config, output::Delivery& delivery,
                 http::HttpClient& client, auth::TokenProvider& tokens, core::Clock& clock,
                 SourceOptions options)
      : AlertSource(config, delivery, client, tokens, clock, options, mdeProfile(),
                    "lastUpdateTime"),
        pager_(
            PagerSettings{config.page_size, options.restore_page_size_after},
            [this](const WindowQuery& q) { return fetch(url(q), q.probe, false, stop_); },
            [this](std::optional<core::Instant> wm) { return commitFetched(wm); },
            [this] { return serverNow(); }, log_) {}

 protected:
  Status collect(const core::Instant& from, std::optional<core::Instant> until,
                 std::optional<core::Instant> floor, bool move_watermark,
                 std::stop_token stop) override {
    stop_ = stop;
    return pager_.run(from, until, floor, move_watermark, stop);
  }

 private:
  std::string url(const WindowQuery& q) const {
    const auto time = [](const core::Instant& t) { return core::formatRfc3339(t, 7); };
    std::string filter = "lastUpdateTime ge " + time(q.window.from);
    if (q.window.to) filter += " and lastUpdateTime lt " + time(*q.window.to);
    std::string u = baseUrl() + "/api/alerts?$filter=" + http::urlEncode(filter);
    if (q.orderby && !q.probe) u += "&$orderby=" + http::urlEncode("lastUpdateTime asc");
    u += "&$top=" + std::to_string(q.top);
    if (q.skip > 0) u += "&$skip=" + std::to_string(q.skip);
    if (!q.probe) u += "&$expand=evidence";
    return u;
  }

  WindowPager pager_;
  std::stop_token stop_;
};

}  // namespace

std::unique_ptr<Source> makeMdeAlertSource(const config::SourceConfig& config,
                                           output::Delivery& delivery, http::HttpClient& client,
                                           auth::TokenProvider& tokens, core::Clock& clock,
                                           SourceOptions options) {
  return std::make_unique<MdeAlertSource>(config, delivery, client, tokens, clock, options);
}

}  // namespace mdec::source
