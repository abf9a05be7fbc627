// The fake Elasticsearch itself, over real HTTP on 127.0.0.1: what it stores and answers
// must be what Elasticsearch documents, or tests built on it prove nothing.
#include "support/fake_elasticsearch.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace mdec::testing {
namespace {

constexpr char kNdjson[] = "application/x-ndjson";

struct Answer {
  int status = 0;  // 0: no answer (connection closed or failed)
  std::string body;
  httplib::Headers headers;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// A parsed JSON answer, read by JSON pointer.
class Json {
 public:
  explicit Json(const std::string& text) {
    valid_ = parser_.parse(text).get(root_) == simdjson::SUCCESS;
  }
  bool valid() const { return valid_; }
  bool has(std::string_view pointer) const {
    return valid_ && root_.at_pointer(pointer).error() == simdjson::SUCCESS;
  }
  std::string str(std::string_view pointer) const {
    std::string_view v;
    if (!valid_ || root_.at_pointer(pointer).get(v) != simdjson::SUCCESS) return "<missing>";
    return std::string(v);
  }
  std::int64_t num(std::string_view pointer) const {
    std::int64_t v = 0;
    if (!valid_ || root_.at_pointer(pointer).get(v) != simdjson::SUCCESS) return -999;
    return v;
  }
  std::optional<bool> boolean(std::string_view pointer) const {
    bool v = false;
    if (!valid_ || root_.at_pointer(pointer).get(v) != simdjson::SUCCESS) return std::nullopt;
    return v;
  }
  std::size_t size(std::string_view pointer) const {
    simdjson::dom::array a;
    if (!valid_ || root_.at_pointer(pointer).get(a) != simdjson::SUCCESS) return 0;
    return a.size();
  }

