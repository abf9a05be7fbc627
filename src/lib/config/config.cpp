// The collector's configuration file, decoded in this one place (spec: collection.md,
// outputs.md). Every problem is collected and reported at once, one per line, as
// "FILE:LINE: KEY: what is wrong". A secret's value never appears in a message.
//
// Each key is declared once, in the tables under "The keys" below: its name, where its value
// lives in the structs of config.h, its kind and bounds, and one line of documentation. The
// decoder, the check-config printer (renderConfig) and the README's reference
// (referenceMarkdown) all read those tables; the defaults are the structs' own initializers.
#include "mdecollect/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "mdecollect/auth/client_assertion.h"
#include "mdecollect/core/host_port.h"
#include "mdecollect/core/small_file.h"
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
constexpr std::int64_t kMaxShards = 10'000;

constexpr std::int64_t kMaxGraphPageSize = 1000;   // Graph clamps $top at 1000
constexpr std::int64_t kMaxIncidentPageSize = 50;  // Graph refuses $top > 50 on incidents

constexpr std::string_view kV1TokenUrl = "oauth2/token";
constexpr std::string_view kV2TokenUrl = "oauth2/v2.0/token";

bool contains(std::span<const std::string_view> keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

using core::readSmallFile;

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
std::string suggestion(std::string_view key, const std::vector<std::string>& known) {
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
  std::optional<std::string> choice(const Field& f, std::span<const std::string_view> choices) {
    auto t = text(f);
    if (!t) return std::nullopt;
    if (contains(choices, *t)) return t;
    std::string list;
    const std::size_t n = choices.size();
    for (std::size_t i = 0; i < n; ++i) {
      list += (i == 0 ? "" : i + 1 == n ? " or " : ", ") + std::string(choices[i]);
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

  std::optional<std::uint64_t> size(const Field& f) {
    auto t = text(f);
    if (!t) return std::nullopt;
    auto s = core::parseSize(*t);
    if (!s) {
      problem(f, s.error().message());
      return std::nullopt;
    }
    if (*s == 0) {
      problem(f, "must be more than 0 bytes");
      return std::nullopt;
    }
    return *s;
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

// ---- Checks of one value: the problem, or "" when the value is good. Messages never quote
// a value that may carry a secret (a proxy URL).

std::string httpUrlProblem(const std::string& url) {
  if (startsWith(url, "https://") || startsWith(url, "http://")) return {};
  return "must be an http:// or https:// URL, not '" + url + "'";
}

std::string hostProblem(const std::string& host) {
  if (startsWith(host, "https://") || startsWith(host, "http://")) return {};
  return "'" + host + "' is not an http:// or https:// URL";
}

std::string proxyUrlProblem(const std::string& url) {
  if (url.empty()) return {};
  for (std::string_view scheme :
       {"http://", "https://", "socks4://", "socks4a://", "socks5://", "socks5h://"}) {
    if (startsWith(url, scheme)) return {};
  }
  return "must be a URL starting with http://, https://, socks4://, socks4a://, socks5:// or "
         "socks5h://";
}

// Elasticsearch's rules for the namespace part of a data stream name.
std::string namespaceProblem(const std::string& name) {
  if (name.size() > kMaxNamespaceBytes) {
    return "must be at most " + std::to_string(kMaxNamespaceBytes) + " bytes, not " +
           std::to_string(name.size());
  }
  constexpr std::string_view kForbidden = "-\\/*?\"<>| ,#:";
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') return "'" + name + "' must be lowercase";
    if (kForbidden.find(c) != std::string_view::npos) {
      return "'" + name + "' must not contain '" + std::string(1, c) +
             "' (nor any of - \\ / * ? \" < > | , # : or a space)";
    }
  }
  return {};
}

std::string sourceNameProblem(const std::string& name) {
  const bool good = !name.empty() && name != "." && name != ".." &&
                    std::all_of(name.begin(), name.end(), [](char c) {
                      return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                             (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
                    });
  if (good) return {};
  return "'" + name + "' must be letters, digits, '_', '.' and '-' (it names the source's state)";
}

// A tenant id goes into the token URL's path: a GUID or a domain name.
std::string tenantIdProblem(const std::string& id) {
  const bool good = std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
  });
  return good ? std::string() : "'" + id + "' must be a tenant GUID or domain name";
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

// ---- The declaration scheme. A Key<S> is one key of a YAML mapping whose values go into the
// struct S; a table of them is the mapping. The engine below (decodeKeys, checkKeys,
// emitKeys, ReferenceWriter) reads the tables; nothing else names a key.

// What a key holds: how it is read, and the reference's "type" column.
enum class Kind {
  kString,    // any text ("" allowed unless nonEmpty())
  kPath,      // a file or directory name
  kUrl,       // http:// or https://
  kProxyUrl,  // printed with its password as ***
  kChoice,    // one of bounds.choices (a bool member: the first choice is true)
  kBool,
  kInteger,   // bounds.min..bounds.max
  kDuration,  // "30s"; at least bounds.min milliseconds
  kSize,      // "5MiB"; more than 0, at least bounds.min bytes
  kList,      // a list of non-empty strings
  kSecret,    // NAME or NAME_file, not both; printed as ***
  kMapping,   // a nested mapping with its own table
  kSources,   // the list of sources
  kCustom,    // decoded and printed by its own functions
};

// The source types a source key belongs to (other sections: every type).
constexpr unsigned kMdeType = 1;
constexpr unsigned kGraphType = 2;
constexpr unsigned kFileType = 4;
constexpr unsigned kIncidentsType = 8;
constexpr unsigned kApiTypes = kMdeType | kGraphType | kIncidentsType;
constexpr unsigned kEveryType = kApiTypes | kFileType;

unsigned typeBit(SourceType type) {
  switch (type) {
    case SourceType::kMde:
      return kMdeType;
    case SourceType::kGraph:
      return kGraphType;
    case SourceType::kFile:
      return kFileType;
    case SourceType::kGraphIncidents:
      return kIncidentsType;
  }
  return 0;
}

// "an mde source", for messages.
std::string aSource(SourceType type) {
  return std::string(type == SourceType::kMde ? "an " : "a ") + sourceTypeName(type) + " source";
}

// Where a mapping is decoded. In a source of a known type, keys of the other types are
// problems; in one of unknown type, any source key is accepted.
struct Scope {
  std::optional<SourceType> type;  // in a source: its type when valid
};

struct Bounds {
  std::int64_t min = 0;                       // kInteger, kDuration (ms), kSize (bytes)
  std::int64_t max = 0;                       // kInteger
  std::int64_t graph_max = 0;                 // kInteger in a graph source, when lower than max
  std::int64_t incidents_max = 0;             // kInteger in a graph_incidents source, likewise
  std::span<const std::string_view> choices;  // kChoice
  bool non_empty = false;                     // text: "" is a problem
  std::string_view empty_list;                // kList: the problem when the list is empty
  std::string (*check)(const std::string&) = nullptr;  // text or each list item
};

template <class S>
struct Key;
class ReferenceWriter;

// How a key's value is read from YAML, printed by check-config, and described in the
// reference. Built by the templates below from a pointer to the member it fills.
template <class S>
struct Codec {
  void (*decode)(Decoder&, const Field&, S&, const Key<S>&, const Scope&) = nullptr;
  // Writes "key: value" (or nothing).
  void (*emit)(YAML::Emitter&, const S&, const Key<S>&) = nullptr;
  // The value as check-config prints it, for the reference's default column ("" for none).
  std::string (*shown)(const S&, const Key<S>&) = nullptr;
  // A mapping: its keys' rows (flat) or its own section in the reference.
  void (*reference)(ReferenceWriter&, const Key<S>&, const std::string& path, const S& defaults,
                    const std::type_identity_t<S>* graph_defaults) = nullptr;
};

template <class S>
struct Key {
  constexpr Key(std::string_view key_name, Kind key_kind, Codec<S> key_codec,
                std::string_view key_doc)
      : name(key_name), kind(key_kind), codec(key_codec), doc(key_doc) {}

  std::string_view name;
  Kind kind = Kind::kString;
  Codec<S> codec;
  std::string_view doc;  // one line: the reference's "meaning" column
  Bounds bounds;
  unsigned types = kEveryType;
  bool required = false;
  bool decode_null = false;                  // a null value is decoded too (not "the default")
  bool (*printed_when)(const S&) = nullptr;  // check-config prints the key only then
  bool flat = false;                         // a mapping listed as name.key in its parent's table
  std::string_view label;                    // the reference's type, when the kind does not say it
  std::string_view note;  // the reference's default, when the struct's does not say it

  constexpr Key min(std::int64_t v) const {
    return with([&](Key& k) { k.bounds.min = v; });
  }
  constexpr Key range(std::int64_t lo, std::int64_t hi) const {
    return with([&](Key& k) {
      k.bounds.min = lo;
      k.bounds.max = hi;
    });
  }
  constexpr Key graphMax(std::int64_t v) const {
    return with([&](Key& k) { k.bounds.graph_max = v; });
  }
  constexpr Key incidentsMax(std::int64_t v) const {
    return with([&](Key& k) { k.bounds.incidents_max = v; });
  }
  constexpr Key nonEmpty() const {
    return with([](Key& k) { k.bounds.non_empty = true; });
  }
  constexpr Key emptyList(std::string_view problem) const {
    return with([&](Key& k) { k.bounds.empty_list = problem; });
  }
  constexpr Key check(std::string (*fn)(const std::string&)) const {
    return with([&](Key& k) { k.bounds.check = fn; });
  }
  constexpr Key of(unsigned source_types) const {
    return with([&](Key& k) { k.types = source_types; });
  }
  constexpr Key isRequired() const {
    return with([](Key& k) { k.required = true; });
  }
  constexpr Key nullToo() const {
    return with([](Key& k) { k.decode_null = true; });
  }
  constexpr Key printedWhen(bool (*fn)(const S&)) const {
    return with([&](Key& k) { k.printed_when = fn; });
  }
  constexpr Key flatten() const {
    return with([](Key& k) { k.flat = true; });
  }
  constexpr Key typeLabel(std::string_view text) const {
    return with([&](Key& k) { k.label = text; });
  }
  constexpr Key defaultNote(std::string_view text) const {
    return with([&](Key& k) { k.note = text; });
  }
  constexpr Key decodeWith(void (*fn)(Decoder&, const Field&, S&, const Key&, const Scope&)) const {
    return with([&](Key& k) { k.codec.decode = fn; });
  }

 private:
  template <class F>
  constexpr Key with(F change) const {
    Key k = *this;
    change(k);
    return k;
  }
};

template <class M>
struct MemberTraits;
template <class S, class V>
struct MemberTraits<V S::*> {
  using Struct = S;
  using Value = V;
};
template <auto M>
using StructOf = typename MemberTraits<decltype(M)>::Struct;
template <auto M>
using ValueOf = typename MemberTraits<decltype(M)>::Value;

template <class>
inline constexpr bool kUnsupported = false;

// A scalar or list printed alone, as check-config prints it ("" when nothing is printed).
template <class S>
std::string printed(void (*emit_value)(YAML::Emitter&, const S&, const Key<S>&), const S& s,
                    const Key<S>& key) {
  YAML::Emitter out;
  emit_value(out, s, key);
  return out.c_str();
}

// The value of a plain member: text, bool, number, duration, size or list.
template <auto M>
struct Slot {
  using S = StructOf<M>;
  using V = ValueOf<M>;

  static void decode(Decoder& d, const Field& f, S& s, const Key<S>& key, const Scope& scope) {
    V& out = s.*M;
    const Bounds& b = key.bounds;
    if constexpr (std::is_same_v<V, std::string>) {
      auto t = key.kind == Kind::kChoice ? d.choice(f, b.choices) : d.text(f);
      if (!t) return;
      if (b.non_empty && t->empty()) {
        d.problem(f, "must not be empty");
      } else if (const std::string p = b.check ? b.check(*t) : ""; !p.empty()) {
        d.problem(f, p);
      } else {
        out = std::move(*t);
      }
    } else if constexpr (std::is_same_v<V, bool>) {
      if (key.kind == Kind::kChoice) {
        if (auto t = d.choice(f, b.choices)) out = *t == b.choices.front();
      } else {
        d.boolean(f, out);
      }
    } else if constexpr (std::is_same_v<V, milliseconds>) {
      d.duration(f, out, milliseconds(b.min));
    } else if constexpr (std::is_integral_v<V>) {
      if (key.kind == Kind::kSize) {
        auto v = d.size(f);
        if (!v) return;
        out = static_cast<V>(*v);
        if (*v < static_cast<std::uint64_t>(b.min)) {
          d.problem(f, "must be at least " + formatSize(static_cast<std::uint64_t>(b.min)));
        }
      } else {
        std::int64_t max = b.max;
        if (scope.type == SourceType::kGraph && b.graph_max != 0) max = b.graph_max;
        if (scope.type == SourceType::kGraphIncidents && b.incidents_max != 0) {
          max = b.incidents_max;
        }
        if (auto v = d.integer(f, b.min, max)) out = static_cast<V>(*v);
      }
    } else if constexpr (std::is_same_v<V, std::vector<std::string>> ||
                         std::is_same_v<V, std::optional<std::vector<std::string>>>) {
      auto list = d.stringList(f, true);
      if (!list) return;
      bool good = true;
      if (list->empty() && !b.empty_list.empty()) {
        d.problem(f, std::string(b.empty_list));
        good = false;
      }
      for (const auto& item : *list) {
        if (const std::string p = b.check ? b.check(item) : ""; !p.empty()) {
          d.problem(f, p);
          good = false;
        }
      }
      if (good) out = std::move(*list);
    } else {
      static_assert(kUnsupported<V>, "no decoder for this member type");
    }
  }

  static void emitValue(YAML::Emitter& out, const S& s, const Key<S>& key) {
    const V& v = s.*M;
    if constexpr (std::is_same_v<V, std::string>) {
      out << escapeEnv(key.kind == Kind::kProxyUrl ? maskUrlPassword(v) : v);
    } else if constexpr (std::is_same_v<V, bool>) {
      if (key.kind == Kind::kChoice) {
        out << std::string(key.bounds.choices[v ? 0 : 1]);
      } else {
        out << v;
      }
    } else if constexpr (std::is_same_v<V, milliseconds>) {
      out << core::formatDuration(v);
    } else if constexpr (std::is_integral_v<V>) {
      if (key.kind == Kind::kSize) {
        out << formatSize(static_cast<std::uint64_t>(v));
      } else {
        out << v;
      }
    } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
      out << YAML::Flow << YAML::BeginSeq;
      for (const auto& item : v) out << escapeEnv(item);
      out << YAML::EndSeq;
    }
  }

  static void emit(YAML::Emitter& out, const S& s, const Key<S>& key) {
    out << YAML::Key << std::string(key.name) << YAML::Value;
    emitValue(out, s, key);
  }

  static std::string shown(const S& s, const Key<S>& key) { return printed(&emitValue, s, key); }

  static constexpr Codec<S> codec() { return {&decode, &emit, &shown, nullptr}; }
};

// NAME (inline) or NAME_file (read when loading; its path kept in File). Printed as the file's
// path, or as *** (or "" when required and unset); an unset optional secret is not printed.
template <auto M, auto File>
struct SecretSlot {
  using S = StructOf<M>;

  static void decode(Decoder& d, const Field& f, S& s, const Key<S>&, const Scope&) {
    if (f.path.ends_with("_file")) {
      secretFile(d, f, s.*M, s.*File);
      return;
    }
    std::string value;
    d.nonEmptyString(f, value);
    if (!value.empty()) s.*M = Secret(std::move(value));
  }

  static void emit(YAML::Emitter& out, const S& s, const Key<S>& key) {
    if (!(s.*File).empty()) {
      out << YAML::Key << std::string(key.name) + "_file" << YAML::Value << escapeEnv(s.*File);
    } else if (!(s.*M).empty() || key.required) {
      out << YAML::Key << std::string(key.name) << YAML::Value
          << ((s.*M).empty() ? "" : Secret::kMask);
    }
  }

  static std::string shown(const S&, const Key<S>&) { return {}; }

  static constexpr Codec<S> codec() { return {&decode, &emit, &shown, nullptr}; }
};

// A table as a span (the engine's functions deduce S from it).
template <class S, std::size_t N>
constexpr std::span<const Key<S>> all(const Key<S> (&keys)[N]) {
  return {keys, N};
}

template <class S>
void decodeKeys(Decoder& d, const Field& f, const Mapping& m, S& s, std::span<const Key<S>> keys,
                const Scope& scope, std::string_view unknown = "unknown key",
                std::string_view unknown_note = "");
template <class S>
void checkKeys(Decoder& d, const Field& f, const Mapping& m, std::span<const Key<S>> keys,
               const Scope& scope);
template <class S>
void emitKeys(YAML::Emitter& out, const S& s, std::span<const Key<S>> keys, unsigned types);
template <class S>
void referenceKeys(ReferenceWriter& r, std::span<const Key<S>> keys, const std::string& prefix,
                   const std::string& section, const S& defaults,
                   const std::type_identity_t<S>* graph_defaults, unsigned types);
template <class S>
void referenceSection(ReferenceWriter& r, std::span<const Key<S>> keys, const std::string& path,
                      const std::string& intro, const S& defaults,
                      const std::type_identity_t<S>* graph_defaults, unsigned types);

// A nested mapping whose keys are the table Keys and whose values go into the member M. A
// Finish, when given, runs after its keys are decoded (cross-key rules).
template <auto M, const auto& Keys>
struct MappingSlot {
  using S = StructOf<M>;
  using V = ValueOf<M>;

  static void decode(Decoder& d, const Field& f, S& s, const Key<S>&, const Scope& scope) {
    auto m = d.mapping(f);
    if (!m) return;
    decodeKeys(d, f, *m, s.*M, all(Keys), scope);
    checkKeys(d, f, *m, all(Keys), scope);
  }

  static void emit(YAML::Emitter& out, const S& s, const Key<S>& key) {
    out << YAML::Key << std::string(key.name) << YAML::Value << YAML::BeginMap;
    emitKeys(out, s.*M, all(Keys), kEveryType);
    out << YAML::EndMap;
  }

  static std::string shown(const S&, const Key<S>&) { return {}; }

  static void reference(ReferenceWriter& r, const Key<S>& key, const std::string& path,
                        const S& defaults, const std::type_identity_t<S>* graph_defaults) {
    if (key.flat) {
      referenceKeys(r, all(Keys), path + ".", std::string(), defaults.*M,
                    graph_defaults != nullptr ? &(graph_defaults->*M) : nullptr, kEveryType);
    } else {
      referenceSection(r, all(Keys), path, std::string(), V{}, nullptr, kEveryType);
    }
  }

  static constexpr Codec<S> codec() { return {&decode, &emit, &shown, &reference}; }
};

template <auto M>
constexpr Key<StructOf<M>> text(std::string_view name, std::string_view doc) {
  return {name, Kind::kString, Slot<M>::codec(), doc};
}
template <auto M>
constexpr Key<StructOf<M>> path(std::string_view name, std::string_view doc) {
  return Key<StructOf<M>>{name, Kind::kPath, Slot<M>::codec(), doc}.nonEmpty();
}
template <auto M>
constexpr Key<StructOf<M>> url(std::string_view name, std::string_view doc) {
  return Key<StructOf<M>>{name, Kind::kUrl, Slot<M>::codec(), doc}.nonEmpty().check(
      &httpUrlProblem);
}
template <auto M>
constexpr Key<StructOf<M>> proxyUrl(std::string_view name, std::string_view doc) {
  return Key<StructOf<M>>{name, Kind::kProxyUrl, Slot<M>::codec(), doc}.check(&proxyUrlProblem);
}
template <auto M>
constexpr Key<StructOf<M>> choice(std::string_view name, std::span<const std::string_view> choices,
                                  std::string_view doc) {
  Key<StructOf<M>> k{name, Kind::kChoice, Slot<M>::codec(), doc};
  k.bounds.choices = choices;
  return k;
}
template <auto M>
constexpr Key<StructOf<M>> flag(std::string_view name, std::string_view doc) {
  return {name, Kind::kBool, Slot<M>::codec(), doc};
}
template <auto M>
constexpr Key<StructOf<M>> integer(std::string_view name, std::int64_t min, std::int64_t max,
                                   std::string_view doc) {
  return Key<StructOf<M>>{name, Kind::kInteger, Slot<M>::codec(), doc}.range(min, max);
}
template <auto M>
constexpr Key<StructOf<M>> duration(std::string_view name, std::string_view doc) {
  return {name, Kind::kDuration, Slot<M>::codec(), doc};
}
template <auto M>
constexpr Key<StructOf<M>> size(std::string_view name, std::string_view doc) {
  return {name, Kind::kSize, Slot<M>::codec(), doc};
}
template <auto M>
constexpr Key<StructOf<M>> list(std::string_view name, std::string_view doc) {
  return {name, Kind::kList, Slot<M>::codec(), doc};
}
template <auto M, auto File>
constexpr Key<StructOf<M>> secret(std::string_view name, std::string_view doc) {
  return {name, Kind::kSecret, SecretSlot<M, File>::codec(), doc};
}
template <auto M, const auto& Keys>
constexpr Key<StructOf<M>> mapping(std::string_view name, std::string_view doc) {
  return {name, Kind::kMapping, MappingSlot<M, Keys>::codec(), doc};
}

// ---- Keys with their own decoding.

// One PEM file: a path, or a list of exactly one; it must be readable.
void decodeCaFile(Decoder& d, const Field& f, TlsConfig& ssl, const Key<TlsConfig>&, const Scope&) {
  if (f.node.IsSequence()) {
    auto list = d.stringList(f, true);
    if (!list) return;
    if (list->size() != 1) {
      d.problem(f, "must name one PEM file (put several certificates in it), not " +
                       std::to_string(list->size()));
      return;
    }
    ssl.ca_file = list->front();
  } else {
    d.string(f, ssl.ca_file);
  }
  if (!ssl.ca_file.empty()) {
    auto content = readSmallFile(ssl.ca_file, kMaxConfigBytes);
    if (!content) d.problem(f, "cannot read '" + ssl.ca_file + "': " + content.error().message());
  }
}

// host:port or [v6]:port; sets host and port too.
void decodeListen(Decoder& d, const Field& f, HttpConfig& http, const Key<HttpConfig>&,
                  const Scope&) {
  std::string listen;
  d.nonEmptyString(f, listen);
  if (listen.empty()) return;
  auto address = core::parseHostPort(listen);
  if (!address) {
    d.problem(f, "expected host:port (for example 127.0.0.1:5066), got '" + listen +
                     "': " + address.error().message());
    return;
  }
  http.listen = listen;
  http.host = std::move(address->host);
  http.port = address->port;
}

// The type is read before the other keys (it decides which keys a source has).
void decodeNothing(Decoder&, const Field&, SourceConfig&, const Key<SourceConfig>&, const Scope&) {}

struct TypeSlot {
  static void emit(YAML::Emitter& out, const SourceConfig& s, const Key<SourceConfig>& key) {
    out << YAML::Key << std::string(key.name) << YAML::Value << sourceTypeName(s.type);
  }
  static std::string shown(const SourceConfig&, const Key<SourceConfig>&) { return {}; }
  static constexpr Codec<SourceConfig> codec() { return {&decodeNothing, &emit, &shown, nullptr}; }
};

// tags: unset means the mapper's default tags, and prints as them.
struct TagsSlot {
  using Base = Slot<&SourceConfig::tags>;
  static void emitValue(YAML::Emitter& out, const SourceConfig& s, const Key<SourceConfig>&) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& tag : s.tags ? *s.tags : defaultTags(s)) out << escapeEnv(tag);
    out << YAML::EndSeq;
  }
  static void emit(YAML::Emitter& out, const SourceConfig& s, const Key<SourceConfig>& key) {
    out << YAML::Key << std::string(key.name) << YAML::Value;
    emitValue(out, s, key);
  }
  static std::string shown(const SourceConfig& s, const Key<SourceConfig>& key) {
    return printed(&emitValue, s, key);
  }
  static constexpr Codec<SourceConfig> codec() { return {&Base::decode, &emit, &shown, nullptr}; }
};

// The token request's own fields, which token_params cannot set.
constexpr std::array<std::string_view, 7> kTokenRequestFields = {
    "grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type",
    "scope",      "resource"};

// token_params: a mapping of names to scalar values, kept in the file's order.
struct TokenParamsSlot {
  static void decode(Decoder& d, const Field& f, SourceConfig& s, const Key<SourceConfig>&,
                     const Scope&) {
    auto m = d.mapping(f);
    if (!m) return;
    std::vector<std::pair<std::string, std::string>> params;
    bool good = true;
    for (const auto& e : m->entries) {
      if (contains(kTokenRequestFields, e.key)) {
        d.problem(e.field, "'" + e.key +
                               "' is a field the collector sets itself (from client_id, the "
                               "credential, azure_resource or scopes)");
        good = false;
        continue;
      }
      auto value = d.text(e.field);
      if (!value) {
        good = false;
        continue;
      }
      params.emplace_back(e.key, std::move(*value));
    }
    if (good) s.token_params = std::move(params);
  }
  static void emit(YAML::Emitter& out, const SourceConfig& s, const Key<SourceConfig>& key) {
    out << YAML::Key << std::string(key.name) << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (const auto& [name, value] : s.token_params) {
      out << YAML::Key << name << YAML::Value << escapeEnv(value);
    }
    out << YAML::EndMap;
  }
  static std::string shown(const SourceConfig&, const Key<SourceConfig>&) { return {}; }
  static constexpr Codec<SourceConfig> codec() { return {&decode, &emit, &shown, nullptr}; }
};

// Declared here, defined after the tables they read.
void decodeSourceList(Decoder& d, const Field& f, Config& config, const Key<Config>&, const Scope&);
void emitSourceList(YAML::Emitter& out, const Config& config, const Key<Config>& key);
void referenceSources(ReferenceWriter& r, const Key<Config>& key, const std::string& path,
                      const Config& defaults, const Config* graph_defaults);
void decodeOutputs(Decoder& d, const Field& f, Config& config, const Key<Config>&, const Scope&);
void emitOutputs(YAML::Emitter& out, const Config& config, const Key<Config>& key);
void referenceOutputs(ReferenceWriter& r, const Key<Config>& key, const std::string& path,
                      const Config& defaults, const Config* graph_defaults);
void decodeElasticsearch(Decoder& d, const Field& f, Config& config, const Key<Config>&,
                         const Scope& scope);
void emitElasticsearch(YAML::Emitter& out, const Config& config, const Key<Config>& key);
void referenceElasticsearch(ReferenceWriter& r, const Key<Config>& key, const std::string& path,
                            const Config& defaults, const Config* graph_defaults);
void decodeShard(Decoder& d, const Field& f, Config& config, const Key<Config>&,
                 const Scope& scope);
void emitShard(YAML::Emitter& out, const Config& config, const Key<Config>& key);
void referenceShard(ReferenceWriter& r, const Key<Config>& key, const std::string& path,
                    const Config& defaults, const Config* graph_defaults);
std::string shownNothing(const Config&, const Key<Config>&) { return {}; }

// ---- The keys. Each table is in check-config's order. The reference's default column
// is the struct's default as check-config prints it, unless a defaultNote says otherwise.

constexpr std::array<std::string_view, 2> kVerificationModes = {"full", "none"};
constexpr std::array<std::string_view, 4> kLogLevels = {"debug", "info", "warn", "error"};
constexpr std::array<std::string_view, 2> kLogFormats = {"text", "json"};
constexpr std::array<std::string_view, 3> kFileFormats = {"mde", "graph", "graph_incidents"};
constexpr std::array<std::string_view, 5> kClouds = {"global", "usgov", "usgov_high", "dod",
                                                     "china"};
constexpr std::array<std::string_view, 2> kAssertionAlgorithms = {"PS256", "RS256"};

constexpr Key<TlsConfig> kSslKeys[] = {
    path<&TlsConfig::ca_file>("certificate_authorities",
                              "one PEM file (several certificates in it are fine)")
        .decodeWith(&decodeCaFile)
        .defaultNote("the system's CAs"),
    choice<&TlsConfig::verify>("verification_mode", kVerificationModes,
                               "`none` turns certificate and host name checks off"),
};

constexpr Key<LoggingConfig> kLoggingKeys[] = {
    choice<&LoggingConfig::level>("level", kLogLevels, "the least severe level logged"),
    choice<&LoggingConfig::format>("format", kLogFormats, "`json`: one JSON object a line"),
};

constexpr Key<HttpConfig> kHttpKeys[] = {
    flag<&HttpConfig::enabled>("enabled", "serve `/metrics` (Prometheus) and `/health` (JSON)"),
    text<&HttpConfig::listen>("listen", "`HOST:PORT` or `[::1]:PORT`; port `0`: any free port")
        .decodeWith(&decodeListen)
        .typeLabel("host:port"),
};

constexpr Key<TracingConfig> kTracingKeys[] = {
    flag<&TracingConfig::enabled>("enabled",
                                  "every HTTP request and response, one NDJSON line each"),
    path<&TracingConfig::path>("path", "the trace file")
        .defaultNote("`<state_dir>/trace/requests.ndjson`"),
    size<&TracingConfig::max_body_bytes>("max_body_bytes", "each body is cut to this size"),
    size<&TracingConfig::rotate_bytes>("rotate_bytes", "a new file when the trace reaches it")
        .min(4096),
    integer<&TracingConfig::keep_files>(
        "keep_files", 0, kMaxKeepFiles,
        "rotated files kept besides the current one; `0` starts the one file over when it is full"),
};

// shard.index: a number, or `auto` (resolved when the collector starts: pipeline/shard.h).
struct ShardIndexSlot {
  static void decode(Decoder& d, const Field& f, ShardConfig& s, const Key<ShardConfig>&,
                     const Scope&) {
    s.line = f.line;
    auto t = d.text(f);
    if (!t) return;
    if (*t == "auto") {
      s.index_auto = true;
      return;
    }
    if (auto v = d.integer(f, 0, kMaxShards - 1)) {
      s.index_auto = false;
      s.index = static_cast<int>(*v);
    }
  }
  static void emitValue(YAML::Emitter& out, const ShardConfig& s, const Key<ShardConfig>&) {
    if (s.index_auto) {
      out << "auto";
    } else {
      out << s.index;
    }
  }
  static void emit(YAML::Emitter& out, const ShardConfig& s, const Key<ShardConfig>& key) {
    out << YAML::Key << std::string(key.name) << YAML::Value;
    emitValue(out, s, key);
  }
  static std::string shown(const ShardConfig& s, const Key<ShardConfig>& key) {
    return printed(&emitValue, s, key);
  }
  static constexpr Codec<ShardConfig> codec() { return {&decode, &emit, &shown, nullptr}; }
};

constexpr Key<ShardConfig> kShardKeys[] = {
    Key<ShardConfig>{"index", Kind::kCustom, ShardIndexSlot::codec(),
                     "this replica's shard, `0` to `count - 1`; `auto`: `MDEC_SHARD_INDEX` if "
                     "set, else the trailing `-N` of the host name (a StatefulSet pod's ordinal)"}
        .typeLabel("integer or `auto`"),
    integer<&ShardConfig::count>("count", 1, kMaxShards,
                                 "how many replicas share the sources; `1`: no sharding"),
};

constexpr Key<FileOutputConfig> kFileOutputKeys[] = {
    flag<&FileOutputConfig::enabled>("enabled", "NDJSON files")
        .defaultNote("`true` when the `file` section is present, or when no other output is "
                     "enabled"),
    path<&FileOutputConfig::path>(
        "path", "a directory: files `microsoft_defender_endpoint-<YYYYMMDD>.ndjson` (UTC date)")
        .defaultNote("`<state_dir>/output`"),
    size<&FileOutputConfig::rotate_bytes>(
        "rotate_bytes",
        "a new file when the next page would pass it (a file can pass it by one "
        "page)"),
    integer<&FileOutputConfig::keep_files>("keep_files", 1, kMaxKeepFiles,
                                           "older files are deleted"),
};

constexpr Key<StdoutOutputConfig> kStdoutOutputKeys[] = {
    flag<&StdoutOutputConfig::enabled>("enabled", "the same lines on standard output"),
};

constexpr Key<ElasticsearchOutputConfig> kElasticsearchKeys[] = {
    flag<&ElasticsearchOutputConfig::enabled>("enabled",
                                              "`false` keeps the section but turns the output off")
        .defaultNote("`true`"),
    list<&ElasticsearchOutputConfig::hosts>("hosts", "tried in turn when a connection fails")
        .emptyList("must list at least one URL")
        .check(&hostProblem)
        .isRequired()
        .typeLabel("list of URLs"),
    secret<&ElasticsearchOutputConfig::api_key, &ElasticsearchOutputConfig::api_key_file>(
        "api_key", "`id:api_key`, or the `encoded` form Elasticsearch prints"),
    text<&ElasticsearchOutputConfig::username>(
        "username", "basic authentication, with `password` (not with `api_key`)")
        .nonEmpty()
        .printedWhen([](const ElasticsearchOutputConfig& es) { return !es.username.empty(); }),
    secret<&ElasticsearchOutputConfig::password, &ElasticsearchOutputConfig::password_file>(
        "password", "basic authentication, with `username`"),
    mapping<&ElasticsearchOutputConfig::ssl, kSslKeys>("ssl", "").flatten(),
    proxyUrl<&ElasticsearchOutputConfig::proxy_url>("proxy_url", "as for sources"),
    flag<&ElasticsearchOutputConfig::compression>("compression", "gzip request bodies"),
    size<&ElasticsearchOutputConfig::bulk_max_bytes>("bulk_max_bytes", "one `_bulk` request")
        .min(1024),
    integer<&ElasticsearchOutputConfig::bulk_max_docs>("bulk_max_docs", 1, 100000,
                                                       "documents in one `_bulk` request"),
    integer<&ElasticsearchOutputConfig::bulk_in_flight>(
        "bulk_in_flight", 1, 32,
        "`_bulk` requests sent at once; documents are acknowledged in outbox order"),
    duration<&ElasticsearchOutputConfig::timeout>("timeout", "per request")
        .min(kMinRequestTimeout.count()),
    text<&ElasticsearchOutputConfig::ilm_policy>(
        "ilm_policy",
        "set: `setup` writes `index.lifecycle.name` into the template (the policy must exist)"),
};

constexpr Key<SourceConfig> kSourceKeys[] = {
    text<&SourceConfig::name>("name",
                              "unique; letters, digits, `_`, `.`, `-`. It names the source's "
                              "state (watermark, seen-set): keep it once collecting")
        .check(&sourceNameProblem)
        .isRequired(),
    Key<SourceConfig>{"type", Kind::kCustom, TypeSlot::codec(),
                      "`graph`: Microsoft Graph `alerts_v2`; `graph_incidents`: Microsoft Graph "
                      "security incidents; `mde`: the legacy Defender for "
                      "Endpoint alerts API, which Microsoft retires (to switch: `type: graph`, "
                      "the same `name`); `file`: NDJSON files"}
        .typeLabel("`mde`, `graph`, `graph_incidents` or `file`")
        .defaultNote("required"),
    text<&SourceConfig::tenant_id>("tenant_id",
                                   "the Directory (tenant) ID: a GUID or `contoso.onmicrosoft.com`")
        .nonEmpty()
        .check(&tenantIdProblem)
        .of(kApiTypes)
        .isRequired(),
    text<&SourceConfig::client_id>("client_id", "the app's Application (client) ID")
        .nonEmpty()
        .of(kApiTypes)
        .isRequired(),
    secret<&SourceConfig::client_secret, &SourceConfig::client_secret_file>(
        "client_secret",
        "the secret's **Value** (or sign in with a certificate or a federated "
        "assertion: [Signing in](#signing-in-secrets-certificates-workload-"
        "identity-national-clouds))")
        .of(kApiTypes)
        .defaultNote("one of `client_secret`, `client_certificate_file`, `client_assertion_file`"),
    path<&SourceConfig::client_certificate_file>(
        "client_certificate_file",
        "a certificate credential: the certificate uploaded to the app (PEM, RSA); its key signs "
        "each token request's client assertion")
        .of(kApiTypes)
        .printedWhen([](const SourceConfig& s) { return !s.client_certificate_file.empty(); })
        .defaultNote("none"),
    path<&SourceConfig::client_key_file>(
        "client_key_file",
        "the certificate's private key (PEM: PKCS#8 or PKCS#1, may be encrypted)")
        .of(kApiTypes)
        .printedWhen([](const SourceConfig& s) { return !s.client_key_file.empty(); })
        .defaultNote("the certificate's file"),
    secret<&SourceConfig::client_key_password, &SourceConfig::client_key_password_file>(
        "client_key_password", "the password of an encrypted `client_key_file`")
        .of(kApiTypes),
    choice<&SourceConfig::client_assertion_algorithm>(
        "client_assertion_algorithm", kAssertionAlgorithms,
        "the assertion's signature: `PS256` (RSA-PSS, Microsoft's advice) or `RS256` (PKCS#1 "
        "v1.5)")
        .of(kApiTypes)
        .printedWhen([](const SourceConfig& s) { return !s.client_certificate_file.empty(); }),
    path<&SourceConfig::client_assertion_file>(
        "client_assertion_file",
        "workload identity federation: the file a platform keeps a signed token in (AKS: "
        "`${AZURE_FEDERATED_TOKEN_FILE}`), read again before each token request")
        .of(kApiTypes)
        .printedWhen([](const SourceConfig& s) { return !s.client_assertion_file.empty(); })
        .defaultNote("none"),
    Key<SourceConfig>{"token_params", Kind::kCustom, TokenParamsSlot::codec(),
                      "more fields for the token request (as Elastic's `token_params`)"}
        .of(kApiTypes)
        .typeLabel("mapping")
        .printedWhen([](const SourceConfig& s) { return !s.token_params.empty(); })
        .defaultNote("none"),
    choice<&SourceConfig::cloud>(
        "cloud", kClouds,
        "sets the defaults of `login_url`, `api_url`, `azure_resource` and `scopes` for "
        "Microsoft's national clouds ([Signing in](#signing-in-secrets-certificates-workload-"
        "identity-national-clouds))")
        .of(kApiTypes),
    url<&SourceConfig::login_url>("login_url", "Microsoft Entra ID; overrides `cloud`'s")
        .of(kApiTypes),
    text<&SourceConfig::token_url>("token_url", "appended to `login_url/tenant_id/`")
        .nonEmpty()
        .of(kApiTypes)
        .typeLabel("path")
        .defaultNote("`oauth2/token` (v1); `oauth2/v2.0/token` when `scopes` is set"),
    text<&SourceConfig::azure_resource>("azure_resource", "the v1 token flow's `resource`")
        .nonEmpty()
        .of(kApiTypes),
    list<&SourceConfig::scopes>("scopes", "set: the v2 token flow (`scope=`); unset: the v1 flow")
        .emptyList("must list at least one scope (or leave 'scopes' out for the v1 flow)")
        .of(kApiTypes),
    url<&SourceConfig::api_url>("api_url",
                                "overrides `cloud`'s; also regional hosts "
                                "(`https://api-eu.security.microsoft.com`)")
        .of(kApiTypes),
    list<&SourceConfig::service_sources>("service_sources",
                                         "graph only: the products; `[]`: alerts of every product")
        .of(kGraphType),
    duration<&SourceConfig::interval>("interval", "time between polls")
        .min(kMinInterval.count())
        .of(kApiTypes),
    duration<&SourceConfig::initial_interval>("initial_interval",
                                              "the first poll looks back this far")
        .of(kApiTypes),
    duration<&SourceConfig::late_arrival_window>(
        "late_arrival_window", "each poll reads again this much before the watermark")
        .of(kApiTypes),
    integer<&SourceConfig::page_size>("page_size", 1, kMaxPageSize, "`$top`")
        .graphMax(kMaxGraphPageSize)
        .incidentsMax(kMaxIncidentPageSize)
        .of(kApiTypes),
    proxyUrl<&SourceConfig::proxy_url>(
        "proxy_url",
        "`http://`, `https://`, `socks4://`, `socks4a://`, `socks5://`, `socks5h://`; "
        "`user:password@` allowed (printed as `***`)")
        .of(kApiTypes),
    mapping<&SourceConfig::ssl, kSslKeys>("ssl", "").flatten().of(kApiTypes),
    integer<&SourceConfig::requests_per_minute>(
        "requests_per_minute", 1, kMaxRequestRate,
        "client-side pacing: the API's quota per app and tenant")
        .of(kApiTypes),
    integer<&SourceConfig::requests_per_hour>("requests_per_hour", 1, kMaxRequestRate,
                                              "the same, per hour")
        .of(kApiTypes),
    duration<&SourceConfig::request_timeout>("request_timeout", "per request")
        .min(kMinRequestTimeout.count())
        .of(kApiTypes),
    flag<&SourceConfig::include_alerts>(
        "include_alerts",
        "`$expand=alerts`: one document per incident and alert; `false`: one per incident")
        .of(kIncidentsType),
    flag<&SourceConfig::alerts_fallback>(
        "alerts_fallback",
        "when a listing with `$expand=alerts` keeps failing (HTTP 5xx), list without it and "
        "read each new incident with its alerts alone")
        .of(kIncidentsType),
    duration<&SourceConfig::alerts_give_up_after>(
        "alerts_give_up_after",
        "an incident version whose alerts cannot be read this long is delivered alone, with "
        "`error.message` saying so")
        .of(kIncidentsType),
    flag<&SourceConfig::include_unknown_enum_members>(
        "include_unknown_enum_members",
        "send `Prefer: include-unknown-enum-members` (`awaitingAction` rather than "
        "`unknownFutureValue`)")
        .of(kIncidentsType),
    list<&SourceConfig::paths>("paths", "files or globs: `[/var/log/defender/*.ndjson]`")
        .emptyList("must list at least one file or glob")
        .of(kFileType)
        .isRequired()
        .typeLabel("list of globs"),
    choice<&SourceConfig::format>("format", kFileFormats,
                                  "`graph`: Graph `alerts_v2` alerts or pages; `graph_incidents`: "
                                  "Graph incidents or pages")
        .of(kFileType),
    Key<SourceConfig>{"tags", Kind::kList, TagsSlot::codec(), "the documents' `tags`"},
    flag<&SourceConfig::preserve_original_event>("preserve_original_event",
                                                 "keep the alert as JSON text in `event.original`"),
    flag<&SourceConfig::preserve_duplicate_custom_fields>(
        "preserve_duplicate_custom_fields",
        "incidents: keep the `m365_defender.incident.*` fields that were copied to ECS fields "
        "(Elastic's option)")
        .of(kIncidentsType | kFileType),
    text<&SourceConfig::data_stream_namespace>(
        "namespace",
        "`data_stream.namespace`: lower case, at most 100 bytes, none of "
        "`- \\ / * ? \" < > | , # :` or a space")
        .nonEmpty()
        .check(&namespaceProblem),
};

constexpr Key<Config> kOutputKeys[] = {
    mapping<&Config::file_output, kFileOutputKeys>("file", "NDJSON files"),
    mapping<&Config::stdout_output, kStdoutOutputKeys>("stdout", "standard output"),
    Key<Config>{"elasticsearch", Kind::kMapping,
                Codec<Config>{&decodeElasticsearch, &emitElasticsearch, &shownNothing,
                              &referenceElasticsearch},
                "present means enabled"}
        .nullToo()
        .printedWhen([](const Config& c) { return c.elasticsearch.enabled; }),
};

constexpr Key<Config> kTopKeys[] = {
    path<&Config::state_dir>(
        "state_dir",
        "`state.db` (watermarks, seen-set, outbox, file positions, backfill jobs), "
        "`pacing-<source>.txt`, `dead-letter-elasticsearch.ndjson`, and the default homes of "
        "the file output and the trace (relative: to the working directory)"),
    size<&Config::max_spool_bytes>(
        "max_spool_bytes",
        "the outbox's bound: when it holds this much, polling pauses until the outputs catch up "
        "(see below)"),
    integer<&Config::workers>(
        "workers", 0, 64,
        "threads that run the sources' polls (each runs many at once: a poll waiting for an "
        "answer holds no thread); 0: two per core, 2 to 16"),
    mapping<&Config::logging, kLoggingKeys>("logging", "the log"),
    mapping<&Config::http, kHttpKeys>("http", "the monitoring endpoint"),
    mapping<&Config::tracing, kTracingKeys>("tracing", "see [Request tracing](#request-tracing)"),
    Key<Config>{"shard", Kind::kMapping,
                Codec<Config>{&decodeShard, &emitShard, &shownNothing, &referenceShard},
                "this replica's part of the sources; see [Past one machine: shards and "
                "Kubernetes](#past-one-machine-shards-and-kubernetes)"},
    Key<Config>{"sources", Kind::kSources,
                Codec<Config>{&decodeSourceList, &emitSourceList, &shownNothing, &referenceSources},
                "where alerts come from"}
        .nullToo()
        .typeLabel("list")
        .defaultNote("— (at least one)"),
    Key<Config>{"outputs", Kind::kMapping,
                Codec<Config>{&decodeOutputs, &emitOutputs, &shownNothing, &referenceOutputs},
                "where documents go; at least one output must be enabled"}
        .defaultNote("the file output"),
};

// ---- The engine.

template <class S>
std::vector<std::string> namesOf(std::span<const Key<S>> keys, const Scope& scope) {
  std::vector<std::string> names;
  for (const auto& k : keys) {
    if (scope.type && (k.types & typeBit(*scope.type)) == 0) continue;
    names.emplace_back(k.name);
    if (k.kind == Kind::kSecret) names.push_back(std::string(k.name) + "_file");
  }
  return names;
}

template <class S>
const Key<S>* findKey(std::span<const Key<S>> keys, std::string_view name) {
  for (const auto& k : keys) {
    if (k.name == name) return &k;
    if (k.kind == Kind::kSecret && name.size() == k.name.size() + 5 &&
        name.substr(0, k.name.size()) == k.name && name.ends_with("_file")) {
      return &k;
    }
  }
  return nullptr;
}

// Each entry of `m` decoded by its key; unknown keys, and keys of another source type, are
// problems.
template <class S>
void decodeKeys(Decoder& d, const Field& /*f*/, const Mapping& m, S& s,
                std::span<const Key<S>> keys, const Scope& scope, std::string_view unknown,
                std::string_view unknown_note) {
  for (const auto& e : m.entries) {
    const Key<S>* key = findKey(keys, e.key);
    if (key == nullptr) {
      d.problem(e.field, std::string(unknown) + suggestion(e.key, namesOf(keys, scope)) +
                             std::string(unknown_note));
      continue;
    }
    if (scope.type && (key->types & typeBit(*scope.type)) == 0) {
      d.problem(e.field, *scope.type == SourceType::kMde && key->types == kGraphType
                             ? "'" + e.key + "' is a key of graph sources only"
                             : "'" + e.key + "' is not a key of " + aSource(*scope.type));
      continue;
    }
    if (e.field.node.IsNull() && !key->decode_null) continue;
    key->codec.decode(d, e.field, s, *key, scope);
  }
}

// Required keys that are missing, and secrets given both inline and as a file. In a source of
// unknown type only the keys of every type are checked.
template <class S>
void checkKeys(Decoder& d, const Field& f, const Mapping& m, std::span<const Key<S>> keys,
               const Scope& scope) {
  for (const auto& k : keys) {
    const bool applies = k.types == kEveryType || (scope.type && (k.types & typeBit(*scope.type)));
    if (!applies) continue;
    const std::string name(k.name);
    if (k.kind == Kind::kSecret) {
      const Field* inline_value = m.get(name);
      const Field* file = m.get(name + "_file");
      if (inline_value != nullptr && file != nullptr) {
        d.problem(std::max(inline_value->line, file->line), f.path,
                  "set " + name + " or " + name + "_file, not both");
      } else if (k.required && inline_value == nullptr && file == nullptr) {
        d.problem(f.line, childPath(f.path, name),
                  "missing (set " + name + " or " + name + "_file)");
      }
    } else if (k.required && m.get(name) == nullptr) {
      d.problem(f.line, childPath(f.path, name),
                k.types == kEveryType ? std::string("missing")
                                      : "missing (required for " + aSource(*scope.type) + ")");
    }
  }
}

template <class S>
void emitKeys(YAML::Emitter& out, const S& s, std::span<const Key<S>> keys, unsigned types) {
  for (const auto& k : keys) {
    if ((k.types & types) == 0) continue;
    if (k.printed_when != nullptr && !k.printed_when(s)) continue;
    k.codec.emit(out, s, k);
  }
}

// ---- The reference: Markdown tables, one per mapping, from the tables above.

std::string markdownCell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

class ReferenceWriter {
 public:
  void paragraph(const std::string& text) { out_ += text + "\n\n"; }
  void heading(const std::string& text) { out_ += "### " + text + "\n\n"; }
  void tableStart() { out_ += "| key | type | default | meaning |\n|---|---|---|---|\n"; }
  void row(const std::string& key, const std::string& type, const std::string& def,
           std::string_view doc) {
    out_ += "| " + key + " | " + markdownCell(type) + " | " + markdownCell(def) + " | " +
            markdownCell(doc) + " |\n";
  }
  void tableEnd() { out_ += "\n"; }
  // Sections come after the table that names them.
  void later(std::function<void()> section) { later_.push_back(std::move(section)); }
  void flushLater() {
    auto sections = std::move(later_);
    later_.clear();
    for (auto& section : sections) section();
  }
  std::string take() {
    while (!out_.empty() && out_.back() == '\n') out_.pop_back();
    return out_ + "\n";
  }

 private:
  std::string out_;
  std::vector<std::function<void()>> later_;
};

std::string code(const std::string& text) { return "`" + text + "`"; }

template <class S>
std::string typeLabel(const Key<S>& k) {
  if (!k.label.empty()) return std::string(k.label);
  const Bounds& b = k.bounds;
  switch (k.kind) {
    case Kind::kString:
      return "string";
    case Kind::kPath:
      return "path";
    case Kind::kUrl:
    case Kind::kProxyUrl:
      return "URL";
    case Kind::kChoice: {
      std::string list;
      for (std::size_t i = 0; i < b.choices.size(); ++i) {
        list += (i == 0                      ? ""
                 : i + 1 == b.choices.size() ? " or "
                                             : ", ") +
                code(std::string(b.choices[i]));
      }
      return list;
    }
    case Kind::kBool:
      return "bool";
    case Kind::kInteger:
      return "integer " + std::to_string(b.min) + "–" + std::to_string(b.max) +
             (b.graph_max != 0 ? " (graph: at most " + std::to_string(b.graph_max) + ")" : "") +
             (b.incidents_max != 0
                  ? " (graph_incidents: at most " + std::to_string(b.incidents_max) + ")"
                  : "");
    case Kind::kDuration:
      return b.min > 0 ? "duration, at least " + code(core::formatDuration(milliseconds(b.min)))
                       : "duration";
    case Kind::kSize:
      return b.min > 0 ? "size, at least " + code(formatSize(static_cast<std::uint64_t>(b.min)))
                       : "size";
    case Kind::kList:
      return "list of strings";
    case Kind::kSecret:
      return "secret";
    case Kind::kMapping:
      return "mapping";
    case Kind::kSources:
      return "list";
    case Kind::kCustom:
      break;
  }
  return "";
}

template <class S>
std::string defaultText(const Key<S>& k, const S& defaults,
                        const std::type_identity_t<S>* graph_defaults) {
  if (!k.note.empty()) return std::string(k.note);
  if (k.kind == Kind::kSecret) return k.required ? "required (one of the two)" : "none";
  if (k.required) return "required";
  const std::string value = k.codec.shown(defaults, k);
  if (k.kind == Kind::kMapping || k.kind == Kind::kSources) return "";
  // "" and [] print as "none": unset.
  const auto cell = [](const std::string& v) {
    return v.empty() || v == "\"\"" || v == "[]" ? std::string("none") : code(v);
  };
  std::string text = cell(value);
  if (graph_defaults != nullptr && (k.types & kGraphType) != 0) {
    const std::string graph = k.codec.shown(*graph_defaults, k);
    if (graph != value) text += " (graph: " + cell(graph) + ")";
  }
  return text;
}

// The rows of `keys` that belong to `types`, named prefix + key; a nested mapping is listed
// flat, or as a section of its own (section.key) after this table.
template <class S>
void referenceKeys(ReferenceWriter& r, std::span<const Key<S>> keys, const std::string& prefix,
                   const std::string& section, const S& defaults,
                   const std::type_identity_t<S>* graph_defaults, unsigned types) {
  for (const auto& k : keys) {
    if ((k.types & types) == 0) continue;
    const std::string name = prefix + std::string(k.name);
    if (k.codec.reference != nullptr && k.flat) {
      k.codec.reference(r, k, name, defaults, graph_defaults);
      continue;
    }
    const std::string key_cell =
        k.kind == Kind::kSecret ? code(name) + " / " + code(name + "_file") : code(name);
    r.row(key_cell, typeLabel(k), defaultText(k, defaults, graph_defaults), k.doc);
    if (k.codec.reference != nullptr) {
      const Key<S>* key = &k;
      const S* d = &defaults;
      std::string path =
          section.empty() ? std::string(k.name) : section + "." + std::string(k.name);
      r.later([&r, key, d, path] { key->codec.reference(r, *key, path, *d, nullptr); });
    }
  }
}

template <class S>
void referenceSection(ReferenceWriter& r, std::span<const Key<S>> keys, const std::string& path,
                      const std::string& intro, const S& defaults,
                      const std::type_identity_t<S>* graph_defaults, unsigned types) {
  r.heading(code(path));
  if (!intro.empty()) r.paragraph(intro);
  r.tableStart();
  referenceKeys(r, keys, std::string(), path, defaults, graph_defaults, types);
  r.tableEnd();
  r.flushLater();
}

// ---- The sections with rules across keys.

// The defaults a source type has besides the struct's (graph.md).
void applyTypeDefaults(SourceConfig& s) {
  if (s.type == SourceType::kGraph || s.type == SourceType::kGraphIncidents) {
    s.api_url = "https://graph.microsoft.com";
    s.scopes = {"https://graph.microsoft.com/.default"};
    s.requests_per_minute = 150;
    s.requests_per_hour = 150 * 60;
  }
  if (s.type == SourceType::kGraphIncidents) {
    s.interval = std::chrono::minutes(1);  // as Elastic's incident stream
    s.page_size = kMaxIncidentPageSize;
  }
}

// cloud: its hosts become the defaults the keys set later override (CloudEndpoints).
void applyCloudDefaults(SourceConfig& s, const CloudEndpoints& cloud) {
  s.login_url = cloud.login_url;
  if (s.type == SourceType::kMde) {
    s.api_url = cloud.mde_api_url;
    s.azure_resource = cloud.mde_resource;
  } else if (s.type == SourceType::kGraph || s.type == SourceType::kGraphIncidents) {
    s.api_url = cloud.graph_url;
    s.scopes = {std::string(cloud.graph_url) + "/.default"};
  }
}

// An API source signs in with exactly one credential; the certificate's files are read and
// checked here, so a wrong path, key or password is reported with its line at start.
void checkCredentials(Decoder& d, const Field& f, const Mapping& m, const SourceConfig& s) {
  const bool secret = m.get("client_secret") != nullptr || m.get("client_secret_file") != nullptr;
  const Field* certificate = m.get("client_certificate_file");
  const Field* federated = m.get("client_assertion_file");
  const int credentials = int{secret} + int{certificate != nullptr} + int{federated != nullptr};
  if (credentials == 0) {
    d.problem(f.line, childPath(f.path, "client_secret"),
              "missing: set client_secret (or client_secret_file), client_certificate_file or "
              "client_assertion_file");
    return;
  }
  if (credentials > 1) {
    d.problem(f,
              "set one credential, not several: client_secret, client_certificate_file or "
              "client_assertion_file");
  }
  if (certificate == nullptr) {
    for (const char* key : {"client_key_file", "client_key_password", "client_key_password_file",
                            "client_assertion_algorithm"}) {
      if (const Field* k = m.get(key)) d.problem(*k, "only with client_certificate_file");
    }
    return;
  }
  if (s.client_certificate_file.empty() || credentials > 1) return;
  auto loaded = auth::CertificateCredential::load(s.client_certificate_file, s.client_key_file,
                                                  s.client_key_password.reveal());
  if (!loaded) {
    const Field* key = m.get("client_key_file");
    const bool about_key = loaded.error().message().starts_with("client_key_file");
    d.problem(about_key && key != nullptr ? *key : *certificate, loaded.error().message());
  }
}

// Reads one source; with a missing or unknown type only the keys no type has are errors.
void decodeSource(Decoder& d, const Field& f, SourceConfig& s) {
  s.line = f.line;
  auto m = d.mapping(f);
  if (!m) return;

  std::optional<SourceType> type;
  if (const Field* t = m->get("type")) {
    if (auto name = d.text(*t)) {
      for (SourceType candidate :
           {SourceType::kMde, SourceType::kFile, SourceType::kGraph, SourceType::kGraphIncidents}) {
        if (*name == sourceTypeName(candidate)) type = candidate;
      }
      if (!type) d.problem(*t, "must be graph, graph_incidents, mde or file, not '" + *name + "'");
    }
  } else {
    d.problem(f.line, childPath(f.path, "type"), "missing (graph, graph_incidents, mde or file)");
  }
  if (type) {
    s.type = *type;
    applyTypeDefaults(s);  // keys set below override them
    if (const Field* c = m->get("cloud"); c != nullptr && *type != SourceType::kFile) {
      const auto name = d.choice(*c, kClouds);
      if (const CloudEndpoints* cloud = name ? cloudEndpoints(*name) : nullptr) {
        applyCloudDefaults(s, *cloud);
      }
    }
  }
  const Scope scope{type};
  decodeKeys(d, f, *m, s, all(kSourceKeys), scope);
  checkKeys(d, f, *m, all(kSourceKeys), scope);
  if (type && *type != SourceType::kFile) {
    checkCredentials(d, f, *m, s);
    if (s.api_url.empty() && m->get("api_url") == nullptr) {
      d.problem(f.line, childPath(f.path, "api_url"),
                "missing: Microsoft publishes no Defender for Endpoint API for cloud '" + s.cloud +
                    "'; set api_url and azure_resource, or use type: graph");
    }
  }
  if (type && *type != SourceType::kFile && m->get("token_url") == nullptr) {
    s.token_url = std::string(s.scopes.empty() ? kV1TokenUrl : kV2TokenUrl);
  }
}

void decodeSourceList(Decoder& d, const Field& f, Config& config, const Key<Config>&,
                      const Scope&) {
  if (f.node.IsNull()) {
    d.problem(f, "at least one source is required");
    return;
  }
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

void emitSourceList(YAML::Emitter& out, const Config& config, const Key<Config>& key) {
  out << YAML::Key << std::string(key.name) << YAML::Value << YAML::BeginSeq;
  for (const auto& s : config.sources) {
    out << YAML::BeginMap;
    emitKeys(out, s, all(kSourceKeys), typeBit(s.type));
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void referenceSources(ReferenceWriter& r, const Key<Config>&, const std::string& path,
                      const Config&, const Config*) {
  const SourceConfig mde;
  SourceConfig graph;
  graph.type = SourceType::kGraph;
  applyTypeDefaults(graph);
  // Four tables: the keys of every type, of mde and graph, of graph_incidents alone, of file.
  constexpr unsigned kAlertApis = kMdeType | kGraphType;
  const auto table = [&](unsigned types, const std::string& intro) {
    r.paragraph(intro);
    r.tableStart();
    for (const auto& k : kSourceKeys) {
      bool listed = false;
      if (types == kEveryType) {
        listed = k.types == kEveryType;
      } else if (types == kIncidentsType) {
        listed = (k.types & kIncidentsType) != 0 && (k.types & kAlertApis) == 0;
      } else {
        listed = k.types != kEveryType && (k.types & types) != 0;
      }
      if (!listed) continue;
      const bool both = types == kAlertApis;
      referenceKeys(r, std::span<const Key<SourceConfig>>(&k, 1), "", path, mde,
                    both ? &graph : nullptr, k.types);
    }
    r.tableEnd();
  };
  r.heading(code(path));
  table(kEveryType, "A list; every source has:");
  table(kAlertApis,
        "`type: mde` (the Defender for Endpoint alerts API) and `type: graph` (Microsoft Graph "
        "`alerts_v2`) take the same keys; where `graph`'s default differs it is in parentheses:");
  table(kIncidentsType,
        "`type: graph_incidents` (Microsoft Graph security incidents, permission "
        "`SecurityIncident.Read.All`) takes the keys of `graph` but `service_sources`, with "
        "`graph`'s defaults except `interval` (`1m`), `page_size` (`50`, at most 50) and `tags` "
        "(`[forwarded, m365_defender-incident]`); and these:");
  table(kFileType,
        "`type: file` reads NDJSON files (API pages or alerts, one per line, as `mdecollect map` "
        "does) and follows them as they grow; it looks for new lines every second:");
}

// Without an outputs.file section the file output is on unless another output is.
void decodeOutputs(Decoder& d, const Field& f, Config& config, const Key<Config>&,
                   const Scope& scope) {
  auto m = d.mapping(f);
  if (!m) return;
  decodeKeys(d, f, *m, config, all(kOutputKeys), scope, "unknown output",
             " (the outputs are file, stdout and elasticsearch)");
  if (m->find("file") == nullptr) {
    config.file_output.enabled = !config.stdout_output.enabled && !config.elasticsearch.enabled;
  }
}

void emitOutputs(YAML::Emitter& out, const Config& config, const Key<Config>& key) {
  out << YAML::Key << std::string(key.name) << YAML::Value << YAML::BeginMap;
  emitKeys(out, config, all(kOutputKeys), kEveryType);
  out << YAML::EndMap;
}

void referenceOutputs(ReferenceWriter& r, const Key<Config>&, const std::string& path,
                      const Config& defaults, const Config*) {
  r.heading(code(path));
  r.tableStart();
  referenceKeys(r, all(kOutputKeys), "", path, defaults, nullptr, kEveryType);
  r.tableEnd();
  r.paragraph(
      "With `elasticsearch` (or `stdout`) enabled and no `file` section, the file output is "
      "off; add `file: {enabled: true}` to keep both.");
  r.flushLater();
}

// Present (even empty) means enabled; api_key and username/password exclude each other.
void decodeElasticsearch(Decoder& d, const Field& f, Config& config, const Key<Config>&,
                         const Scope& scope) {
  ElasticsearchOutputConfig& es = config.elasticsearch;
  es.enabled = true;
  es.line = f.line;
  if (f.node.IsNull()) {
    d.problem(f, "needs at least 'hosts'");
    return;
  }
  auto m = d.mapping(f);
  if (!m) return;
  const auto keys = all(kElasticsearchKeys);
  decodeKeys(d, f, *m, es, keys, scope);
  checkKeys(d, f, *m, keys, scope);
  const bool has_key = m->get("api_key") != nullptr || m->get("api_key_file") != nullptr;
  const bool has_password = m->get("password") != nullptr || m->get("password_file") != nullptr;
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

void emitElasticsearch(YAML::Emitter& out, const Config& config, const Key<Config>& key) {
  out << YAML::Key << std::string(key.name) << YAML::Value << YAML::BeginMap;
  emitKeys(out, config.elasticsearch, all(kElasticsearchKeys), kEveryType);
  out << YAML::EndMap;
}

void referenceElasticsearch(ReferenceWriter& r, const Key<Config>&, const std::string& path,
                            const Config&, const Config*) {
  referenceSection(r, all(kElasticsearchKeys), path, std::string(), ElasticsearchOutputConfig{},
                   nullptr, kEveryType);
}

// index < count unless index is auto (then it is checked when it is resolved).
void decodeShard(Decoder& d, const Field& f, Config& config, const Key<Config>&,
                 const Scope& scope) {
  auto m = d.mapping(f);
  if (!m) return;
  ShardConfig& shard = config.shard;
  shard.line = f.line;
  const auto keys = all(kShardKeys);
  decodeKeys(d, f, *m, shard, keys, scope);
  checkKeys(d, f, *m, keys, scope);
  const Field* index = m->get("index");
  if (index != nullptr && !shard.index_auto && shard.index >= shard.count) {
    d.problem(*index, "must be less than shard.count (" + std::to_string(shard.count) + "), not " +
                          std::to_string(shard.index));
  }
}

void emitShard(YAML::Emitter& out, const Config& config, const Key<Config>& key) {
  out << YAML::Key << std::string(key.name) << YAML::Value << YAML::BeginMap;
  emitKeys(out, config.shard, all(kShardKeys), kEveryType);
  out << YAML::EndMap;
}

void referenceShard(ReferenceWriter& r, const Key<Config>&, const std::string& path, const Config&,
                    const Config*) {
  referenceSection(r, all(kShardKeys), path, std::string(), ShardConfig{}, nullptr, kEveryType);
}

void decodeRoot(Decoder& d, const YAML::Node& root, Config& config) {
  std::optional<Mapping> m;
  if (!root.IsNull()) {
    const Field top{"", lineOf(root, 1), root};
    m = d.mapping(top);
    if (!m) return;
    decodeKeys(d, top, *m, config, all(kTopKeys), Scope{});
  }
  if (!m || m->find("sources") == nullptr) {
    d.problem(1, "sources", "at least one source is required");
  }
  if (config.file_output.path.empty()) {
    config.file_output.path = joinPath(config.state_dir, "output");
  }
  if (config.tracing.path.empty()) {
    config.tracing.path = joinPath(config.state_dir, "trace/requests.ndjson");
  }
  if (!config.file_output.enabled && !config.stdout_output.enabled &&
      !config.elasticsearch.enabled) {
    const Field* outputs = m ? m->get("outputs") : nullptr;
    d.problem(outputs != nullptr ? outputs->line : 1, "outputs", "no output is enabled");
  }
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
    case SourceType::kGraphIncidents:
      return "graph_incidents";
  }
  return "unknown";
}

Credential credentialOf(const SourceConfig& source) {
  if (!source.client_certificate_file.empty()) return Credential::kCertificate;
  if (!source.client_assertion_file.empty()) return Credential::kFederated;
  return Credential::kSecret;
}

// Sources: Defender for Endpoint for US Government customers (API table: GCC uses
// login.microsoftonline.com and api-gcc.securitycenter.microsoft.us; GCC High and DoD
// login.microsoftonline.us and api-gov.securitycenter.microsoft.us), and Microsoft Graph
// national cloud deployments (graph.microsoft.com for global and GCC, graph.microsoft.us for
// GCC High, dod-graph.microsoft.us for DoD, microsoftgraph.chinacloudapi.cn with
// login.chinacloudapi.cn for 21Vianet). Defender for Endpoint publishes no China API.
constexpr CloudEndpoints kCloudTable[] = {
    {"global", "https://login.microsoftonline.com", "https://api.security.microsoft.com",
     "https://api.securitycenter.microsoft.com", "https://graph.microsoft.com"},
    {"usgov", "https://login.microsoftonline.com", "https://api-gcc.securitycenter.microsoft.us",
     "https://api-gcc.securitycenter.microsoft.us", "https://graph.microsoft.com"},
    {"usgov_high", "https://login.microsoftonline.us",
     "https://api-gov.securitycenter.microsoft.us", "https://api-gov.securitycenter.microsoft.us",
     "https://graph.microsoft.us"},
    {"dod", "https://login.microsoftonline.us", "https://api-gov.securitycenter.microsoft.us",
     "https://api-gov.securitycenter.microsoft.us", "https://dod-graph.microsoft.us"},
    {"china", "https://login.chinacloudapi.cn", "", "", "https://microsoftgraph.chinacloudapi.cn"},
};

const CloudEndpoints* cloudEndpoints(std::string_view name) {
  for (const CloudEndpoints& c : kCloudTable) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

bool collectsIncidents(const SourceConfig& source) {
  return source.type == SourceType::kGraphIncidents ||
         (source.type == SourceType::kFile && source.format == "graph_incidents");
}

std::vector<std::string> defaultTags(const SourceConfig& source) {
  if (collectsIncidents(source)) return {"forwarded", "m365_defender-incident"};
  return ecs::MapOptions{}.tags;
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
  emitKeys(out, config, all(kTopKeys), kEveryType);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string referenceMarkdown() {
  ReferenceWriter r;
  const Config defaults;
  r.heading("Top level");
  r.tableStart();
  referenceKeys(r, all(kTopKeys), "", "", defaults, nullptr, kEveryType);
  r.tableEnd();
  r.flushLater();
  return r.take();
}

}  // namespace mdec::config
