// The collector's configuration file, decoded in this one place (spec: collection.md,
// outputs.md). Every problem is collected and reported at once, one per line, as
// "FILE:LINE: KEY: what is wrong". A secret's value never appears in a message.
#include "mdecollect/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <ostream>
#include <string_view>
#include <system_error>
#include <utility>

#include "mdecollect/core/host_port.h"
#include "mdecollect/core/units.h"
#include "mdecollect/ecs/mapper.h"

namespace mdec::config {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kMaxConfigBytes = 4u << 20;
constexpr std::size_t kMaxSecretFileBytes = 64u << 10;
constexpr std::size_t kMaxNamespaceBytes = 100;
constexpr milliseconds kMinInterval{100};
constexpr milliseconds kMinRequestTimeout{100};
constexpr std::int64_t kMaxPageSize = 10'000;
constexpr std::int64_t kMaxRequestRate = 1'000'000;
constexpr std::int64_t kMaxKeepFiles = 100'000;

constexpr std::array<std::string_view, 7> kTopKeys = {
    "state_dir", "max_spool_bytes", "sources", "outputs", "logging", "http", "tracing"};
constexpr std::array<std::string_view, 2> kHttpKeys = {"enabled", "listen"};
constexpr std::array<std::string_view, 5> kTracingKeys = {"enabled", "path", "max_body_bytes",
                                                          "rotate_bytes", "keep_files"};
constexpr std::array<std::string_view, 5> kCommonSourceKeys = {
    "name", "type", "tags", "preserve_original_event", "namespace"};
// clang-format off
constexpr std::array<std::string_view, 18> kMdeKeys = {
    "tenant_id",         "client_id",       "client_secret",    "client_secret_file",
    "login_url",         "token_url",       "azure_resource",   "scopes",
    "api_url",           "interval",        "initial_interval", "late_arrival_window",
    "page_size",         "proxy_url",       "ssl",              "requests_per_minute",
    "requests_per_hour", "request_timeout"};
// clang-format on
constexpr std::array<std::string_view, 2> kFileKeys = {"paths", "format"};
constexpr std::array<std::string_view, 1> kGraphOnlyKeys = {"service_sources"};
constexpr std::int64_t kMaxGraphPageSize = 1000;  // Graph clamps $top at 1000
constexpr std::array<std::string_view, 3> kOutputKeys = {"file", "stdout", "elasticsearch"};
constexpr std::array<std::string_view, 4> kFileOutputKeys = {"enabled", "path", "rotate_bytes",
                                                             "keep_files"};
constexpr std::array<std::string_view, 1> kStdoutOutputKeys = {"enabled"};
// clang-format off
constexpr std::array<std::string_view, 14> kElasticsearchKeys = {
    "enabled",        "hosts",         "api_key",        "api_key_file",
    "username",       "password",      "password_file",  "ssl",
    "proxy_url",      "compression",   "bulk_max_bytes", "bulk_max_docs",
    "timeout",        "ilm_policy"};
// clang-format on
constexpr std::array<std::string_view, 2> kSslKeys = {"certificate_authorities",
                                                      "verification_mode"};
constexpr std::array<std::string_view, 2> kLoggingKeys = {"level", "format"};

constexpr std::string_view kV1TokenUrl = "oauth2/token";
constexpr std::string_view kV2TokenUrl = "oauth2/v2.0/token";

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

std::string errnoText(int err) { return std::generic_category().message(err); }

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Reads a whole (small) file. The error is the system's reason, or "larger than N bytes".
Result<std::string> readSmallFile(const std::string& path, std::size_t limit) {
  errno = 0;
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    const int err = errno;
    return Error(err == ENOENT || err == ENOTDIR ? ErrorCode::kNotFound : ErrorCode::kIo,
                 errnoText(err));
  }
  std::string content;
  std::array<char, 8192> buffer{};
  while (true) {
    const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
    content.append(buffer.data(), n);
    if (content.size() > limit) {
      return Error(ErrorCode::kTooLarge, "larger than " + std::to_string(limit) + " bytes");
    }
    if (n < buffer.size()) break;
  }
  if (std::ferror(file.get()) != 0) {
    const int err = errno != 0 ? errno : EIO;
    return Error(ErrorCode::kIo, errnoText(err));
  }
  return content;
}

bool isVariableName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Replaces each ${NAME} with the environment variable NAME; "$${" is a literal "${". The
// error never quotes the text (it may be a secret), only a well-formed variable name.
Result<std::string> expandEnv(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    const std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument,
                   "has a '${' without its closing '}' (write '$${' for a literal '${')");
    }
    const std::string_view name = text.substr(i + 2, close - i - 2);
    if (!isVariableName(name)) {
      return Error(ErrorCode::kInvalidArgument,
                   "has a '${...}' that is not an environment variable name (letters, digits "
                   "and '_'; write '$${' for a literal '${')");
    }
    const std::string name_text(name);
    const char* value = std::getenv(name_text.c_str());
    if (value == nullptr) {
      return Error(ErrorCode::kInvalidArgument,
                   "the environment variable '" + name_text + "' is not set");
    }
    out += value;
    i = close + 1;
  }
  return out;
}

// The inverse of expandEnv's escape, so a rendered value reads back as itself.
std::string escapeEnv(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "${") == 0) out += '$';
    out += text[i];
  }
  return out;
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "; did you mean 'x'?" for a near miss among `known`, or nothing.
template <std::size_t N>
std::string suggestion(std::string_view key, const std::array<std::string_view, N>& known) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (std::string_view k : known) {
    const std::size_t d = editDistance(key, k);
    if (d < best_distance) {
      best = k;
      best_distance = d;
    }
  }
  return best.empty() ? std::string() : "; did you mean '" + std::string(best) + "'?";
}

