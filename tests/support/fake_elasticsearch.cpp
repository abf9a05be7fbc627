// The fake Elasticsearch: cpp-httplib on loopback, simdjson for validating what clients send.
// See fake_elasticsearch.h for what is served and how it validates.
#include "support/fake_elasticsearch.h"

#include <httplib.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

#include "mdecollect/core/ascii.h"
#include "mdecollect/core/host_port.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"

namespace mdec::testing {
namespace {

using mdec::core::appendString;
using mdec::core::ObjectWriter;

constexpr std::string_view kJson = "application/json";
constexpr std::size_t kMaxIdBytes = 512;
constexpr int kMaxIndexNameBytes = 255;

std::string_view trim(std::string_view s) {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return s.substr(b, e - b);
}

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && core::equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto v = (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16) |
                   (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8) |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 2]));
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i < in.size()) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (i + 1 < in.size()) {
      v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    }
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// Glob with '*' only, as index patterns and template names use it.
bool globMatch(std::string_view pattern, std::string_view text) {
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star = std::string_view::npos;
  std::size_t mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// The Jackson token Elasticsearch names for what a JSON value starts with.
std::string_view tokenName(simdjson::dom::element_type type) {
  using T = simdjson::dom::element_type;
  switch (type) {
    case T::ARRAY:
      return "START_ARRAY";
    case T::OBJECT:
      return "START_OBJECT";
    case T::STRING:
      return "VALUE_STRING";
    case T::INT64:
    case T::UINT64:
    case T::DOUBLE:
      return "VALUE_NUMBER";
    case T::BOOL:
      return "VALUE_BOOLEAN";
    case T::NULL_VALUE:
      return "VALUE_NULL";
  }
  return "VALUE_EMBEDDED_OBJECT";
}

// A scalar metadata value as Elasticsearch's parser.text() reads it.
std::string scalarText(simdjson::dom::element value) {
  if (value.is_string()) return std::string(value.get_string().value_unsafe());
  return simdjson::minify(value);
}

// {"error":{"root_cause":[{<cause>}],<cause>},"status":S} where cause is type, reason and
// any extra members (already JSON, starting with a comma).
std::string errorBody(int status, std::string_view type, std::string_view reason,
                      std::string_view extra = {}) {
  std::string cause;
  cause.append("\"type\":");
  appendString(cause, type);
  cause.append(",\"reason\":");
  appendString(cause, reason);
  cause.append(extra);
  std::string out = "{\"error\":{\"root_cause\":[{" + cause + "}]," + cause + "},\"status\":";
  out.append(std::to_string(status));
  out.push_back('}');
  return out;
}

// An item's error object.
std::string itemError(std::string_view type, std::string_view reason, std::string_view extra = {}) {
  std::string out = "{\"type\":";
  appendString(out, type);
  out.append(",\"reason\":");
  appendString(out, reason);
  out.append(extra);
  out.push_back('}');
  return out;
}

int portOf(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  }
  return -1;
}

// Closes the server's side of the connection a request came on, without an answer:
// httplib gives handlers no socket, so the socket is found by its ports.
void dropConnection(int server_port, int remote_port) {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec);
  const std::filesystem::directory_iterator end;
  for (int n = 0; !ec && it != end && n < 65536; it.increment(ec), ++n) {
    const std::string name = it->path().filename().string();
    int fd = -1;
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc{}) continue;
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t local_len = sizeof local;
    socklen_t peer_len = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (portOf(local) == server_port && portOf(peer) == remote_port) {
      ::shutdown(fd, SHUT_RDWR);
      return;
    }
  }
}

// Content-Type check as Elasticsearch's RestController makes it: "" when accepted, else
// the 406 body.
std::string contentTypeProblem(const httplib::Request& req) {
  if (!req.has_header("Content-Type")) {
    return "{\"error\":\"Content-Type header is missing\",\"status\":406}";
  }
  const std::string value = req.get_header_value("Content-Type");
  const std::string media =
      core::asciiLower(trim(std::string_view(value).substr(0, value.find(';'))));
  if (media == "application/json" || media == "application/x-ndjson" ||
      media == "application/vnd.elasticsearch+json" ||
      media == "application/vnd.elasticsearch+x-ndjson") {
    return {};
  }
  std::string out = "{\"error\":";
  appendString(out, "Content-Type header [" + value + "] is not supported");
  out.append(",\"status\":406}");
  return out;
}

