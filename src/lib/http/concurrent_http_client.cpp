// ConcurrentHttpClient on fibers: each started request is sent by a fiber of the client's
// own FiberLoop through an HttpClient of its own (one per request in flight, reused), and
// wait() runs the loop until one has completed. With curl's clients the loop's Io
// (makeCurlLoopIo) runs every transfer on one multi handle, so they are in flight together;
// a client that does not suspend (a fake) simply completes in start order. The transfer
// set-up, the response reading and the error sorting are the curl client's own.
#include "mdecollect/http/concurrent_http_client.h"

#include <utility>

#include "mdecollect/core/fiber.h"

namespace mdec::http {
namespace {

class FiberConcurrentClient final : public ConcurrentHttpClient {
 public:
  explicit FiberConcurrentClient(std::function<std::unique_ptr<HttpClient>()> make)
      : make_(std::move(make)), io_(makeCurlLoopIo()) {
    loop_.setIo(io_.get());
  }

  // Requests still in flight are waited for (each bounded by its own timeout): their fibers
  // read the callers' requests and write into this object.
  ~FiberConcurrentClient() override {
    for (int guard = 0; guard < 1'000'000 && in_flight_ > 0; ++guard) (void)wait();
  }

  FiberConcurrentClient(const FiberConcurrentClient&) = delete;
  FiberConcurrentClient& operator=(const FiberConcurrentClient&) = delete;

  void start(std::uint64_t tag, const HttpRequest& request) override {
    ++in_flight_;
    loop_.post([this, tag, &request] {
      std::unique_ptr<HttpClient> client;
      if (!idle_.empty()) {
        client = std::move(idle_.back());
        idle_.pop_back();
      } else {
        client = make_();
      }
      Result<HttpResponse> response = client->send(request);
      idle_.push_back(std::move(client));
      done_.push_back(Completion{tag, std::move(response)});
    });
  }

  std::vector<Completion> wait() override {
    if (in_flight_ == 0) return {};
    loop_.runUntil([this] { return !done_.empty(); });
    in_flight_ -= done_.size();
    return std::exchange(done_, {});
  }

  std::size_t inFlight() const override { return in_flight_; }

 private:
  std::function<std::unique_ptr<HttpClient>()> make_;
  std::unique_ptr<core::FiberLoop::Io> io_;  // null when curl cannot start: sends block
  core::FiberLoop loop_;                     // after io_: destroyed first
  // Touched only on the caller's thread (the fibers run in wait()).
  std::vector<std::unique_ptr<HttpClient>> idle_;
  std::vector<Completion> done_;
  std::size_t in_flight_ = 0;
};

}  // namespace

std::unique_ptr<ConcurrentHttpClient> makeConcurrentClient(
    std::function<std::unique_ptr<HttpClient>()> make_client) {
  return std::make_unique<FiberConcurrentClient>(std::move(make_client));
}

}  // namespace mdec::http