std::string joinPath(const std::string& dir, std::string_view leaf) {
  if (dir.empty()) return std::string(leaf);
  return dir.back() == '/' ? dir + std::string(leaf) : dir + "/" + std::string(leaf);
}

std::string childPath(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

int lineOf(const YAML::Node& node, int fallback) {
  if (!node.IsDefined()) return fallback;
  const int line = node.Mark().line;
  return line >= 0 ? line + 1 : fallback;
}

// A value in the file and where it is: its full key path and its line.
struct Field {
  std::string path;
  int line = 1;
  YAML::Node node;
};

// A mapping's entries in file order, merge keys ("<<: *anchor") applied.
struct Mapping {
  struct Entry {
    std::string key;
    Field field;
  };
  std::vector<Entry> entries;

  const Entry* find(std::string_view key) const {
    for (const auto& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
  // Present with a value other than null.
  const Field* get(std::string_view key) const {
    const Entry* e = find(key);
    return e == nullptr || e->field.node.IsNull() ? nullptr : &e->field;
  }
};

class Decoder {
 public:
  explicit Decoder(std::string file) : file_(std::move(file)) {}

  void problem(int line, const std::string& path, const std::string& what) {
    problems_.push_back({line, file_ + ":" + std::to_string(line) + ": " +
                                   (path.empty() ? "" : path + ": ") + what});
  }
  void problem(const Field& f, const std::string& what) { problem(f.line, f.path, what); }

  bool ok() const { return problems_.empty(); }

  // Every problem, ordered by line (stable, so one line's problems keep their order).
  std::string report() {
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string all;
    for (const auto& p : problems_) all += (all.empty() ? "" : "\n") + p.second;
    return all;
  }

  std::optional<Mapping> mapping(const Field& f) {
    if (!f.node.IsMap()) {
      problem(f, "must be a mapping of keys to values");
      return std::nullopt;
    }
    Mapping m;
    std::vector<YAML::Node> merged;
    for (const auto& kv : f.node) {
      if (!kv.first.IsScalar()) {
        problem(lineOf(kv.first, f.line), f.path, "a key must be a plain string");
        continue;
      }
      const std::string key = kv.first.Scalar();
      const int line = lineOf(kv.first, f.line);
      if (key == "<<") {
        if (kv.second.IsMap()) {
          merged.push_back(kv.second);
        } else if (kv.second.IsSequence() &&
                   std::all_of(kv.second.begin(), kv.second.end(),
                               [](const YAML::Node& n) { return n.IsMap(); })) {
          for (const auto& n : kv.second) merged.push_back(n);
        } else {
          problem(line, childPath(f.path, key), "a merge key needs a mapping or a list of them");
        }
        continue;
      }
      if (m.find(key) != nullptr) {
        problem(line, childPath(f.path, key), "duplicate key");
        continue;
      }
      m.entries.push_back({key, Field{childPath(f.path, key), line, kv.second}});
    }
    // Merged keys fill in what the mapping does not say itself; the first merge wins.
    for (const auto& source : merged) {
      for (const auto& kv : source) {
        if (!kv.first.IsScalar() || kv.first.Scalar() == "<<") continue;
        const std::string key = kv.first.Scalar();
        if (m.find(key) != nullptr) continue;
        m.entries.push_back(
            {key, Field{childPath(f.path, key), lineOf(kv.first, f.line), kv.second}});
      }
    }
    return m;
  }

  // The scalar's text with ${ENV} expanded. Messages never quote it.
  std::optional<std::string> text(const Field& f) {
    if (!f.node.IsScalar()) {
      problem(f, f.node.IsSequence() ? "must be a single value, not a list"
                 : f.node.IsMap()    ? "must be a single value, not a mapping"
                                     : "has no value");
      return std::nullopt;
    }
    auto expanded = expandEnv(f.node.Scalar());
    if (!expanded) {
      problem(f, expanded.error().message());
      return std::nullopt;
    }
    return std::move(*expanded);
  }

  void string(const Field& f, std::string& out) {
    if (auto t = text(f)) out = std::move(*t);
  }

  void nonEmptyString(const Field& f, std::string& out) {
    auto t = text(f);
    if (!t) return;
    if (t->empty()) {
      problem(f, "must not be empty");
      return;
    }
    out = std::move(*t);
  }

  // One of `choices`, or a problem that lists them.
  template <std::size_t N>
  std::optional<std::string> choice(const Field& f,
                                    const std::array<std::string_view, N>& choices) {
    auto t = text(f);
    if (!t) return std::nullopt;
    if (contains(choices, *t)) return t;
    std::string list;
    for (std::size_t i = 0; i < N; ++i) {
      list += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(choices[i]);
    }
    problem(f, "must be " + list + ", not '" + *t + "'");
    return std::nullopt;
  }

  void boolean(const Field& f, bool& out) {
    auto t = text(f);
    if (!t) return;
    if (*t == "true" || *t == "True" || *t == "TRUE") {
      out = true;
    } else if (*t == "false" || *t == "False" || *t == "FALSE") {
      out = false;
    } else {
      problem(f, "must be true or false, not '" + *t + "'");
    }
  }

  std::optional<std::int64_t> integer(const Field& f, std::int64_t min, std::int64_t max) {
    auto t = text(f);
    if (!t) return std::nullopt;
    std::int64_t v = 0;
    const char* end = t->data() + t->size();
    const auto r = std::from_chars(t->data(), end, v);
    if (t->empty() || r.ec == std::errc::invalid_argument || r.ptr != end) {
      problem(f, "must be a whole number, not '" + *t + "'");
      return std::nullopt;
    }
    if (r.ec != std::errc() || v < min || v > max) {
      problem(f, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                     ", not " + *t);
      return std::nullopt;
    }
    return v;
  }

  void duration(const Field& f, milliseconds& out, milliseconds min) {
    auto t = text(f);
    if (!t) return;
    auto d = core::parseDuration(*t);
    if (!d) {
      problem(f, d.error().message());
      return;
    }
    if (*d < min) {
      problem(f, "must be at least " + core::formatDuration(min) + ", not '" + *t + "'");
      return;
    }
    out = *d;
  }

  void size(const Field& f, std::uint64_t& out) {
    auto t = text(f);
    if (!t) return;
    auto s = core::parseSize(*t);
    if (!s) {
      problem(f, s.error().message());
      return;
    }
    if (*s == 0) {
      problem(f, "must be more than 0 bytes");
      return;
    }
    out = *s;
  }

  // A list of strings; `non_empty_items` rejects "" items.
  std::optional<std::vector<std::string>> stringList(const Field& f, bool non_empty_items) {
    if (!f.node.IsSequence()) {
      problem(f, "must be a list");
      return std::nullopt;
    }
    std::vector<std::string> out;
    bool good = true;
    for (std::size_t i = 0; i < f.node.size(); ++i) {
      const Field item{f.path + "[" + std::to_string(i) + "]", lineOf(f.node[i], f.line),
                       f.node[i]};
      auto t = text(item);
      if (!t) {
        good = false;
      } else if (non_empty_items && t->empty()) {
        problem(item, "must not be empty");
        good = false;
      } else {
        out.push_back(std::move(*t));
      }
    }
    if (!good) return std::nullopt;
    return out;
  }

 private:
  std::string file_;
  std::vector<std::pair<int, std::string>> problems_;
};

bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

void httpUrl(Decoder& d, const Field& f, std::string& out) {
  std::string url;
  d.nonEmptyString(f, url);
  if (url.empty()) return;
  if (!startsWith(url, "https://") && !startsWith(url, "http://")) {
    d.problem(f, "must be an http:// or https:// URL, not '" + url + "'");
    return;
  }
  out = std::move(url);
}

// The value is not quoted in messages: a proxy URL may carry a password.
void proxyUrl(Decoder& d, const Field& f, std::string& out) {
  std::string url;
  d.string(f, url);
  if (url.empty()) {
    out.clear();
    return;
  }
  for (std::string_view scheme :
       {"http://", "https://", "socks4://", "socks4a://", "socks5://", "socks5h://"}) {
    if (startsWith(url, scheme)) {
      out = std::move(url);
      return;
    }
  }
  d.problem(f,
            "must be a URL starting with http://, https://, socks4://, socks4a://, "
            "socks5:// or socks5h://");
}

// Elasticsearch's rules for the namespace part of a data stream name.
void dataStreamNamespace(Decoder& d, const Field& f, std::string& out) {
  auto t = d.text(f);
  if (!t) return;
  if (t->empty()) {
    d.problem(f, "must not be empty");
    return;
  }
  if (t->size() > kMaxNamespaceBytes) {
    d.problem(f, "must be at most " + std::to_string(kMaxNamespaceBytes) + " bytes, not " +
                     std::to_string(t->size()));
    return;
  }
  constexpr std::string_view kForbidden = "-\\/*?\"<>| ,#:";
  for (char c : *t) {
    if (c >= 'A' && c <= 'Z') {
      d.problem(f, "'" + *t + "' must be lowercase");
      return;
    }
    if (kForbidden.find(c) != std::string_view::npos) {
      d.problem(f, "'" + *t + "' must not contain '" + std::string(1, c) +
                       "' (nor any of - \\ / * ? \" < > | , # : or a space)");
      return;
    }
  }
  out = std::move(*t);
}

void sourceName(Decoder& d, const Field& f, std::string& out) {
  auto t = d.text(f);
  if (!t) return;
  const bool good =
      !t->empty() && *t != "." && *t != ".." && std::all_of(t->begin(), t->end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
      });
  if (!good) {
    d.problem(f, "'" + *t +
                     "' must be letters, digits, '_', '.' and '-' (it names the "
                     "source's state)");
    return;
  }
  out = std::move(*t);
}

// A tenant id goes into the token URL's path: a GUID or a domain name.
void tenantId(Decoder& d, const Field& f, std::string& out) {
  std::string id;
  d.nonEmptyString(f, id);
  if (id.empty()) return;
  const bool good = std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
  });
  if (!good) {
    d.problem(f, "'" + id + "' must be a tenant GUID or domain name");
    return;
  }
  out = std::move(id);
}

