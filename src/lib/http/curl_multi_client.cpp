// ConcurrentHttpClient on a libcurl multi handle (and the sequential adapter). curl's headers
// stay in this file and curl_http_client.cpp. Nothing here throws across curl's callbacks.
//
// The transfer set-up follows CurlHttpClient's (curl_http_client.cpp): the same options, the
// same response size cap, the same sorting of curl's codes into configuration and network
// errors, and messages that name the method and the URL without its query, never headers or
// bodies.
#include <curl/curl.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mdecollect/core/ascii.h"
#include "mdecollect/http/concurrent_http_client.h"

namespace mdec::http {
namespace {

CURLcode curlGlobalInit() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  return rc;
}

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlMultiDeleter {
  void operator()(CURLM* handle) const { curl_multi_cleanup(handle); }
};
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

struct SetoptStatus {
  CURLcode first = CURLE_OK;
  void operator+=(CURLcode rc) {
    if (first == CURLE_OK) first = rc;
  }
};

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u >= '0' && u <= '9') || (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The URL without query, fragment or user:password@, control characters replaced.
std::string redactUrl(std::string_view url) {
  std::string_view base = url.substr(0, url.find_first_of("?#"));
  std::string out;
  const std::size_t scheme_end = base.find("://");
  const std::size_t authority = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const std::size_t at = base.substr(0, base.find('/', authority)).rfind('@');
  if (at != std::string_view::npos && at >= authority) {
    out.append(base.substr(0, authority));
    out.append(base.substr(at + 1));
  } else {
    out.append(base);
  }
  if (out.size() > 512) out.resize(512);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

long clampMillis(std::chrono::milliseconds d) {
  return static_cast<long>(std::clamp<std::chrono::milliseconds::rep>(d.count(), 1, LONG_MAX));
}

// One request in flight: its easy handle, header list and the response being read.
struct Transfer {
  std::uint64_t tag = 0;
  const HttpRequest* request = nullptr;
  CurlEasy easy;
  CurlSlist headers;
  HttpResponse response;
  bool too_large = false;
  bool out_of_memory = false;
  char error_buffer[CURL_ERROR_SIZE] = {};

  void headerLine(std::string_view line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    if (line.empty()) return;
    if (line.substr(0, 5) == "HTTP/") {  // only the final response's headers are kept
      response.headers.clear();
      return;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string name = core::asciiLower(trimOws(line.substr(0, colon)));
    if (!name.empty()) response.headers[name] = std::string(trimOws(line.substr(colon + 1)));
  }
};

std::size_t onHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  try {
    transfer->headerLine(std::string_view(data, n));
  } catch (...) {  // std::bad_alloc must not unwind through curl
    transfer->out_of_memory = true;
    return 0;
  }
  return n;
}

std::size_t onBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  std::string& body = transfer->response.body;
  if (n > transfer->request->max_response_bytes - body.size()) {
    transfer->too_large = true;
    return 0;
  }
  try {
    body.append(data, n);
  } catch (...) {
    transfer->out_of_memory = true;
    return 0;
  }
  return n;
}

Error failure(ErrorCode code, const HttpRequest& request, std::string_view what) {
  return Error(code, request.method + " " + redactUrl(request.url) + ": " + std::string(what));
}

class CurlMultiClient final : public ConcurrentHttpClient {
 public:
  CurlMultiClient(CurlClientOptions options, std::size_t max_connections)
      : options_(std::move(options)) {
    init_rc_ = curlGlobalInit();
    if (init_rc_ != CURLE_OK) return;
    multi_.reset(curl_multi_init());
    if (multi_) {
      const long connections = static_cast<long>(std::max<std::size_t>(max_connections, 1));
      curl_multi_setopt(multi_.get(), CURLMOPT_MAX_HOST_CONNECTIONS, connections);
      curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, connections);
    }
  }

  ~CurlMultiClient() override {
    for (auto& t : active_) curl_multi_remove_handle(multi_.get(), t->easy.get());
  }

  void start(std::uint64_t tag, const HttpRequest& request) override {
    auto transfer = std::make_unique<Transfer>();
    transfer->tag = tag;
    transfer->request = &request;
    if (auto problem = setUp(*transfer); problem) {
      if (transfer->easy) idle_.push_back(std::move(transfer->easy));
      done_.push_back(Completion{tag, std::move(*problem)});
      return;
    }
    active_.push_back(std::move(transfer));
  }

  std::vector<Completion> wait() override {
    // Bounded by the transfers' own timeouts: each ends, one way or another.
    while (done_.empty() && !active_.empty()) {
      int running = 0;
      if (CURLMcode rc = curl_multi_perform(multi_.get(), &running); rc != CURLM_OK) {
        failAll(std::string("curl_multi_perform: ") + curl_multi_strerror(rc));
        break;
      }
      collect();
      if (!done_.empty()) break;
      if (CURLMcode rc = curl_multi_poll(multi_.get(), nullptr, 0, 1000, nullptr); rc != CURLM_OK) {
        failAll(std::string("curl_multi_poll: ") + curl_multi_strerror(rc));
      }
    }
    return std::exchange(done_, {});
  }

  std::size_t inFlight() const override { return active_.size() + done_.size(); }

 private:
  // Sets up and adds the transfer; the error when it cannot be started.
  std::optional<Error> setUp(Transfer& t) {
    const HttpRequest& request = *t.request;
    if (!isToken(request.method)) {
      return Error(ErrorCode::kInvalidArgument,
                   "invalid HTTP method for " + redactUrl(request.url));
    }
    if (init_rc_ != CURLE_OK || !multi_) {
      return failure(ErrorCode::kInternal, request, "curl could not be initialised");
    }
    const std::string scheme = core::asciiLower(std::string_view(request.url).substr(0, 8));
    if (scheme.substr(0, 7) != "http://" && scheme != "https://") {
      return failure(ErrorCode::kInvalidArgument, request, "not an http or https URL");
    }
    curl_slist* list = nullptr;
    bool expect = false;
    auto append = [&](const std::string& line) {
      curl_slist* grown = curl_slist_append(list, line.c_str());
      if (grown == nullptr) return false;
      list = grown;
      return true;
    };
    for (const auto& [name, value] : request.headers) {
      if (!isToken(name) ||
          value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        curl_slist_free_all(list);
        return failure(ErrorCode::kInvalidArgument, request, "invalid request header " + name);
      }
      if (core::asciiLower(name) == "expect") expect = true;
      if (!append(value.empty() ? name + ";" : name + ": " + value)) {
        curl_slist_free_all(list);
        return failure(ErrorCode::kInternal, request, "out of memory");
      }
    }
    if (!expect && !append("Expect:")) {
      curl_slist_free_all(list);
      return failure(ErrorCode::kInternal, request, "out of memory");
    }
    t.headers.reset(list);

    if (!idle_.empty()) {
      t.easy = std::move(idle_.back());
      idle_.pop_back();
    } else {
      t.easy.reset(curl_easy_init());
      if (!t.easy) return failure(ErrorCode::kInternal, request, "curl_easy_init failed");
    }
    CURL* h = t.easy.get();
    curl_easy_reset(h);
    SetoptStatus st;
    st += curl_easy_setopt(h, CURLOPT_PRIVATE, &t);
    st += curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.error_buffer);
    st += curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    st += curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    st += curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    st += curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    st += curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, clampMillis(request.timeout));
    st += curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, clampMillis(request.connect_timeout));
    st += curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    st += curl_easy_setopt(h, CURLOPT_PROXY, options_.proxy_url.c_str());
    st += curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    st += curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.tls.verify ? 1L : 0L);
    st += curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.tls.verify ? 2L : 0L);
    if (!options_.tls.ca_file.empty()) {
      st += curl_easy_setopt(h, CURLOPT_CAINFO, options_.tls.ca_file.c_str());
    }
    if (options_.accept_gzip) st += curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
    if (!options_.user_agent.empty()) {
      st += curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
    }
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
    st += curl_easy_setopt(h, CURLOPT_HTTPHEADER, t.headers.get());
    st += curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &onHeader);
    st += curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    st += curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &onBody);
    st += curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    if (method != "HEAD" && request.max_response_bytes < static_cast<std::size_t>(INT64_MAX)) {
      st += curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
                             static_cast<curl_off_t>(request.max_response_bytes));
    }
    if (st.first != CURLE_OK) {
      return failure(ErrorCode::kInternal, request,
                     std::string("setting up the transfer: ") + curl_easy_strerror(st.first));
    }
    if (CURLMcode rc = curl_multi_add_handle(multi_.get(), h); rc != CURLM_OK) {
      return failure(ErrorCode::kInternal, request,
                     std::string("curl_multi_add_handle: ") + curl_multi_strerror(rc));
    }
    return std::nullopt;
  }

  // Moves the finished transfers to done_.
  void collect() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* h = msg->easy_handle;
      const CURLcode rc = msg->data.result;
      auto it = std::find_if(active_.begin(), active_.end(),
                             [h](const auto& t) { return t->easy.get() == h; });
      if (it == active_.end()) continue;  // not ours: impossible
      std::unique_ptr<Transfer> t = std::move(*it);
      active_.erase(it);
      long status = 0;
      if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      curl_multi_remove_handle(multi_.get(), h);
      done_.push_back(Completion{t->tag, outcome(*t, rc, status)});
      curl_easy_reset(h);  // drops the pointers into *t
      idle_.push_back(std::move(t->easy));
    }
  }

  static Result<HttpResponse> outcome(Transfer& t, CURLcode rc, long status) {
    const HttpRequest& request = *t.request;
    if (rc == CURLE_OK) {
      t.response.status = static_cast<int>(status);
      return std::move(t.response);
    }
    if (t.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
      return failure(
          ErrorCode::kTooLarge, request,
          "response body larger than " + std::to_string(request.max_response_bytes) + " bytes");
    }
    if (t.out_of_memory || rc == CURLE_OUT_OF_MEMORY) {
      return failure(ErrorCode::kInternal, request, "out of memory");
    }
    std::string what = curl_easy_strerror(rc);
    std::string detail(t.error_buffer);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
    if (!detail.empty() && detail != what) what += " (" + detail + ")";
    const bool configuration = rc == CURLE_URL_MALFORMAT || rc == CURLE_PEER_FAILED_VERIFICATION ||
                               rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ||
                               rc == CURLE_SSL_CRL_BADFILE;
    return failure(configuration ? ErrorCode::kInvalidArgument : ErrorCode::kNetwork, request,
                   what);
  }

  void failAll(const std::string& why) {
    for (auto& t : active_) {
      curl_multi_remove_handle(multi_.get(), t->easy.get());
      done_.push_back(Completion{t->tag, failure(ErrorCode::kNetwork, *t->request, why)});
      curl_easy_reset(t->easy.get());
      idle_.push_back(std::move(t->easy));
    }
    active_.clear();
  }

  CurlClientOptions options_;
  CURLcode init_rc_ = CURLE_OK;
  std::vector<CurlEasy> idle_;  // easy handles kept for the next transfers
  std::vector<std::unique_ptr<Transfer>> active_;
  std::vector<Completion> done_;
  CurlMulti multi_;  // cleaned up after the easy handles are removed (declared last)
};

class SequentialClient final : public ConcurrentHttpClient {
 public:
  explicit SequentialClient(std::unique_ptr<HttpClient> client) : client_(std::move(client)) {}

  void start(std::uint64_t tag, const HttpRequest& request) override {
    waiting_.push_back({tag, &request});
  }
  std::vector<Completion> wait() override {
    std::vector<Completion> out;
    if (waiting_.empty()) return out;
    const auto [tag, request] = waiting_.front();
    waiting_.pop_front();
    out.push_back(Completion{tag, client_->send(*request)});
    return out;
  }
  std::size_t inFlight() const override { return waiting_.size(); }

 private:
  std::unique_ptr<HttpClient> client_;
  std::deque<std::pair<std::uint64_t, const HttpRequest*>> waiting_;
};

}  // namespace

std::unique_ptr<ConcurrentHttpClient> makeCurlMultiClient(CurlClientOptions options,
                                                          std::size_t max_connections) {
  return std::make_unique<CurlMultiClient>(std::move(options), max_connections);
}

std::unique_ptr<ConcurrentHttpClient> makeSequentialClient(std::unique_ptr<HttpClient> client) {
  return std::make_unique<SequentialClient>(std::move(client));
}

}  // namespace mdec::http