 private:
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
  bool valid_ = false;
};

httplib::Client client(const FakeElasticsearch& es) {
  httplib::Client c("127.0.0.1", es.port());
  c.set_connection_timeout(5);
  c.set_read_timeout(10);
  c.set_write_timeout(10);
  return c;
}

Answer toAnswer(const httplib::Result& r) {
  Answer a;
  if (!r) return a;
  a.status = r->status;
  a.body = r->body;
  a.headers = r->headers;
  return a;
}

Answer post(const FakeElasticsearch& es, const std::string& path, const std::string& body,
            const std::string& content_type = kNdjson, const httplib::Headers& headers = {}) {
  auto c = client(es);
  return toAnswer(c.Post(path.c_str(), headers, body, content_type.c_str()));
}

Answer put(const FakeElasticsearch& es, const std::string& path, const std::string& body,
           const httplib::Headers& headers = {}) {
  auto c = client(es);
  return toAnswer(c.Put(path.c_str(), headers, body, "application/json"));
}

Answer get(const FakeElasticsearch& es, const std::string& path,
           const httplib::Headers& headers = {}) {
  auto c = client(es);
  return toAnswer(c.Get(path.c_str(), headers));
}

// Sends `request` as written and returns everything the server answers until it closes.
std::string rawExchange(const FakeElasticsearch& es, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "socket failed";
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(es.port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (int i = 0; i < 1000; ++i) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      answer.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return answer;
}

std::string createLine(const std::string& index, const std::string& id) {
  return "{\"create\":{\"_index\":\"" + index + "\",\"_id\":\"" + id + "\"}}\n";
}

std::string gzip(const std::string& text) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

TEST(FakeElasticsearch, ListensOnLoopbackAndAnswersClusterInfo) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  EXPECT_EQ(es.url(), "http://127.0.0.1:" + std::to_string(es.port()));
  const Answer a = get(es, "/");
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.header("Content-Type"), "application/json");
  EXPECT_EQ(a.header("X-elastic-product"), "Elasticsearch");
  Json j(a.body);
  EXPECT_EQ(j.str("/version/number"), "8.11.0");
  EXPECT_EQ(j.str("/version/build_flavor"), "default");
  EXPECT_EQ(j.str("/tagline"), "You Know, for Search");
}

TEST(FakeElasticsearch, CreatesThenAnswers409ForTheSameId) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  const std::string body =
      createLine("logs", "a") + "{\"n\":1}\n" + createLine("logs", "b") + "{\"n\":2}\n";
  const Answer first = post(es, "/_bulk", body);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("Content-Type"), "application/json");
  Json j(first.body);
  ASSERT_TRUE(j.valid()) << first.body;
  EXPECT_TRUE(j.has("/took"));
  EXPECT_EQ(j.boolean("/errors"), false);
  ASSERT_EQ(j.size("/items"), 2u);
  EXPECT_EQ(j.str("/items/0/create/_index"), "logs");
  EXPECT_EQ(j.str("/items/0/create/_id"), "a");
  EXPECT_EQ(j.num("/items/0/create/status"), 201);
  EXPECT_EQ(j.str("/items/0/create/result"), "created");
  EXPECT_EQ(j.num("/items/0/create/_version"), 1);
  EXPECT_EQ(j.num("/items/0/create/_shards/successful"), 1);
  EXPECT_EQ(j.num("/items/0/create/_seq_no"), 0);
  EXPECT_EQ(j.num("/items/0/create/_primary_term"), 1);
  EXPECT_FALSE(j.has("/items/0/create/error"));
  EXPECT_EQ(j.num("/items/1/create/_seq_no"), 1);

  const Answer again =
      post(es, "/_bulk",
           createLine("logs", "a") + "{\"n\":3}\n" + createLine("logs", "c") + "{\"n\":4}\n");
  ASSERT_EQ(again.status, 200) << again.body;
  Json k(again.body);
  EXPECT_EQ(k.boolean("/errors"), true);
  EXPECT_EQ(k.num("/items/0/create/status"), 409);
  EXPECT_EQ(k.str("/items/0/create/error/type"), "version_conflict_engine_exception");
  EXPECT_EQ(k.str("/items/0/create/error/reason"),
            "[a]: version conflict, document already exists (current version [1])");
  EXPECT_FALSE(k.has("/items/0/create/result"));
  EXPECT_EQ(k.num("/items/1/create/status"), 201);

  const auto stored = es.stored();
  ASSERT_EQ(stored.count("logs"), 1u);
  EXPECT_EQ(stored.at("logs").at("a"), "{\"n\":1}");  // the first source kept
  EXPECT_EQ(stored.at("logs").at("c"), "{\"n\":4}");
  EXPECT_EQ(es.storedCount(), 3u);
  EXPECT_EQ(es.writeCounts().at("logs").at("a"), 1);
  const auto s = es.stats();
  EXPECT_EQ(s.bulk_requests, 2);
  EXPECT_EQ(s.items, 4);
  EXPECT_EQ(s.created, 3);
  EXPECT_EQ(s.conflicts, 1);
  EXPECT_EQ(s.item_failures, 0);
}

// Bulks sent at once (as an output with several in flight sends them): each is answered
// whole and in its own item order; an _id created by several of them at the same moment is
// created once and answered 409 to every other; nothing is lost or counted twice.
TEST(FakeElasticsearch, ConcurrentBulksAreEachAnsweredWholeAndCreateAnIdOnce) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  constexpr int kBulks = 8;
  constexpr int kItems = 50;
  std::vector<Answer> answers(kBulks);
  {
    std::vector<std::thread> senders;
    for (int b = 0; b < kBulks; ++b) {
      senders.emplace_back([&es, &answers, b] {
        std::string body = createLine("logs", "shared") + "{\"bulk\":" + std::to_string(b) + "}\n";
        for (int i = 0; i < kItems; ++i) {
          body += createLine("logs", std::to_string(b) + "-" + std::to_string(i)) +
                  "{\"n\":" + std::to_string(i) + "}\n";
        }
        answers[static_cast<std::size_t>(b)] = post(es, "/_bulk", body);
      });
    }
    for (auto& t : senders) t.join();
  }
  int shared_created = 0;
  for (int b = 0; b < kBulks; ++b) {
    const Answer& a = answers[static_cast<std::size_t>(b)];
    ASSERT_EQ(a.status, 200) << a.body;
    Json j(a.body);
    ASSERT_EQ(j.size("/items"), static_cast<std::size_t>(kItems + 1)) << a.body;
    const std::int64_t shared = j.num("/items/0/create/status");
    EXPECT_TRUE(shared == 201 || shared == 409) << shared;
    if (shared == 201) ++shared_created;
    EXPECT_EQ(j.boolean("/errors"), shared == 409);
    for (int i = 0; i < kItems; ++i) {
      const std::string item = "/items/" + std::to_string(i + 1) + "/create";
      EXPECT_EQ(j.str(item + "/_id"), std::to_string(b) + "-" + std::to_string(i));
      EXPECT_EQ(j.num(item + "/status"), 201);
    }
  }
  EXPECT_EQ(shared_created, 1);
  EXPECT_EQ(es.storedCount(), static_cast<std::size_t>(kBulks * kItems + 1));
  EXPECT_EQ(es.writeCounts().at("logs").at("shared"), 1);
  const auto s = es.stats();
  EXPECT_EQ(s.bulk_requests, kBulks);
  EXPECT_EQ(s.items, kBulks * (kItems + 1));
  EXPECT_EQ(s.created, kBulks * kItems + 1);
  EXPECT_EQ(s.conflicts, kBulks - 1);
}

