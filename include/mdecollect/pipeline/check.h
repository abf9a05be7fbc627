// `mdecollect check`: everything a configuration needs, tried once. Each mde/graph source
// gets one token request and one API request ($top=1; no paging, no state, no watermark);
// each file source's globs, the state directory and the file output's directory are looked
// at (a probe file is created and removed); each Elasticsearch host is asked whether it is
// reachable, accepts the credentials (and grants the write privileges, where the cluster
// can say) and holds the current index template. Every failure known to have one cause
// carries a hint that says what to change. Nothing printed ever holds a secret.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mdecollect/config/config.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/core/result.h"
#include "mdecollect/http/http_client.h"

namespace mdec::pipeline {

struct CheckLine {
  std::string subject;  // "config", "source tenant-a", "state", "output file",
                        // "elasticsearch http://host:9200"
  std::string step;     // "token", "alerts API", "template", ...
  bool ok = false;
  std::string detail;  // what was seen (never a secret)
  std::string hint;    // what to change; set on failures with a known cause
};

using HttpClientFactory =
    std::function<std::unique_ptr<http::HttpClient>(const http::CurlClientOptions&)>;

struct CheckDeps {
  // Makes the client one source or one Elasticsearch host is talked to through (the
  // options carry its proxy, TLS and user agent). Empty: http::makeCurlClient.
  HttpClientFactory make_client;
  // The token cache's and the timings' clock. Null: the system clock.
  core::Clock* clock = nullptr;
};

// Runs every check, in config order: the config itself, each source, the state directory,
// each output. Never throws for what it finds; failures are lines.
std::vector<CheckLine> runChecks(const config::Config& config, CheckDeps& deps);

bool allPassed(const std::vector<CheckLine>& lines);

// Columns CHECK ("<subject> / <step>"), RESULT (pass or FAIL) and DETAIL, aligned; under a
// failed line with a hint, an indented "  hint: ..." line. Ends with a summary line.
std::string renderCheckTable(const std::vector<CheckLine>& lines);

// {"ok":bool,"checks":[{"subject","step","ok","detail","hint"},...]}, one line.
std::string renderCheckJson(const std::vector<CheckLine>& lines);

// What a failure is about, for hintFor.
enum class HintTopic {
  kToken,          // the token request of an mde or graph source
  kMdeApi,         // the Defender for Endpoint alerts API
  kGraphApi,       // Microsoft Graph alerts_v2
  kIncidentsApi,   // Microsoft Graph security incidents
  kElasticsearch,  // an Elasticsearch host
};

// Advice for a failure with a known cause, or empty. Reads the error's code, HTTP status,
// Retry-After and message (AADSTS codes, curl's transport errors).
std::string hintFor(HintTopic topic, const Error& error);

}  // namespace mdec::pipeline
