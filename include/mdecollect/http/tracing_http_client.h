// The request tracer (tracing: in the config): an HttpClient that forwards to another and
// writes every exchange as one NDJSON line, secrets redacted and bodies cut.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/config/config.h"
#include "mdecollect/core/result.h"
#include "mdecollect/core/unique_fd.h"
#include "mdecollect/http/http_client.h"

namespace mdec::http {

struct TraceOptions {
  std::string path;
  std::uint64_t max_body_bytes = 4096;       // each body is cut to this size
  std::uint64_t rotate_bytes = 10ull << 20;  // 0: never rotate
  int keep_files = 3;                        // rotated files kept besides the current one
};

// One NDJSON trace file shared by every traced client. Thread-safe: each line is built
// outside the lock, then written (and the file rotated) under a mutex.
//
// Each line: {"@timestamp" (when the request was sent), "component", "request":{"method",
// "url","headers","body","body_bytes"[,"body_truncated"]}, "response":{"status","headers",
// "body","body_bytes"[,"body_truncated"]} or "error" (the transport failed), "duration_ms"}.
//
// Redacted, in every string written (url, header values, bodies, error text):
// - Authorization and Proxy-Authorization keep their scheme ("Bearer ***"); Cookie,
//   Set-Cookie and X-Api-Key become ***;
// - the values of client_secret, client_assertion, password, refresh_token, code and
//   assertion in form bodies and in URL query strings; a URL's userinfo password;
// - the string values of access_token, refresh_token, id_token, client_secret, password and
//   api_key in JSON bodies (a scanner for "key":"value", not a parser);
// - every literal occurrence of a value of `secrets` (as is, URL-encoded or JSON-escaped),
//   before escaping and again in the escaped text.
// A body is redacted before it is cut (only its first max_body_bytes plus the longest secret
// form are looked at), and the cut never splits a UTF-8 sequence.
class TraceWriter {
 public:
  // Creates the parent directories and opens (appends to) the file, mode 0600.
  // ErrorCode::kIo when it cannot.
  static Result<std::shared_ptr<TraceWriter>> open(TraceOptions options,
                                                   std::vector<std::string> secrets);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // One line per exchange, written with one write(2). Never throws, never fails the
  // caller: a write error is counted (writeErrors()) and the first one logged (warn).
  void write(std::string_view component, const HttpRequest& request,
             const Result<HttpResponse>& response, std::chrono::microseconds elapsed);

  std::uint64_t lines() const { return lines_.load(); }
  std::uint64_t writeErrors() const { return write_errors_.load(); }

  // The line write() would write (without the newline), for tests.
  std::string formatLine(std::string_view component, const HttpRequest& request,
                         const Result<HttpResponse>& response,
                         std::chrono::microseconds elapsed) const;

 private:
  struct Redactor;
  TraceWriter(TraceOptions options, std::unique_ptr<const Redactor> redactor, core::UniqueFd fd,
              std::uint64_t size);
  bool writeLocked(const std::string& line);
  void rotateLocked();
  void reportError(const std::string& what);

  TraceOptions options_;
  std::unique_ptr<const Redactor> redactor_;
  std::mutex mu_;
  core::UniqueFd fd_;       // guarded by mu_
  std::uint64_t size_ = 0;  // guarded by mu_: bytes in the current file
  std::atomic<std::uint64_t> lines_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  std::atomic<bool> warned_{false};
};

// A client that forwards to `inner` and writes each exchange to `trace`, labelled
// `component` (e.g. "source.tenant-a", "output.elasticsearch"). `trace` null: `inner`.
std::unique_ptr<HttpClient> makeTracingClient(std::unique_ptr<HttpClient> inner,
                                              std::shared_ptr<TraceWriter> trace,
                                              std::string component);

// Every secret value the config holds, in every form it may travel in: each source's
// client_secret; outputs.elasticsearch api_key as given, and when given as "id:key" its
// base64 and the key part; the password and base64("username:password"); the password
// inside any proxy_url (as written and percent-decoded). Empty values skipped, no duplicates.
std::vector<std::string> secretValues(const config::Config& config);

}  // namespace mdec::http
