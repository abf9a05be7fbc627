#include "mdecollect/source/mde_retirement.h"

namespace mdec::source {

bool mdeApiRetired(std::chrono::system_clock::time_point now) { return now >= kMdeRetiredFrom; }

std::string mdeSwitchAdvice(std::string_view source_name) {
  return "change `type: mde` to `type: graph` and keep `name: " + std::string(source_name) +
         "` (its watermark and seen-set carry over); the app registration needs the Microsoft "
         "Graph application permission SecurityAlert.Read.All, admin-consented";
}

std::string mdeRetirementWarning(std::string_view source_name,
                                 std::chrono::system_clock::time_point now) {
  const std::string when =
      mdeApiRetired(now) ? "which Microsoft turned off after " : "which Microsoft turns off after ";
  return "source " + std::string(source_name) +
         ": type: mde is the legacy Defender for Endpoint API (/api/alerts), " + when +
         std::string(kMdeRetirementDate) + ": " + mdeSwitchAdvice(source_name);
}

std::vector<std::string> mdeRetirementWarnings(const config::Config& config,
                                               std::chrono::system_clock::time_point now) {
  std::vector<std::string> out;
  for (const auto& s : config.sources) {
    if (s.type == config::SourceType::kMde) out.push_back(mdeRetirementWarning(s.name, now));
  }
  return out;
}

std::optional<std::string> mdeRetiredRefusalHint(std::string_view source_name,
                                                 std::optional<int> http_status,
                                                 std::chrono::system_clock::time_point now) {
  if (!http_status || !mdeApiRetired(now)) return std::nullopt;
  switch (*http_status) {
    case 401:
    case 403:
    case 404:
    case 410:
      return "Microsoft turned the Defender for Endpoint API off after " +
             std::string(kMdeRetirementDate) + ": " + mdeSwitchAdvice(source_name);
    default:
      return std::nullopt;
  }
}

}  // namespace mdec::source
