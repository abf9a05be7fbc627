// The libcurl-backed HttpClient. curl's headers stay in this file.
//
// One easy handle per client: curl_easy_reset() between requests clears the options but keeps
// the connection cache, DNS cache and TLS session cache, so consecutive requests to the same
// host reuse the connection. Nothing here throws across curl's C callbacks.
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mdecollect/core/ascii.h"
#include "mdecollect/core/fiber.h"
#include "mdecollect/http/http_client.h"

namespace mdec::http {
namespace {

// --- RAII for curl's C handles ------------------------------------------------------------

// curl_global_init() once per process, thread-safe through the function-local static.
// Never cleaned up: curl_global_cleanup() at exit would race with clients still alive.
CURLcode curlGlobalInit() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  return rc;
}

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using CurlUrl = std::unique_ptr<CURLU, CurlUrlDeleter>;

// An owned curl_slist (the request header list).
class CurlSlist {
 public:
  CurlSlist() = default;
  CurlSlist(const CurlSlist&) = delete;
  CurlSlist& operator=(const CurlSlist&) = delete;
  ~CurlSlist() { curl_slist_free_all(list_); }

  // False when curl could not allocate; the list is unchanged then.
  bool append(const std::string& line) {
    curl_slist* grown = curl_slist_append(list_, line.c_str());
    if (grown == nullptr) return false;
    list_ = grown;
    return true;
  }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

// First failing curl_easy_setopt() of a sequence; the calls stay direct so curl's compile-time
// option type checks still apply.
struct SetoptStatus {
  CURLcode first = CURLE_OK;
  void operator+=(CURLcode rc) {
    if (first == CURLE_OK) first = rc;
  }
};

// --- small text helpers ---------------------------------------------------------------------

// ASCII only: <cctype> classification depends on the process locale.
bool isAsciiAlnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool isTokenChar(unsigned char c) {
  if (isAsciiAlnum(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return isTokenChar(static_cast<unsigned char>(c));
  });
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The URL as it may appear in an error message: no query string or fragment (filters, tokens),
// no user:password@, control characters replaced, bounded length.
std::string redactUrl(std::string_view url) {
  std::string_view base = url.substr(0, url.find_first_of("?#"));
  std::string out;
  std::size_t authority = 0;
  if (auto scheme_end = base.find("://"); scheme_end != std::string_view::npos) {
    authority = scheme_end + 3;
  }
  std::size_t authority_end = base.find('/', authority);
  if (authority_end == std::string_view::npos) authority_end = base.size();
  std::string_view host_part = base.substr(authority, authority_end - authority);
  if (auto at = host_part.rfind('@'); at != std::string_view::npos) {
    out.append(base.substr(0, authority));
    out.append(base.substr(authority + at + 1));
  } else {
    out.append(base);
  }
  constexpr std::size_t kMaxShown = 512;
  if (out.size() > kMaxShown) {
    out.resize(kMaxShown);
    out += "...";
  }
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

// Why `url` cannot be requested (malformed, or not http/https), or empty when it can. Checked
// before the transfer because curl_easy_perform() reports an HTTP/0.9 or unknown-version
// *response* with the same CURLE_UNSUPPORTED_PROTOCOL as an unsupported URL scheme.
std::string urlProblem(const std::string& url) {
  CurlUrl parsed(curl_url());
  if (!parsed) return {};  // out of memory: curl_easy_perform() will say so
  if (CURLUcode rc = curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0); rc != CURLUE_OK) {
    return std::string("malformed URL (") + curl_url_strerror(rc) + ")";
  }
  char* scheme = nullptr;
  if (curl_url_get(parsed.get(), CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || scheme == nullptr) {
    return "URL without a scheme";
  }
  std::string lowered = core::asciiLower(scheme);
  curl_free(scheme);
  if (lowered != "http" && lowered != "https") {
    return "unsupported URL scheme \"" + lowered + "\" (http and https only)";
  }
  return {};
}

long clampMillis(std::chrono::milliseconds d) {
  // 0 means "no limit" to curl; a request always has one, so at least 1 ms.
  auto ms = std::clamp<std::chrono::milliseconds::rep>(d.count(), 1, LONG_MAX);
  return static_cast<long>(ms);
}

// --- one transfer's state, shared with curl's callbacks ---------------------------------------

struct Transfer {
  HttpResponse response;
  std::size_t max_body = 0;
  bool too_large = false;
  bool out_of_memory = false;
  bool reserved = false;
  std::string last_header;  // lower-cased name of the last header, for folded lines

  void headerLine(std::string_view line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    if (line.empty()) {  // end of a header block
      last_header.clear();
      return;
    }
    if (line.substr(0, 5) == "HTTP/") {
      // A new status line: an interim (1xx) or proxy CONNECT block came before this one.
      // Only the final response's headers are kept.
      response.headers.clear();
      last_header.clear();
      return;
    }
    if (line.front() == ' ' || line.front() == '\t') {  // obs-fold: continues the last header
      std::string_view more = trimOws(line);
      if (last_header.empty() || more.empty()) return;
      std::string& value = response.headers[last_header];
      if (!value.empty()) value += ' ';
      value.append(more);
      return;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string name = core::asciiLower(trimOws(line.substr(0, colon)));
    if (name.empty()) return;
    response.headers[name] = std::string(trimOws(line.substr(colon + 1)));  // last one wins
    last_header = std::move(name);
  }
};

// curl hands over one header line per call; split anyway in case a call carries several.
std::size_t onHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  try {
    std::string_view chunk(data, n);
    while (!chunk.empty()) {
      auto eol = chunk.find('\n');
      std::size_t len = eol == std::string_view::npos ? chunk.size() : eol + 1;
      transfer->headerLine(chunk.substr(0, len));
      chunk.remove_prefix(len);
    }
  } catch (...) {  // std::bad_alloc must not unwind through curl
    transfer->out_of_memory = true;
    return 0;  // aborts the transfer
  }
  return n;
}

std::size_t onBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  std::string& body = transfer->response.body;
  if (n > transfer->max_body - body.size()) {  // body.size() <= max_body always holds
    transfer->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  try {
    if (body.empty() && !transfer->reserved) {
      // The whole body at once when its length is announced (and a little more, for a
      // parser's padding), rather than growing it by doubling.
      transfer->reserved = true;
      auto it = transfer->response.headers.find("content-length");
      if (it != transfer->response.headers.end()) {
        std::uint64_t length = 0;
        auto [end, ec] =
            std::from_chars(it->second.data(), it->second.data() + it->second.size(), length);
        if (ec == std::errc() && end == it->second.data() + it->second.size() &&
            length <= transfer->max_body) {
          body.reserve(static_cast<std::size_t>(length) + 64);
        }
      }
    }
    body.append(data, n);
  } catch (...) {
    transfer->out_of_memory = true;
    return 0;
  }
  return n;
}

// --- transfers of fibers ------------------------------------------------------------------------

// A fiber loop's transfers, on one curl multi handle: a fiber's send() adds its easy handle
// and suspends; the loop's poll() runs every transfer and resumes each fiber whose transfer
// is done. Connections are the multi handle's, shared by every client on the loop.
class CurlLoopIo final : public core::FiberLoop::Io {
 public:
  // Keeps this many idle connections (per loop) for reuse.
  static constexpr long kMaxConnections = 64;
  // Opens at most this many connections (per loop) to one host: more transfers wait for
  // one of them (HTTP/2 multiplexes them over one).
  static constexpr long kMaxHostConnections = 16;

  CurlLoopIo() : multi_(curlGlobalInit() == CURLE_OK ? curl_multi_init() : nullptr) {
    if (multi_ == nullptr) return;
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, kMaxConnections);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, kMaxHostConnections);
  }
  ~CurlLoopIo() override {
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
  }
  CurlLoopIo(const CurlLoopIo&) = delete;
  CurlLoopIo& operator=(const CurlLoopIo&) = delete;

  bool usable() const { return multi_ != nullptr; }

  // In a fiber of `loop`: runs the transfer set up on `h` and returns its result
  // (CURLE_ABORTED_BY_CALLBACK: cancelled).
  CURLcode perform(core::FiberLoop& loop, CURL* h) {
    if (cancelled_.load()) return CURLE_ABORTED_BY_CALLBACK;
    Waiting w;
    w.easy = h;
    curl_easy_setopt(h, CURLOPT_PRIVATE, &w);
    if (curl_multi_add_handle(multi_, h) != CURLM_OK) return CURLE_OUT_OF_MEMORY;
    active_.push_back(&w);
    // Bounded by the transfer's own timeout: poll() resumes it when curl says it is done.
    while (!w.done) {
      w.fiber = loop.prepareWait();
      loop.suspend();
    }
    return w.rc;
  }

  bool cancelled() const { return cancelled_.load(); }

  void cancel() override {
    cancelled_ = true;
    wake();
  }

  void poll(std::chrono::milliseconds timeout) override {
    if (cancelled_.load() && !active_.empty()) {
      for (Waiting* w : active_) {
        curl_multi_remove_handle(multi_, w->easy);
        w->rc = CURLE_ABORTED_BY_CALLBACK;
        w->done = true;
        core::FiberLoop::resume(w->fiber);
      }
      active_.clear();
      return;  // their fibers are ready
    }
    int running = 0;
    curl_multi_perform(multi_, &running);
    // A transfer that ended here made its fiber ready: run it now, do not wait.
    if (finished() > 0 || timeout.count() <= 0) return;
    curl_multi_poll(multi_, nullptr, 0, static_cast<int>(timeout.count()), nullptr);
    curl_multi_perform(multi_, &running);
    finished();
  }

  void wake() override { curl_multi_wakeup(multi_); }

 private:
  struct Waiting {
    CURL* easy = nullptr;
    core::FiberHandle fiber;
    CURLcode rc = CURLE_OK;
    bool done = false;
  };

  // Resumes the fibers whose transfers ended; returns how many.
  int finished() {
    int resumed = 0;
    int left = 0;
    for (CURLMsg* m = curl_multi_info_read(multi_, &left); m != nullptr;
         m = curl_multi_info_read(multi_, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* easy = m->easy_handle;
      const CURLcode rc = m->data.result;
      char* p = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
      curl_multi_remove_handle(multi_, easy);  // `m` is gone from here on
      auto* w = reinterpret_cast<Waiting*>(p);
      if (w == nullptr) continue;
      active_.erase(std::find(active_.begin(), active_.end(), w));
      w->rc = rc;
      w->done = true;
      core::FiberLoop::resume(w->fiber);
      ++resumed;
    }
    return resumed;
  }

  CURLM* multi_;
  std::vector<Waiting*> active_;  // transfers in the multi handle (the loop's thread only)
  std::atomic<bool> cancelled_{false};
};

// --- the client ---------------------------------------------------------------------------------

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(CurlClientOptions options) : options_(std::move(options)) {
    init_rc_ = curlGlobalInit();
    if (init_rc_ == CURLE_OK) easy_.reset(curl_easy_init());
  }

  Result<HttpResponse> send(const HttpRequest& request) override;
  // The easy handle (with its buffers) goes; the next send() makes one. Connections stay:
  // in a fiber loop they are the multi handle's.
  void trim() override { easy_.reset(); }

 private:
  static Error failure(ErrorCode code, const HttpRequest& request, std::string_view what) {
    return Error(code, request.method + " " + redactUrl(request.url) + ": " + std::string(what));
  }

  CurlClientOptions options_;
  CURLcode init_rc_ = CURLE_OK;
  CurlEasy easy_;  // null when curl could not be initialised
};

Result<HttpResponse> CurlHttpClient::send(const HttpRequest& request) {
  // The method goes on the request line verbatim, so it must be a token (no CR/LF/space).
  if (!isToken(request.method)) {
    return Error(ErrorCode::kInvalidArgument, "invalid HTTP method for " + redactUrl(request.url));
  }
  if (init_rc_ != CURLE_OK) {
    return failure(ErrorCode::kInternal, request,
                   std::string("curl_global_init failed: ") + curl_easy_strerror(init_rc_));
  }
  if (std::string problem = urlProblem(request.url); !problem.empty()) {
    return failure(ErrorCode::kInvalidArgument, request, problem);
  }
  if (!easy_) {
    easy_.reset(curl_easy_init());
    if (!easy_) return failure(ErrorCode::kInternal, request, "curl_easy_init failed");
  }

  // Header lines. Values must not smuggle CR/LF; messages name the header, never its value.
  CurlSlist headers;
  bool user_set_expect = false;
  for (const auto& [name, value] : request.headers) {
    if (!isToken(name)) {
      return failure(ErrorCode::kInvalidArgument, request, "invalid request header name");
    }
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return failure(ErrorCode::kInvalidArgument, request,
                     "invalid value for request header " + name);
    }
    if (core::asciiLower(name) == "expect") user_set_expect = true;
    // "Name:" would make curl drop the header; "Name;" sends it with an empty value.
    std::string line = value.empty() ? name + ";" : name + ": " + value;
    if (!headers.append(line)) return failure(ErrorCode::kInternal, request, "out of memory");
  }
  // curl would send "Expect: 100-continue" for larger bodies and wait for a 100 first.
  if (!user_set_expect && !headers.append("Expect:")) {
    return failure(ErrorCode::kInternal, request, "out of memory");
  }