// A secret read from the file `f` names (trailing whitespace dropped); `path` keeps the name.
void secretFile(Decoder& d, const Field& f, Secret& out, std::string& path) {
  d.nonEmptyString(f, path);
  if (path.empty()) return;
  auto content = readSmallFile(path, kMaxSecretFileBytes);
  if (!content) {
    d.problem(f, "cannot read '" + path + "': " + content.error().message());
    return;
  }
  std::string secret = std::move(*content);
  while (!secret.empty() &&
         std::string_view(" \t\r\n\f\v").find(secret.back()) != std::string_view::npos) {
    secret.pop_back();
  }
  if (secret.empty()) {
    d.problem(f, "the file '" + path + "' is empty");
    return;
  }
  out = Secret(std::move(secret));
}

void clientSecretFile(Decoder& d, const Field& f, SourceConfig& s) {
  secretFile(d, f, s.client_secret, s.client_secret_file);
}

void decodeSsl(Decoder& d, const Field& f, TlsConfig& ssl) {
  auto m = d.mapping(f);
  if (!m) return;
  for (const auto& e : m->entries) {
    const Field& c = e.field;
    if (!contains(kSslKeys, e.key)) {
      d.problem(c, "unknown key" + suggestion(e.key, kSslKeys));
    } else if (c.node.IsNull()) {
      continue;
    } else if (e.key == "certificate_authorities") {
      if (c.node.IsSequence()) {
        auto list = d.stringList(c, true);
        if (!list) continue;
        if (list->size() != 1) {
          d.problem(c, "must name one PEM file (put several certificates in it), not " +
                           std::to_string(list->size()));
          continue;
        }
        ssl.ca_file = list->front();
      } else {
        d.string(c, ssl.ca_file);
      }
      if (!ssl.ca_file.empty()) {
        auto content = readSmallFile(ssl.ca_file, kMaxConfigBytes);
        if (!content)
          d.problem(c, "cannot read '" + ssl.ca_file + "': " + content.error().message());
      }
    } else if (e.key == "verification_mode") {
      constexpr std::array<std::string_view, 2> kModes = {"full", "none"};
      if (auto mode = d.choice(c, kModes)) ssl.verify = *mode == "full";
    }
  }
}

