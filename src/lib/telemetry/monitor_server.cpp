// The monitoring endpoint. cpp-httplib (0.11.4, Debian 12) parses and routes the requests;
// the connections are held here, because its own handling has no bounds: every accepted
// socket joins an unbounded queue in front of its worker threads, and a worker waits on an
// idle connection until the keep-alive timeout, so a few idle connections kept /health from
// answering and a flood of them grew the queue without limit. Here:
//   - connections wait in one poll() loop (the waiting room), which reads what they send
//     until a request's line and headers are complete; only then does one of the kWorkers
//     workers take it, so an idle or slow client never holds a thread;
//   - a request must be complete within kIdleTimeout of the connection opening (or of the
//     previous answer) and hold at most kMaxRequestBytes before its body (else 431);
//   - at most kMaxConnections connections are kept: beyond that, the one waiting longest is
//     closed to make room (so /health gets in however many idle connections there are),
//     and a connection past kMaxHeld (all busy) is answered 503 and closed;
//   - GET and HEAD only (405 with Allow otherwise), and no request body is ever read: one
//     announced over kMaxBodyBytes (or chunked) is answered 413; a connection whose request
//     announced a body is closed after the answer, the bytes it still sends discarded (at
//     most kMaxDrainBytes, for kDrainTimeout) so that the peer reads the answer;
//   - a response must be written within kWriteTimeout; a connection serves at most
//     kMaxRequestsPerConnection requests;
//   - stop() ends every wait at once (an eventfd every poll() watches), so it is prompt.
#include "mdecollect/telemetry/monitor_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "mdecollect/core/host_port.h"
#include "mdecollect/core/unique_fd.h"

