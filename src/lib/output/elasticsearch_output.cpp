// The Elasticsearch output and `setup`'s index template installation. See
// elasticsearch_output.h and outputs.md.
#include "mdecollect/output/elasticsearch_output.h"

#include <fcntl.h>
#include <libdeflate.h>
#include <openssl/evp.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <ranges>
#include <set>
#include <system_error>
#include <utility>

#include "mdecollect/core/base64.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"
#include "mdecollect/core/private_file.h"
#include "mdecollect/http/concurrent_http_client.h"
#include "mdecollect/output/es_setup.h"
#include "mdecollect/output/es_template.h"

namespace mdec::output {
namespace {

std::string nowRfc3339() {
  return core::formatRfc3339(core::toInstant(std::chrono::system_clock::now()), 3);
}

// An HTTP status that is not 2xx as an error with Elasticsearch's own message.
Error httpError(const std::string& what, const http::HttpResponse& res) {
  const std::string message =
      what + " (HTTP " + std::to_string(res.status) + ": " + elasticsearchError(res.body) + ")";
  if (res.status == 401 || res.status == 403) {
    return Error(ErrorCode::kAuth,
                 message + (res.status == 401 ? "; check api_key or username/password"
                                              : "; the user or API key lacks a privilege"))
        .withHttpStatus(res.status);
  }
  if (res.status == 429) return Error(ErrorCode::kThrottled, message).withHttpStatus(429);
  return Error(ErrorCode::kHttp, message).withHttpStatus(res.status);
}

// Sets `out` from `result` when the value is there with that type.
template <typename T>
void readIf(simdjson::simdjson_result<T>&& result, T& out) {
  T value;
  if (std::move(result).get(value) == simdjson::SUCCESS) out = value;
}

// A URL without a trailing slash, joined with `path` (which starts with '/').
std::string join(std::string_view host, std::string_view path) {
  while (!host.empty() && host.back() == '/') host.remove_suffix(1);
  return std::string(host) + std::string(path);
}

}  // namespace

// ---- pieces ----

std::string dataStreamOf(std::string_view document) {
  // The document's top-level data_stream (the first of duplicate keys, as the mapper's
  // document has it): its namespace ("default" when missing, empty or not a string), and
  // its dataset when it is one this project writes (the alerts' otherwise).
  thread_local simdjson::ondemand::parser parser;
  thread_local std::string padded;
  padded.assign(document);
  padded.append(simdjson::SIMDJSON_PADDING, '\0');
  std::string_view ns;
  std::string_view dataset;
  simdjson::ondemand::document doc;
  simdjson::ondemand::object root;
  if (parser.iterate(padded.data(), document.size(), padded.size()).get(doc) == simdjson::SUCCESS &&
      doc.get_object().get(root) == simdjson::SUCCESS) {
    for (auto field : root) {
      std::string_view key;
      if (field.unescaped_key().get(key) != simdjson::SUCCESS) break;
      if (key != "data_stream") continue;
      simdjson::ondemand::object ds;
      if (field.value().get_object().get(ds) != simdjson::SUCCESS) break;
      bool have_ns = false;
      bool have_dataset = false;
      for (auto member : ds) {
        if (member.unescaped_key().get(key) != simdjson::SUCCESS) break;
        if (key == "namespace" && !have_ns) {
          have_ns = true;
          if (member.value().get_string().get(ns) != simdjson::SUCCESS) ns = {};
        } else if (key == "dataset" && !have_dataset) {
          have_dataset = true;
          if (member.value().get_string().get(dataset) != simdjson::SUCCESS) dataset = {};
        }
        if (have_ns && have_dataset) break;
      }
      break;
    }
  }
  if (ns.empty()) ns = "default";
  if (dataset == kIncidentDataset) {
    return "logs-" + std::string(kIncidentDataset) + "-" + std::string(ns);
  }
  return std::string(kDataStreamPrefix) + std::string(ns);
}

void appendCreate(std::string& body, std::string_view index, std::string_view id,
                  std::string_view document) {
  body += R"({"create":{"_index":)";
  core::appendString(body, index);
  body += R"(,"_id":)";
  core::appendString(body, id);
  body += "}}\n";
  body += document;
  body += '\n';
}

Result<std::string> gzip(std::string_view data) {
  // libdeflate, level 1: zlib's ratio at twice zlib's speed (the bulks are whole in memory,
  // which is what libdeflate compresses). Level 1 is the Beats default too.
  const std::unique_ptr<libdeflate_compressor, decltype(&libdeflate_free_compressor)> compressor(
      libdeflate_alloc_compressor(1), &libdeflate_free_compressor);
  if (!compressor) return Error(ErrorCode::kInternal, "gzip: out of memory");
  std::string out(libdeflate_gzip_compress_bound(compressor.get(), data.size()), '\0');
  const std::size_t written =
      libdeflate_gzip_compress(compressor.get(), data.data(), data.size(), out.data(), out.size());
  if (written == 0) return Error(ErrorCode::kInternal, "gzip: libdeflate did not finish");
  out.resize(written);
  // The buffer was sized for incompressible data: give back the rest, about 9/10 of it for
  // documents, while the body waits in flight.
  out.shrink_to_fit();
  return out;
}

std::string authorizationHeader(const config::ElasticsearchOutputConfig& config) {
  if (!config.api_key.empty()) {
    const std::string& key = config.api_key.reveal();
    // "id:api_key" as Elasticsearch's create-API-key response gives it in two parts, or
    // the "encoded" form it gives ready for the header.
    return "ApiKey " + (key.find(':') != std::string::npos ? core::base64Encode(key) : key);
  }
  if (!config.username.empty()) {
    return "Basic " + core::base64Encode(config.username + ":" + config.password.reveal());
  }
  return {};
}

Result<std::vector<BulkItemResult>> parseBulkResponse(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS) {
    return Error(ErrorCode::kParse, "the bulk response is not JSON");
  }
  simdjson::dom::array items;
  if (root["items"].get_array().get(items) != simdjson::SUCCESS) {
    return Error(ErrorCode::kParse, "the bulk response has no items array");
  }
  std::vector<BulkItemResult> out;
  for (simdjson::dom::element item : items) {
    simdjson::dom::object wrapper;
    if (item.get_object().get(wrapper) != simdjson::SUCCESS || wrapper.size() != 1) {
      return Error(ErrorCode::kParse, "a bulk response item is not {action: {...}}");
    }
    const simdjson::dom::element result = (*wrapper.begin()).value;
    BulkItemResult r;
    std::int64_t status = 0;
    if (result["status"].get_int64().get(status) != simdjson::SUCCESS) {
      return Error(ErrorCode::kParse, "a bulk response item has no status");
    }
    // Bounded before use: 4294967497 must not become 201 ("created") in an int.
    if (status < 100 || status > 599) {
      return Error(ErrorCode::kParse, "a bulk response item has status " + std::to_string(status) +
                                          ", not an HTTP status");
    }
    r.status = static_cast<int>(status);
    std::string_view text;
    if (result["_id"].get_string().get(text) == simdjson::SUCCESS) r.id = std::string(text);
    simdjson::dom::element error;
    if (result["error"].get(error) == simdjson::SUCCESS) {
      if (error["type"].get_string().get(text) == simdjson::SUCCESS)
        r.error_type = std::string(text);
      if (error["reason"].get_string().get(text) == simdjson::SUCCESS) {
        r.error_reason = std::string(text);
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string elasticsearchError(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) == simdjson::SUCCESS) {
    std::string_view type;
    std::string_view reason;
    simdjson::dom::element error;
    if (root["error"].get(error) == simdjson::SUCCESS) {
      if (error.is_string()) return std::string(error.get_string().value());
      readIf(error["type"].get_string(), type);
      readIf(error["reason"].get_string(), reason);
      if (!type.empty() || !reason.empty()) return std::string(type) + ": " + std::string(reason);
    }
  }
  return std::string(body.substr(0, 200));
}

// ---- talking to the cluster: hosts in turn, auth, TLS ----

EsTransport::EsTransport(const config::ElasticsearchOutputConfig& config,
                         std::unique_ptr<http::HttpClient> client)
    : config_(config),
      client_(client ? std::move(client) : makeElasticsearchClient(config)),
      authorization_(authorizationHeader(config)) {}

Result<http::HttpRequest> EsTransport::request(const config::ElasticsearchOutputConfig& config,
                                               const std::string& authorization,
                                               const std::string& method, std::string body,
                                               bool ndjson) {
  http::HttpRequest req;
  req.method = method;
  req.timeout = config.timeout;
  req.max_response_bytes = 64u << 20;
  req.headers.push_back({"Accept", "application/json"});
  if (!authorization.empty()) req.headers.push_back({"Authorization", authorization});
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.headers.push_back({"Content-Type", ndjson ? "application/x-ndjson" : "application/json"});
    if (config.compression && !body.empty()) {
      auto packed = gzip(body);
      if (!packed) return packed.error();
      req.headers.push_back({"Content-Encoding", "gzip"});
      req.body = std::move(*packed);
    } else {
      req.body = std::move(body);
    }
  }
  return req;
}

Result<http::HttpResponse> EsTransport::send(const std::string& method, const std::string& path,
                                             std::string body, bool ndjson) {
  // One request, built (and compressed) once, sent to each host in turn.
  auto built = request(config_, authorization_, method, std::move(body), ndjson);
  if (!built) return built.error();
  http::HttpRequest& req = *built;
  std::optional<Error> last;
  for (std::size_t tried = 0; tried < config_.hosts.size(); ++tried) {
    const std::size_t index = (current_ + tried) % config_.hosts.size();
    const std::string& host = config_.hosts[index];
    req.url = join(host, path);
    auto res = client_->send(req);
    if (res) {
      current_ = index;
      return res;
    }
    // Connection-level failure (or a bad URL): the next host.
    last = Error(res.error().code(), host + ": " + res.error().message());
  }
  return last ? *last : Error(ErrorCode::kInvalidArgument, "elasticsearch: no hosts");
}

std::unique_ptr<http::HttpClient> makeElasticsearchClient(
    const config::ElasticsearchOutputConfig& config) {
  http::CurlClientOptions options;
  options.proxy_url = config.proxy_url;
  options.tls.verify = config.ssl.verify;
  options.tls.ca_file = config.ssl.ca_file;
  options.user_agent = "mdecollect/" MDEC_VERSION_STRING;
  return http::makeCurlClient(options);
}

std::unique_ptr<http::ConcurrentHttpClient> makeElasticsearchConcurrentClient(
    const config::ElasticsearchOutputConfig& config,
    std::function<std::unique_ptr<http::HttpClient>()> make_client) {
  if (!make_client) make_client = [config] { return makeElasticsearchClient(config); };
  return http::makeConcurrentClient(std::move(make_client));
}

// ---- setup ----

Result<std::string> installIndexTemplate(const config::ElasticsearchOutputConfig& config,
                                         EsTransport& transport, const IndexTemplateSpec& spec) {
  const std::string name(spec.name);
  const std::string path = "/_index_template/" + name;
  const std::string version = std::to_string(indexTemplateVersion(spec));
  IndexTemplateOptions options;
  options.ilm_policy = config.ilm_policy;
  auto current = templateState(config, transport, spec);
  if (!current) return current.error();
  if (*current == TemplateState::kCurrent) {
    return "index template " + name + " left unchanged (version " + version + ")";
  }
  const std::string what = "install the index template " + name;
  auto res = transport.send("PUT", path, indexTemplateJson(spec, options), false);
  if (!res) return Error(res.error()).withContext(what);
  if (res->status != 200) return httpError(what, *res);
  return "index template " + name +
         (*current == TemplateState::kMissing ? " created" : " updated") + " (version " + version +
         ", pattern " + std::string(spec.pattern) +
         (config.ilm_policy.empty() ? std::string() : ", ILM policy " + config.ilm_policy) + ")";
}

Result<std::string> installIndexTemplate(const config::ElasticsearchOutputConfig& config,
                                         EsTransport& transport) {
  return installIndexTemplate(config, transport, kEndpointTemplate);
}

Result<std::string> installIndexTemplates(const config::ElasticsearchOutputConfig& config,
                                          EsTransport& transport) {
  std::string out;
  for (const auto& spec : indexTemplates()) {
    auto done = installIndexTemplate(config, transport, spec);
    if (!done) return done.error();
    if (!out.empty()) out.push_back('\n');
    out.append(*done);
  }
  return out;
}

std::vector<IndexTemplateId> templatesWritten(const config::Config& config) {
  bool endpoint = config.sources.empty();
  bool incident = false;
  for (const auto& source : config.sources) {
    if (config::collectsIncidents(source)) {
      incident = true;
    } else {
      endpoint = true;
    }
  }
  std::vector<IndexTemplateId> out;
  for (const auto& spec : indexTemplates()) {
    if (spec.id == IndexTemplateId::kEndpoint ? endpoint : incident) out.push_back(spec.id);
  }
  return out;
}

Result<TemplateState> templateState(const config::ElasticsearchOutputConfig& config,
                                    EsTransport& transport, const IndexTemplateSpec& spec) {
  const std::string what = "read the index template " + std::string(spec.name);
  auto res = transport.send("GET", "/_index_template/" + std::string(spec.name), {}, false);
  if (!res) return Error(res.error()).withContext(what);
  if (res->status == 404) return TemplateState::kMissing;
  if (res->status != 200) return httpError(what, *res);
  simdjson::dom::parser parser;
  simdjson::padded_string padded(res->body);
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS) {
    return Error(ErrorCode::kParse, what + ": the answer is not JSON");
  }
  simdjson::dom::element tmpl;
  if (root.at_pointer("/index_templates/0/index_template").get(tmpl) != simdjson::SUCCESS) {
    return TemplateState::kMissing;
  }
  std::int64_t version = -1;
  readIf(tmpl.at_pointer("/_meta/version").get_int64(), version);
  std::string_view policy;
  // Elasticsearch answers settings nested ({"index":{"lifecycle":{"name":…}}}).
  if (tmpl.at_pointer("/template/settings/index/lifecycle/name").get_string().get(policy) !=
      simdjson::SUCCESS) {
    readIf(tmpl.at_pointer("/template/settings/index.lifecycle.name").get_string(), policy);
  }
  if (version == indexTemplateVersion(spec) && policy == config.ilm_policy) {
    return TemplateState::kCurrent;
  }
  return TemplateState::kOutdated;
}