// Which keys a source of `type` may have; nullopt type (missing or invalid): any source
// key. The message for a key that is not allowed, or empty.
std::string sourceKeyProblem(std::string_view key, std::optional<SourceType> type) {
  const bool common = contains(kCommonSourceKeys, key);
  const bool mde = contains(kMdeKeys, key);
  const bool file = contains(kFileKeys, key);
  const bool graph_only = contains(kGraphOnlyKeys, key);
  if (common) return {};
  if (!type) {
    if (mde || file || graph_only) return {};
  } else if (*type == SourceType::kMde) {
    if (mde) return {};
    if (file) return "'" + std::string(key) + "' is not a key of an mde source";
    if (graph_only) return "'" + std::string(key) + "' is a key of graph sources only";
  } else if (*type == SourceType::kGraph) {
    if (mde || graph_only) return {};
    if (file) return "'" + std::string(key) + "' is not a key of a graph source";
  } else if (*type == SourceType::kFile) {
    if (file) return {};
    if (mde || graph_only) return "'" + std::string(key) + "' is not a key of a file source";
  }
  std::string hint = suggestion(key, kCommonSourceKeys);
  if (hint.empty() && (!type || *type == SourceType::kMde)) hint = suggestion(key, kMdeKeys);
  if (hint.empty() && (!type || *type == SourceType::kFile)) hint = suggestion(key, kFileKeys);
  return "unknown key" + hint;
}

// Reads one source; with a missing or unknown type only the keys no type has are errors.
void decodeSource(Decoder& d, const Field& f, SourceConfig& s) {
  s.line = f.line;
  auto m = d.mapping(f);
  if (!m) return;

  std::optional<SourceType> type;
  if (const Field* t = m->get("type")) {
    if (auto name = d.text(*t)) {
      if (*name == "mde") {
        type = SourceType::kMde;
      } else if (*name == "file") {
        type = SourceType::kFile;
      } else if (*name == "graph") {
        type = SourceType::kGraph;
        // Graph's defaults (graph.md); keys set below override them.
        s.api_url = "https://graph.microsoft.com";
        s.scopes = {"https://graph.microsoft.com/.default"};
        s.requests_per_minute = 150;
        s.requests_per_hour = 150 * 60;
      } else {
        d.problem(*t, "must be mde, graph or file, not '" + *name + "'");
      }
    }
  } else {
    d.problem(f.line, childPath(f.path, "type"), "missing (mde, graph or file)");
  }
  if (type) s.type = *type;

  const Field* secret = nullptr;
  const Field* secret_file = nullptr;
  bool token_url_set = false;
  for (const auto& e : m->entries) {
    const Field& c = e.field;
    if (e.key == "type") continue;
    if (const std::string p = sourceKeyProblem(e.key, type); !p.empty()) {
      d.problem(c, p);
      continue;
    }
    if (c.node.IsNull()) continue;
    const std::string& k = e.key;
    if (k == "name") {
      sourceName(d, c, s.name);
    } else if (k == "tenant_id") {
      tenantId(d, c, s.tenant_id);
    } else if (k == "client_id") {
      d.nonEmptyString(c, s.client_id);
    } else if (k == "client_secret") {
      secret = &c;
      std::string value;
      d.nonEmptyString(c, value);
      if (!value.empty()) s.client_secret = Secret(std::move(value));
    } else if (k == "client_secret_file") {
      secret_file = &c;
      clientSecretFile(d, c, s);
    } else if (k == "login_url") {
      httpUrl(d, c, s.login_url);
    } else if (k == "token_url") {
      token_url_set = true;
      d.nonEmptyString(c, s.token_url);
    } else if (k == "azure_resource") {
      d.nonEmptyString(c, s.azure_resource);
    } else if (k == "scopes") {
      if (auto list = d.stringList(c, true)) {
        if (list->empty()) {
          d.problem(c, "must list at least one scope (or leave 'scopes' out for the v1 flow)");
        } else {
          s.scopes = std::move(*list);
        }
      }
    } else if (k == "api_url") {
      httpUrl(d, c, s.api_url);
    } else if (k == "interval") {
      d.duration(c, s.interval, kMinInterval);
    } else if (k == "initial_interval") {
      d.duration(c, s.initial_interval, milliseconds(0));
    } else if (k == "late_arrival_window") {
      d.duration(c, s.late_arrival_window, milliseconds(0));
    } else if (k == "page_size") {
      const std::int64_t max =
          type && *type == SourceType::kGraph ? kMaxGraphPageSize : kMaxPageSize;
      if (auto v = d.integer(c, 1, max)) s.page_size = static_cast<std::size_t>(*v);
    } else if (k == "service_sources") {
      if (auto list = d.stringList(c, true)) s.service_sources = std::move(*list);
    } else if (k == "proxy_url") {
      proxyUrl(d, c, s.proxy_url);
    } else if (k == "ssl") {
      decodeSsl(d, c, s.ssl);
    } else if (k == "requests_per_minute") {
      if (auto v = d.integer(c, 1, kMaxRequestRate)) s.requests_per_minute = static_cast<int>(*v);
    } else if (k == "requests_per_hour") {
      if (auto v = d.integer(c, 1, kMaxRequestRate)) s.requests_per_hour = static_cast<int>(*v);
    } else if (k == "request_timeout") {
      d.duration(c, s.request_timeout, kMinRequestTimeout);
    } else if (k == "paths") {
      if (auto list = d.stringList(c, true)) {
        if (list->empty()) {
          d.problem(c, "must list at least one file or glob");
        } else {
          s.paths = std::move(*list);
        }
      }
    } else if (k == "format") {
      constexpr std::array<std::string_view, 2> kFormats = {"mde", "graph"};
      if (auto format = d.choice(c, kFormats)) s.format = *format;
    } else if (k == "tags") {
      if (auto list = d.stringList(c, true)) s.tags = std::move(*list);
    } else if (k == "preserve_original_event") {
      d.boolean(c, s.preserve_original_event);
    } else if (k == "namespace") {
      dataStreamNamespace(d, c, s.data_stream_namespace);
    }
  }

  if (m->get("name") == nullptr) d.problem(f.line, childPath(f.path, "name"), "missing");
  if (type == SourceType::kMde || type == SourceType::kGraph) {
    const std::string what = type == SourceType::kMde ? "an mde source" : "a graph source";
    if (m->get("tenant_id") == nullptr) {
      d.problem(f.line, childPath(f.path, "tenant_id"), "missing (required for " + what + ")");
    }
    if (m->get("client_id") == nullptr) {
      d.problem(f.line, childPath(f.path, "client_id"), "missing (required for " + what + ")");
    }
    if (secret != nullptr && secret_file != nullptr) {
      d.problem(std::max(secret->line, secret_file->line), f.path,
                "set client_secret or client_secret_file, not both");
    } else if (secret == nullptr && secret_file == nullptr) {
      d.problem(f.line, childPath(f.path, "client_secret"),
                "missing (set client_secret or client_secret_file)");
    }
    if (!token_url_set) s.token_url = std::string(s.scopes.empty() ? kV1TokenUrl : kV2TokenUrl);
  } else if (type == SourceType::kFile) {
    if (m->get("paths") == nullptr) {
      d.problem(f.line, childPath(f.path, "paths"), "missing (required for a file source)");
    }
  }
}