namespace mdec::telemetry {
namespace {

using Clock = std::chrono::steady_clock;
using core::UniqueFd;
using namespace std::chrono_literals;

constexpr std::size_t kMaxConnections = 64;
constexpr std::size_t kMaxHeld = 2 * kMaxConnections;  // before the waiting room has caught up
constexpr std::size_t kWorkers = 2;
constexpr std::chrono::milliseconds kIdleTimeout = 5s;
constexpr std::chrono::milliseconds kWriteTimeout = 5s;
constexpr std::chrono::milliseconds kDrainTimeout = 1s;
constexpr std::size_t kMaxRequestBytes = 16 * 1024;  // request line and headers
constexpr std::size_t kMaxBodyBytes = 1024;
constexpr std::size_t kMaxDrainBytes = 64 * 1024;
constexpr int kMaxRequestsPerConnection = 100;
constexpr std::string_view kEndOfHeaders = "\r\n\r\n";

// Milliseconds from now to `deadline` for poll(): at least 0, rounded up.
int pollTimeout(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 60'000));
}

// Sends what the socket takes at once; for canned answers to connections being closed.
void sendNow(int fd, std::string_view text) {
  (void)::send(fd, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

// A connection's socket as cpp-httplib's Stream. The waiting room receives into its buffer
// until a request's headers are complete; cpp-httplib then reads them from the buffer.
// Reading past the buffer (never needed for a request without a body) waits for the socket
// until the request's deadline; every wait also ends when the server stops.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(int fd, int stop_fd) : fd_(fd), stop_fd_(stop_fd) {}

  enum class Received { kMore, kComplete, kClosed, kTooLarge };

  // Takes what the peer sent (the socket is readable): whether a request's line and
  // headers are now complete in the buffer.
  Received receive() {
    if (pos_ > 0) {
      in_.erase(0, pos_);
      pos_ = 0;
    }
    std::array<char, 4096> chunk{};
    while (in_.size() <= kMaxRequestBytes) {
      const ssize_t n = ::recv(fd_, chunk.data(), chunk.size(), MSG_DONTWAIT);
      if (n > 0) {
        in_.append(chunk.data(), static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return hasRequest() ? Received::kComplete : Received::kClosed;  // EOF or error
    }
    if (hasRequest()) return Received::kComplete;
    return in_.size() > kMaxRequestBytes ? Received::kTooLarge : Received::kMore;
  }

  // A request's line and headers are in the buffer, within kMaxRequestBytes.
  bool hasRequest() const {
    const std::string_view rest = std::string_view(in_).substr(pos_);
    return rest.substr(0, kMaxRequestBytes + kEndOfHeaders.size()).find(kEndOfHeaders) !=
           std::string_view::npos;
  }

  // A new request: cpp-httplib may read kMaxRequestBytes (a body is never asked for), and
  // must have them within kIdleTimeout.
  void beginRequest() {
    read_deadline_ = Clock::now() + kIdleTimeout;
    write_deadline_.reset();
    budget_ = kMaxRequestBytes + kEndOfHeaders.size();
  }

  bool is_readable() const override { return pos_ < in_.size() || wait(POLLIN, read_deadline_); }
  bool is_writable() const override { return wait(POLLOUT, writeDeadline()); }

  ssize_t read(char* ptr, size_t size) override {
    if (size == 0) return 0;
    if (pos_ == in_.size()) {
      const ssize_t n = fill();
      if (n <= 0) return n;
    }
    const std::size_t n = std::min(size, in_.size() - pos_);
    if (n > budget_) return -1;  // more than any request this endpoint answers
    budget_ -= n;
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    const Clock::time_point deadline = writeDeadline();
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::send(fd_, ptr + done, size - done, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait(POLLOUT, deadline)) return -1;
      } else {
        return -1;
      }
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    addressOf(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    addressOf(::getsockname, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  // Past the buffer: waits for the socket until the read deadline. The byte count, 0 when
  // the peer closed, -1 on error, time-out or stop.
  ssize_t fill() {
    in_.clear();
    pos_ = 0;
    std::array<char, 4096> chunk{};
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk.data(), chunk.size(), MSG_DONTWAIT);
      if (n >= 0) {
        in_.assign(chunk.data(), static_cast<std::size_t>(n));
        return n;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      if (!wait(POLLIN, read_deadline_)) return -1;
    }
  }

  Clock::time_point writeDeadline() const {
    if (!write_deadline_) write_deadline_ = Clock::now() + kWriteTimeout;
    return *write_deadline_;
  }

  // True when the socket is ready for `events`; false at the deadline or when stopping.
  bool wait(short events, Clock::time_point deadline) const {
    for (;;) {
      std::array<pollfd, 2> fds{{{fd_, events, 0}, {stop_fd_, POLLIN, 0}}};
      const int n = ::poll(fds.data(), fds.size(), pollTimeout(deadline));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || fds[1].revents != 0) return false;
      if (fds[0].revents != 0) return true;
    }
  }

  using NameFn = int (*)(int, sockaddr*, socklen_t*);
  void addressOf(NameFn fn, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ip.clear();
    port = 0;
    if (fn(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
      if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr) ip = text;
      port = ntohs(in->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
      if (::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text) != nullptr) ip = text;
      port = ntohs(in6->sin6_port);
    }
  }

  int fd_;
  int stop_fd_;
  std::string in_;  // received, from pos_ on not yet read by cpp-httplib
  std::size_t pos_ = 0;
  std::size_t budget_ = 0;
  Clock::time_point read_deadline_ = Clock::now();
  mutable std::optional<Clock::time_point> write_deadline_;
};

struct Connection {
  Connection(UniqueFd socket, int stop_fd) : fd(std::move(socket)), stream(fd.get(), stop_fd) {}

  // Waits for a request (the next one) from now on, at most kIdleTimeout.
  void waitForRequest() {
    since = Clock::now();
    deadline = since + kIdleTimeout;
  }
  // Answered: shut down for writing (the answer goes out, then FIN) and discard what the
  // peer still sends until it closes, for at most kDrainTimeout.
  void closeGracefully() {
    ::shutdown(fd.get(), SHUT_WR);
    draining = true;
    deadline = Clock::now() + kDrainTimeout;
  }

  UniqueFd fd;
  ConnStream stream;
  int served = 0;
  bool draining = false;
  std::size_t drained = 0;       // bytes discarded while draining
  Clock::time_point since{};     // waiting since (the oldest is closed first when full)
  Clock::time_point deadline{};  // closed then, unless a request came
};

// The connections: admitted, waiting in the poll loop until a request is complete, served
// by the workers one request at a time.
class ConnectionPool {
 public:
  // Serves the request in the stream's buffer; false when the connection must be closed at
  // once. `connection_closed` is set when it is to be closed after the answer.
  using Serve = std::function<bool(ConnStream&, bool close_connection, bool& connection_closed)>;

  explicit ConnectionPool(Serve serve) : serve_(std::move(serve)) {}
  ~ConnectionPool() { stop(); }
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  Status start() {
    wake_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    stop_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd_.valid() || !stop_fd_.valid()) {
      return Error(ErrorCode::kIo,
                   std::string("monitoring endpoint: eventfd: ") + std::strerror(errno));
    }
    poller_ = std::thread([this] { pollLoop(); });
    for (std::size_t i = 0; i < kWorkers; ++i) workers_.emplace_back([this] { workLoop(); });
    return okStatus();
  }

  // A socket accepted by cpp-httplib's loop (on its thread): held, or refused when
  // kMaxHeld are (the waiting room makes room down to kMaxConnections as it runs).
  void admit(int sock) {
    UniqueFd fd(sock);
    {
      std::lock_guard lock(mu_);
      if (!stopping_ && held_ < kMaxHeld) {
        ++held_;
        auto c = std::make_unique<Connection>(std::move(fd), stop_fd_.get());
        c->waitForRequest();
        incoming_.push_back(std::move(c));
      }
    }
    if (!fd.valid()) {
      wake();
      return;
    }
    sendNow(fd.get(),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
            "Retry-After: 1\r\n\r\n");
    spdlog::warn("monitoring endpoint: {} connections open; one more refused (503)", kMaxHeld);
  }

  // Ends every wait, joins the threads and closes every connection. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    if (stop_fd_.valid()) {
      const std::uint64_t one = 1;
      (void)::write(stop_fd_.get(), &one, sizeof one);
    }
    ready_cv_.notify_all();
    if (poller_.joinable()) poller_.join();
    for (auto& w : workers_) {
      if (w.joinable()) w.join();
    }
    workers_.clear();
    std::lock_guard lock(mu_);
    incoming_.clear();
    ready_.clear();
    held_ = 0;
  }

 private:
  void wake() {
    const std::uint64_t one = 1;
    (void)::write(wake_fd_.get(), &one, sizeof one);
  }

  void release(std::unique_ptr<Connection> c) {
    c.reset();  // closes the socket
    std::lock_guard lock(mu_);
    if (held_ > 0) --held_;
  }

  // To the waiting room: for the next request, or (draining) to be closed.
  void park(std::unique_ptr<Connection> c) {
    {
      std::lock_guard lock(mu_);
      incoming_.push_back(std::move(c));
    }
    wake();
  }

  void toWorkers(std::vector<std::unique_ptr<Connection>>& ready) {
    if (ready.empty()) return;
    {
      std::lock_guard lock(mu_);
      for (auto& c : ready) ready_.push_back(std::move(c));
    }
    ready.clear();
    ready_cv_.notify_all();
  }

  // Over kMaxConnections: closes waiting connections, those already draining first, then
  // those waiting longest (a newcomer's request is read before it is old).
  void makeRoom(std::vector<std::unique_ptr<Connection>>& waiting) {
    std::size_t excess = 0;
    {
      std::lock_guard lock(mu_);
      excess = held_ > kMaxConnections ? held_ - kMaxConnections : 0;
    }
    if (excess == 0) return;
    std::sort(waiting.begin(), waiting.end(), [](const auto& a, const auto& b) {
      if (a->draining != b->draining) return a->draining;
      return a->since < b->since;
    });
    for (std::size_t i = 0; i < waiting.size() && i < excess; ++i) release(std::move(waiting[i]));
    std::erase(waiting, nullptr);
  }

  void pollLoop() {
    std::vector<std::unique_ptr<Connection>> waiting;
    std::vector<std::unique_ptr<Connection>> ready;
    std::vector<pollfd> fds;
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
        for (auto& c : incoming_) waiting.push_back(std::move(c));
        incoming_.clear();
      }
      makeRoom(waiting);
      // Past their deadline: idle or slow ones, and draining ones the peer did not close.
      const auto now = Clock::now();
      for (auto& c : waiting) {
        if (c->deadline <= now) release(std::move(c));
      }
      std::erase(waiting, nullptr);
      Clock::time_point next = now + 60s;
      for (const auto& c : waiting) next = std::min(next, c->deadline);

      fds.clear();
      fds.push_back({stop_fd_.get(), POLLIN, 0});
      fds.push_back({wake_fd_.get(), POLLIN, 0});
      for (const auto& c : waiting) fds.push_back({c->fd.get(), POLLIN, 0});
      const int n = ::poll(fds.data(), fds.size(), pollTimeout(next));
      if (n < 0) {
        if (errno != EINTR) std::this_thread::sleep_for(10ms);  // not expected: do not spin
        continue;
      }
      if (fds[0].revents != 0) break;
      if (fds[1].revents != 0) {
        std::uint64_t count = 0;
        (void)::read(wake_fd_.get(), &count, sizeof count);
      }
      for (std::size_t i = 0; i < waiting.size(); ++i) {
        if (fds[i + 2].revents == 0) continue;
        auto& c = waiting[i];
        if (c->draining) {
          if (!discardInput(*c)) release(std::move(c));
          continue;
        }
        switch (c->stream.receive()) {
          case ConnStream::Received::kMore:
            break;
          case ConnStream::Received::kComplete:
            ready.push_back(std::move(c));
            break;
          case ConnStream::Received::kClosed:
            release(std::move(c));
            break;
          case ConnStream::Received::kTooLarge:
            sendNow(c->fd.get(),
                    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n");
            c->closeGracefully();
            break;
        }
      }
      std::erase(waiting, nullptr);
      toWorkers(ready);
    }
    waiting.clear();  // stopping: closed
  }

