// Several HTTP requests in flight from one thread: start() requests, wait() for the ones
// that completed, in whatever order they complete. One real implementation on a libcurl
// multi handle (makeCurlMultiClient) and an adapter over a blocking HttpClient that sends
// them one at a time (makeSequentialClient: fakes, the tracing client).
#pragma once

#include <cstdint>
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

// Up to `max_connections` transfers at once over one curl multi handle (one easy handle and
// connection each, reused); options as makeCurlClient's. Not thread-safe.
std::unique_ptr<ConcurrentHttpClient> makeCurlMultiClient(CurlClientOptions options,
                                                          std::size_t max_connections);

// One request at a time through `client`: wait() sends the oldest started request and
// returns its completion.
std::unique_ptr<ConcurrentHttpClient> makeSequentialClient(std::unique_ptr<HttpClient> client);

}  // namespace mdec::http