TEST(FakeElasticsearch, AcceptsAGzipBody) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  const std::string body = createLine("logs", "z1") + "{\"message\":\"packed\"}\n";
  const std::string packed = gzip(body);
  ASSERT_NE(packed, body);
  const Answer a = post(es, "/_bulk", packed, kNdjson, {{"Content-Encoding", "gzip"}});
  ASSERT_EQ(a.status, 200) << a.body;
  Json j(a.body);
  EXPECT_EQ(j.num("/items/0/create/status"), 201);
  EXPECT_EQ(es.stored().at("logs").at("z1"), "{\"message\":\"packed\"}");
  EXPECT_EQ(es.stats().gzip_requests, 1);
  ASSERT_EQ(es.bulkBodies().size(), 1u);
  EXPECT_EQ(es.bulkBodies()[0], body);  // recorded inflated
  EXPECT_EQ(es.lastHeader("content-encoding"), "gzip");
  EXPECT_EQ(es.lastHeader("Content-Type"), kNdjson);
  EXPECT_EQ(es.lastHeader("X-Not-Sent"), std::nullopt);
}

TEST(FakeElasticsearch, RefusesAMalformedActionLineWhole) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  struct Case {
    std::string line;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"[1]", "Malformed action/metadata line [3], expected START_OBJECT but found [START_ARRAY]"},
      {"{}", "Malformed action/metadata line [3], expected FIELD_NAME but found [END_OBJECT]"},
      {"{\"create\":{\"_index\":\"logs\"},\"index\":{}}",
       "Malformed action/metadata line [3], expected END_OBJECT but found [FIELD_NAME]"},
      {"{\"upsert\":{\"_index\":\"logs\"}}",
       "Malformed action/metadata line [3], expected field [create], [delete], [index] or "
       "[update] but found [upsert]"},
      {"{\"create\":\"logs\"}",
       "Malformed action/metadata line [3], expected START_OBJECT or END_OBJECT but found "
       "[VALUE_STRING]"},
      {"{\"create\":{\"_index\":[\"logs\"]}}",
       "Malformed action/metadata line [3], expected a simple value for field [_index] but "
       "found [START_ARRAY]"},
      {"{\"create\":{\"_index\":\"logs\",\"colour\":\"red\"}}",
       "Action/metadata line [3] contains an unknown parameter [colour]"},
  };
  for (const Case& c : cases) {
    // A good pair first: nothing of a refused request is stored, not even that.
    const std::string body = createLine("logs", "ok") + "{}\n" + c.line + "\n{}\n";
    const Answer a = post(es, "/_bulk", body);
    ASSERT_EQ(a.status, 400) << c.line << " -> " << a.body;
    Json j(a.body);
    EXPECT_EQ(j.str("/error/type"), "illegal_argument_exception") << c.line;
    EXPECT_EQ(j.str("/error/reason"), c.reason) << c.line;
    EXPECT_EQ(j.str("/error/root_cause/0/type"), "illegal_argument_exception") << c.line;
    EXPECT_EQ(j.num("/status"), 400) << c.line;
  }
  // Not JSON at all, and a create with no source line after it.
  for (const std::string& body :
       {createLine("logs", "ok") + "{}\nnot json\n{}\n", createLine("logs", "ok")}) {
    const Answer a = post(es, "/_bulk", body);
    ASSERT_EQ(a.status, 400) << body;
    EXPECT_EQ(Json(a.body).str("/error/reason").rfind("Malformed action/metadata line [", 0), 0u)
        << a.body;
  }
  EXPECT_EQ(es.storedCount(), 0u);
  EXPECT_EQ(es.stats().bad_requests, static_cast<int>(cases.size()) + 2);
}