  // Reads and drops what a peer sends after an answer to a request whose body was not
  // read. False when done: the peer closed, an error, or too much.
  static bool discardInput(Connection& c) {
    std::array<char, 4096> scratch{};
    for (;;) {
      const ssize_t n = ::recv(c.fd.get(), scratch.data(), scratch.size(), MSG_DONTWAIT);
      if (n > 0) {
        c.drained += static_cast<std::size_t>(n);
        if (c.drained > kMaxDrainBytes) return false;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }

  void workLoop() {
    for (;;) {
      std::unique_ptr<Connection> c;
      {
        std::unique_lock lock(mu_);
        ready_cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
        if (stopping_) return;
        c = std::move(ready_.front());
        ready_.pop_front();
      }
      c->stream.beginRequest();
      ++c->served;
      const bool last = c->served >= kMaxRequestsPerConnection;
      bool connection_closed = false;
      if (!serve_(c->stream, last, connection_closed)) {
        release(std::move(c));  // the peer went away, or sent what cannot be answered
      } else if (last || connection_closed) {
        c->closeGracefully();
        park(std::move(c));
      } else if (c->stream.hasRequest()) {  // the next one is already here (pipelined)
        {
          std::lock_guard lock(mu_);
          ready_.push_back(std::move(c));
        }
        ready_cv_.notify_one();
      } else {
        c->waitForRequest();
        park(std::move(c));
      }
    }
  }

  Serve serve_;
  UniqueFd wake_fd_;  // written when a connection joins the waiting room
  UniqueFd stop_fd_;  // written once, when stopping: every poll() watches it
  std::thread poller_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable ready_cv_;
  bool stopping_ = false;
  std::size_t held_ = 0;                               // connections admitted and not yet closed
  std::vector<std::unique_ptr<Connection>> incoming_;  // for the waiting room
  std::deque<std::unique_ptr<Connection>> ready_;      // a request complete, for a worker
};

// cpp-httplib's task queue, reduced to running each task at once on the accepting thread:
// the task only hands the socket to the pool (through process_and_close_socket below).
class HandOver final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

// The body a request announces: 0 for none; nullopt when it cannot be told in advance
// (chunked) or the Content-Length is not a number.
std::optional<std::uint64_t> announcedBody(const httplib::Request& req) {
  if (req.has_header("Transfer-Encoding")) return std::nullopt;
  if (!req.has_header("Content-Length")) return 0;
  const std::string text = req.get_header_value("Content-Length");
  std::uint64_t length = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return length;
}

// cpp-httplib's server with the connections handed to `pool` instead of its own threads.
class PooledServer final : public httplib::Server {
 public:
  explicit PooledServer(ConnectionPool& pool) : pool_(pool) {}

  // cpp-httplib listens with a backlog of 5 (compiled into the library): a burst of
  // connections (probes, a scraper's retries) overflows it, and each one dropped waits a
  // second for the retransmission. Listening again on the bound socket only changes the
  // backlog (Linux): as long as the pool's bound.
  void widenBacklog() { (void)::listen(svr_sock_, static_cast<int>(kMaxConnections)); }

  // One request from `stream` (cpp-httplib parses, routes and answers it). A request that
  // announces a body gets Connection: close, since the body is never read.
  bool serveOne(ConnStream& stream, bool close_connection, bool& connection_closed) {
    return process_request(stream, close_connection, connection_closed,
                           [&connection_closed](httplib::Request& req) {
                             const auto body = announcedBody(req);
                             if (body && *body == 0) return;
                             req.headers.erase("Connection");
                             req.headers.emplace("Connection", "close");
                             connection_closed = true;
                           });
  }

 private:
  // Called (through the HandOver queue) for every accepted socket.
  bool process_and_close_socket(socket_t sock) override {
    pool_.admit(sock);
    return true;
  }

  ConnectionPool& pool_;
};

class HttplibMonitorServer final : public MonitorServer {
 public:
  HttplibMonitorServer(const Metrics& metrics, const core::Clock& clock)
      : metrics_(metrics),
        clock_(clock),
        pool_([this](ConnStream& stream, bool close_connection, bool& connection_closed) {
          return server_.serveOne(stream, close_connection, connection_closed);
        }),
        server_(pool_) {
    server_.new_task_queue = [] { return new HandOver(); };
    // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which would let a second
    // collector share the port silently instead of being told it is taken.
    server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // The pool enforces these; cpp-httplib announces them (Keep-Alive: timeout, max).
    server_.set_keep_alive_timeout(
        std::chrono::duration_cast<std::chrono::seconds>(kIdleTimeout).count());
    server_.set_keep_alive_max_count(kMaxRequestsPerConnection);
    server_.set_read_timeout(kIdleTimeout);
    server_.set_write_timeout(kWriteTimeout);
    // Bodies are refused before they are read (below); this bounds any cpp-httplib would read.
    server_.set_payload_max_length(kMaxBodyBytes);
    server_.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      if (req.method != "GET" && req.method != "HEAD") {
        res.status = 405;
        res.set_header("Allow", "GET, HEAD");
        res.set_content("only GET and HEAD\n", "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }
      const auto body = announcedBody(req);
      if (!body || *body > kMaxBodyBytes) {
        res.status = 413;
        res.set_content("request body too large\n", "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_.prometheus(clock_.now()),
                      "text/plain; version=0.0.4; charset=utf-8");
    });
    server_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      auto h = metrics_.health(clock_.now());
      res.status = h.http_status;
      res.set_content(std::move(h.json), "application/json");
    });
    server_.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("mdecollect " MDEC_VERSION_STRING
                      "\n/metrics  Prometheus text format\n/health   JSON; HTTP 503 when a "
                      "source or an output is failing\n",
                      "text/plain; charset=utf-8");
    });
  }

