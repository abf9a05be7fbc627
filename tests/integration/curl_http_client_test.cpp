// The libcurl client against a scripted HTTP/1.1 server on 127.0.0.1 (port 0).
//
// The server is a few dozen lines of sockets rather than httplib: Debian's cpp-httplib is built
// as a shared library (it needs -lcpp-httplib and its CPPHTTPLIB_* defines), and a scripted
// server can also send what httplib cannot: interim 1xx blocks, folded headers, a body cut short.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "mdecollect/core/ascii.h"
#include "mdecollect/core/unique_fd.h"
#include "mdecollect/http/concurrent_http_client.h"
#include "mdecollect/http/http_client.h"

namespace mdec::http {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

// --- a scripted HTTP/1.1 server -------------------------------------------------------------

struct ServedRequest {
  std::string method;
  std::string target;
  Headers headers;  // names lower-cased
  std::string body;
  int connection = 0;  // 1-based number of the TCP connection that carried it

  std::optional<std::string> header(std::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
      if (name == lower_name) return value;
    }
    return std::nullopt;
  }
};

struct Reply {
  std::string bytes;   // written verbatim
  bool close = false;  // close the connection after writing
};

Reply reply(int status, std::string_view reason, const Headers& headers, std::string_view body) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  out += body;
  return Reply{out, false};
}

using Handler = std::function<Reply(const ServedRequest&, const std::atomic<bool>& stopping)>;

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool waitReadable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

// Accepts connections on 127.0.0.1:<port 0>, one thread per connection, keep-alive; each
// request goes to the handler, whose Reply is written as is. Every wait is a 20 ms poll that
// checks the stop flag, under a 30 s bound.
class ScriptedServer {
 public:
  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = core::UniqueFd(::socket(AF_INET, SOCK_STREAM, 0));
    if (!listen_fd_.valid()) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_.get(), 16) != 0 ||
        ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      listen_fd_.reset();
      return;
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }

  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  ~ScriptedServer() {
    stopping_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& t : connections_) t.join();  // the acceptor is gone: no one adds threads
  }

  bool ok() const { return listen_fd_.valid(); }
  int port() const { return port_; }
  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  std::vector<ServedRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  bool expired(Clock::time_point deadline) const { return stopping_ || Clock::now() > deadline; }

  void acceptLoop() {
    const auto deadline = Clock::now() + 30s;
    int count = 0;
    while (!expired(deadline)) {
      if (!waitReadable(listen_fd_.get(), 20)) continue;
      int fd = ::accept(listen_fd_.get(), nullptr, nullptr);
      if (fd < 0) continue;
      const int connection = ++count;
      std::lock_guard lock(mu_);
      connections_.emplace_back([this, fd, connection] {
        serve(fd, connection);
        ::close(fd);
      });
    }
  }

  // False when the peer closed, the stop flag rose or the input is not HTTP.
  bool readMore(int fd, std::string& buffer, Clock::time_point deadline) {
    while (!expired(deadline)) {
      if (!waitReadable(fd, 20)) continue;
      char chunk[4096];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<std::size_t>(n));
      // A TLS ClientHello (or other junk) rather than a request line: hang up.
      return buffer[0] >= 'A' && buffer[0] <= 'Z';
    }
    return false;
  }

  static void sendAll(int fd, std::string_view data) {
    for (int tries = 0; !data.empty() && tries < 1000; ++tries) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;  // the client went away
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  void serve(int fd, int connection) {
    const auto deadline = Clock::now() + 30s;
    std::string buffer;
    while (!expired(deadline)) {
      std::size_t head_end;
      while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (buffer.size() > 65536 || !readMore(fd, buffer, deadline)) return;
      }
      ServedRequest request;
      request.connection = connection;
      std::string_view head(buffer.data(), head_end);
      std::size_t eol = head.find("\r\n");
      std::string_view request_line = head.substr(0, eol);
      std::size_t sp1 = request_line.find(' ');
      std::size_t sp2 = request_line.rfind(' ');
      if (sp1 == std::string_view::npos || sp2 == sp1) return;
      request.method = std::string(request_line.substr(0, sp1));
      request.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
      std::size_t content_length = 0;
      while (eol != std::string_view::npos) {
        std::size_t start = eol + 2;
        eol = head.find("\r\n", start);
        std::string_view line =
            head.substr(start, eol == std::string_view::npos ? eol : eol - start);
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string name = core::asciiLower(line.substr(0, colon));
        std::string value(trim(line.substr(colon + 1)));
        if (name == "content-length") content_length = std::stoul(value);
        request.headers.emplace_back(std::move(name), std::move(value));
      }
      const std::size_t total = head_end + 4 + content_length;
      while (buffer.size() < total) {
        if (!readMore(fd, buffer, deadline)) return;
      }
      request.body = buffer.substr(head_end + 4, content_length);
      buffer.erase(0, total);
      {
        std::lock_guard lock(mu_);
        requests_.push_back(request);
      }
      Reply out = handler_(request, stopping_);
      sendAll(fd, out.bytes);
      if (out.close) return;
    }
  }

  Handler handler_;
  core::UniqueFd listen_fd_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<ServedRequest> requests_;   // guarded by mu_
  std::vector<std::thread> connections_;  // guarded by mu_
  std::thread acceptor_;
};