void decodeSources(Decoder& d, const Field& f, Config& config) {
  if (!f.node.IsSequence()) {
    d.problem(f, "must be a list of sources");
    return;
  }
  if (f.node.size() == 0) {
    d.problem(f, "at least one source is required");
    return;
  }
  std::map<std::string, std::pair<std::size_t, int>> names;  // name -> index, line
  for (std::size_t i = 0; i < f.node.size(); ++i) {
    const Field item{f.path + "[" + std::to_string(i) + "]", lineOf(f.node[i], f.line), f.node[i]};
    SourceConfig s;
    decodeSource(d, item, s);
    if (!s.name.empty()) {
      const auto [it, inserted] = names.try_emplace(s.name, i, item.line);
      if (!inserted) {
        d.problem(item.line, item.path + ".name",
                  "'" + s.name + "' is already the name of sources[" +
                      std::to_string(it->second.first) + "] (line " +
                      std::to_string(it->second.second) + "); names must be unique");
      }
    }
    config.sources.push_back(std::move(s));
  }
}

void decodeElasticsearch(Decoder& d, const Field& f, ElasticsearchOutputConfig& es) {
  es.enabled = true;
  es.line = f.line;
  if (f.node.IsNull()) {
    d.problem(f, "needs at least 'hosts'");
    return;
  }
  auto m = d.mapping(f);
  if (!m) return;
  const Field* api_key = nullptr;
  const Field* api_key_file = nullptr;
  const Field* password = nullptr;
  const Field* password_file = nullptr;
  for (const auto& e : m->entries) {
    const Field& c = e.field;
    const std::string& k = e.key;
    if (!contains(kElasticsearchKeys, k)) {
      d.problem(c, "unknown key" + suggestion(k, kElasticsearchKeys));
    } else if (c.node.IsNull()) {
      continue;
    } else if (k == "enabled") {
      d.boolean(c, es.enabled);
    } else if (k == "hosts") {
      if (auto list = d.stringList(c, true)) {
        if (list->empty()) d.problem(c, "must list at least one URL");
        for (const auto& host : *list) {
          if (host.rfind("http://", 0) != 0 && host.rfind("https://", 0) != 0) {
            d.problem(c, "'" + host + "' is not an http:// or https:// URL");
          }
        }
        es.hosts = std::move(*list);
      }
    } else if (k == "api_key") {
      api_key = &c;
      std::string value;
      d.nonEmptyString(c, value);
      if (!value.empty()) es.api_key = Secret(std::move(value));
    } else if (k == "api_key_file") {
      api_key_file = &c;
      secretFile(d, c, es.api_key, es.api_key_file);
    } else if (k == "username") {
      d.nonEmptyString(c, es.username);
    } else if (k == "password") {
      password = &c;
      std::string value;
      d.nonEmptyString(c, value);
      if (!value.empty()) es.password = Secret(std::move(value));
    } else if (k == "password_file") {
      password_file = &c;
      secretFile(d, c, es.password, es.password_file);
    } else if (k == "ssl") {
      decodeSsl(d, c, es.ssl);
    } else if (k == "proxy_url") {
      proxyUrl(d, c, es.proxy_url);
    } else if (k == "compression") {
      d.boolean(c, es.compression);
    } else if (k == "bulk_max_bytes") {
      d.size(c, es.bulk_max_bytes);
      if (es.bulk_max_bytes < 1024) d.problem(c, "must be at least 1KiB");
    } else if (k == "bulk_max_docs") {
      if (auto n = d.integer(c, 1, 100000)) es.bulk_max_docs = static_cast<std::size_t>(*n);
    } else if (k == "timeout") {
      d.duration(c, es.timeout, kMinRequestTimeout);
    } else if (k == "ilm_policy") {
      d.string(c, es.ilm_policy);  // empty: none
    }
  }
  if (m->get("hosts") == nullptr) d.problem(f.line, childPath(f.path, "hosts"), "missing");
  if (api_key != nullptr && api_key_file != nullptr) {
    d.problem(std::max(api_key->line, api_key_file->line), f.path,
              "set api_key or api_key_file, not both");
  }
  if (password != nullptr && password_file != nullptr) {
    d.problem(std::max(password->line, password_file->line), f.path,
              "set password or password_file, not both");
  }
  const bool has_key = api_key != nullptr || api_key_file != nullptr;
  const bool has_password = password != nullptr || password_file != nullptr;
  if (has_key && (has_password || !es.username.empty())) {
    d.problem(f, "set api_key or username/password, not both");
  }
  if (!es.username.empty() && !has_password) {
    d.problem(f.line, childPath(f.path, "password"), "missing (username is set)");
  }
  if (has_password && es.username.empty()) {
    d.problem(f.line, childPath(f.path, "username"), "missing (password is set)");
  }
}

