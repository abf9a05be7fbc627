// Test support: a fake Elasticsearch on loopback that speaks the documented REST protocol
// for what mdecollect uses, and validates requests the way Elasticsearch does.
//
// Served (every endpoint checks auth when Options ask for it; /_fake/* never does):
//   GET /                        cluster info (version.number "8.11.0", tagline).
//   POST|PUT /_bulk, /<index>/_bulk
//                                NDJSON bulk: `create` and `index` (each followed by its
//                                source line), `delete` (200 deleted / 404 not_found);
//                                `update` is parsed (with its line) and answered with an
//                                item error (400): no test uses it.
//   PUT|GET|HEAD|DELETE /_index_template/<name>, GET /_index_template
//   GET /_fake/stored, /_fake/dead   (only with Options::fake_endpoints; see below)
//
// Bulk validation, as Elasticsearch 8 answers it (whole request unless said "item"):
//   - Content-Type must be application/json or application/x-ndjson (or the
//     vnd.elasticsearch+ variants; parameters such as charset allowed), else 406
//     {"error":"Content-Type header [x] is not supported","status":406} ("... is missing"
//     without the header).
//   - Content-Encoding gzip/deflate bodies are inflated (cpp-httplib does this before the
//     handler sees the body; it also accepts zlib-wrapped data under "gzip", which
//     Elasticsearch would not). Bodies larger than max_request_bytes once inflated → 413
//     with an empty body, as Elasticsearch's HTTP layer answers it.
//   - An empty body → 400 parse_exception "request body is required"; a body not ending in
//     "\n" → 400 illegal_argument_exception "The bulk request must be terminated by a
//     newline [\n]"; "\r\n" line ends are accepted.
//   - Action lines: blank lines are skipped (as Elasticsearch does); anything but an object
//     holding exactly one action whose value is an object → 400 illegal_argument_exception
//     "Malformed action/metadata line [N], expected ..." (N counts every line from 1);
//     an unknown action or metadata key, a non-scalar metadata value, invalid JSON, a
//     duplicate key → 400 too. `create`/`index` without a source line after them → 400
//     (Elasticsearch would silently drop the last such action; the fake is stricter so a
//     client bug shows). No `_index` in the line or the path → 400
//     action_request_validation_exception "Validation Failed: 1: index is missing;"; an
//     empty `_id` or one over 512 bytes → 400 action_request_validation_exception.
//   - Per item, in request order: a missing `_id` is generated (20 characters); an index
//     name that is not lowercase or starts with '_', '-', '+' → 400
//     invalid_index_name_exception; the scripted answer (scriptItems) when not 0; a source
//     line that is not a JSON object → 400 mapper_parsing_exception; `create` of an `_id`
//     already stored in that index → 409 version_conflict_engine_exception; else 201
//     result "created" (`index` over an existing `_id`: 200 "updated", the version bumped).
//   - Data streams: an index whose name matches the index_patterns of the highest-priority
//     stored template that has "data_stream" is a data stream. Items then answer the
//     backing index ".ds-<name>-<yyyy.MM.dd>-000001" as `_index` (stored() stays keyed by
//     the name the request used); `index` (op_type index) → 400 illegal_argument_exception;
//     a source without "@timestamp" → 400 mapper_parsing_exception.
//   - Query parameters (filter_path, refresh, ...) are ignored; responses are complete.
//   - Responses: Content-Type application/json and X-elastic-product: Elasticsearch; a bulk
//     answer is {"took","errors","items":[{"<action>":{"_index","_id",...}}]} with `errors`
//     true iff an item failed (any status >= 300, 409 included, as Elasticsearch does).
//
// Auth (when api_key or username is set): "Authorization: ApiKey <api_key>" exactly, or
// "Basic base64(username:password)"; otherwise 401 security_exception with
// WWW-Authenticate headers (the body in Elasticsearch's error format).
//
// Concurrent bulk requests are served at once (cpp-httplib's worker threads): each body is
// read, inflated and parsed outside the fake's lock, then its items are processed under it,
// the whole bulk at a time and in request order, as one shard would.
//
// Thread safety: every member may be called from any thread while the server runs. The
// scriptItems callback runs on a server thread with the fake's lock held: it must not call
// back into the fake.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mdec::testing {