TEST(FakeElasticsearch, RefusesABodyWithoutTheFinalNewline) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  const Answer a = post(es, "/_bulk", createLine("logs", "a") + "{\"n\":1}");
  ASSERT_EQ(a.status, 400);
  Json j(a.body);
  EXPECT_EQ(j.str("/error/type"), "illegal_argument_exception");
  EXPECT_EQ(j.str("/error/reason"), "The bulk request must be terminated by a newline [\\n]");
  EXPECT_EQ(es.storedCount(), 0u);

  // CRLF line ends and blank lines between actions are fine, as in Elasticsearch.
  const Answer crlf =
      post(es, "/_bulk", "{\"create\":{\"_index\":\"logs\",\"_id\":\"r\"}}\r\n{\"n\":1}\r\n\n");
  ASSERT_EQ(crlf.status, 200) << crlf.body;
  EXPECT_EQ(es.stored().at("logs").at("r"), "{\"n\":1}");
}

TEST(FakeElasticsearch, AnswersAWrongContentTypeWith406) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  const std::string body = createLine("logs", "a") + "{}\n";
  const Answer a = post(es, "/_bulk", body, "text/plain");
  ASSERT_EQ(a.status, 406);
  EXPECT_EQ(a.body,
            "{\"error\":\"Content-Type header [text/plain] is not supported\",\"status\":406}");
  // httplib's client always sends a Content-Type with a body: this one is written by hand.
  const std::string missing = rawExchange(
      es, "POST /_bulk HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(missing.rfind("HTTP/1.1 406 ", 0), 0u) << missing;
  EXPECT_NE(missing.find("{\"error\":\"Content-Type header is missing\",\"status\":406}"),
            std::string::npos)
      << missing;
  EXPECT_EQ(es.storedCount(), 0u);

  EXPECT_EQ(post(es, "/_bulk", body, "application/json; charset=UTF-8").status, 200);
  EXPECT_EQ(post(es, "/_bulk", createLine("logs", "b") + "{}\n",
                 "application/vnd.elasticsearch+x-ndjson; compatible-with=8")
                .status,
            200);
  EXPECT_EQ(es.storedCount(), 2u);
}

TEST(FakeElasticsearch, RequiresTheApiKeyOnEveryEndpoint) {
  FakeElasticsearch::Options options;
  options.api_key = "aWQ6c2VjcmV0";  // base64("id:secret")
  FakeElasticsearch es(options);
  ASSERT_GT(es.port(), 0);
  const std::string body = createLine("logs", "a") + "{}\n";

  const Answer none = post(es, "/_bulk", body);
  ASSERT_EQ(none.status, 401);
  Json j(none.body);
  EXPECT_EQ(j.str("/error/type"), "security_exception");
  EXPECT_EQ(j.str("/error/root_cause/0/type"), "security_exception");
  EXPECT_EQ(j.str("/error/reason"), "missing authentication credentials for REST request [/_bulk]");
  EXPECT_EQ(j.num("/status"), 401);
  EXPECT_FALSE(none.header("WWW-Authenticate").empty());

  const Answer wrong = post(es, "/_bulk", body, kNdjson, {{"Authorization", "ApiKey d3Jvbmc="}});
  ASSERT_EQ(wrong.status, 401);
  EXPECT_EQ(Json(wrong.body).str("/error/type"), "security_exception");
  EXPECT_EQ(post(es, "/_bulk", body, kNdjson, {{"Authorization", "Basic aWQ6c2VjcmV0"}}).status,
            401);
  EXPECT_EQ(get(es, "/").status, 401);
  EXPECT_EQ(get(es, "/_index_template/t").status, 401);
  EXPECT_EQ(es.storedCount(), 0u);
  EXPECT_EQ(es.stats().auth_failures, 5);

  const httplib::Headers good = {{"Authorization", "ApiKey aWQ6c2VjcmV0"}};
  const Answer ok = post(es, "/_bulk", body, kNdjson, good);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Json(ok.body).num("/items/0/create/status"), 201);
  EXPECT_EQ(get(es, "/", good).status, 200);
  EXPECT_EQ(es.storedCount(), 1u);
}