// True when `outputs.file` is present (then its `enabled` defaults to true).
bool decodeOutputs(Decoder& d, const Field& f, Config& config) {
  bool file_present = false;
  auto m = d.mapping(f);
  if (!m) return false;
  for (const auto& e : m->entries) {
    const Field& c = e.field;
    if (e.key == "elasticsearch") {
      decodeElasticsearch(d, c, config.elasticsearch);
    } else if (!contains(kOutputKeys, e.key)) {
      d.problem(c, "unknown output" + suggestion(e.key, kOutputKeys) +
                       " (the outputs are file, stdout and elasticsearch)");
    } else if (e.key == "file") {
      file_present = true;
      if (c.node.IsNull()) continue;
      auto fm = d.mapping(c);
      if (!fm) continue;
      FileOutputConfig& out = config.file_output;
      for (const auto& fe : fm->entries) {
        const Field& v = fe.field;
        if (!contains(kFileOutputKeys, fe.key)) {
          d.problem(v, "unknown key" + suggestion(fe.key, kFileOutputKeys));
        } else if (v.node.IsNull()) {
          continue;
        } else if (fe.key == "enabled") {
          d.boolean(v, out.enabled);
        } else if (fe.key == "path") {
          d.nonEmptyString(v, out.path);
        } else if (fe.key == "rotate_bytes") {
          d.size(v, out.rotate_bytes);
        } else if (fe.key == "keep_files") {
          if (auto n = d.integer(v, 1, kMaxKeepFiles)) out.keep_files = static_cast<int>(*n);
        }
      }
    } else if (e.key == "stdout") {
      if (c.node.IsNull()) continue;
      auto sm = d.mapping(c);
      if (!sm) continue;
      for (const auto& se : sm->entries) {
        const Field& v = se.field;
        if (!contains(kStdoutOutputKeys, se.key)) {
          d.problem(v, "unknown key" + suggestion(se.key, kStdoutOutputKeys));
        } else if (!v.node.IsNull()) {
          d.boolean(v, config.stdout_output.enabled);
        }
      }
    }
  }
  return file_present;
}

void decodeLogging(Decoder& d, const Field& f, LoggingConfig& logging) {
  auto m = d.mapping(f);
  if (!m) return;
  for (const auto& e : m->entries) {
    const Field& c = e.field;
    if (!contains(kLoggingKeys, e.key)) {
      d.problem(c, "unknown key" + suggestion(e.key, kLoggingKeys));
    } else if (c.node.IsNull()) {
      continue;
    } else if (e.key == "level") {
      constexpr std::array<std::string_view, 4> kLevels = {"debug", "info", "warn", "error"};
      if (auto level = d.choice(c, kLevels)) logging.level = *level;
    } else if (e.key == "format") {
      constexpr std::array<std::string_view, 2> kFormats = {"text", "json"};
      if (auto format = d.choice(c, kFormats)) logging.format = *format;
    }
  }
}

void decodeHttp(Decoder& d, const Field& f, HttpConfig& http) {
  auto m = d.mapping(f);
  if (!m) return;
  for (const auto& e : m->entries) {
    const Field& c = e.field;
    if (!contains(kHttpKeys, e.key)) {
      d.problem(c, "unknown key" + suggestion(e.key, kHttpKeys));
    } else if (c.node.IsNull()) {
      continue;
    } else if (e.key == "enabled") {
      d.boolean(c, http.enabled);
    } else if (e.key == "listen") {
      std::string listen;
      d.nonEmptyString(c, listen);
      if (listen.empty()) continue;
      auto address = core::parseHostPort(listen);  // host:port, [v6]:port
      if (!address) {
        d.problem(c, "expected host:port (for example 127.0.0.1:5066), got '" + listen +
                         "': " + address.error().message());
        continue;
      }
      http.listen = listen;
      http.host = std::move(address->host);
      http.port = address->port;
    }
  }
}

