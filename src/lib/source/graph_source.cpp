// The `graph` source: Microsoft Graph alerts_v2 (graph.md), paged by @odata.nextLink
// (NextLinkPager, pagers.h); each alert is translated into the Defender shape and then
// mapped by the unchanged mapper.
#include "mdecollect/ecs/graph_translate.h"
#include "mdecollect/http/http_client.h"
#include "source/alert_source.h"

namespace mdec::source {
namespace {

class GraphAlertSource final : public AlertSource {
 public:
  GraphAlertSource(const config::SourceConfig& config, output::Delivery& delivery,
                   http::HttpClient& client, auth::TokenProvider& tokens, core::Clock& clock,
                   SourceOptions options)
      : AlertSource(config, delivery, client, tokens, clock, options, graphProfile(),
                    "lastUpdateDateTime"),
        pager_(
            PagerSettings{config.page_size, options.restore_page_size_after}, config.api_url,
            [this](const std::string& u) { return fetch(u, false, true, stop_); },
            [this](std::optional<core::Instant> wm) { return commitFetched(wm); },
            [this] { return serverNow(); }, log_) {}

 protected:
  Status collect(const core::Instant& from, std::optional<core::Instant> until,
                 std::optional<core::Instant> floor, bool move_watermark,
                 std::stop_token stop) override {
    stop_ = stop;
    return pager_.run([&](std::size_t top, bool orderby) { return url(from, until, top, orderby); },
                      floor, move_watermark, stop);
  }

  bool translate(std::string_view alert, std::string& out) override {
    return translator_.translate(alert, out);
  }

 private:
  std::string url(const core::Instant& from, const std::optional<core::Instant>& until,
                  std::size_t top, bool orderby) const {
    const auto time = [](const core::Instant& t) { return core::formatRfc3339(t, 7); };
    std::string filter = "lastUpdateDateTime ge " + time(from);
    if (until) filter += " and lastUpdateDateTime lt " + time(*until);
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
    // Ordered by creation, nextLink pages can only gain items while the world changes
    // (an update keeps its alert's place; a late alert is inserted): whatever a
    // position-based nextLink then reads twice, the seen-set skips, and nothing is skipped.
    // Ordered by lastUpdateDateTime, an update would move its alert out of the pages read
    // so far, and the pages after it would start one item late.
    std::string u = baseUrl() + "/v1.0/security/alerts_v2?$filter=" + http::urlEncode(filter);
    if (orderby) u += "&$orderby=" + http::urlEncode("createdDateTime asc");
    return u + "&$top=" + std::to_string(top);
  }

  NextLinkPager pager_;
  ecs::GraphTranslator translator_;
  std::stop_token stop_;
};

}  // namespace

std::unique_ptr<Source> makeGraphAlertSource(const config::SourceConfig& config,
                                             output::Delivery& delivery, http::HttpClient& client,
                                             auth::TokenProvider& tokens, core::Clock& clock,
                                             SourceOptions options) {
  return std::make_unique<GraphAlertSource>(config, delivery, client, tokens, clock, options);
}

}  // namespace mdec::source