Result<TemplateState> templateState(const config::ElasticsearchOutputConfig& config,
                                    EsTransport& transport) {
  return templateState(config, transport, kEndpointTemplate);
}

// ---- the output ----

namespace {

// Bulks in flight for one deliver() call: each is the items it carries and its request
// (kept until its answer, and sent to the next host when the connection fails).
struct Bulk {
  std::vector<std::size_t> items;
  http::HttpRequest request;
  std::size_t host = 0;   // index in config.hosts
  std::size_t tried = 1;  // hosts tried
};

constexpr std::string_view kBulkPath =
    "/_bulk?filter_path=errors,items.*._id,items.*.status,items.*.error.type,"
    "items.*.error.reason";

// deliver() is handed one bulk's worth from the outbox and reads on, a bulk at a time, while
// earlier bulks are in flight, holding at most bulk_in_flight + 1 bulks' documents, and at
// most this many bulks in one call (so that a stop request is not kept waiting long).
constexpr std::size_t kReadAheadBulks = 64;

class ElasticsearchOutput final : public Output {
 public:
  ElasticsearchOutput(const config::ElasticsearchOutputConfig& config,
                      ElasticsearchOutputOptions options,
                      std::shared_ptr<ElasticsearchCounters> counters)
      : config_(config),
        client_(options.concurrent_client
                    ? std::move(options.concurrent_client)
                    : makeElasticsearchConcurrentClient(config, std::move(options.make_client))),
        authorization_(authorizationHeader(config)),
        in_flight_(std::clamp<std::size_t>(config.bulk_in_flight, 1, 32)),
        dead_letter_path_(std::move(options.dead_letter_path)),
        metrics_(options.metrics),
        counters_(counters ? std::move(counters) : std::make_shared<ElasticsearchCounters>()) {}