// Replies 200 with "echo:<request body>" and an X-Request-Id header.
Reply echo(const ServedRequest& request, const std::atomic<bool>& /*stopping*/) {
  return reply(200, "OK", {{"X-Request-Id", "abc-123"}, {"Content-Type", "text/plain"}},
               "echo:" + request.body);
}

// A port on 127.0.0.1 with nothing listening: bound, read back and closed.
int closedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// A gzip member holding `data` in one stored (uncompressed) deflate block: real gzip framing
// and CRC for curl's decoder, without linking zlib into the test.
std::string gzipStored(std::string_view data) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (char c : data) {
    crc ^= static_cast<unsigned char>(c);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  crc = ~crc;
  auto le = [](std::string& out, std::uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xffu);
  };
  std::string out("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
  out += '\x01';  // BFINAL=1, BTYPE=00 (stored)
  const auto len = static_cast<std::uint32_t>(data.size());
  le(out, len, 2);
  le(out, ~len & 0xffffu, 2);
  out += data;
  le(out, crc, 4);
  le(out, len, 4);
  return out;
}

HttpRequest get(std::string url) {
  HttpRequest request;
  request.url = std::move(url);
  request.timeout = 5s;
  request.connect_timeout = 2s;
  return request;
}

// --- requests and responses --------------------------------------------------------------------

TEST(CurlHttpClient, PostSendsMethodTargetHeadersAndBody) {
  ScriptedServer server(echo);
  ASSERT_TRUE(server.ok());
  CurlClientOptions options;
  options.user_agent = "mdecollect-test/1";
  auto client = makeCurlClient(options);
  HttpRequest request = get(server.url("/api/alerts?$top=2"));
  request.method = "POST";
  request.headers = {{"Authorization", "Bearer t0k"}, {"Content-Type", "application/json"}};
  request.body = std::string((1u << 20) + 1, 'x');  // over curl's "Expect: 100-continue" size

  auto response = client->send(request);
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "echo:" + request.body);
  ASSERT_NE(response->header("x-request-id"), nullptr);
  EXPECT_EQ(*response->header("x-request-id"), "abc-123");

  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/api/alerts?$top=2");
  EXPECT_EQ(seen[0].header("authorization"), "Bearer t0k");
  EXPECT_EQ(seen[0].header("content-type"), "application/json");
  EXPECT_EQ(seen[0].header("user-agent"), "mdecollect-test/1");
  EXPECT_EQ(seen[0].header("expect"), std::nullopt);
  EXPECT_EQ(seen[0].body, request.body);
}

TEST(CurlHttpClient, GetSendsNoBody) {
  ScriptedServer server(echo);
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  auto response = client->send(get(server.url("/x")));
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->body, "echo:");
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].header("content-length"), std::nullopt);
}

