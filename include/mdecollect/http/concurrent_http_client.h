// Several HTTP requests in flight from one thread: start() requests, wait() for the ones
// that completed, in whatever order they complete. One implementation (makeConcurrentClient):
// each request is sent by a fiber through an HttpClient of its own, on curl's multi handle.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "mdecollect/core/result.h"
#include "mdecollect/http/http_client.h"

namespace mdec::http {

struct Completion {
  std::uint64_t tag = 0;  // as given to start()
  Result<HttpResponse> response;
};

class ConcurrentHttpClient {
 public:
  virtual ~ConcurrentHttpClient() = default;
  // Starts `request`; it is read (body included) until its completion is returned, so it
  // must stay alive and unchanged until then. Tags are the caller's, unique among the
  // requests in flight.
  virtual void start(std::uint64_t tag, const HttpRequest& request) = 0;
  // Waits until at least one started request completed and returns every completed one
  // (each exactly once); empty when none is in flight. Errors are as HttpClient::send's.
  virtual std::vector<Completion> wait() = 0;
  virtual std::size_t inFlight() const = 0;
};

// Every started request is sent by a fiber through a client made by `make_client` (one per
// request in flight, reused; curl's — makeCurlClient, or the tracing client around one —
// run together on one curl multi handle). Used from one thread at a time.
std::unique_ptr<ConcurrentHttpClient> makeConcurrentClient(
    std::function<std::unique_ptr<HttpClient>()> make_client);

}  // namespace mdec::http
