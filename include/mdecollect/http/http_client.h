// The HTTP seam: one real implementation on libcurl (makeCurlClient) and fakes in tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mdecollect/core/fiber.h"
#include "mdecollect/core/result.h"

namespace mdec::http {

struct TlsOptions {
  bool verify = true;   // verify the peer certificate and host name
  std::string ca_file;  // extra CA bundle (PEM); empty: the system's
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{60000};  // whole transfer
  std::chrono::milliseconds connect_timeout{10000};
  std::size_t max_response_bytes = 256u << 20;  // larger bodies fail with kTooLarge
  // When set, the response body is built in this string (emptied first, its capacity
  // kept) and then moved into the response: a caller that hands the previous body back
  // reuses one allocation for every page instead of faulting in fresh memory each time.
  std::string* body_buffer = nullptr;
};

struct HttpResponse {
  int status = 0;
  // Header names lower-cased; the last value wins for repeated headers.
  std::map<std::string, std::string> headers;
  std::string body;

  const std::string* header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? nullptr : &it->second;
  }
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Any HTTP status is a response (the caller decides what it means); only transport-level
  // failures are errors: ErrorCode::kNetwork (connect, reset, timeout, truncated body, TLS)
  // or ErrorCode::kInvalidArgument (a malformed URL) or ErrorCode::kTooLarge (body over
  // max_response_bytes), with a message that never includes request headers or bodies (they may
  // hold secrets).
  virtual Result<HttpResponse> send(const HttpRequest& request) = 0;
  // Gives back what it holds between requests that the next send() can make again (curl's
  // easy handle and its buffers): a collector of ten thousand sources calls it after each
  // poll.
  virtual void trim() {}
};

struct CurlClientOptions {
  std::string proxy_url;  // empty: none (environment proxies are ignored)
  TlsOptions tls;
  std::string user_agent;   // empty: curl's default
  bool accept_gzip = true;  // send Accept-Encoding and decode transparently
};

// libcurl-backed client; keeps one easy handle so connections are reused. Not thread-safe:
// one client per thread (or fiber). In a fiber of a loop whose Io is makeCurlLoopIo()'s,
// send() suspends the fiber while the loop's curl multi handle runs the transfer.
std::unique_ptr<HttpClient> makeCurlClient(CurlClientOptions options = {});

// The Io of a core::FiberLoop that runs its fibers' curl transfers (null: curl could not
// be initialised).
std::unique_ptr<core::FiberLoop::Io> makeCurlLoopIo();

// Percent-encodes for a query string or form body (RFC 3986 unreserved kept).
std::string urlEncode(std::string_view s);
// "a=1&b=2" from pairs, each side url-encoded.
std::string formEncode(const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace mdec::http