  const std::string& name() const override { return name_; }
  bool countsDelivered() const override { return true; }
  std::string summary() const override {
    return fmt::format(
        "{} created, {} duplicates (already stored), {} dead-lettered, {} items sent again, "
        "{} bulk requests ({} failed)",
        counters_->created.load(), counters_->duplicates.load(), counters_->dead_lettered.load(),
        counters_->item_retries.load(), counters_->bulk_requests.load(),
        counters_->failed_requests.load());
  }

  Status open(state::StateStore& store) override {
    if (auto s = store.registerOutput(name_); !s) return s;
    return okStatus();
  }

  // One bulk: deliver() reads on from the outbox itself.
  std::size_t maxBatchDocuments() const override { return config_.bulk_max_docs; }
  std::size_t maxBatchBytes() const override {
    return static_cast<std::size_t>(config_.bulk_max_bytes);
  }

  // The batch, then the outbox after it (read a bulk at a time as slots free), is cut into
  // bulks of at most bulk_max_docs documents and about bulk_max_bytes, up to bulk_in_flight
  // of them sent at once. Items settle in whatever order the answers come; only the prefix
  // whose items all settled is acknowledged (as it grows, about a bulk at a time), so a later
  // bulk answered before an earlier one acknowledges nothing until the earlier one settled
  // too. After a whole-request failure no further bulk starts; those in flight are read to
  // their end (what they settled is remembered and not sent again) and the failure is
  // returned. Returns when the outbox is empty, or after kReadAheadBulks bulks read ahead.
  Status deliver(const std::vector<state::OutboxDocument>& batch,
                 state::StateStore& store) override {
    if (batch.empty()) return okStatus();
    Stream s(batch);
    // Items settled by an earlier, partly failed delivery are not sent again.
    s.add(batch.data(), batch.size(), settled_);
    enqueue(s, 0);

    std::optional<Error> failure;
    std::map<std::uint64_t, Bulk> flying;
    // Bulks whose bodies are being gzipped on their own threads (in the order made): gzip is
    // most of this thread's work, done beside the bulks in flight; made, never started after
    // a failure (their documents are not acknowledged, and go in a later delivery).
    std::deque<Prepared> preparing;
    // Should anything throw, the transfers end before the requests they read are freed.
    struct Drain {
      http::ConcurrentHttpClient& client;
      ~Drain() {
        for (int i = 0; i < 1000 && client.inFlight() > 0; ++i) client.wait();
      }
    } drain{*client_};
    std::size_t read_ahead = 0;
    bool outbox_empty = false;
    // Bounded: every bulk started is answered (the transfers have timeouts), and each answer
    // removes one; a 413 splits a bulk into two of half its size; the outbox is read ahead
    // at most kReadAheadBulks times.
    // The next bulk, its body framed and its gzip started on its own thread: false when
    // there is none (the outbox read to its end, or read ahead far enough for now).
    const auto prepareNext = [&]() -> bool {
      if (s.queue.empty() && !outbox_empty && read_ahead < kReadAheadBulks &&
          s.items.size() < (in_flight_ + 1) * config_.bulk_max_docs) {
        // The outbox as a stream: the next bulk's worth after the last document read.
        auto more = store.readOutbox(s.last_seq, config_.bulk_max_docs,
                                     static_cast<std::size_t>(config_.bulk_max_bytes));
        if (!more || more->empty()) {
          outbox_empty = true;  // or unreadable now: the next delivery reads it
        } else {
          ++read_ahead;
          const std::size_t from = s.base + s.items.size();
          s.owned.push_back(std::move(*more));
          s.add(s.owned.back().data(), s.owned.back().size(), settled_);
          enqueue(s, from);
        }
      }
      if (s.queue.empty()) return false;
      preparing.push_back(prepareBulk(s, std::move(s.queue.front())));
      s.queue.pop_front();
      return true;
    };
    for (;;) {
      // The window filled, in the order the bulks were made (each waited for if its gzip is
      // still running: usually it ran while the earlier bulks were in flight).
      while (!failure && flying.size() < in_flight_ && (!preparing.empty() || prepareNext())) {
        Prepared next = std::move(preparing.front());
        preparing.pop_front();
        auto request = next.request.get();
        if (!request) {
          failure = request.error();
          break;
        }
        Bulk bulk;
        bulk.items = std::move(next.items);
        bulk.request = std::move(*request);
        bulk.host = current_host_ % config_.hosts.size();
        const std::uint64_t tag = next_tag_++;
        startBulk(tag, flying.emplace(tag, std::move(bulk)).first->second);
      }
      // One bulk ahead: gzipped while the window's are in flight.
      if (!failure && preparing.empty()) prepareNext();
      if (flying.empty()) break;
      for (http::Completion& done : client_->wait()) {
        auto node = flying.extract(done.tag);
        if (node.empty()) std::abort();  // an answer to a request never started
        Bulk& bulk = node.mapped();
        if (!done.response) {
          const auto& hosts = config_.hosts;
          if (bulk.tried < hosts.size()) {  // connection-level failure: the next host
            ++bulk.tried;
            bulk.host = (bulk.host + 1) % hosts.size();
            startBulk(done.tag, flying.insert(std::move(node)).position->second);
            continue;
          }
          ++counters_->failed_requests;
          if (!failure) {
            failure = Error(ErrorCode::kNetwork, "elasticsearch: " + hosts[bulk.host] + ": " +
                                                     done.response.error().message());
          }
          continue;
        }
        current_host_ = bulk.host;
        if (auto settled = settle(s, bulk.items, *done.response); !settled && !failure) {
          failure = settled.error();
        }
      }
      // What settled in order so far is acknowledged (about a bulk at a time), and its
      // documents read ahead are let go.
      if (!failure) {
        if (auto acked = acknowledgePrefix(s, store, config_.bulk_max_docs); !acked) {
          failure = acked.error();
        }
      }
    }

    // Every dead letter of the call is written (those past the acknowledged prefix too: they
    // are remembered as settled and not sent again).
    if (auto w = writeDeadLetters(s.items, s.items.size()); !w) return w;
    if (auto acked = acknowledgePrefix(s, store, 1); !acked) return acked;
    std::size_t waiting = 0;
    for (const Item& item : s.items) {
      if (item.settled) {
        settled_.insert(item.doc->seq);
      } else {
        ++waiting;
      }
    }
    if (failure) return *failure;
    if (waiting > 0) {
      return Error(ErrorCode::kThrottled,
                   std::to_string(waiting) +
                       " documents were refused for now (429 or 5xx per item); sent again later");
    }
    return okStatus();
  }