TEST(FakeElasticsearch, AcceptsBasicAuth) {
  FakeElasticsearch::Options options;
  options.username = "elastic";
  options.password = "changeme";
  FakeElasticsearch es(options);
  ASSERT_GT(es.port(), 0);
  EXPECT_EQ(get(es, "/").status, 401);
  EXPECT_EQ(get(es, "/", {{"Authorization", "Basic ZWxhc3RpYzp3cm9uZw=="}}).status, 401);
  // base64("elastic:changeme")
  EXPECT_EQ(get(es, "/", {{"Authorization", "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="}}).status, 200);
}

TEST(FakeElasticsearch, ScriptedWholeRequestAnswersAreConsumedInOrder) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  es.scriptRequests({429, 503, 413, 401, 0});
  const std::string body = createLine("logs", "a") + "{}\n";

  const Answer a429 = post(es, "/_bulk", body);
  ASSERT_EQ(a429.status, 429);
  EXPECT_EQ(Json(a429.body).str("/error/type"), "es_rejected_execution_exception");
  EXPECT_EQ(Json(a429.body).num("/status"), 429);
  const Answer a503 = post(es, "/_bulk", body);
  ASSERT_EQ(a503.status, 503);
  EXPECT_EQ(Json(a503.body).num("/status"), 503);
  const Answer a413 = post(es, "/_bulk", body);
  EXPECT_EQ(a413.status, 413);
  EXPECT_TRUE(a413.body.empty());
  const Answer a401 = post(es, "/_bulk", body);
  ASSERT_EQ(a401.status, 401);
  EXPECT_EQ(Json(a401.body).str("/error/type"), "security_exception");
  EXPECT_EQ(es.storedCount(), 0u);  // nothing of a refused request is stored

  const Answer normal = post(es, "/_bulk", body);  // the scripted 0
  ASSERT_EQ(normal.status, 200);
  const Answer after = post(es, "/_bulk", createLine("logs", "b") + "{}\n");  // queue empty
  ASSERT_EQ(after.status, 200);
  EXPECT_EQ(es.storedCount(), 2u);
  const auto s = es.stats();
  EXPECT_EQ(s.bulk_requests, 6);
  EXPECT_EQ(s.scripted_requests, 4);
  EXPECT_EQ(s.auth_failures, 0);  // a scripted 401 is not an auth check
}

TEST(FakeElasticsearch, ScriptedDropClosesTheConnectionWithoutAnswer) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  es.scriptRequests({-1});
  const std::string body = createLine("logs", "a") + "{}\n";
  auto c = client(es);
  const auto dropped = c.Post("/_bulk", body, kNdjson);
  EXPECT_FALSE(dropped);  // no response at all
  EXPECT_EQ(es.storedCount(), 0u);
  EXPECT_EQ(post(es, "/_bulk", body).status, 200);
  EXPECT_EQ(es.storedCount(), 1u);
  EXPECT_EQ(es.stats().bulk_requests, 2);
}