struct Doc {
  std::string source;
  std::int64_t version = 1;
  std::int64_t seq_no = 0;
};

struct IndexState {
  std::map<std::string, Doc> docs;
  std::int64_t next_seq_no = 0;
  bool data_stream = false;
  std::string answered_name;  // the backing index for a data stream, else the name
};

struct Template {
  std::string body;
  std::vector<std::string> patterns;
  std::int64_t priority = 0;
  bool data_stream = false;
};

// One parsed action (and its source line) of a bulk body.
struct Op {
  std::string action;  // create, index, delete, update
  int line = 0;
  std::optional<std::string> index;
  std::optional<std::string> id;
  std::optional<std::string> op_type;
  bool has_source = false;
  std::string_view source;
  // The source as Elasticsearch's document parser finds it (checkSources, outside the lock):
  // why it would fail to parse ("" when it parses), and whether it has an @timestamp.
  std::string source_problem;
  bool has_timestamp = false;
};

}  // namespace

struct FakeElasticsearch::Impl {
  Options options;
  httplib::Server server;
  std::thread thread;
  int bound_port = -1;

  mutable std::mutex mu;
  std::map<std::string, IndexState> indices;
  std::map<std::string, std::map<std::string, int>> attempts;
  std::map<std::string, std::map<std::string, int>> writes;
  std::map<std::string, std::vector<std::string>> dead;
  std::map<std::string, Template> templates;
  std::deque<int> scripted;
  std::function<int(const std::string&, int)> decide;
  Stats stats;
  std::vector<std::string> bodies;
  httplib::Headers last_headers;
  std::uint64_t generated_ids = 0;

  explicit Impl(Options o) : options(std::move(o)) {}