  CURL* h = easy_.get();
  curl_easy_reset(h);  // options only: connections, DNS and TLS session caches stay

  Transfer transfer;
  transfer.max_body = request.max_response_bytes;
  if (request.body_buffer != nullptr) {
    transfer.response.body = std::move(*request.body_buffer);
    transfer.response.body.clear();
  }
  char error_buffer[CURL_ERROR_SIZE] = {};

  SetoptStatus st;
  st += curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  st += curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  st += curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  st += curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  st += curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);  // a 3xx is just a response
  st += curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, clampMillis(request.timeout));
  st += curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, clampMillis(request.connect_timeout));
  st += curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  // An empty proxy disables every proxy, including http_proxy/https_proxy from the environment.
  st += curl_easy_setopt(h, CURLOPT_PROXY, options_.proxy_url.c_str());
  st += curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  st += curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.tls.verify ? 1L : 0L);
  st += curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.tls.verify ? 2L : 0L);
  if (!options_.tls.ca_file.empty()) {
    st += curl_easy_setopt(h, CURLOPT_CAINFO, options_.tls.ca_file.c_str());
  }
  if (options_.accept_gzip) {
    // gzip only: what Microsoft's APIs and Elasticsearch compress with (a server offered
    // "br" may pick it, and brotli at its default quality is slow to produce).
    st += curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
  }
  if (!options_.user_agent.empty()) {
    st += curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
  }

  // Method and body. curl reads the body straight from request.body (no copy).
  const std::string& method = request.method;
  const bool has_body =
      !request.body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
  if (method == "HEAD") {
    st += curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (method == "GET" && !has_body) {
    st += curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    if (has_body) {
      st += curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(request.body.size()));
      st += curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
    }
    if (method != "POST") st += curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  st += curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());

  // Response: headers and a size-limited body. With a Content-Length over the limit curl stops
  // before reading the body (not for HEAD, whose Content-Length describes a body never sent).
  st += curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &onHeader);
  st += curl_easy_setopt(h, CURLOPT_HEADERDATA, &transfer);
  st += curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &onBody);
  st += curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
  if (method != "HEAD" && request.max_response_bytes < static_cast<std::size_t>(INT64_MAX)) {
    st += curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
                           static_cast<curl_off_t>(request.max_response_bytes));
  }

  if (st.first != CURLE_OK) {
    curl_easy_reset(h);
    return failure(ErrorCode::kInternal, request,
                   std::string("setting up the transfer: ") + curl_easy_strerror(st.first));
  }

  // In a fiber on a loop with curl's I/O, the fiber waits and its thread runs others.
  core::FiberLoop* loop = core::FiberLoop::current();
  auto* io = loop != nullptr ? dynamic_cast<CurlLoopIo*>(loop->io()) : nullptr;
  const CURLcode rc = io != nullptr ? io->perform(*loop, h) : curl_easy_perform(h);
  if (rc == CURLE_ABORTED_BY_CALLBACK && io != nullptr && io->cancelled()) {
    curl_easy_reset(h);
    return failure(ErrorCode::kNetwork, request, "cancelled: the collector is stopping");
  }
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  // Drop the pointers into this frame (error buffer, callbacks' data, header list, body).
  curl_easy_reset(h);

  if (rc == CURLE_OK) {
    transfer.response.status = static_cast<int>(status);
    return std::move(transfer.response);
  }
  if (transfer.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    return failure(
        ErrorCode::kTooLarge, request,
        "response body larger than " + std::to_string(request.max_response_bytes) + " bytes");
  }
  if (transfer.out_of_memory || rc == CURLE_OUT_OF_MEMORY) {
    return failure(ErrorCode::kInternal, request, "out of memory");
  }

  std::string what = curl_easy_strerror(rc);
  if (error_buffer[0] != '\0') {
    std::string detail(error_buffer);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
    if (!detail.empty() && detail != what) what += " (" + detail + ")";
  }
  // The scheme was checked up front: CURLE_UNSUPPORTED_PROTOCOL here is about the response
  // (HTTP/0.9, an unknown HTTP version), a server or network problem like the rest.
  // A certificate the configured trust refuses, or a CA file that cannot be read, will not
  // fix itself on a retry: it is configuration (kInvalidArgument), reported at once.
  const bool configuration = rc == CURLE_URL_MALFORMAT || rc == CURLE_PEER_FAILED_VERIFICATION ||
                             rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ||
                             rc == CURLE_SSL_CRL_BADFILE;
  const ErrorCode code = configuration ? ErrorCode::kInvalidArgument : ErrorCode::kNetwork;
  return failure(code, request, what);
}

}  // namespace

std::unique_ptr<HttpClient> makeCurlClient(CurlClientOptions options) {
  return std::make_unique<CurlHttpClient>(std::move(options));
}

std::unique_ptr<core::FiberLoop::Io> makeCurlLoopIo() {
  auto io = std::make_unique<CurlLoopIo>();
  if (!io->usable()) return nullptr;
  return io;
}

std::string urlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (isAsciiAlnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0x0f];
    }
  }
  return out;
}

std::string formEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    out += urlEncode(name);
    out += '=';
    out += urlEncode(value);
  }
  return out;
}

}  // namespace mdec::http