TEST(FakeElasticsearch, LargerBodiesThanTheLimitAre413) {
  FakeElasticsearch::Options options;
  options.max_request_bytes = 100;
  FakeElasticsearch es(options);
  ASSERT_GT(es.port(), 0);
  const std::string big = createLine("logs", "big") + "{\"m\":\"" + std::string(100, 'x') + "\"}\n";
  const Answer a = post(es, "/_bulk", big);
  EXPECT_EQ(a.status, 413);
  // The limit applies to the inflated body, however small it travels.
  const Answer packed = post(es, "/_bulk", gzip(big), kNdjson, {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(packed.status, 413);
  const Answer small = post(es, "/_bulk", createLine("logs", "s") + "{}\n");
  EXPECT_EQ(small.status, 200);
  EXPECT_EQ(es.storedCount(), 1u);
  EXPECT_EQ(es.stats().bad_requests, 2);
}

TEST(FakeElasticsearch, ScriptedItemAnswersFailOnlyThoseItems) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  std::vector<std::pair<std::string, int>> asked;
  es.scriptItems([&asked](const std::string& id, int attempt) {
    asked.emplace_back(id, attempt);
    if (id == "bad") return 400;
    if (id == "busy" && attempt == 0) return 429;
    if (id == "down" && attempt == 0) return 503;
    return 0;
  });
  const std::string body = createLine("logs", "ok") + "{}\n" + createLine("logs", "bad") + "{}\n" +
                           createLine("logs", "busy") + "{}\n" + createLine("logs", "down") +
                           "{}\n";
  const Answer a = post(es, "/_bulk", body);
  ASSERT_EQ(a.status, 200) << a.body;
  Json j(a.body);
  EXPECT_EQ(j.boolean("/errors"), true);
  EXPECT_EQ(j.num("/items/0/create/status"), 201);
  EXPECT_EQ(j.num("/items/1/create/status"), 400);
  EXPECT_EQ(j.str("/items/1/create/error/type"), "mapper_parsing_exception");
  EXPECT_EQ(j.num("/items/2/create/status"), 429);
  EXPECT_EQ(j.str("/items/2/create/error/type"), "es_rejected_execution_exception");
  EXPECT_EQ(j.num("/items/3/create/status"), 503);
  EXPECT_EQ(j.str("/items/3/create/error/type"), "unavailable_shards_exception");
  EXPECT_EQ(es.storedCount(), 1u);

  // The retried ones now go in; the 400 stays a 400; `ok` is a conflict, not a new attempt
  // at creating it.
  const Answer retry =
      post(es, "/_bulk",
           createLine("logs", "busy") + "{}\n" + createLine("logs", "down") + "{}\n" +
               createLine("logs", "bad") + "{}\n" + createLine("logs", "ok") + "{}\n");
  ASSERT_EQ(retry.status, 200) << retry.body;
  Json k(retry.body);
  EXPECT_EQ(k.num("/items/0/create/status"), 201);
  EXPECT_EQ(k.num("/items/1/create/status"), 201);
  EXPECT_EQ(k.num("/items/2/create/status"), 400);
  EXPECT_EQ(k.num("/items/3/create/status"), 409);
  EXPECT_EQ(es.storedCount(), 3u);
  const std::vector<std::pair<std::string, int>> expected = {{"ok", 0},   {"bad", 0},  {"busy", 0},
                                                             {"down", 0}, {"busy", 1}, {"down", 1},
                                                             {"bad", 1},  {"ok", 1}};
  EXPECT_EQ(asked, expected);
  EXPECT_EQ(es.deadIds().at("logs"), (std::vector<std::string>{"bad", "bad"}));
  const auto s = es.stats();
  EXPECT_EQ(s.created, 3);
  EXPECT_EQ(s.conflicts, 1);
  EXPECT_EQ(s.item_failures, 4);
}

TEST(FakeElasticsearch, KeepsItemOrderAndErrorsFlag) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  std::vector<std::string> ids;
  std::string body;
  for (int i = 0; i < 50; ++i) {
    ids.push_back("id-" + std::to_string((i * 37) % 50));  // not sorted
    body += createLine("logs", ids.back()) + "{\"i\":" + std::to_string(i) + "}\n";
  }
  const Answer a = post(es, "/_bulk", body);
  ASSERT_EQ(a.status, 200);
  Json j(a.body);
  EXPECT_EQ(j.boolean("/errors"), false);
  ASSERT_EQ(j.size("/items"), ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::string item = "/items/" + std::to_string(i) + "/create";
    EXPECT_EQ(j.str(item + "/_id"), ids[i]) << i;
    EXPECT_EQ(j.num(item + "/_seq_no"), static_cast<std::int64_t>(i)) << i;
  }
  EXPECT_EQ(es.storedCount(), 50u);

  // One bad source among good ones: only it fails, and errors turns true.
  const Answer mixed =
      post(es, "/_bulk",
           createLine("logs", "x1") + "{}\n" + createLine("logs", "x2") + "{not json\n" +
               createLine("logs", "x3") + "[1]\n" + createLine("logs", "x4") + "{}\n");
  ASSERT_EQ(mixed.status, 200);
  Json k(mixed.body);
  EXPECT_EQ(k.boolean("/errors"), true);
  EXPECT_EQ(k.num("/items/0/create/status"), 201);
  EXPECT_EQ(k.num("/items/1/create/status"), 400);
  EXPECT_EQ(k.str("/items/1/create/error/type"), "mapper_parsing_exception");
  EXPECT_EQ(k.num("/items/2/create/status"), 400);
  EXPECT_EQ(k.num("/items/3/create/status"), 201);
  EXPECT_EQ(es.storedCount(), 52u);
}