void decodeTracing(Decoder& d, const Field& f, TracingConfig& tracing) {
  auto m = d.mapping(f);
  if (!m) return;
  for (const auto& e : m->entries) {
    const Field& c = e.field;
    if (!contains(kTracingKeys, e.key)) {
      d.problem(c, "unknown key" + suggestion(e.key, kTracingKeys));
    } else if (c.node.IsNull()) {
      continue;
    } else if (e.key == "enabled") {
      d.boolean(c, tracing.enabled);
    } else if (e.key == "path") {
      d.nonEmptyString(c, tracing.path);
    } else if (e.key == "max_body_bytes") {
      d.size(c, tracing.max_body_bytes);
    } else if (e.key == "rotate_bytes") {
      d.size(c, tracing.rotate_bytes);
      if (tracing.rotate_bytes < 4096) d.problem(c, "must be at least 4KiB");
    } else if (e.key == "keep_files") {
      if (auto n = d.integer(c, 0, kMaxKeepFiles)) tracing.keep_files = static_cast<int>(*n);
    }
  }
}

void decodeRoot(Decoder& d, const YAML::Node& root, Config& config) {
  bool sources_seen = false;
  bool file_present = false;
  int outputs_line = 1;
  if (!root.IsNull()) {
    auto m = d.mapping(Field{"", lineOf(root, 1), root});
    if (!m) return;
    for (const auto& e : m->entries) {
      const Field& c = e.field;
      if (!contains(kTopKeys, e.key)) {
        d.problem(c, "unknown key" + suggestion(e.key, kTopKeys));
      } else if (e.key == "sources") {
        sources_seen = true;
        if (c.node.IsNull()) {
          d.problem(c, "at least one source is required");
        } else {
          decodeSources(d, c, config);
        }
      } else if (c.node.IsNull()) {
        continue;
      } else if (e.key == "state_dir") {
        d.nonEmptyString(c, config.state_dir);
      } else if (e.key == "max_spool_bytes") {
        d.size(c, config.max_spool_bytes);
      } else if (e.key == "outputs") {
        outputs_line = c.line;
        file_present = decodeOutputs(d, c, config);
      } else if (e.key == "logging") {
        decodeLogging(d, c, config.logging);
      } else if (e.key == "http") {
        decodeHttp(d, c, config.http);
      } else if (e.key == "tracing") {
        decodeTracing(d, c, config.tracing);
      }
    }
  }
  if (!sources_seen) d.problem(1, "sources", "at least one source is required");

  // Without an outputs.file section the file output is the default: on unless another
  // output is.
  if (!file_present) {
    config.file_output.enabled = !config.stdout_output.enabled && !config.elasticsearch.enabled;
  }
  if (config.file_output.path.empty()) {
    config.file_output.path = joinPath(config.state_dir, "output");
  }
  if (config.tracing.path.empty()) {
    config.tracing.path = joinPath(config.state_dir, "trace/requests.ndjson");
  }
  if (!config.file_output.enabled && !config.stdout_output.enabled &&
      !config.elasticsearch.enabled) {
    d.problem(outputs_line, "outputs", "no output is enabled");
  }
}

std::string formatSize(std::uint64_t bytes) {
  if (bytes != 0 && bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes != 0 && bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes != 0 && bytes % (1ull << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes);
}

// The user:password of a proxy URL is replaced by ***.
std::string maskUrlPassword(const std::string& url) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const std::size_t start = scheme + 3;
  const std::size_t end = url.find_first_of("/?#", start);
  const std::size_t at = url.rfind('@', end == std::string::npos ? url.size() - 1 : end);
  if (at == std::string::npos || at < start) return url;
  const std::size_t colon = url.find(':', start);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + Secret::kMask + url.substr(at);
}

void emitString(YAML::Emitter& out, const char* key, const std::string& value) {
  out << YAML::Key << key << YAML::Value << escapeEnv(value);
}

void emitList(YAML::Emitter& out, const char* key, const std::vector<std::string>& values) {
  out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& v : values) out << escapeEnv(v);
  out << YAML::EndSeq;
}

void emitSource(YAML::Emitter& out, const SourceConfig& s) {
  out << YAML::BeginMap;
  emitString(out, "name", s.name);
  out << YAML::Key << "type" << YAML::Value << sourceTypeName(s.type);
  if (s.type != SourceType::kFile) {
    emitString(out, "tenant_id", s.tenant_id);
    emitString(out, "client_id", s.client_id);
    if (!s.client_secret_file.empty()) {
      emitString(out, "client_secret_file", s.client_secret_file);
    } else {
      out << YAML::Key << "client_secret" << YAML::Value
          << (s.client_secret.empty() ? "" : Secret::kMask);
    }
    emitString(out, "login_url", s.login_url);
    emitString(out, "token_url", s.token_url);
    emitString(out, "azure_resource", s.azure_resource);
    emitList(out, "scopes", s.scopes);
    emitString(out, "api_url", s.api_url);
    if (s.type == SourceType::kGraph) emitList(out, "service_sources", s.service_sources);
    out << YAML::Key << "interval" << YAML::Value << core::formatDuration(s.interval);
    out << YAML::Key << "initial_interval" << YAML::Value
        << core::formatDuration(s.initial_interval);
    out << YAML::Key << "late_arrival_window" << YAML::Value
        << core::formatDuration(s.late_arrival_window);
    out << YAML::Key << "page_size" << YAML::Value << s.page_size;
    emitString(out, "proxy_url", maskUrlPassword(s.proxy_url));
    out << YAML::Key << "ssl" << YAML::Value << YAML::BeginMap;
    emitString(out, "certificate_authorities", s.ssl.ca_file);
    out << YAML::Key << "verification_mode" << YAML::Value << (s.ssl.verify ? "full" : "none");
    out << YAML::EndMap;
    out << YAML::Key << "requests_per_minute" << YAML::Value << s.requests_per_minute;
    out << YAML::Key << "requests_per_hour" << YAML::Value << s.requests_per_hour;
    out << YAML::Key << "request_timeout" << YAML::Value << core::formatDuration(s.request_timeout);
  }
  if (s.type == SourceType::kFile) {
    emitList(out, "paths", s.paths);
    emitString(out, "format", s.format);
  }
  emitList(out, "tags", s.tags ? *s.tags : ecs::MapOptions{}.tags);
  out << YAML::Key << "preserve_original_event" << YAML::Value << s.preserve_original_event;
  emitString(out, "namespace", s.data_stream_namespace);
  out << YAML::EndMap;
}

