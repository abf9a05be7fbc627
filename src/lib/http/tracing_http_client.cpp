#include "mdecollect/http/tracing_http_client.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

#include "mdecollect/core/ascii.h"
#include "mdecollect/core/base64.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"
#include "mdecollect/core/percent_decoding.h"

namespace mdec::http {

// --- redaction ------------------------------------------------------------------------------

namespace {

constexpr std::string_view kMask = "***";

// Form fields and query parameters whose values are secrets.
constexpr std::string_view kSecretFormFields[] = {
    "client_secret", "client_assertion", "password", "refresh_token", "code", "assertion"};
// JSON keys whose string values are secrets.
constexpr std::string_view kSecretJsonKeys[] = {"access_token",  "refresh_token", "id_token",
                                                "client_secret", "password",      "api_key"};

template <std::size_t N>
bool isOneOf(std::string_view name, const std::string_view (&names)[N]) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

using core::asciiLower;
using core::equalsIgnoreCase;

bool containsIgnoreCase(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (equalsIgnoreCase(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A span of the original text that is written as ***.
struct Range {
  std::size_t begin;
  std::size_t end;
};

void addRange(std::vector<Range>& ranges, std::size_t begin, std::size_t end) {
  if (end > begin) ranges.push_back({begin, end});
}

// "a=1&b=2" in text[begin, end): the values of secret fields.
void formRanges(std::string_view text, std::size_t begin, std::size_t end,
                std::vector<Range>& ranges) {
  std::size_t pos = begin;
  while (pos < end) {
    std::size_t amp = text.find('&', pos);
    if (amp == std::string_view::npos || amp > end) amp = end;
    const std::size_t eq = text.find('=', pos);
    if (eq != std::string_view::npos && eq < amp &&
        isOneOf(text.substr(pos, eq - pos), kSecretFormFields)) {
      addRange(ranges, eq + 1, amp);
    }
    pos = amp + 1;
  }
}

// A URL at text[begin, end): the userinfo password and secret query parameters.
void urlRanges(std::string_view text, std::size_t begin, std::size_t end,
               std::vector<Range>& ranges) {
  const std::string_view url = text.substr(begin, end - begin);
  const std::size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    const std::size_t authority = scheme + 3;
    std::size_t authority_end = url.find_first_of("/?#", authority);
    if (authority_end == std::string_view::npos) authority_end = url.size();
    const std::size_t at = url.substr(0, authority_end).rfind('@');
    if (at != std::string_view::npos && at >= authority) {
      const std::size_t colon = url.find(':', authority);
      if (colon < at) addRange(ranges, begin + colon + 1, begin + at);
    }
  }
  const std::size_t query = url.find('?');
  if (query != std::string_view::npos) {
    std::size_t query_end = url.find('#', query);
    if (query_end == std::string_view::npos) query_end = url.size();
    formRanges(text, begin + query + 1, begin + query_end, ranges);
  }
}

bool isSchemeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '-' || c == '.';
}

bool endsUrlInText(char c) {
  return isSpace(c) || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`';
}

// URLs inside free text (error messages): each "scheme://..." up to a space or quote.
void textUrlRanges(std::string_view text, std::vector<Range>& ranges) {
  std::size_t pos = 0;
  while ((pos = text.find("://", pos)) != std::string_view::npos) {
    std::size_t begin = pos;
    while (begin > 0 && isSchemeChar(text[begin - 1])) --begin;
    std::size_t end = pos + 3;
    while (end < text.size() && !endsUrlInText(text[end])) ++end;
    urlRanges(text, begin, end, ranges);
    pos = end;
  }
}

// The end of the JSON string whose contents start at `pos` (the index of its closing quote),
// or text.size() when it is not closed.
std::size_t jsonStringEnd(std::string_view text, std::size_t pos) {
  while (pos < text.size()) {
    const char c = text[pos];
    if (c == '"') return pos;
    pos += c == '\\' ? 2 : 1;
  }
  return text.size();
}

// "key": "value" with a secret key: the value's contents. A value not closed in `text`
// (a window of a longer body) is redacted to its end.
void jsonRanges(std::string_view text, std::vector<Range>& ranges) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    pos = text.find('"', pos);
    if (pos == std::string_view::npos) return;
    const std::size_t key_begin = pos + 1;
    const std::size_t key_end = jsonStringEnd(text, key_begin);
    if (key_end >= text.size()) return;
    pos = key_end + 1;
    std::size_t colon = pos;
    while (colon < text.size() && isSpace(text[colon])) ++colon;
    if (colon >= text.size() || text[colon] != ':') continue;
    if (!isOneOf(text.substr(key_begin, key_end - key_begin), kSecretJsonKeys)) continue;
    std::size_t value = colon + 1;
    while (value < text.size() && isSpace(text[value])) ++value;
    if (value >= text.size() || text[value] != '"') continue;
    const std::size_t value_end = jsonStringEnd(text, value + 1);
    addRange(ranges, value + 1, value_end);
    pos = value_end + 1;
  }
}

// Where a cut at `end` (an index into text) must be moved back to so that it does not split
// a valid UTF-8 sequence; never before `floor`.
std::size_t utf8SafeCut(std::string_view text, std::size_t floor, std::size_t end) {
  if (end >= text.size()) return end;
  for (std::size_t back = 1; back <= 3 && end >= floor + back; ++back) {
    const std::size_t lead = end - back;
    const auto b = static_cast<unsigned char>(text[lead]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    if (b < 0x80) return end;
    const std::size_t n = core::utf8SequenceLength(text.substr(lead));
    return n != 0 && lead + n > end ? lead : end;
  }
  return end;
}

struct Rebuilt {
  std::string text;
  bool truncated = false;
};

// `text` with `ranges` written as ***, keeping only bytes before `limit` and at most
// `max_out` bytes in all. A *** is written whole or not at all; a cut backs off to a UTF-8
// boundary.
Rebuilt rebuild(std::string_view text, std::vector<Range>& ranges, std::size_t limit,
                std::size_t max_out) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  Rebuilt out;
  out.text.reserve(std::min(std::min(text.size(), limit), max_out) + kMask.size());
  std::size_t pos = 0;  // the original bytes before pos are written (or masked)
  bool stopped = false;
  // Copies text[pos, end) as far as limit and max_out allow; stops at a cut.
  auto copy = [&](std::size_t end) {
    const bool at_limit = end >= limit && limit < text.size();
    end = std::min(end, limit);
    if (end > pos) {
      std::size_t take = std::min(end - pos, max_out - out.text.size());
      if (take < end - pos || at_limit) take = utf8SafeCut(text, pos, pos + take) - pos;
      out.text.append(text.substr(pos, take));
      if (pos + take < end) stopped = true;
      pos += take;
    }
    if (at_limit) stopped = true;
  };
  for (std::size_t i = 0; i < ranges.size() && !stopped;) {
    Range r = ranges[i++];
    while (i < ranges.size() && ranges[i].begin <= r.end) r.end = std::max(r.end, ranges[i++].end);
    if (r.begin >= limit) break;
    copy(r.begin);
    if (stopped) break;
    if (out.text.size() + kMask.size() > max_out) {
      stopped = true;
      break;
    }
    out.text.append(kMask);
    pos = r.end;
  }
  if (!stopped) copy(text.size());
  out.truncated = pos < text.size();
  return out;
}

std::string escapedLossy(std::string_view s) {
  std::string out;
  core::appendEscapedLossy(out, s);
  return out;
}

void addUnique(std::vector<std::string>& forms, std::string value) {
  if (!value.empty() && std::find(forms.begin(), forms.end(), value) == forms.end()) {
    forms.push_back(std::move(value));
  }
}

void sortLongestFirst(std::vector<std::string>& forms) {
  std::sort(forms.begin(), forms.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

// The length of the escape token at e[i] ("\n", "\u00e9" or one byte).
std::size_t tokenLength(std::string_view e, std::size_t i) {
  if (e[i] != '\\' || i + 1 >= e.size()) return 1;
  return std::min<std::size_t>(e[i + 1] == 'u' ? 6 : 2, e.size() - i);
}

}  // namespace

// Finds what to mask in each string; built once from the secrets.
struct TraceWriter::Redactor {
  std::vector<std::string> raw_forms;      // each secret as is, URL-encoded, JSON-escaped
  std::vector<std::string> escaped_forms;  // those and their JSON-escaped text, for the
                                           // second pass over escaped output
  std::size_t longest = 0;                 // the longest raw form

  explicit Redactor(const std::vector<std::string>& secrets) {
    for (const std::string& s : secrets) {
      if (s.empty()) continue;
      addUnique(raw_forms, s);
      const std::string encoded = urlEncode(s);
      addUnique(raw_forms, encoded);
      std::string lower = encoded;
      for (std::size_t i = 0; i < lower.size(); ++i) {
        if (lower[i] == '%' && i + 2 < lower.size()) {
          lower[i + 1] = asciiLower(lower[i + 1]);
          lower[i + 2] = asciiLower(lower[i + 2]);
        }
      }
      addUnique(raw_forms, lower);
      if (s.find(' ') != std::string::npos) {
        std::string plus;
        for (std::size_t i = 0; i < encoded.size(); ++i) {
          if (encoded.compare(i, 3, "%20") == 0) {
            plus += '+';
            i += 2;
          } else {
            plus += encoded[i];
          }
        }
        addUnique(raw_forms, plus);
      }
      // As it appears inside a JSON string in a body: escaped, "/" maybe as "\/".
      std::string json;
      core::appendEscaped(json, s);
      addUnique(raw_forms, json);
      if (json.find('/') != std::string::npos) {
        std::string slashed;
        for (char c : json) {
          if (c == '/') slashed += '\\';
          slashed += c;
        }
        addUnique(raw_forms, slashed);
      }
    }
    sortLongestFirst(raw_forms);
    for (const std::string& f : raw_forms) {
      addUnique(escaped_forms, f);
      addUnique(escaped_forms, escapedLossy(f));
      longest = std::max(longest, f.size());
    }
    sortLongestFirst(escaped_forms);
  }

  void secretRanges(std::string_view text, std::vector<Range>& ranges) const {
    for (const std::string& f : raw_forms) {
      for (std::size_t p = text.find(f); p != std::string_view::npos; p = text.find(f, p + 1)) {
        ranges.push_back({p, p + f.size()});
      }
    }
  }

  // Appends `text` escaped, with its ranges and every secret masked.
  void append(std::string& out, std::string_view text, std::vector<Range> ranges) const {
    secretRanges(text, ranges);
    if (ranges.empty()) {
      appendEscaped(out, text);
    } else {
      appendEscaped(out, rebuild(text, ranges, text.size(), text.size() + ranges.size() * 3).text);
    }
  }

  // A body: redacted over a window (the first max_bytes and the longest secret form), then
  // cut to max_bytes. Returns whether it was cut.
  bool appendBody(std::string& out, std::string_view body, bool form, std::size_t max_bytes) const {
    const bool whole = body.size() <= max_bytes;
    const std::string_view window =
        whole ? body : body.substr(0, std::min(body.size(), max_bytes + longest));
    std::vector<Range> ranges;
    if (form) formRanges(window, 0, window.size(), ranges);
    jsonRanges(window, ranges);
    secretRanges(window, ranges);
    if (whole && ranges.empty()) {
      appendEscaped(out, body);
      return false;
    }
    // No byte at or past max_bytes is written, so a secret that is written at all starts
    // before the cut and ends inside the window: it was found whole. (Ranges found in the
    // window may run to its end: an unclosed value is masked to there.)
    const std::size_t limit = whole ? body.size() : max_bytes;
    const std::size_t max_out = whole ? body.size() + ranges.size() * kMask.size() : max_bytes;
    Rebuilt r = rebuild(body, ranges, limit, max_out);
    appendEscaped(out, r.text);
    return r.truncated;
  }

  // JSON-escapes (invalid UTF-8 as U+FFFD), then masks any secret form found in the escaped
  // text, matched only on whole escape sequences so the output stays valid JSON.
  void appendEscaped(std::string& out, std::string_view text) const {
    const std::size_t start = out.size();
    core::appendEscapedLossy(out, text);
    const std::string_view e = std::string_view(out).substr(start);
    bool any = false;
    for (const std::string& f : escaped_forms) {
      if (e.find(f) != std::string_view::npos) {
        any = true;
        break;
      }
    }
    if (!any) return;
    std::string masked;
    masked.reserve(e.size());
    std::size_t i = 0;
    while (i < e.size()) {
      bool matched = false;
      for (const std::string& f : escaped_forms) {
        if (e.compare(i, f.size(), f) != 0) continue;
        std::size_t j = i;  // does the match end on a token boundary?
        while (j < i + f.size()) j += tokenLength(e, j);
        if (j != i + f.size()) continue;
        masked.append(kMask);
        i = j;
        matched = true;
        break;
      }
      if (matched) continue;
      const std::size_t n = tokenLength(e, i);
      masked.append(e.substr(i, n));
      i += n;
    }
    out.resize(start);
    out.append(masked);
  }
};

// --- the line -------------------------------------------------------------------------------

namespace {

std::vector<Range> headerRanges(std::string_view name, std::string_view value) {
  std::vector<Range> ranges;
  if (equalsIgnoreCase(name, "authorization") || equalsIgnoreCase(name, "proxy-authorization")) {
    // Keep the scheme: "Bearer ***".
    const std::size_t space = value.find(' ');
    std::size_t credentials = space == std::string_view::npos ? 0 : space;
    while (credentials < value.size() && value[credentials] == ' ') ++credentials;
    addRange(ranges, credentials, value.size());
  } else if (equalsIgnoreCase(name, "cookie") || equalsIgnoreCase(name, "set-cookie") ||
             equalsIgnoreCase(name, "x-api-key")) {
    addRange(ranges, 0, value.size());
  }
  return ranges;
}

bool isForm(const std::string* content_type) {
  return content_type != nullptr &&
         containsIgnoreCase(*content_type, "application/x-www-form-urlencoded");
}

// The first `limit` bytes of a gzip body, inflated (a bulk request as Elasticsearch reads
// it); nullopt when it is not gzip.
std::optional<std::string> gunzipPrefix(std::string_view body, std::size_t limit) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return std::nullopt;
  std::string out(limit, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  z.avail_in = static_cast<uInt>(std::min<std::size_t>(body.size(), UINT32_MAX));
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(std::min<std::size_t>(limit, UINT32_MAX));
  const int rc = inflate(&z, Z_NO_FLUSH);
  const std::size_t produced = limit - z.avail_out;
  inflateEnd(&z);
  if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) return std::nullopt;
  out.resize(produced);
  return out;
}

bool isGzip(const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [name, value] : headers) {
    if (equalsIgnoreCase(name, "content-encoding") && containsIgnoreCase(value, "gzip")) {
      return true;
    }
  }
  return false;
}

}  // namespace

// {"name":"value",...}, each value redacted (request headers are a list, response headers
// a map).
template <typename Redactor, typename Headers>
void appendHeaders(std::string& line, const Redactor& red, const Headers& headers) {
  line.push_back('{');
  bool first = true;
  for (const auto& [name, value] : headers) {
    if (!first) line.push_back(',');
    first = false;
    core::appendString(line, name);
    line.append(":\"");
    red.append(line, value, headerRanges(name, value));
    line.push_back('"');
  }
  line.push_back('}');
}

std::string TraceWriter::formatLine(std::string_view component, const HttpRequest& request,
                                    const Result<HttpResponse>& response,
                                    std::chrono::microseconds elapsed) const {
  const Redactor& red = *redactor_;
  const auto max_body = static_cast<std::size_t>(
      std::min<std::uint64_t>(options_.max_body_bytes, std::numeric_limits<std::size_t>::max()));
  const auto sent = std::chrono::system_clock::now() -
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(elapsed);

  std::string line;
  line.reserve(1024 + std::min(request.body.size(), max_body) +
               (response ? std::min(response->body.size(), max_body) : 0));
  line.append("{\"@timestamp\":\"");
  line.append(core::formatRfc3339(core::toInstant(sent), 3));
  line.append("\",\"component\":");
  core::appendString(line, component);

  // request
  line.append(",\"request\":{\"method\":");
  core::appendString(line, request.method);
  line.append(",\"url\":\"");
  {
    std::vector<Range> ranges;
    urlRanges(request.url, 0, request.url.size(), ranges);
    red.append(line, request.url, std::move(ranges));
  }
  line.append("\",\"headers\":");
  appendHeaders(line, red, request.headers);
  const std::string* request_type = nullptr;
  for (const auto& [name, value] : request.headers) {
    if (equalsIgnoreCase(name, "content-type")) request_type = &value;
  }
  line.append(",\"body\":\"");
  bool cut = false;
  bool gzip = false;
  if (isGzip(request.headers)) {
    // Shown inflated (its start): compressed bytes tell nobody anything.
    if (auto plain = gunzipPrefix(request.body, max_body + (64u << 10))) {
      gzip = true;
      cut = red.appendBody(line, *plain, false, max_body) || plain->size() > max_body;
    }
  }
  if (!gzip) cut = red.appendBody(line, request.body, isForm(request_type), max_body);
  line.append("\",\"body_bytes\":");
  core::appendUint(line, request.body.size());
  if (gzip) line.append(",\"body_encoding\":\"gzip\"");
  if (cut) line.append(",\"body_truncated\":true");
  line.push_back('}');

  if (response) {
    const HttpResponse& r = *response;
    line.append(",\"response\":{\"status\":");
    core::appendInt(line, r.status);
    line.append(",\"headers\":");
    appendHeaders(line, red, r.headers);
    line.append(",\"body\":\"");
    cut = red.appendBody(line, r.body, isForm(r.header("content-type")), max_body);
    line.append("\",\"body_bytes\":");
    core::appendUint(line, r.body.size());
    if (cut) line.append(",\"body_truncated\":true");
    line.push_back('}');
  } else {
    const Error& e = response.error();
    const std::string text = std::string(errorCodeName(e.code())) + ": " + e.message();
    std::vector<Range> ranges;
    textUrlRanges(text, ranges);
    line.append(",\"error\":\"");
    red.append(line, text, std::move(ranges));
    line.push_back('"');
  }
  line.append(",\"duration_ms\":");
  core::appendDouble(line, static_cast<double>(elapsed.count()) / 1000.0);
  line.push_back('}');
  return line;
}

// --- the file -------------------------------------------------------------------------------

namespace {

core::UniqueFd openAppend(const std::string& path, bool truncate) {
  int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
  if (truncate) flags |= O_TRUNC;
  int fd;
  do {
    fd = ::open(path.c_str(), flags, 0600);
  } while (fd < 0 && errno == EINTR);
  return core::UniqueFd(fd);
}

std::string errnoText(int err) { return std::strerror(err); }

}  // namespace

TraceWriter::TraceWriter(TraceOptions options, std::unique_ptr<const Redactor> redactor,
                         core::UniqueFd fd, std::uint64_t size)
    : options_(std::move(options)),
      redactor_(std::move(redactor)),
      fd_(std::move(fd)),
      size_(size) {}

TraceWriter::~TraceWriter() = default;

Result<std::shared_ptr<TraceWriter>> TraceWriter::open(TraceOptions options,
                                                       std::vector<std::string> secrets) {
  if (options.path.empty()) {
    return Error(ErrorCode::kInvalidArgument, "trace file: no path given");
  }
  const std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return Error(ErrorCode::kIo, "trace file " + options.path + ": cannot create " +
                                       parent.string() + ": " + ec.message());
    }
  }
  core::UniqueFd fd = openAppend(options.path, false);
  if (!fd.valid()) {
    return Error(ErrorCode::kIo, "trace file " + options.path + ": " + errnoText(errno));
  }
  struct stat st {};
  const std::uint64_t size =
      ::fstat(fd.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  auto redactor = std::make_unique<const Redactor>(secrets);
  return std::shared_ptr<TraceWriter>(
      new TraceWriter(std::move(options), std::move(redactor), std::move(fd), size));
}

void TraceWriter::reportError(const std::string& what) {
  write_errors_.fetch_add(1);
  if (!warned_.exchange(true)) {
    spdlog::warn("trace file {}: {} (further trace errors are only counted)", options_.path, what);
  }
}

void TraceWriter::rotateLocked() {
  fd_.reset();
  size_ = 0;
  const std::string& path = options_.path;
  if (options_.keep_files <= 0) {
    fd_ = openAppend(path, true);
    if (!fd_.valid()) reportError("cannot reopen after rotation: " + errnoText(errno));
    return;
  }
  auto numbered = [&](int i) { return path + "." + std::to_string(i); };
  if (::unlink(numbered(options_.keep_files).c_str()) != 0 && errno != ENOENT) {
    reportError("cannot remove " + numbered(options_.keep_files) + ": " + errnoText(errno));
  }
  for (int i = options_.keep_files - 1; i >= 1; --i) {
    if (::rename(numbered(i).c_str(), numbered(i + 1).c_str()) != 0 && errno != ENOENT) {
      reportError("cannot rename " + numbered(i) + ": " + errnoText(errno));
    }
  }
  if (::rename(path.c_str(), numbered(1).c_str()) != 0 && errno != ENOENT) {
    reportError("cannot rename to " + numbered(1) + ": " + errnoText(errno));
  }
  fd_ = openAppend(path, false);
  if (!fd_.valid()) {
    reportError("cannot reopen after rotation: " + errnoText(errno));
    return;
  }
  struct stat st {};
  if (::fstat(fd_.get(), &st) == 0) size_ = static_cast<std::uint64_t>(st.st_size);
}

bool TraceWriter::writeLocked(const std::string& line) {
  if (fd_.valid() && options_.rotate_bytes > 0 && size_ > 0 &&
      size_ + line.size() > options_.rotate_bytes) {
    rotateLocked();
  }
  if (!fd_.valid()) {
    fd_ = openAppend(options_.path, false);
    struct stat st {};
    if (!fd_.valid() || ::fstat(fd_.get(), &st) != 0) {
      reportError("cannot open: " + errnoText(errno));
      return false;
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_.get(), line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      // No half line left behind: the next line starts where this one would have.
      if (done > 0 && ::ftruncate(fd_.get(), static_cast<off_t>(size_)) != 0) {
        reportError("cannot cut a partial line: " + errnoText(errno));
      }
      reportError("write: " + errnoText(err));
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  size_ += line.size();
  return true;
}

void TraceWriter::write(std::string_view component, const HttpRequest& request,
                        const Result<HttpResponse>& response, std::chrono::microseconds elapsed) {
  try {
    std::string line = formatLine(component, request, response, elapsed);
    line.push_back('\n');
    std::lock_guard<std::mutex> lock(mu_);
    if (writeLocked(line)) lines_.fetch_add(1);
  } catch (const std::exception& e) {
    reportError(std::string("cannot write a line: ") + e.what());
  } catch (...) {
    reportError("cannot write a line");
  }
}

// --- the client -----------------------------------------------------------------------------

namespace {

class TracingHttpClient final : public HttpClient {
 public:
  TracingHttpClient(std::unique_ptr<HttpClient> inner, std::shared_ptr<TraceWriter> trace,
                    std::string component)
      : inner_(std::move(inner)), trace_(std::move(trace)), component_(std::move(component)) {}

  Result<HttpResponse> send(const HttpRequest& request) override {
    const auto start = std::chrono::steady_clock::now();
    Result<HttpResponse> response = inner_->send(request);
    const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    trace_->write(component_, request, response, elapsed);
    return response;
  }

  void trim() override { inner_->trim(); }

 private:
  std::unique_ptr<HttpClient> inner_;
  std::shared_ptr<TraceWriter> trace_;
  std::string component_;
};

// The password in a proxy URL's userinfo, as written and decoded, and base64(user:password).
void addProxySecrets(std::vector<std::string>& out, const std::string& url) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string::npos) return;
  const std::size_t authority = scheme + 3;
  std::size_t authority_end = url.find_first_of("/?#", authority);
  if (authority_end == std::string::npos) authority_end = url.size();
  const std::size_t at = url.substr(0, authority_end).rfind('@');
  if (at == std::string::npos || at < authority) return;
  const std::size_t colon = url.find(':', authority);
  if (colon >= at) return;
  const std::string password = url.substr(colon + 1, at - colon - 1);
  if (password.empty()) return;
  addUnique(out, password);
  addUnique(out, core::percentDecode(password));
  addUnique(out, core::base64Encode(core::percentDecode(url.substr(authority, colon - authority)) +
                                    ":" + core::percentDecode(password)));
}

}  // namespace

std::unique_ptr<HttpClient> makeTracingClient(std::unique_ptr<HttpClient> inner,
                                              std::shared_ptr<TraceWriter> trace,
                                              std::string component) {
  if (!trace) return inner;
  return std::make_unique<TracingHttpClient>(std::move(inner), std::move(trace),
                                             std::move(component));
}

std::vector<std::string> secretValues(const config::Config& config) {
  std::vector<std::string> out;
  for (const config::SourceConfig& source : config.sources) {
    addUnique(out, source.client_secret.reveal());
    addUnique(out, source.client_key_password.reveal());
    addProxySecrets(out, source.proxy_url);
  }
  const config::ElasticsearchOutputConfig& es = config.elasticsearch;
  const std::string& key = es.api_key.reveal();
  addUnique(out, key);
  const std::size_t colon = key.find(':');
  if (colon != std::string::npos) {
    addUnique(out, core::base64Encode(key));
    addUnique(out, key.substr(colon + 1));
  }
  const std::string& password = es.password.reveal();
  if (!password.empty()) {
    addUnique(out, password);
    addUnique(out, core::base64Encode(es.username + ":" + password));
  }
  addProxySecrets(out, es.proxy_url);
  return out;
}

}  // namespace mdec::http