 private:
  struct Item {
    const state::OutboxDocument* doc = nullptr;
    bool settled = false;
    bool dead = false;
    int status = 0;
    std::string error;
    std::string index;
  };

  // One deliver() call's documents: the batch, then what it read ahead from the outbox.
  // Items are numbered by position in the stream; those acknowledged leave the front.
  struct Stream {
    explicit Stream(const std::vector<state::OutboxDocument>& batch) : last_seq(batch.back().seq) {}
    Item& at(std::size_t position) { return items[position - base]; }
    void add(const state::OutboxDocument* docs, std::size_t n,
             const std::set<std::int64_t>& settled) {
      for (std::size_t i = 0; i < n; ++i) {
        Item item;
        item.doc = &docs[i];
        item.settled = settled.count(docs[i].seq) != 0;
        items.push_back(std::move(item));
      }
      if (n > 0) last_seq = docs[n - 1].seq;
    }

    std::deque<Item> items;
    std::size_t base = 0;  // position of items.front()
    std::int64_t last_seq;
    std::deque<std::vector<state::OutboxDocument>> owned;  // read ahead, in order
    std::deque<std::vector<std::size_t>> queue;            // bulks to send: positions
  };

  // Queues the unsettled items from `from` on in bulks of at most bulk_max_docs documents
  // and about bulk_max_bytes.
  void enqueue(Stream& s, std::size_t from) {
    std::vector<std::size_t> chunk;
    std::size_t bytes = 0;
    for (std::size_t p = from; p < s.base + s.items.size(); ++p) {
      const Item& item = s.at(p);
      if (item.settled) continue;
      const std::size_t size = item.doc->body.size() + 100;
      if (!chunk.empty() &&
          (chunk.size() >= config_.bulk_max_docs || bytes + size > config_.bulk_max_bytes)) {
        s.queue.push_back(std::move(chunk));
        chunk.clear();
        bytes = 0;
      }
      bytes += size;
      chunk.push_back(p);
    }
    if (!chunk.empty()) s.queue.push_back(std::move(chunk));
  }