TEST(FakeElasticsearch, TakesTheIndexFromThePathAndGeneratesMissingIds) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  const Answer a = post(es, "/from-path/_bulk?filter_path=items.*.status",
                        "{\"create\":{}}\n{\"a\":1}\n{\"index\":{\"_index\":\"other\",\"_id\":"
                        "\"i\"}}\n{\"b\":2}\n");
  ASSERT_EQ(a.status, 200) << a.body;
  Json j(a.body);
  EXPECT_EQ(j.str("/items/0/create/_index"), "from-path");
  EXPECT_EQ(j.str("/items/0/create/_id").size(), 20u);
  EXPECT_EQ(j.str("/items/1/index/_index"), "other");
  EXPECT_EQ(j.num("/items/1/index/status"), 201);
  // `index` over an existing _id replaces it.
  const Answer again =
      post(es, "/_bulk", "{\"index\":{\"_index\":\"other\",\"_id\":\"i\"}}\n{\"b\":3}\n");
  Json k(again.body);
  EXPECT_EQ(k.num("/items/0/index/status"), 200);
  EXPECT_EQ(k.str("/items/0/index/result"), "updated");
  EXPECT_EQ(k.num("/items/0/index/_version"), 2);
  EXPECT_EQ(es.stored().at("other").at("i"), "{\"b\":3}");
  EXPECT_EQ(es.writeCounts().at("other").at("i"), 2);

  // No index anywhere: the whole request is refused.
  const Answer no_index = post(es, "/_bulk", "{\"create\":{\"_id\":\"n\"}}\n{}\n");
  ASSERT_EQ(no_index.status, 400);
  Json n(no_index.body);
  EXPECT_EQ(n.str("/error/type"), "action_request_validation_exception");
  EXPECT_EQ(n.str("/error/reason"), "Validation Failed: 1: index is missing;");
  // An index name Elasticsearch would refuse fails that item.
  const Answer upper = post(es, "/_bulk", createLine("Logs", "u") + "{}\n");
  ASSERT_EQ(upper.status, 200);
  EXPECT_EQ(Json(upper.body).num("/items/0/create/status"), 400);
  EXPECT_EQ(Json(upper.body).str("/items/0/create/error/type"), "invalid_index_name_exception");
  EXPECT_EQ(es.storedCount(), 2u);
}

TEST(FakeElasticsearch, StoresAndAnswersIndexTemplates) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  const std::string tmpl =
      "{\"index_patterns\":[\"logs-mde.log-*\"],\"data_stream\":{},\"priority\":200,"
      "\"template\":{\"mappings\":{\"properties\":{\"@timestamp\":{\"type\":\"date\"}}}}}";

  const Answer missing = get(es, "/_index_template/mde");
  ASSERT_EQ(missing.status, 404);
  Json m(missing.body);
  EXPECT_EQ(m.str("/error/type"), "resource_not_found_exception");
  EXPECT_EQ(m.str("/error/reason"), "index template matching [mde] not found");
  EXPECT_EQ(m.num("/status"), 404);
  auto c = client(es);
  const auto head_missing = c.Head("/_index_template/mde");
  ASSERT_TRUE(head_missing);
  EXPECT_EQ(head_missing->status, 404);

  const Answer created = put(es, "/_index_template/mde", tmpl);
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_EQ(Json(created.body).boolean("/acknowledged"), true);
  EXPECT_EQ(es.templates(), (std::map<std::string, std::string>{{"mde", tmpl}}));

  const Answer got = get(es, "/_index_template/mde");
  ASSERT_EQ(got.status, 200);
  Json g(got.body);
  ASSERT_EQ(g.size("/index_templates"), 1u);
  EXPECT_EQ(g.str("/index_templates/0/name"), "mde");
  EXPECT_EQ(g.str("/index_templates/0/index_template/index_patterns/0"), "logs-mde.log-*");
  EXPECT_EQ(g.num("/index_templates/0/index_template/priority"), 200);
  const auto head = c.Head("/_index_template/mde");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());

  // Without index_patterns: refused, nothing replaced.
  const Answer invalid = put(es, "/_index_template/mde", "{\"priority\":1}");
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(es.templates().at("mde"), tmpl);
}