void emitSecret(YAML::Emitter& out, const char* key, const char* file_key, const Secret& secret,
                const std::string& file) {
  if (!file.empty()) {
    emitString(out, file_key, file);
  } else if (!secret.empty()) {
    out << YAML::Key << key << YAML::Value << Secret::kMask;
  }
}

void emitElasticsearch(YAML::Emitter& out, const ElasticsearchOutputConfig& es) {
  out << YAML::Key << "elasticsearch" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << es.enabled;
  emitList(out, "hosts", es.hosts);
  emitSecret(out, "api_key", "api_key_file", es.api_key, es.api_key_file);
  if (!es.username.empty()) emitString(out, "username", es.username);
  emitSecret(out, "password", "password_file", es.password, es.password_file);
  out << YAML::Key << "ssl" << YAML::Value << YAML::BeginMap;
  emitString(out, "certificate_authorities", es.ssl.ca_file);
  out << YAML::Key << "verification_mode" << YAML::Value << (es.ssl.verify ? "full" : "none");
  out << YAML::EndMap;
  emitString(out, "proxy_url", maskUrlPassword(es.proxy_url));
  out << YAML::Key << "compression" << YAML::Value << es.compression;
  out << YAML::Key << "bulk_max_bytes" << YAML::Value << formatSize(es.bulk_max_bytes);
  out << YAML::Key << "bulk_max_docs" << YAML::Value << es.bulk_max_docs;
  out << YAML::Key << "timeout" << YAML::Value << core::formatDuration(es.timeout);
  emitString(out, "ilm_policy", es.ilm_policy);
  out << YAML::EndMap;
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const Secret& /*secret*/) {
  return out << Secret::kMask;
}

const char* sourceTypeName(SourceType type) {
  switch (type) {
    case SourceType::kMde:
      return "mde";
    case SourceType::kFile:
      return "file";
    case SourceType::kGraph:
      return "graph";
  }
  return "unknown";
}

Result<Config> loadConfig(const std::string& path) {
  auto content = readSmallFile(path, kMaxConfigBytes);
  if (!content) {
    return Error(content.error().code(),
                 "cannot open the config file '" + path + "': " + content.error().message());
  }
  YAML::Node root;
  try {
    root = YAML::Load(*content);
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::kInvalidArgument,
                 path + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  Config config;
  config.file = path;
  Decoder d(path);
  try {
    decodeRoot(d, root, config);
  } catch (const YAML::Exception& e) {
    // Not expected (every access is checked first), but a library boundary all the same.
    d.problem(e.mark.line >= 0 ? e.mark.line + 1 : 1, "", "cannot read the YAML: " + e.msg);
  }
  if (!d.ok()) return Error(ErrorCode::kInvalidArgument, d.report());
  return config;
}

std::string renderConfig(const Config& config) {
  YAML::Emitter out;
  out << YAML::Comment("the effective configuration" +
                       (config.file.empty() ? std::string() : " of " + config.file) +
                       "; secrets are shown as ***");
  out << YAML::BeginMap;
  emitString(out, "state_dir", config.state_dir);
  out << YAML::Key << "max_spool_bytes" << YAML::Value << formatSize(config.max_spool_bytes);
  out << YAML::Key << "logging" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "level" << YAML::Value << config.logging.level;
  out << YAML::Key << "format" << YAML::Value << config.logging.format;
  out << YAML::EndMap;
  out << YAML::Key << "http" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << config.http.enabled;
  emitString(out, "listen", config.http.listen);
  out << YAML::EndMap;
  out << YAML::Key << "tracing" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << config.tracing.enabled;
  emitString(out, "path", config.tracing.path);
  out << YAML::Key << "max_body_bytes" << YAML::Value << formatSize(config.tracing.max_body_bytes);
  out << YAML::Key << "rotate_bytes" << YAML::Value << formatSize(config.tracing.rotate_bytes);
  out << YAML::Key << "keep_files" << YAML::Value << config.tracing.keep_files;
  out << YAML::EndMap;
  out << YAML::Key << "sources" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : config.sources) emitSource(out, s);
  out << YAML::EndSeq;
  out << YAML::Key << "outputs" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "file" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << config.file_output.enabled;
  emitString(out, "path", config.file_output.path);
  out << YAML::Key << "rotate_bytes" << YAML::Value << formatSize(config.file_output.rotate_bytes);
  out << YAML::Key << "keep_files" << YAML::Value << config.file_output.keep_files;
  out << YAML::EndMap;
  out << YAML::Key << "stdout" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << config.stdout_output.enabled;
  out << YAML::EndMap;
  if (config.elasticsearch.enabled) emitElasticsearch(out, config.elasticsearch);
  out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace mdec::config