  void setJson(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, std::string(kJson));
  }

  // Auth as Elasticsearch's security filter answers it; false (and the 401 set) when the
  // request may not go on. Called with mu held.
  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() && options.username.empty()) return true;
    std::string reason;
    if (!req.has_header("Authorization")) {
      reason = "missing authentication credentials for REST request [" + req.target + "]";
    } else {
      const std::string value = req.get_header_value("Authorization");
      if (!options.api_key.empty() && startsWithNoCase(value, "ApiKey ") &&
          value.substr(7) == options.api_key) {
        return true;
      }
      if (!options.username.empty() && startsWithNoCase(value, "Basic ") &&
          std::string(trim(std::string_view(value).substr(6))) ==
              base64(options.username + ":" + options.password)) {
        return true;
      }
      reason =
          "unable to authenticate with provided credentials and anonymous access is not "
          "allowed for this request";
    }
    ++stats.auth_failures;
    answer401(res, reason);
    return false;
  }

  void answer401(httplib::Response& res, const std::string& reason) {
    static constexpr std::string_view kHeader =
        ",\"header\":{\"WWW-Authenticate\":[\"Basic realm=\\\"security\\\" "
        "charset=\\\"UTF-8\\\"\",\"ApiKey\"]}";
    res.set_header("WWW-Authenticate", "Basic realm=\"security\" charset=\"UTF-8\"");
    res.set_header("WWW-Authenticate", "ApiKey");
    setJson(res, 401, errorBody(401, "security_exception", reason, kHeader));
  }

  // A whole-request answer from scriptRequests. Called with mu held.
  void answerScripted(const httplib::Request& req, httplib::Response& res, int status) {
    ++stats.scripted_requests;
    switch (status) {
      case -1:
        dropConnection(bound_port, req.remote_port);
        res.status = 500;
        res.set_header("Connection", "close");
        return;
      case 401:
        answer401(res,
                  "unable to authenticate with provided credentials and anonymous access is "
                  "not allowed for this request");
        return;
      case 403:
        setJson(res, 403,
                errorBody(403, "security_exception",
                          "action [indices:data/write/bulk] is unauthorized for user [fake] "
                          "with effective roles [] on indices [*]"));
        return;
      case 413:
        res.status = 413;
        res.set_header("Connection", "close");
        return;
      case 429:
        setJson(res, 429,
                errorBody(429, "es_rejected_execution_exception",
                          "rejected execution of coordinating operation "
                          "[coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, "
                          "coordinating_operation_bytes=" +
                              std::to_string(req.body.size()) +
                              ", max_coordinating_and_primary_bytes=0]"));
        return;
      case 503:
        setJson(res, 503,
                errorBody(503, "cluster_block_exception",
                          "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / "
                          "initialized];"));
        return;
      default:
        setJson(res, status,
                errorBody(status, "exception", "fake: scripted answer " + std::to_string(status)));
        return;
    }
  }

  void answerBad(httplib::Response& res, int status, std::string_view type,
                 std::string_view reason) {
    ++stats.bad_requests;
    refuse(res, status, type, reason);
  }
  // answerBad without the count (callable without mu).
  void refuse(httplib::Response& res, int status, std::string_view type, std::string_view reason) {
    setJson(res, status, errorBody(status, type, reason));
  }

  // The highest-priority template whose patterns match `index`, if any.
  const Template* templateFor(const std::string& index) const {
    const Template* best = nullptr;
    for (const auto& [name, t] : templates) {
      const bool matches = std::any_of(t.patterns.begin(), t.patterns.end(),
                                       [&](const std::string& p) { return globMatch(p, index); });
      if (matches && (best == nullptr || t.priority > best->priority)) best = &t;
    }
    return best;
  }

  IndexState& indexState(const std::string& name) {
    auto [it, inserted] = indices.try_emplace(name);
    if (inserted) {
      const Template* t = templateFor(name);
      it->second.data_stream = t != nullptr && t->data_stream;
      it->second.answered_name =
          it->second.data_stream
              ? ".ds-" + name + "-" +
                    core::formatDate(core::toInstant(std::chrono::system_clock::now()), ".") +
                    "-000001"
              : name;
    }
    return it->second;
  }

  std::string generateId() {
    // 20 base64url characters, like Elasticsearch's auto-generated ids; deterministic.
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::uint64_t x = 0x9E3779B97F4A7C15ull * ++generated_ids;
    std::string out;
    for (int i = 0; i < 20; ++i) {
      x ^= x >> 29;
      x *= 0xBF58476D1CE4E5B9ull;
      x ^= x >> 32;
      out.push_back(kAlphabet[x & 63]);
    }
    return out;
  }

  // Parses the bulk body into ops; on a malformed body sets the 400 and returns nullopt.
  // Touches no shared state: called without mu.
  std::optional<std::vector<Op>> parseBulk(std::string_view body,
                                           const std::optional<std::string>& path_index,
                                           httplib::Response& res) {
    simdjson::dom::parser parser;
    std::vector<Op> ops;
    std::size_t pos = 0;
    int line = 0;
    auto nextLine = [&]() {
      const std::size_t nl = body.find('\n', pos);  // the body ends with '\n'
      std::string_view text = body.substr(pos, nl - pos);
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      pos = nl + 1;
      ++line;
      return text;
    };
    auto malformed = [&](const std::string& what) {
      refuse(res, 400, "illegal_argument_exception",
             "Malformed action/metadata line [" + std::to_string(line) + "], " + what);
      return std::nullopt;
    };
    const std::size_t max_lines = body.size() + 1;
    for (std::size_t guard = 0; pos < body.size() && guard < max_lines; ++guard) {
      const std::string_view text = nextLine();
      if (trim(text).empty()) continue;
      simdjson::dom::element root;
      if (auto err = parser.parse(text.data(), text.size(), true).get(root)) {
        return malformed("expected START_OBJECT but found invalid JSON (" +
                         std::string(simdjson::error_message(err)) + ")");
      }
      if (!root.is_object()) {
        return malformed("expected START_OBJECT but found [" + std::string(tokenName(root.type())) +
                         "]");
      }
      const simdjson::dom::object object = root.get_object().value_unsafe();
      if (object.size() == 0) return malformed("expected FIELD_NAME but found [END_OBJECT]");
      auto first = object.begin();
      Op op;
      op.line = line;
      op.action = std::string(first.key());
      if (op.action != "create" && op.action != "index" && op.action != "delete" &&
          op.action != "update") {
        return malformed("expected field [create], [delete], [index] or [update] but found [" +
                         op.action + "]");
      }
      const simdjson::dom::element meta = first.value();
      if (!meta.is_object()) {
        return malformed("expected START_OBJECT or END_OBJECT but found [" +
                         std::string(tokenName(meta.type())) + "]");
      }
      if (object.size() > 1) return malformed("expected END_OBJECT but found [FIELD_NAME]");
      static const std::set<std::string_view> kKnown = {"_index",
                                                        "_id",
                                                        "routing",
                                                        "op_type",
                                                        "version",
                                                        "version_type",
                                                        "if_seq_no",
                                                        "if_primary_term",
                                                        "retry_on_conflict",
                                                        "pipeline",
                                                        "require_alias",
                                                        "require_data_stream",
                                                        "list_executed_pipelines",
                                                        "_source",
                                                        "dynamic_templates"};
      std::set<std::string_view> seen;
      const simdjson::dom::object fields = meta.get_object().value_unsafe();
      for (auto field : fields) {
        const std::string key(field.key);
        if (!seen.insert(field.key).second) return malformed("duplicate field [" + key + "]");
        if (kKnown.count(field.key) == 0) {
          refuse(res, 400, "illegal_argument_exception",
                 "Action/metadata line [" + std::to_string(line) +
                     "] contains an unknown parameter [" + key + "]");
          return std::nullopt;
        }
        const auto type = field.value.type();
        if (type == simdjson::dom::element_type::NULL_VALUE) continue;
        if (type == simdjson::dom::element_type::ARRAY ||
            (type == simdjson::dom::element_type::OBJECT && key != "_source" &&
             key != "dynamic_templates")) {
          return malformed("expected a simple value for field [" + key + "] but found [" +
                           std::string(tokenName(type)) + "]");
        }
        if (key == "_index") op.index = scalarText(field.value);
        if (key == "_id") op.id = scalarText(field.value);
        if (key == "op_type") op.op_type = scalarText(field.value);
      }
      if (op.op_type && *op.op_type != "create" && *op.op_type != "index") {
        refuse(res, 400, "illegal_argument_exception",
               "opType must be 'create' or 'index', found: [" + *op.op_type + "]");
        return std::nullopt;
      }
      if (!op.index) op.index = path_index;
      if (op.action != "delete") {
        if (pos >= body.size()) {
          return malformed("expected a source line after the [" + op.action +
                           "] action, found the end of the body");
        }
        op.source = nextLine();
        op.has_source = true;
      }
      ops.push_back(std::move(op));
    }
    // BulkRequest.validate(): every problem, numbered.
    std::string problems;
    int count = 0;
    auto problem = [&](const std::string& what) {
      problems += std::to_string(++count) + ": " + what + ";";
    };
    if (ops.empty()) problem("no requests added");
    for (const Op& op : ops) {
      if (!op.index) problem("index is missing");
      if (op.id && op.id->empty()) problem("if _id is specified it must not be empty");
      if (op.id && op.id->size() > kMaxIdBytes) {
        problem("id [" + *op.id + "] is too long, must be no longer than 512 bytes but was: " +
                std::to_string(op.id->size()));
      }
      if (op.action == "delete" && !op.id) problem("id is missing");
    }
    if (count > 0) {
      refuse(res, 400, "action_request_validation_exception", "Validation Failed: " + problems);
      return std::nullopt;
    }
    return ops;
  }

  // Parses every op's source, as each shard does before indexing: done outside the lock, so
  // that concurrent bulks are parsed at once, as on a cluster; processItem uses the result.
  static void checkSources(std::vector<Op>& ops) {
    simdjson::dom::parser parser;
    for (Op& op : ops) {
      if (op.action == "delete") continue;  // no source line
      simdjson::dom::element doc;
      const std::string_view source = trim(op.source);
      if (source.empty()) {
        op.source_problem = "failed to parse, document is empty";
      } else if (auto err = parser.parse(source.data(), source.size(), true).get(doc)) {
        op.source_problem = "failed to parse: " + std::string(simdjson::error_message(err));
      } else if (!doc.is_object()) {
        op.source_problem = "failed to parse: the document is " +
                            std::string(tokenName(doc.type())) + ", not an object";
      } else {
        op.has_timestamp =
            doc.get_object().value_unsafe()["@timestamp"].error() == simdjson::SUCCESS;
      }
    }
  }

  // Why Elasticsearch would refuse `name` as a new index name, or "".
  static std::string invalidIndexName(const std::string& name) {
    if (name != core::asciiLower(name)) return "must be lowercase";
    if (name.empty() || name == "." || name == "..") return "must not be '.' or '..'";
    if (name[0] == '_' || name[0] == '-' || name[0] == '+') {
      return "must not start with '_', '-', or '+'";
    }
    if (name.find_first_of("\\/*?\"<>| ,#:") != std::string::npos) {
      return "must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]";
    }
    if (name.size() > static_cast<std::size_t>(kMaxIndexNameBytes)) {
      return "index name is too long, (" + std::to_string(name.size()) + " > 255)";
    }
    return {};
  }

  // Answers one item into `out`. Called with mu held.
  void processItem(Op& op, std::string& out, bool& errors) {
    const std::string& index = *op.index;
    const std::string id = op.id ? *op.id : generateId();
    ++stats.items;

    std::string answered_index = index;
    int status = 0;
    std::string error;  // the error object, when failing
    std::string result;
    std::int64_t version = 1;
    std::int64_t seq_no = 0;
    const bool creates = op.action == "create" || (op.op_type && *op.op_type == "create");

    if (std::string why = invalidIndexName(index); !why.empty()) {
      status = 400;
      std::string extra = ",\"index_uuid\":\"_na_\",\"index\":";
      appendString(extra, index);
      error = itemError("invalid_index_name_exception",
                        "Invalid index name [" + index + "], " + why, extra);
    }
    IndexState* state = status == 0 ? &indexState(index) : nullptr;
    if (state != nullptr) answered_index = state->answered_name;
    auto fail = [&](int s, std::string_view type, const std::string& reason) {
      status = s;
      std::string extra;
      if (s == 409 || s == 503) {
        extra = ",\"index_uuid\":\"fakeuuid0000000000000\",\"shard\":\"0\",\"index\":";
        appendString(extra, answered_index);
      }
      error = itemError(type, reason, extra);
    };
    if (status == 0 && state->data_stream && !creates) {
      fail(400, "illegal_argument_exception",
           "only write ops with an op_type of create are allowed in data streams");
    }
    if (status == 0 && op.action == "update") {
      fail(400, "illegal_argument_exception", "the fake Elasticsearch does not support update");
    }
    if (status == 0 && op.action == "delete") {
      auto it = state->docs.find(id);
      if (it == state->docs.end()) {
        status = 404;
        result = "not_found";
      } else {
        status = 200;
        result = "deleted";
        version = it->second.version + 1;
        state->docs.erase(it);
      }
      seq_no = state->next_seq_no++;
    }
    if (status == 0) {
      const int attempt = attempts[index][id]++;
      const int scripted_status = decide ? decide(id, attempt) : 0;
      switch (scripted_status) {
        case 0:
          break;
        case 400:
          fail(400, "mapper_parsing_exception", "failed to parse (scripted by the test)");
          break;
        case 409:
          fail(409, "version_conflict_engine_exception",
               "[" + id + "]: version conflict, document already exists (current version [1])");
          break;
        case 429:
          fail(429, "es_rejected_execution_exception",
               "rejected execution of primary operation [shard_detail=[" + answered_index +
                   "][0]] (scripted by the test)");
          break;
        case 503:
          fail(503, "unavailable_shards_exception",
               "[" + answered_index + "][0] primary shard is not active Timeout: [1m]");
          break;
        default:
          fail(scripted_status, "exception",
               "fake: scripted item answer " + std::to_string(scripted_status));
          break;
      }
    }
    if (status == 0) {
      if (!op.source_problem.empty()) {
        fail(400, "mapper_parsing_exception", op.source_problem);
      } else if (state->data_stream && !op.has_timestamp) {
        fail(400, "mapper_parsing_exception",
             "data stream timestamp field [@timestamp] is missing");
      }
    }
    if (status == 0) {
      auto it = state->docs.find(id);
      if (it != state->docs.end() && creates) {
        fail(409, "version_conflict_engine_exception",
             "[" + id + "]: version conflict, document already exists (current version [" +
                 std::to_string(it->second.version) + "])");
      } else if (it != state->docs.end()) {
        status = 200;
        result = "updated";
        it->second.source = std::string(op.source);
        it->second.version += 1;
        it->second.seq_no = state->next_seq_no++;
        version = it->second.version;
        seq_no = it->second.seq_no;
      } else {
        status = 201;
        result = "created";
        seq_no = state->next_seq_no++;
        state->docs[id] = Doc{std::string(op.source), 1, seq_no};
      }
      if (status == 200 || status == 201) ++writes[index][id];
    }

    // {"<action>":{...}}
    out.append("{");
    appendString(out, op.action);
    out.append(":");
    ObjectWriter item(out);
    item.string("_index", answered_index);
    item.string("_id", id);
    if (error.empty()) {
      item.integer("_version", version);
      item.string("result", result);
      item.raw("_shards", "{\"total\":2,\"successful\":1,\"failed\":0}");
      item.integer("_seq_no", seq_no);
      item.integer("_primary_term", 1);
      item.integer("status", status);
    } else {
      item.integer("status", status);
      item.raw("error", error);
    }
    item.close();
    out.append("}");

    if (status == 201) {
      ++stats.created;
    } else if (status == 200 || status == 404) {
      if (status == 200 && result == "updated") ++stats.updated;
    } else if (status == 409) {
      ++stats.conflicts;
      errors = true;
    } else {
      ++stats.item_failures;
      errors = true;
    }
    if (status == 400) dead[index].push_back(id);
  }

  void handleBulk(const httplib::Request& req, httplib::Response& res,
                  const httplib::ContentReader& reader,
                  const std::optional<std::string>& path_index) {
    const auto started = std::chrono::steady_clock::now();
    std::string body;
    bool too_large = false;
    const bool read_ok = reader([&](const char* data, std::size_t n) {
      if (too_large) return true;
      if (body.size() + n > options.max_request_bytes) {
        too_large = true;
        std::string().swap(body);
      } else {
        body.append(data, n);
      }
      return true;
    });

    // Concurrent bulks: the checks and the bookkeeping under the lock, the body's parse
    // outside it, then its items under the lock again, one bulk after the other (each bulk's
    // items are processed whole, in request order, as if by one shard).
    std::unique_lock<std::mutex> lock(mu);
    ++stats.bulk_requests;
    const std::string encoding = core::asciiLower(req.get_header_value("Content-Encoding"));
    if (encoding.find("gzip") != std::string::npos) ++stats.gzip_requests;
    last_headers = req.headers;
    if (options.record_bodies && !too_large) bodies.push_back(body);

    if (!authorized(req, res)) return;
    if (!read_ok) {
      res.set_header("Connection", "close");
      answerBad(
          res, 400, "parse_exception",
          "the request body could not be read (or inflated: Content-Encoding [" + encoding + "])");
      return;
    }
    if (!scripted.empty()) {
      const int status = scripted.front();
      scripted.pop_front();
      if (status != 0) {
        answerScripted(req, res, status);
        return;
      }
    }
    if (std::string problem = contentTypeProblem(req); !problem.empty()) {
      ++stats.bad_requests;
      setJson(res, 406, problem);
      return;
    }
    if (too_large) {
      ++stats.bad_requests;
      res.status = 413;
      res.set_header("Connection", "close");
      return;
    }
    if (body.empty()) {
      answerBad(res, 400, "parse_exception", "request body is required");
      return;
    }
    if (body.back() != '\n') {
      answerBad(res, 400, "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]");
      return;
    }
    lock.unlock();
    auto ops = parseBulk(body, path_index, res);
    if (ops) checkSources(*ops);
    lock.lock();
    if (!ops) {
      ++stats.bad_requests;
      return;
    }

    std::string items;
    bool errors = false;
    for (std::size_t i = 0; i < ops->size(); ++i) {
      if (i > 0) items.push_back(',');
      processItem((*ops)[i], items, errors);
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
    std::string out = "{\"took\":" + std::to_string(took) +
                      ",\"errors\":" + (errors ? "true" : "false") + ",\"items\":[" + items + "]}";
    setJson(res, 200, out);
  }

  void handlePutTemplate(const httplib::Request& req, httplib::Response& res,
                         const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    if (!authorized(req, res)) return;
    if (req.body.empty()) {
      answerBad(res, 400, "parse_exception", "request body is required");
      return;
    }
    if (std::string problem = contentTypeProblem(req); !problem.empty()) {
      ++stats.bad_requests;
      setJson(res, 406, problem);
      return;
    }
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (auto err = parser.parse(req.body).get(root); err || !root.is_object()) {
      answerBad(res, 400, "x_content_parse_exception",
                "[1:1] [index_template] failed to parse: " +
                    std::string(err ? simdjson::error_message(err) : "not an object"));
      return;
    }
    Template t;
    t.body = std::string(trim(req.body));
    const auto object = root.get_object().value_unsafe();
    simdjson::dom::element patterns;
    if (object["index_patterns"].get(patterns) == simdjson::SUCCESS) {
      if (patterns.is_string()) t.patterns.emplace_back(patterns.get_string().value_unsafe());
      if (patterns.is_array()) {
        const simdjson::dom::array list = patterns.get_array().value_unsafe();
        for (auto p : list) {
          if (p.is_string()) t.patterns.emplace_back(p.get_string().value_unsafe());
        }
      }
    }
    if (t.patterns.empty()) {
      answerBad(res, 400, "action_request_validation_exception",
                "Validation Failed: 1: index patterns are missing;");
      return;
    }
    simdjson::dom::element priority;
    if (object["priority"].get(priority) == simdjson::SUCCESS && priority.is_int64()) {
      t.priority = priority.get_int64().value_unsafe();
    }
    simdjson::dom::element data_stream;
    t.data_stream =
        object["data_stream"].get(data_stream) == simdjson::SUCCESS && data_stream.is_object();
    if (req.get_param_value("create") == "true" && templates.count(name) > 0) {
      answerBad(res, 400, "illegal_argument_exception",
                "index template [" + name + "] already exists");
      return;
    }
    templates[name] = std::move(t);
    setJson(res, 200, "{\"acknowledged\":true}");
  }

  void handleGetTemplate(const httplib::Request& req, httplib::Response& res,
                         const std::string& names) {
    std::lock_guard<std::mutex> lock(mu);
    if (!authorized(req, res)) return;
    std::vector<std::string> wanted;
    std::size_t start = 0;
    for (int guard = 0; guard < 1000; ++guard) {
      const std::size_t comma = names.find(',', start);
      wanted.push_back(names.substr(start, comma == std::string::npos ? comma : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    std::string list;
    bool any = false;
    for (const auto& [name, t] : templates) {
      const bool match = std::any_of(wanted.begin(), wanted.end(),
                                     [&](const std::string& w) { return globMatch(w, name); });
      if (!match) continue;
      if (any) list.push_back(',');
      any = true;
      list.append("{\"name\":");
      appendString(list, name);
      list.append(",\"index_template\":");
      list.append(t.body);
      list.append("}");
    }
    for (const std::string& w : wanted) {
      if (w.find('*') == std::string::npos && templates.count(w) == 0) {
        setJson(res, 404,
                errorBody(404, "resource_not_found_exception",
                          "index template matching [" + w + "] not found"));
        return;
      }
    }
    setJson(res, 200, "{\"index_templates\":[" + list + "]}");
  }

  void handleDeleteTemplate(const httplib::Request& req, httplib::Response& res,
                            const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    if (!authorized(req, res)) return;
    if (templates.erase(name) == 0) {
      setJson(
          res, 404,
          errorBody(404, "resource_not_found_exception", "index_template [" + name + "] missing"));
      return;
    }
    setJson(res, 200, "{\"acknowledged\":true}");
  }

  std::string statsJson() const {
    std::string out;
    ObjectWriter w(out);
    w.integer("bulk_requests", stats.bulk_requests);
    w.integer("items", stats.items);
    w.integer("created", stats.created);
    w.integer("updated", stats.updated);
    w.integer("conflicts", stats.conflicts);
    w.integer("item_failures", stats.item_failures);
    w.integer("gzip_requests", stats.gzip_requests);
    w.integer("auth_failures", stats.auth_failures);
    w.integer("bad_requests", stats.bad_requests);
    w.integer("scripted_requests", stats.scripted_requests);
    w.close();
    return out;
  }

  void routes() {
    server.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      res.set_header("X-elastic-product", "Elasticsearch");
    });
    server.Get("/", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu);
      if (!authorized(req, res)) return;
      setJson(res, 200,
              "{\"name\":\"fake\",\"cluster_name\":\"fake\",\"version\":{\"number\":\"8.11.0\","
              "\"build_flavor\":\"default\"},\"tagline\":\"You Know, for Search\"}");
    });
    auto bulk = [this](const httplib::Request& req, httplib::Response& res,
                       const httplib::ContentReader& reader) {
      std::optional<std::string> path_index;
      if (req.matches.size() > 1) path_index = req.matches[1].str();
      handleBulk(req, res, reader, path_index);
    };
    for (const char* pattern : {"/_bulk", "/([^/]+)/_bulk"}) {
      server.Post(pattern, bulk);
      server.Put(pattern, bulk);
    }
    server.Put("/_index_template/([^/]+)",
               [this](const httplib::Request& req, httplib::Response& res) {
                 handlePutTemplate(req, res, req.matches[1].str());
               });
    server.Get("/_index_template/([^/]+)",
               [this](const httplib::Request& req, httplib::Response& res) {
                 handleGetTemplate(req, res, req.matches[1].str());
               });
    server.Get("/_index_template", [this](const httplib::Request& req, httplib::Response& res) {
      handleGetTemplate(req, res, "*");
    });
    server.Delete("/_index_template/([^/]+)",
                  [this](const httplib::Request& req, httplib::Response& res) {
                    handleDeleteTemplate(req, res, req.matches[1].str());
                  });
    if (options.fake_endpoints) {
      server.Get("/_fake/stored", [this](const httplib::Request&, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mu);
        std::string out = "{\"stored\":";
        ObjectWriter all(out);
        for (const auto& [index, ids] : writes) {
          ObjectWriter per(all.key(escaped(index)));
          for (const auto& [id, n] : ids) per.integer(escaped(id), n);
          per.close();
        }
        all.close();
        out.append(",\"stats\":" + statsJson() + "}");
        setJson(res, 200, out);
      });
      server.Get("/_fake/dead", [this](const httplib::Request&, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mu);
        std::string out = "{\"dead\":";
        ObjectWriter all(out);
        for (const auto& [index, ids] : dead) {
          std::string& list = all.key(escaped(index));
          list.push_back('[');
          for (std::size_t i = 0; i < ids.size(); ++i) {
            if (i > 0) list.push_back(',');
            appendString(list, ids[i]);
          }
          list.push_back(']');
        }
        all.close();
        out.push_back('}');
        setJson(res, 200, out);
      });
    }
    // Anything else: what Elasticsearch answers for a path it has no handler for.
    auto none = [this](const httplib::Request& req, httplib::Response& res) {
      std::string out = "{\"error\":";
      appendString(out,
                   "no handler found for uri [" + req.target + "] and method [" + req.method + "]");
      out.append(",\"status\":400}");
      setJson(res, 400, out);
    };
    server.Get(".*", none);
    server.Post(".*", none);
    server.Put(".*", none);
    server.Delete(".*", none);
    server.Patch(".*", none);
  }

  // A key for ObjectWriter, which writes keys verbatim (ids and index names may need
  // escaping).
  static std::string escaped(std::string_view key) {
    std::string out;
    mdec::core::appendEscapedLossy(out, key);
    return out;
  }
};