  ~HttplibMonitorServer() override { stop(); }

  Status bind(const std::string& host, int port) {
    if (port == 0) {
      port_ = server_.bind_to_any_port(host);
      if (port_ < 0) port_ = 0;
    } else if (server_.bind_to_port(host, port)) {
      port_ = port;
    }
    if (port_ <= 0) {
      const int err = errno;
      return Error(ErrorCode::kInvalidArgument,
                   "http.listen: cannot listen on " + core::formatHostPort(host, port) + " (" +
                       (err != 0 ? std::strerror(err) : "bind failed") +
                       "); set http.listen to a free port, or http.enabled: false");
    }
    server_.widenBacklog();
    if (auto s = pool_.start(); !s) return s;
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      done_ = true;
    });
    // stop() only stops a server that is running: until the thread has entered its accept
    // loop, it would do nothing and the join would wait for ever (a `run --once` that ends
    // within milliseconds hit this).
    for (int i = 0; i < 10'000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return okStatus();
  }

  int port() const override { return port_; }

  void stop() override {
    if (thread_.joinable()) {
      // Asked again until the loop has ended: a stop that came before the loop began would
      // not be seen by it.
      while (!done_) {
        server_.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      thread_.join();
    }
    pool_.stop();  // after the accepting loop: nothing is admitted any more
  }

 private:
  const Metrics& metrics_;
  const core::Clock& clock_;
  ConnectionPool pool_;  // before server_: it outlives the server's use of it
  PooledServer server_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  int port_ = 0;
};

}  // namespace

Result<std::unique_ptr<MonitorServer>> startMonitorServer(const std::string& host, int port,
                                                          const Metrics& metrics,
                                                          const core::Clock& clock) {
  auto server = std::make_unique<HttplibMonitorServer>(metrics, clock);
  errno = 0;
  if (auto s = server->bind(host, port); !s) return s.error();
  return std::unique_ptr<MonitorServer>(std::move(server));
}

}  // namespace mdec::telemetry