TEST(FakeElasticsearch, WritesThroughADataStreamTemplateAnswerTheBackingIndex) {
  FakeElasticsearch es;
  ASSERT_GT(es.port(), 0);
  ASSERT_EQ(put(es, "/_index_template/mde",
                "{\"index_patterns\":[\"logs-mde.log-*\"],\"data_stream\":{},\"priority\":200}")
                .status,
            200);
  const std::string stream = "logs-mde.log-default";
  const Answer a =
      post(es, "/_bulk",
           createLine(stream, "t") + "{\"@timestamp\":\"2024-01-01T00:00:00Z\"}\n" +
               createLine(stream, "no-ts") + "{\"message\":\"x\"}\n" + "{\"index\":{\"_index\":\"" +
               stream + "\",\"_id\":\"i\"}}\n" + "{\"@timestamp\":\"2024-01-01T00:00:00Z\"}\n");
  ASSERT_EQ(a.status, 200) << a.body;
  Json j(a.body);
  EXPECT_EQ(j.num("/items/0/create/status"), 201);
  EXPECT_EQ(j.str("/items/0/create/_index").rfind(".ds-" + stream + "-", 0), 0u)
      << j.str("/items/0/create/_index");
  EXPECT_EQ(j.num("/items/1/create/status"), 400);
  EXPECT_EQ(j.str("/items/1/create/error/reason"),
            "data stream timestamp field [@timestamp] is missing");
  EXPECT_EQ(j.num("/items/2/index/status"), 400);
  EXPECT_EQ(j.str("/items/2/index/error/reason"),
            "only write ops with an op_type of create are allowed in data streams");
  EXPECT_EQ(es.stored().at(stream).size(), 1u);
}

TEST(FakeElasticsearch, FakeEndpointsReportWritesAndDeadIds) {
  FakeElasticsearch::Options options;
  options.fake_endpoints = true;
  options.api_key = "k";  // the /_fake endpoints need none
  FakeElasticsearch es(options);
  ASSERT_GT(es.port(), 0);
  es.scriptItems([](const std::string& id, int) { return id == "d" ? 400 : 0; });
  const httplib::Headers auth = {{"Authorization", "ApiKey k"}};
  ASSERT_EQ(post(es, "/_bulk",
                 createLine("logs", "a") + "{}\n" + createLine("logs", "a") + "{}\n" +
                     createLine("logs", "d") + "{}\n",
                 kNdjson, auth)
                .status,
            200);
  const Answer stored = get(es, "/_fake/stored");
  ASSERT_EQ(stored.status, 200);
  Json s(stored.body);
  EXPECT_EQ(s.num("/stored/logs/a"), 1);  // the 409 does not count
  EXPECT_FALSE(s.has("/stored/logs/d"));
  EXPECT_EQ(s.num("/stats/created"), 1);
  EXPECT_EQ(s.num("/stats/conflicts"), 1);
  EXPECT_EQ(s.num("/stats/item_failures"), 1);
  const Answer dead = get(es, "/_fake/dead");
  ASSERT_EQ(dead.status, 200);
  Json d(dead.body);
  EXPECT_EQ(d.size("/dead/logs"), 1u);
  EXPECT_EQ(d.str("/dead/logs/0"), "d");
}

}  // namespace
}  // namespace mdec::testing