FakeElasticsearch::FakeElasticsearch() : FakeElasticsearch(Options{}) {}

FakeElasticsearch::FakeElasticsearch(Options options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& m = *impl_;
  // An idle keep-alive connection holds a worker until this timeout, and stop() waits for
  // every worker.
  m.server.set_keep_alive_timeout(1);
  m.server.set_keep_alive_max_count(1000);
  m.routes();
  if (m.options.port == 0) {
    m.bound_port = m.server.bind_to_any_port(m.options.host);
  } else if (m.server.bind_to_port(m.options.host, m.options.port)) {
    m.bound_port = m.options.port;
  }
  if (m.bound_port <= 0) {
    m.bound_port = -1;
    return;
  }
  m.thread = std::thread([&m] { m.server.listen_after_bind(); });
  // stop() before the loop runs would not stop it: wait until it does (bounded).
  for (int i = 0; i < 1000 && !m.server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

FakeElasticsearch::~FakeElasticsearch() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int FakeElasticsearch::port() const { return impl_->bound_port; }

std::string FakeElasticsearch::url() const {
  return "http://" + core::formatHostPort(impl_->options.host, impl_->bound_port);
}

void FakeElasticsearch::scriptRequests(std::vector<int> statuses) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->scripted.insert(impl_->scripted.end(), statuses.begin(), statuses.end());
}

void FakeElasticsearch::scriptItems(std::function<int(const std::string& id, int attempt)> decide) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->decide = std::move(decide);
}

std::map<std::string, std::map<std::string, std::string>> FakeElasticsearch::stored() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const auto& [index, state] : impl_->indices) {
    if (state.docs.empty()) continue;
    auto& docs = out[index];
    for (const auto& [id, doc] : state.docs) docs.emplace(id, doc.source);
  }
  return out;
}

std::size_t FakeElasticsearch::storedCount() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::size_t n = 0;
  for (const auto& [index, state] : impl_->indices) n += state.docs.size();
  return n;
}

std::map<std::string, std::map<std::string, int>> FakeElasticsearch::writeCounts() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->writes;
}

std::map<std::string, std::vector<std::string>> FakeElasticsearch::deadIds() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->dead;
}

FakeElasticsearch::Stats FakeElasticsearch::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

std::vector<std::string> FakeElasticsearch::bulkBodies() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->bodies;
}

std::optional<std::string> FakeElasticsearch::lastHeader(const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->last_headers.find(name);
  if (it == impl_->last_headers.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, std::string> FakeElasticsearch::templates() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::map<std::string, std::string> out;
  for (const auto& [name, t] : impl_->templates) out.emplace(name, t.body);
  return out;
}

}  // namespace mdec::testing