class FakeElasticsearch {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;  // 0: an ephemeral port
    // When set: requests must carry "Authorization: ApiKey <api_key>", the key exactly (the
    // scheme name case-insensitive, as Elasticsearch reads it).
    std::string api_key;
    // When username is set: "Authorization: Basic base64(username:password)" is accepted.
    std::string username, password;
    // Larger bulk bodies (after inflating) → 413.
    std::size_t max_request_bytes = std::size_t{100} << 20;
    // Keep every bulk body for bulkBodies() (off for long runs).
    bool record_bodies = true;
    // Serve GET /_fake/stored → {"stored":{index:{id:writes}},"stats":{...}} (writes = the
    // successful creates/updates of that _id: 1 for exactly-once; 409s do not count) and
    // GET /_fake/dead → {"dead":{index:[ids answered 400, in order]}}.
    bool fake_endpoints = false;
  };

  struct Stats {
    int bulk_requests = 0;      // every bulk request received, answered or not
    int items = 0;              // items answered
    int created = 0;            // 201s
    int updated = 0;            // 200s (`index` over an existing _id)
    int conflicts = 0;          // 409s
    int item_failures = 0;      // other item errors (400, 429, 5xx, ...)
    int gzip_requests = 0;      // bulk requests with Content-Encoding gzip
    int auth_failures = 0;      // 401s from the auth check (not scripted ones)
    int bad_requests = 0;       // whole bulk requests refused by validation (400, 406, 413)
    int scripted_requests = 0;  // whole bulk requests answered from scriptRequests
  };

  // Binds and starts serving on its own thread. port() is -1 when it could not listen.
  FakeElasticsearch();
  explicit FakeElasticsearch(Options options);
  // Stops serving and joins the server thread.
  ~FakeElasticsearch();
  FakeElasticsearch(const FakeElasticsearch&) = delete;
  FakeElasticsearch& operator=(const FakeElasticsearch&) = delete;

  int port() const;
  std::string url() const;  // "http://127.0.0.1:<port>"

  // Whole-request answers for the next bulk requests, one consumed per request (appended to
  // what is still queued), each after the body was read: 429 (es_rejected_execution_exception),
  // 503, 500, 401, 403 (Elasticsearch error bodies), 413 (empty body), 0 = answer normally,
  // -1 = close the connection without answering.
  void scriptRequests(std::vector<int> statuses);
  // Per-item answers, asked for every create/index item after its metadata was validated:
  // 0 = normal behaviour (201, or 409 when the _id is already stored in that index); 400
  // (mapper_parsing_exception), 429 (es_rejected_execution_exception), 500, 503
  // (unavailable_shards_exception) or 409 to fail that item. `attempt` counts the earlier
  // items with this _id in the same index (0 the first time).
  void scriptItems(std::function<int(const std::string& id, int attempt)> decide);

  // What is stored: index (as the request named it) → (_id → source JSON line).
  std::map<std::string, std::map<std::string, std::string>> stored() const;
  std::size_t storedCount() const;
  // index → (_id → successful creates/updates of it).
  std::map<std::string, std::map<std::string, int>> writeCounts() const;
  // index → the _ids answered 400, in order (repeats kept).
  std::map<std::string, std::vector<std::string>> deadIds() const;
  Stats stats() const;

  // The bulk request bodies (inflated), in arrival order, when record_bodies.
  std::vector<std::string> bulkBodies() const;
  // A header of the last bulk request (name case-insensitive).
  std::optional<std::string> lastHeader(const std::string& name) const;
  // Index templates: name → body as PUT.
  std::map<std::string, std::string> templates() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mdec::testing