TEST(CurlHttpClient, PutPostWithoutBodyAndDeleteUseTheirMethods) {
  ScriptedServer server(echo);
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  HttpRequest put = get(server.url("/put"));
  put.method = "PUT";
  put.body = "state=1";
  HttpRequest empty_post = get(server.url("/post"));
  empty_post.method = "POST";
  HttpRequest del = get(server.url("/del"));
  del.method = "DELETE";
  for (const HttpRequest* request : {&put, &empty_post, &del}) {
    auto response = client->send(*request);
    ASSERT_TRUE(response) << response.error().message();
    EXPECT_EQ(response->body, "echo:" + request->body);
  }
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].body, "state=1");
  EXPECT_EQ(seen[1].method, "POST");
  EXPECT_EQ(seen[1].header("content-length"), "0");
  EXPECT_EQ(seen[2].method, "DELETE");
  EXPECT_EQ(seen[2].body, "");
}

TEST(CurlHttpClient, SchemeIsCaseInsensitive) {
  ScriptedServer server(echo);
  ASSERT_TRUE(server.ok());
  auto response = makeCurlClient()->send(get("HTTP://127.0.0.1:" + std::to_string(server.port())));
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(server.requests().at(0).target, "/");
}

TEST(CurlHttpClient, HeadReturnsHeadersAndNoBodyWhateverTheContentLength) {
  ScriptedServer server([](const ServedRequest&, const std::atomic<bool>&) {
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nETag: \"v1\"\r\n\r\n", false};
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  HttpRequest request = get(server.url("/big"));
  request.method = "HEAD";
  request.max_response_bytes = 10;  // the declared 5000 bytes are never sent
  auto response = client->send(request);
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "");
  ASSERT_NE(response->header("etag"), nullptr);
  EXPECT_EQ(*response->header("etag"), "\"v1\"");
  EXPECT_EQ(server.requests().at(0).method, "HEAD");
}

