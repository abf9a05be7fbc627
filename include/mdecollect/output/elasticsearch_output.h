// The Elasticsearch (and OpenSearch) output (outputs.md): documents from the outbox go to
// the data stream logs-microsoft_defender_endpoint.log-<namespace> through POST /_bulk with
// `create` actions carrying each document's deterministic _id, so a document sent twice
// (after a crash, or a retry) is stored once: the second answer is 409, counted as a
// duplicate. Per item: 201 acknowledged; 409 acknowledged as a duplicate; 429 and 5xx sent
// again in a later bulk; any other 4xx written with its error to the dead-letter file and
// acknowledged. Whole request: a connection failure tries the next host; 413 splits the
// bulk; 401/403, 429 and 5xx fail the delivery (retried with backoff, the documents wait
// in the outbox). Up to bulk_in_flight bulks are sent at once; documents are acknowledged
// in outbox order, each only once it and every earlier one settled.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/config/config.h"
#include "mdecollect/core/result.h"
#include "mdecollect/http/concurrent_http_client.h"
#include "mdecollect/http/http_client.h"
#include "mdecollect/output/output.h"
#include "mdecollect/telemetry/metrics.h"

namespace mdec::output {

inline constexpr std::string_view kDataStreamPrefix = "logs-microsoft_defender_endpoint.log-";
// The incident documents' dataset (graph_incidents: logs-m365_defender.incident-<namespace>).
inline constexpr std::string_view kIncidentDataset = "m365_defender.incident";

// What the output did since it started (for logs and metrics).
struct ElasticsearchCounters {
  std::atomic<std::uint64_t> created{0};
  std::atomic<std::uint64_t> duplicates{0};     // 409: already stored
  std::atomic<std::uint64_t> dead_lettered{0};  // 4xx document errors
  std::atomic<std::uint64_t> item_retries{0};   // 429/5xx items sent again later
  std::atomic<std::uint64_t> bulk_requests{0};
  std::atomic<std::uint64_t> failed_requests{0};  // whole requests that failed
};

struct ElasticsearchOutputOptions {
  std::string dead_letter_path;  // NDJSON, appended and fsynced before acknowledging
  // Set: bulks go through this one (tests inject theirs); else through
  // makeElasticsearchConcurrentClient(config, make_client).
  std::unique_ptr<http::ConcurrentHttpClient> concurrent_client;
  // Set: the client each bulk in flight is sent through (the tracing client); else
  // makeElasticsearchClient(config).
  std::function<std::unique_ptr<http::HttpClient>()> make_client;
  // Where per-source outcomes are counted (null: not counted).
  telemetry::Metrics* metrics = nullptr;
};

std::unique_ptr<Output> makeElasticsearchOutput(const config::ElasticsearchOutputConfig& config,
                                                ElasticsearchOutputOptions options,
                                                std::shared_ptr<ElasticsearchCounters> counters);

// The curl client an Elasticsearch output talks through (TLS, proxy, timeouts).
std::unique_ptr<http::HttpClient> makeElasticsearchClient(
    const config::ElasticsearchOutputConfig& config);
// Requests at once, each through a client `make_client` makes (empty:
// makeElasticsearchClient(config)), all on one curl multi handle.
std::unique_ptr<http::ConcurrentHttpClient> makeElasticsearchConcurrentClient(
    const config::ElasticsearchOutputConfig& config,
    std::function<std::unique_ptr<http::HttpClient>()> make_client = {});

// ---- the pieces, for tests and benchmarks ----

// The data stream a document goes to: logs-<dataset>-<namespace> from its data_stream (as
// the mapper wrote it). The dataset is the alerts' (kDataStreamPrefix) unless the document
// says kIncidentDataset; the namespace is "default" when the document has none.
std::string dataStreamOf(std::string_view document);

// Appends `{"create":{"_index":…,"_id":…}}\n<document>\n`.
void appendCreate(std::string& body, std::string_view index, std::string_view id,
                  std::string_view document);

// gzip (RFC 1952) of `data`.
Result<std::string> gzip(std::string_view data);

// The Authorization header value for the config: "ApiKey <base64>" ("id:key" is encoded;
// an already encoded key is sent as it is), "Basic <base64 user:password>", or empty.
std::string authorizationHeader(const config::ElasticsearchOutputConfig& config);

struct BulkItemResult {
  int status = 0;
  std::string id;
  std::string error_type;
  std::string error_reason;
};

// The items of a bulk response, in request order.
Result<std::vector<BulkItemResult>> parseBulkResponse(std::string_view body);

// Elasticsearch's own message from an error response body (error.type: error.reason), or
// the start of the body.
std::string elasticsearchError(std::string_view body);

}  // namespace mdec::output