  // Acknowledges the settled items at the front of the stream when there are at least
  // `at_least` of them (or all items settled), dead letters written first, and drops them.
  Status acknowledgePrefix(Stream& s, state::StateStore& store, std::size_t at_least) {
    std::size_t n = 0;
    while (n < s.items.size() && s.items[n].settled) ++n;
    if (n == 0 || (n < at_least && n < s.items.size())) return okStatus();
    // Dead letters are durable before their documents are acknowledged.
    if (auto w = writeDeadLetters(s.items, n); !w) return w;
    if (auto a = store.acknowledge(name_, s.items[n - 1].doc->seq, std::nullopt); !a) {
      return Error(ErrorCode::kIo, "elasticsearch output: acknowledge: " + a.error().message());
    }
    const std::int64_t acked = s.items[n - 1].doc->seq;
    std::erase_if(settled_, [acked](std::int64_t seq) { return seq <= acked; });
    s.items.erase(s.items.begin(), s.items.begin() + static_cast<std::ptrdiff_t>(n));
    s.base += n;
    // Read-ahead vectors wholly acknowledged go.
    while (!s.owned.empty() && s.owned.front().back().seq <= acked) s.owned.pop_front();
    return okStatus();
  }

  // A bulk's body, made here from the stream; its request (gzipped) made on a thread of its
  // own, so that several are compressed at once while others are in flight.
  struct Prepared {
    std::vector<std::size_t> items;
    std::future<Result<http::HttpRequest>> request;
  };