TEST(CurlHttpClient, HttpErrorStatusesAreResponsesNotErrors) {
  ScriptedServer server([](const ServedRequest& request, const std::atomic<bool>&) {
    if (request.target == "/404") return reply(404, "Not Found", {}, "{\"error\":\"nope\"}");
    if (request.target == "/429") {
      return reply(429, "Too Many Requests", {{"Retry-After", "7"}}, "slow down");
    }
    return reply(503, "Service Unavailable", {{"Retry-After", "30"}}, "later");
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();

  auto not_found = client->send(get(server.url("/404")));
  ASSERT_TRUE(not_found) << not_found.error().message();
  EXPECT_EQ(not_found->status, 404);
  EXPECT_EQ(not_found->body, "{\"error\":\"nope\"}");

  auto throttled = client->send(get(server.url("/429")));
  ASSERT_TRUE(throttled) << throttled.error().message();
  EXPECT_EQ(throttled->status, 429);
  EXPECT_EQ(throttled->body, "slow down");
  ASSERT_NE(throttled->header("retry-after"), nullptr);
  EXPECT_EQ(*throttled->header("retry-after"), "7");
  EXPECT_EQ(throttled->header("Retry-After"), nullptr);  // names are lower-cased

  auto unavailable = client->send(get(server.url("/503")));
  ASSERT_TRUE(unavailable) << unavailable.error().message();
  EXPECT_EQ(unavailable->status, 503);
  EXPECT_EQ(unavailable->body, "later");
  ASSERT_NE(unavailable->header("retry-after"), nullptr);
  EXPECT_EQ(*unavailable->header("retry-after"), "30");
}

TEST(CurlHttpClient, RedirectsAreNotFollowed) {
  ScriptedServer server([](const ServedRequest&, const std::atomic<bool>&) {
    return reply(302, "Found", {{"Location", "/elsewhere"}}, "");
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  auto response = client->send(get(server.url("/here")));
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 302);
  ASSERT_NE(response->header("location"), nullptr);
  EXPECT_EQ(*response->header("location"), "/elsewhere");
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(CurlHttpClient, KeepsOnlyTheFinalHeaderBlockLowerCasedAndUnfolded) {
  ScriptedServer server([](const ServedRequest&, const std::atomic<bool>&) {
    return Reply{
        "HTTP/1.1 103 Early Hints\r\n"
        "Link: </style.css>; rel=preload\r\n"
        "X-Interim: yes\r\n"
        "\r\n"
        "HTTP/1.1 200 OK\r\n"
        "X-Folded: first\r\n"
        "   second\r\n"
        "\tthird\r\n"
        "X-Dup: 1\r\n"
        "x-dup: 2\r\n"
        "X-Spaced:   padded value  \r\n"
        "X-Empty:\r\n"
        "Content-Length: 2\r\n"
        "\r\n"
        "ok",
        false};
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  auto response = client->send(get(server.url("/")));
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "ok");
  EXPECT_EQ(response->header("x-interim"), nullptr);
  EXPECT_EQ(response->header("link"), nullptr);
  ASSERT_NE(response->header("x-folded"), nullptr);
  EXPECT_EQ(*response->header("x-folded"), "first second third");
  ASSERT_NE(response->header("x-dup"), nullptr);
  EXPECT_EQ(*response->header("x-dup"), "2");  // the last one wins
  ASSERT_NE(response->header("x-spaced"), nullptr);
  EXPECT_EQ(*response->header("x-spaced"), "padded value");
  ASSERT_NE(response->header("x-empty"), nullptr);
  EXPECT_EQ(*response->header("x-empty"), "");
  ASSERT_NE(response->header("content-length"), nullptr);
  for (const auto& [name, value] : response->headers) {
    EXPECT_EQ(name, core::asciiLower(name));
    EXPECT_EQ(value.find_first_of("\r\n"), std::string::npos) << name;
  }
}

TEST(CurlHttpClient, GzipBodiesAreDecodedTransparently) {
  const std::string json = R"({"value":[{"id":"da637472900382838869_1364969609"}]})";
  ScriptedServer server([&json](const ServedRequest&, const std::atomic<bool>&) {
    return reply(200, "OK", {{"Content-Encoding", "gzip"}}, gzipStored(json));
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  auto response = client->send(get(server.url("/api/alerts")));
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->body, json);
  auto accept = server.requests().at(0).header("accept-encoding");
  ASSERT_TRUE(accept.has_value());
  EXPECT_NE(accept->find("gzip"), std::string::npos) << *accept;
}

TEST(CurlHttpClient, WithoutAcceptGzipNoEncodingIsRequested) {
  ScriptedServer server(echo);
  ASSERT_TRUE(server.ok());
  CurlClientOptions options;
  options.accept_gzip = false;
  auto client = makeCurlClient(options);
  auto response = client->send(get(server.url("/")));
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(server.requests().at(0).header("accept-encoding"), std::nullopt);
}

TEST(CurlHttpClient, ReusesOneConnectionAcrossRequests) {
  ScriptedServer server([](const ServedRequest& request, const std::atomic<bool>& stopping) {
    if (request.target == "/missing") return reply(404, "Not Found", {}, "no");
    return echo(request, stopping);
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  HttpRequest post = get(server.url("/token"));
  post.method = "POST";
  post.body = formEncode({{"grant_type", "client_credentials"}});
  for (const HttpRequest& request :
       {get(server.url("/a")), get(server.url("/missing")), post, get(server.url("/b"))}) {
    auto response = client->send(request);
    ASSERT_TRUE(response) << response.error().message();
  }
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 4u);
  for (const auto& request : seen) EXPECT_EQ(request.connection, 1) << request.target;
}

TEST(CurlHttpClient, ExplicitProxyIsUsedAndEnvironmentProxiesAreIgnored) {
  ScriptedServer origin(echo);
  ScriptedServer proxy(echo);
  ASSERT_TRUE(origin.ok() && proxy.ok());
  const std::string dead_proxy = "http://127.0.0.1:" + std::to_string(closedPort());
  ::setenv("http_proxy", dead_proxy.c_str(), 1);
  ::setenv("HTTPS_PROXY", dead_proxy.c_str(), 1);
  ::setenv("ALL_PROXY", dead_proxy.c_str(), 1);

  auto direct = makeCurlClient()->send(get(origin.url("/direct")));
  CurlClientOptions via_proxy;
  via_proxy.proxy_url = proxy.url("");
  auto proxied = makeCurlClient(via_proxy)->send(get(origin.url("/via")));
  ::unsetenv("http_proxy");
  ::unsetenv("HTTPS_PROXY");
  ::unsetenv("ALL_PROXY");

  ASSERT_TRUE(direct) << direct.error().message();
  EXPECT_EQ(origin.requests().at(0).target, "/direct");
  ASSERT_TRUE(proxied) << proxied.error().message();
  ASSERT_EQ(proxy.requests().size(), 1u);
  EXPECT_EQ(proxy.requests()[0].target, origin.url("/via"));  // absolute-form: a proxy request
  EXPECT_EQ(origin.requests().size(), 1u);
}

// --- transport failures --------------------------------------------------------------------------

TEST(CurlHttpClient, ConnectionRefusedIsANetworkErrorNamingMethodAndUrl) {
  const int port = closedPort();
  ASSERT_NE(port, 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(port) + "/api/alerts";
  auto client = makeCurlClient();
  auto response = client->send(get(base + "?$filter=alertCreationTime%20gt%202024"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kNetwork);
  EXPECT_TRUE(response.error().retryable());
  const std::string& message = response.error().message();
  EXPECT_EQ(message.rfind("GET " + base + ": Couldn't connect to server", 0), 0u) << message;
  EXPECT_EQ(message.find('?'), std::string::npos) << message;
}

TEST(CurlHttpClient, ErrorMessagesNeverCarryHeadersBodiesQueriesOrUserinfo) {
  const int port = closedPort();
  ASSERT_NE(port, 0);
  auto client = makeCurlClient();
  HttpRequest request = get("http://svc:hunter2@127.0.0.1:" + std::to_string(port) +
                            "/oauth2/token?code=query-secret#frag");
  request.method = "POST";
  request.headers = {{"Authorization", "Bearer secret-token"}};
  request.body = formEncode({{"client_secret", "body-secret"}});
  auto response = client->send(request);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kNetwork);
  const std::string& message = response.error().message();
  EXPECT_NE(message.find("POST http://127.0.0.1:" + std::to_string(port) + "/oauth2/token: "),
            std::string::npos)
      << message;
  for (const char* secret : {"secret-token", "Bearer", "body-secret", "client_secret",
                             "query-secret", "hunter2", "svc", "frag"}) {
    EXPECT_EQ(message.find(secret), std::string::npos) << secret << " in: " << message;
  }
}

TEST(CurlHttpClient, TimeoutIsANetworkError) {
  std::atomic<bool> release{false};
  ScriptedServer server([&release](const ServedRequest& request, const std::atomic<bool>& stop) {
    for (int i = 0; i < 200 && !release && !stop; ++i) std::this_thread::sleep_for(10ms);
    return echo(request, stop);
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  HttpRequest request = get(server.url("/slow"));
  request.timeout = 200ms;
  const auto start = Clock::now();
  auto response = client->send(request);
  const auto elapsed = Clock::now() - start;
  release = true;
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kNetwork);
  EXPECT_NE(response.error().message().find("Timeout"), std::string::npos)
      << response.error().message();
  EXPECT_LT(elapsed, 1900ms);

  // The handle is still good afterwards.
  auto again = client->send(get(server.url("/fast")));
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->status, 200);
}

TEST(CurlHttpClient, TruncatedBodyIsANetworkError) {
  ScriptedServer server([](const ServedRequest&, const std::atomic<bool>&) {
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(50, 'a'), true};
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  auto response = client->send(get(server.url("/cut")));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kNetwork);
  EXPECT_NE(response.error().message().find("GET " + server.url("/cut") + ": "), std::string::npos)
      << response.error().message();
}

TEST(CurlHttpClient, ConnectionClosedWithoutResponseIsANetworkError) {
  ScriptedServer server([](const ServedRequest&, const std::atomic<bool>&) {
    return Reply{"", true};
  });
  ASSERT_TRUE(server.ok());
  auto response = makeCurlClient()->send(get(server.url("/")));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kNetwork);
}

TEST(CurlHttpClient, ResponsesThatAreNotHttp11AreNetworkErrors) {
  // curl reports these with CURLE_UNSUPPORTED_PROTOCOL, as it does an unsupported URL scheme.
  ScriptedServer server([](const ServedRequest& request, const std::atomic<bool>&) {
    if (request.target == "/garbage") return Reply{"HELLO there\r\n\r\n", true};
    return Reply{"HTTP/7.0 200 OK\r\nContent-Length: 0\r\n\r\n", true};
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  for (const char* path : {"/garbage", "/version"}) {
    auto response = client->send(get(server.url(path)));
    ASSERT_FALSE(response) << path;
    EXPECT_EQ(response.error().code(), ErrorCode::kNetwork) << response.error().message();
  }
}

TEST(CurlHttpClient, TlsHandshakeWithAPlainServerIsANetworkError) {
  ScriptedServer server(echo);
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  auto response = client->send(get("https://127.0.0.1:" + std::to_string(server.port()) + "/"));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kNetwork) << response.error().message();
}

TEST(CurlHttpClient, BodiesOverTheLimitAreTooLarge) {
  ScriptedServer server([](const ServedRequest& request, const std::atomic<bool>&) {
    if (request.target == "/chunked") {  // no Content-Length: caught while receiving
      std::string chunk(1000, 'c');
      std::string out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
      for (int i = 0; i < 10; ++i) out += "3e8\r\n" + chunk + "\r\n";
      return Reply{out + "0\r\n\r\n", false};
    }
    const std::size_t size = request.target == "/exact" ? 1000 : 10000;
    return reply(200, "OK", {}, std::string(size, 'b'));
  });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  for (const char* path : {"/declared", "/chunked"}) {
    HttpRequest request = get(server.url(path));
    request.max_response_bytes = 1000;
    auto response = client->send(request);
    ASSERT_FALSE(response) << path;
    EXPECT_EQ(response.error().code(), ErrorCode::kTooLarge) << path;
    EXPECT_NE(response.error().message().find("1000"), std::string::npos)
        << response.error().message();
  }
  HttpRequest exact = get(server.url("/exact"));
  exact.max_response_bytes = 1000;
  auto response = client->send(exact);
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->body.size(), 1000u);
}

TEST(CurlHttpClient, MalformedOrNonHttpUrlsAreInvalidArguments) {
  auto client = makeCurlClient();
  const std::string no_scheme = "127.0.0.1:" + std::to_string(closedPort()) + "/x";
  for (const char* url :
       {"http://127.0.0.1:99999/", "http://[::1/", "ftp://127.0.0.1/x", "file:///etc/passwd",
        "gopher://127.0.0.1/", "", "not a url", no_scheme.c_str()}) {
    auto response = client->send(get(url));
    ASSERT_FALSE(response) << url;
    EXPECT_EQ(response.error().code(), ErrorCode::kInvalidArgument)
        << url << ": " << response.error().message();
    EXPECT_FALSE(response.error().retryable());
  }
}

TEST(CurlHttpClient, RejectsHeaderAndMethodInjectionWithoutEchoingValues) {
  ScriptedServer server(echo);
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();

  HttpRequest bad_value = get(server.url("/"));
  bad_value.headers = {{"Authorization", "Bearer secret-token\r\nX-Evil: 1"}};
  auto response = client->send(bad_value);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(response.error().message().find("secret-token"), std::string::npos);

  HttpRequest bad_name = get(server.url("/"));
  bad_name.headers = {{"X Bad", "v"}};
  EXPECT_FALSE(client->send(bad_name));

  HttpRequest bad_method = get(server.url("/"));
  bad_method.method = "GET / HTTP/1.1\r\nX:";
  auto method_response = client->send(bad_method);
  ASSERT_FALSE(method_response);
  EXPECT_EQ(method_response.error().code(), ErrorCode::kInvalidArgument);

  EXPECT_TRUE(server.requests().empty());
  // An empty header value is sent as such.
  HttpRequest empty_value = get(server.url("/"));
  empty_value.headers = {{"X-Empty", ""}};
  ASSERT_TRUE(client->send(empty_value));
  EXPECT_EQ(server.requests().at(0).header("x-empty"), "");
}

// --- encoding helpers ----------------------------------------------------------------------------

TEST(UrlEncode, KeepsUnreservedAndPercentEncodesTheRest) {
  EXPECT_EQ(urlEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(urlEncode("a b&c=d/e?f#g+h%"), "a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh%25");
  EXPECT_EQ(urlEncode("caf\xc3\xa9 \xe2\x82\xac"), "caf%C3%A9%20%E2%82%AC");
  EXPECT_EQ(urlEncode(std::string_view("\0\x7f\xff", 3)), "%00%7F%FF");
  EXPECT_EQ(urlEncode(""), "");
}

TEST(FormEncode, JoinsEncodedPairs) {
  EXPECT_EQ(formEncode({}), "");
  EXPECT_EQ(formEncode({{"grant_type", "client_credentials"},
                        {"scope", "https://api.securitycenter.microsoft.com/.default"},
                        {"client_secret", "a&b=c d"}}),
            "grant_type=client_credentials"
            "&scope=https%3A%2F%2Fapi.securitycenter.microsoft.com%2F.default"
            "&client_secret=a%26b%3Dc%20d");
  EXPECT_EQ(formEncode({{"k", ""}, {"", "v"}}), "k=&=v");
}

// Fibers on one loop: their transfers run at once on the loop's curl multi handle, so an
// answer that takes long holds no thread. The server answers 200 only once every fiber's
// request has arrived: sends that blocked their thread would arrive one at a time, and each
// would get 503 after the server's bounded wait (10 s).
TEST(CurlLoopIo, FibersOfOneThreadWaitForTheirAnswersAtOnce) {
  constexpr int kFibers = 12;
  std::atomic<int> arrived{0};
  ScriptedServer server([&](const ServedRequest&, const std::atomic<bool>& stopping) {
    ++arrived;
    for (int i = 0; i < 500 && arrived.load() < kFibers && !stopping; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    return arrived.load() >= kFibers ? reply(200, "OK", {}, "all here")
                                     : reply(503, "Service Unavailable", {}, "alone");
  });
  ASSERT_TRUE(server.ok());
  core::FiberLoop loop;
  auto io = makeCurlLoopIo();
  ASSERT_NE(io, nullptr);
  loop.setIo(io.get());
  std::vector<int> statuses(kFibers, 0);
  std::vector<std::thread::id> threads(kFibers);
  for (int i = 0; i < kFibers; ++i) {
    loop.post([&, i] {
      auto client = makeCurlClient();
      HttpRequest request;
      request.url = server.url("/slow/" + std::to_string(i));
      request.timeout = 30s;
      auto r = client->send(request);
      statuses[static_cast<std::size_t>(i)] = r ? r->status : -1;
      threads[static_cast<std::size_t>(i)] = std::this_thread::get_id();
    });
  }
  loop.finish();
  loop.run();  // on this thread: every fiber runs here
  EXPECT_EQ(loop.live(), 0u);
  for (int i = 0; i < kFibers; ++i) {
    EXPECT_EQ(statuses[static_cast<std::size_t>(i)], 200) << "fiber " << i;
    EXPECT_EQ(threads[static_cast<std::size_t>(i)], std::this_thread::get_id()) << "fiber " << i;
  }
  EXPECT_EQ(server.requests().size(), static_cast<std::size_t>(kFibers));
}

// A cancel (a stop request) ends a transfer waiting for a slow answer at once, and any later
// one before it starts: nobody waits for the answer.
TEST(CurlLoopIo, ACancelEndsTransfersInFlightAndLaterOnes) {
  std::atomic<bool> answered{false};
  ScriptedServer server([&](const ServedRequest&, const std::atomic<bool>& stopping) {
    for (int i = 0; i < 500 && !stopping; ++i) std::this_thread::sleep_for(20ms);  // <= 10 s
    answered = true;
    return reply(200, "OK", {}, "late");
  });
  ASSERT_TRUE(server.ok());
  core::FiberLoop loop;
  auto io = makeCurlLoopIo();
  ASSERT_NE(io, nullptr);
  loop.setIo(io.get());
  std::string first;
  std::string second;
  loop.post([&] {
    auto client = makeCurlClient();
    HttpRequest request;
    request.url = server.url("/slow");
    request.timeout = 30s;
    auto r = client->send(request);
    first = r ? "answered " + std::to_string(r->status) : r.error().message();
    r = client->send(request);
    second = r ? "answered " + std::to_string(r->status) : r.error().message();
  });
  std::thread canceller([&] {
    for (int i = 0; i < 500 && server.requests().empty(); ++i) std::this_thread::sleep_for(10ms);
    io->cancel();
  });
  loop.finish();
  loop.run();
  canceller.join();
  EXPECT_NE(first.find("cancelled: the collector is stopping"), std::string::npos) << first;
  EXPECT_NE(second.find("cancelled"), std::string::npos) << second;
  EXPECT_FALSE(answered.load());  // the server was still holding the answer
  EXPECT_EQ(server.requests().size(), 1u);
}

// The concurrent client: requests started together are in flight together (the server
// answers only once all of them arrived: one at a time, each would get 503 after its
// bounded wait), each completion returned once, by its tag.
TEST(ConcurrentClient, StartedRequestsAreInFlightTogether) {
  constexpr int kRequests = 6;
  std::atomic<int> arrived{0};
  ScriptedServer server([&](const ServedRequest& r, const std::atomic<bool>& stopping) {
    ++arrived;
    for (int i = 0; i < 500 && arrived.load() < kRequests && !stopping; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    return arrived.load() >= kRequests ? reply(200, "OK", {}, r.target)
                                       : reply(503, "Service Unavailable", {}, "alone");
  });
  ASSERT_TRUE(server.ok());
  int made = 0;
  auto client = makeConcurrentClient([&made] {
    ++made;
    return makeCurlClient();
  });
  std::vector<HttpRequest> requests(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    requests[static_cast<std::size_t>(i)].url = server.url("/r" + std::to_string(i));
    requests[static_cast<std::size_t>(i)].timeout = 30s;
    client->start(static_cast<std::uint64_t>(100 + i), requests[static_cast<std::size_t>(i)]);
  }
  EXPECT_EQ(client->inFlight(), static_cast<std::size_t>(kRequests));
  std::map<std::uint64_t, std::string> answers;
  for (int guard = 0; guard < 100 && client->inFlight() > 0; ++guard) {
    for (auto& c : client->wait()) {
      ASSERT_TRUE(c.response) << c.response.error().message();
      EXPECT_EQ(c.response->status, 200);
      EXPECT_TRUE(answers.emplace(c.tag, c.response->body).second) << "tag " << c.tag;
    }
  }
  ASSERT_EQ(answers.size(), static_cast<std::size_t>(kRequests));
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(answers[static_cast<std::uint64_t>(100 + i)], "/r" + std::to_string(i));
  }
  EXPECT_EQ(made, kRequests);  // one client per request in flight
  EXPECT_TRUE(client->wait().empty());
}

// A client that does not suspend (a fake) completes each request in start order, and the
// clients are reused once free.
TEST(ConcurrentClient, ABlockingClientCompletesInStartOrder) {
  struct Echo final : HttpClient {
    Result<HttpResponse> send(const HttpRequest& request) override {
      HttpResponse r;
      r.status = 200;
      r.body = request.url;
      return r;
    }
  };
  int made = 0;
  auto client = makeConcurrentClient([&made] {
    ++made;
    return std::make_unique<Echo>();
  });
  std::vector<HttpRequest> requests(3);
  for (std::size_t round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < requests.size(); ++i) {
      requests[i].url = "http://127.0.0.1:1/" + std::to_string(i);
      client->start(i, requests[i]);
    }
    std::vector<std::uint64_t> order;
    for (int guard = 0; guard < 10 && client->inFlight() > 0; ++guard) {
      for (auto& c : client->wait()) order.push_back(c.tag);
    }
    EXPECT_EQ(order, (std::vector<std::uint64_t>{0, 1, 2}));
  }
  EXPECT_EQ(made, 1);  // each send ended before the next began: one client, reused
}

// Off a fiber loop the client blocks its thread as before (curl_easy_perform).
TEST(CurlLoopIo, OffALoopSendBlocksAsBefore) {
  ScriptedServer server(
      [](const ServedRequest&, const std::atomic<bool>&) { return reply(200, "OK", {}, "x"); });
  ASSERT_TRUE(server.ok());
  auto client = makeCurlClient();
  HttpRequest request;
  request.url = server.url("/plain");
  auto r = client->send(request);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "x");
}

}  // namespace
}  // namespace mdec::http
