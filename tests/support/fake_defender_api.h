// Test support: a scripted Defender API (/api/alerts answered from a list of alerts, as an
// HttpClient), a token provider that never refuses, and a clock that sleeps by moving on.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/auth/token_provider.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/http/http_client.h"

namespace mdec::testing {

using core::Instant;

// Starts at 2026-12-01T00:00:00Z; sleepFor moves both clocks on at once (thread-safe).
class FakeClock : public core::Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    std::lock_guard lock(mu_);
    return wall_;
  }
  std::chrono::steady_clock::time_point steadyNow() const override {
    std::lock_guard lock(mu_);
    return steady_;
  }
  bool sleepFor(std::chrono::milliseconds d, std::stop_token stop) override {
    advance(d);
    return !stop.stop_requested();
  }
  void advance(std::chrono::milliseconds d) {
    std::lock_guard lock(mu_);
    wall_ += d;
    steady_ += d;
  }

 private:
  mutable std::mutex mu_;
  std::chrono::system_clock::time_point wall_ =
      std::chrono::system_clock::time_point(std::chrono::seconds(1'796'083'200));  // 2026-12-01
  std::chrono::steady_clock::time_point steady_{};
};

class FakeTokens : public auth::TokenProvider {
 public:
  Result<std::string> token(bool refresh) override {
    if (refresh || n_ == 0) ++n_;
    return std::string("token-") + std::to_string(n_);
  }
  std::uint64_t refreshes() const override { return n_; }

 private:
  std::uint64_t n_ = 0;
};

inline std::string urlDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

// The query parameters of a URL, decoded (a key without '=' maps to "").
inline std::map<std::string, std::string> queryParams(const std::string& url) {
  std::map<std::string, std::string> params;
  const auto q = url.find('?');
  for (std::size_t i = q == std::string::npos ? url.size() : q + 1; i < url.size();) {
    auto amp = url.find('&', i);
    if (amp == std::string::npos) amp = url.size();
    const std::string kv = url.substr(i, amp - i);
    const auto eq = kv.find('=');
    params[kv.substr(0, eq)] = eq == std::string::npos ? "" : urlDecode(kv.substr(eq + 1));
    i = amp + 1;
  }
  return params;
}

struct ServedAlert {
  std::optional<Instant> time;  // unset: matched by every window (a hostile API)
  std::string json;
};

// /api/alerts with $filter=lastUpdateTime ge A [and lastUpdateTime lt B], $top, $skip;
// $orderby ignored (the order of `alerts`).
class FakeApi : public http::HttpClient {
 public:
  std::vector<ServedAlert> alerts;
  bool pretty = false;
  std::string date_header;
  int requests = 0;

  void add(const std::string& id, const std::string& time, const std::string& title = "t") {
    const std::string sep = pretty ? "\": \"" : "\":\"";
    std::string json = "{\"id" + sep + id + "\", \"title" + sep + title + "\",\n  \"severity" +
                       sep + "High\", \"lastUpdateTime" + sep + time + "\", \"alertCreationTime" +
                       sep + time + "\", \"evidence\": []}";
    alerts.push_back({core::parseIsoDateTime(time), json});
  }

  Result<http::HttpResponse> send(const http::HttpRequest& req) override {
    ++requests;
    std::map<std::string, std::string> params = queryParams(req.url);
    const std::string filter = params["$filter"];
    std::optional<Instant> ge, lt;
    if (auto p = filter.find("lastUpdateTime ge "); p != std::string::npos) {
      ge = core::parseIsoDateTime(filter.substr(p + 18, filter.find(' ', p + 18) - p - 18));
    }
    if (auto p = filter.find("lastUpdateTime lt "); p != std::string::npos) {
      lt = core::parseIsoDateTime(filter.substr(p + 18));
    }
    const std::size_t top = std::stoul(params["$top"]);
    const std::size_t skip = params.count("$skip") ? std::stoul(params["$skip"]) : 0;
    std::vector<const ServedAlert*> match;
    for (const auto& a : alerts) {
      if (a.time && ((ge && *a.time < *ge) || (lt && !(*a.time < *lt)))) continue;
      match.push_back(&a);
    }
    http::HttpResponse res;
    res.status = 200;
    if (!date_header.empty()) res.headers["date"] = date_header;
    res.body = pretty ? "{\n  \"@odata.context\": \"x\",\n  \"value\": [\n" : "{\"value\":[";
    for (std::size_t i = skip; i < match.size() && i < skip + top; ++i) {
      if (i > skip) res.body += pretty ? ",\n    " : ",";
      res.body += match[i]->json;
    }
    res.body += pretty ? "\n  ]\n}\n" : "]}";
    return res;
  }
};

}  // namespace mdec::testing