  Prepared prepareBulk(Stream& s, std::vector<std::size_t> chunk) {
    std::string body;
    std::size_t size = 0;
    for (std::size_t p : chunk) size += s.at(p).doc->body.size() + 128;
    body.reserve(size);
    for (std::size_t p : chunk) {
      Item& item = s.at(p);
      if (item.index.empty()) item.index = dataStreamOf(item.doc->body);
      appendCreate(body, item.index, item.doc->id, item.doc->body);
    }
    Prepared prepared;
    prepared.items = std::move(chunk);
    auto shared = std::make_shared<std::string>(std::move(body));
    auto make = [this, shared]() -> Result<http::HttpRequest> {
      return EsTransport::request(config_, authorization_, "POST", std::move(*shared), true);
    };
    try {
      prepared.request = std::async(std::launch::async, make);
    } catch (const std::system_error&) {
      prepared.request = std::async(std::launch::deferred, make);  // no thread: here, later
    }
    return prepared;
  }

  void startBulk(std::uint64_t tag, Bulk& bulk) {
    if (bulk.tried == 1) ++counters_->bulk_requests;
    bulk.request.url = join(config_.hosts[bulk.host], kBulkPath);
    client_->start(tag, bulk.request);
  }

  // Reads a bulk's answer into its items; a 413 queues its two halves first.
  Status settle(Stream& s, std::vector<std::size_t>& chunk, const http::HttpResponse& res) {
    if (res.status == 413) {
      if (chunk.size() == 1) {
        // One document larger than the cluster takes: it can never be stored.
        Item& item = s.at(chunk.front());
        item.settled = item.dead = true;
        item.status = 413;
        item.error =
            "request_entity_too_large: the document alone is over the cluster's "
            "http.max_content_length";
        return okStatus();
      }
      const auto half = static_cast<std::ptrdiff_t>(chunk.size() / 2);
      s.queue.emplace_front(chunk.begin() + half, chunk.end());
      s.queue.emplace_front(chunk.begin(), chunk.begin() + half);
      return okStatus();
    }
    if (res.status != 200) {
      ++counters_->failed_requests;
      return httpError("elasticsearch bulk request failed", res);
    }
    auto results = parseBulkResponse(res.body);
    if (!results) {
      ++counters_->failed_requests;
      return Error(ErrorCode::kNetwork, "elasticsearch: " + results.error().message());
    }
    if (results->size() != chunk.size()) {
      ++counters_->failed_requests;
      return Error(ErrorCode::kNetwork, "elasticsearch: the bulk response has " +
                                            std::to_string(results->size()) + " items for " +
                                            std::to_string(chunk.size()) + " documents");
    }
    telemetry::DocumentTally tally;
    for (std::size_t k = 0; k < chunk.size(); ++k) {
      Item& item = s.at(chunk[k]);
      const BulkItemResult& r = (*results)[k];
      if (r.status >= 200 && r.status < 300) {
        item.settled = true;
        ++counters_->created;
        tally.add(item.doc->source, telemetry::Outcome::kDelivered);
      } else if (r.status == 409) {
        item.settled = true;  // the same _id is stored already: exactly once
        ++counters_->duplicates;
        tally.add(item.doc->source, telemetry::Outcome::kDuplicate);
      } else if (r.status == 429 || r.status >= 500) {
        ++counters_->item_retries;  // sent again in a later bulk
        tally.add(item.doc->source, telemetry::Outcome::kFailed);
      } else {
        item.settled = item.dead = true;
        item.status = r.status;
        item.error = r.error_type + ": " + r.error_reason;
      }
    }
    tally.flush(metrics_, name_);
    return okStatus();
  }
  // The `first` items' dead letters, written and fsynced; each is written once (`dead` is
  // cleared). On failure they are unsettled again.
  Status writeDeadLetters(std::deque<Item>& all, std::size_t first) {
    // (Not std::ranges::subrange: clang 14 with libstdc++ 12, the fuzz build, rejects it.)
    const auto items_end = all.begin() + static_cast<std::ptrdiff_t>(first);
    std::string lines;
    std::size_t count = 0;
    for (auto it = all.begin(); it != items_end; ++it) {
      Item& item = *it;
      if (!item.dead) continue;
      ++count;
      lines += R"({"@timestamp":")" + nowRfc3339() + R"(","output":"elasticsearch","_index":)";
      core::appendString(lines, item.index);
      lines += R"(,"_id":)";
      core::appendString(lines, item.doc->id);
      lines += R"(,"status":)" + std::to_string(item.status) + R"(,"error":)";
      lines += '"';
      core::appendEscapedLossy(lines, item.error);
      lines += '"';
      lines += R"(,"document":)";
      lines += item.doc->body;
      lines += "}\n";
    }
    if (count == 0) return okStatus();
    // The refused documents are alerts: 0600 whatever the umask (tightened if older).
    auto file = core::openPrivateFile(dead_letter_path_, O_WRONLY | O_CREAT | O_APPEND);
    if (!file) {
      return Error(ErrorCode::kIo, "dead-letter file: " + file.error().message());
    }
    const int fd = file->fd.get();
    std::size_t done = 0;
    int err = 0;
    while (done < lines.size()) {
      const ssize_t n = ::write(fd, lines.data() + done, lines.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    if (err == 0 && ::fsync(fd) != 0) err = errno;
    file->fd.reset();
    if (err != 0) {
      // Not acknowledged: sent again, refused again, written again.
      for (auto it = all.begin(); it != items_end; ++it) {
        if (it->dead) it->settled = it->dead = false;
      }
      return Error(ErrorCode::kIo,
                   "dead-letter file " + dead_letter_path_ + ": " + std::strerror(err));
    }
    counters_->dead_lettered += count;
    telemetry::DocumentTally tally;
    for (auto it = all.begin(); it != items_end; ++it) {
      Item& item = *it;
      if (!item.dead) continue;
      tally.add(item.doc->source, telemetry::Outcome::kDeadLettered);
      item.dead = false;  // written: settled, and never written again
    }
    tally.flush(metrics_, name_);
    spdlog::warn("elasticsearch refused {} document(s); written with the error to {}", count,
                 dead_letter_path_);
    return okStatus();
  }

  const config::ElasticsearchOutputConfig& config_;
  std::unique_ptr<http::ConcurrentHttpClient> client_;
  std::string authorization_;
  std::size_t in_flight_;
  std::size_t current_host_ = 0;  // the host that last answered
  std::uint64_t next_tag_ = 0;
  std::string dead_letter_path_;
  telemetry::Metrics* metrics_;
  std::shared_ptr<ElasticsearchCounters> counters_;
  std::string name_ = "elasticsearch";
  std::set<std::int64_t> settled_;  // seqs past the acknowledged prefix already settled
};

}  // namespace

std::unique_ptr<Output> makeElasticsearchOutput(const config::ElasticsearchOutputConfig& config,
                                                ElasticsearchOutputOptions options,
                                                std::shared_ptr<ElasticsearchCounters> counters) {
  return std::make_unique<ElasticsearchOutput>(config, std::move(options), std::move(counters));
}

}  // namespace mdec::output
