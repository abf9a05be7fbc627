// Several bulks in flight (bulk_in_flight): a scripted ConcurrentHttpClient answers the bulks
// in the order a test chooses, with the answers it chooses, and the output must still
// acknowledge strictly in outbox order (a document only once it and every earlier one
// settled), send nothing twice that settled, and start nothing after a whole-request
// failure. Real SQLite store in a temporary directory; no sockets.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mdecollect/http/concurrent_http_client.h"
#include "mdecollect/output/elasticsearch_output.h"
#include "mdecollect/state/state_store.h"
#include "support/temp_dir.h"

namespace mdec::output {
namespace {

// The _ids of a bulk body's create lines, in order.
std::vector<std::string> idsOf(const std::string& body) {
  std::vector<std::string> ids;
  simdjson::dom::parser parser;
  std::size_t at = 0;
  bool action = true;
  for (int line = 0; line < 100000 && at < body.size(); ++line) {
    const std::size_t end = body.find('\n', at);
    if (end == std::string::npos) break;
    if (action) {
      std::string_view id;
      EXPECT_EQ(parser.parse(body.substr(at, end - at))["create"]["_id"].get_string().get(id),
                simdjson::SUCCESS);
      ids.emplace_back(id);
    }
    action = !action;
    at = end + 1;
  }
  return ids;
}

// A bulk answer: every item `status_of(id)` (201 unless it says otherwise).
http::HttpResponse bulkAnswer(const std::vector<std::string>& ids,
                              const std::function<int(const std::string&)>& status_of) {
  std::string body = R"({"errors":false,"items":[)";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) body += ',';
    const int status = status_of ? status_of(ids[i]) : 201;
    body += R"({"create":{"_id":")" + ids[i] + R"(","status":)" + std::to_string(status);
    if (status >= 300) body += R"(,"error":{"type":"t","reason":"r"})";
    body += "}}";
  }
  body += "]}";
  http::HttpResponse res;
  res.status = 200;
  res.body = std::move(body);
  return res;
}

// Answers one started bulk per wait(), the one `pick` chooses among those in flight (by start
// order), with what `answer` says for it (by start order over the client's life).
class ScriptedClient final : public http::ConcurrentHttpClient {
 public:
  struct Started {
    std::uint64_t tag;
    int number;  // start order, from 0
    std::vector<std::string> ids;
  };
  enum class Pick { kOldest, kNewest };

  explicit ScriptedClient(Pick pick) : pick_(pick) {}

  void start(std::uint64_t tag, const http::HttpRequest& request) override {
    flying_.push_back({tag, started_++, idsOf(request.body)});
    max_in_flight_ = std::max(max_in_flight_, flying_.size());
    for (const auto& id : flying_.back().ids) ++sent_[id];
  }
  std::vector<http::Completion> wait() override {
    std::vector<http::Completion> out;
    if (flying_.empty()) return out;
    auto it = pick_ == Pick::kOldest ? flying_.begin() : std::prev(flying_.end());
    Started bulk = *it;
    flying_.erase(it);
    out.push_back({bulk.tag, answer(bulk)});
    return out;
  }
  std::size_t inFlight() const override { return flying_.size(); }

  // The answer to bulk number n (a response, or a connection failure); default: all 201.
  std::function<Result<http::HttpResponse>(const Started&)> answer = [](const Started& b) {
    return Result<http::HttpResponse>(bulkAnswer(b.ids, nullptr));
  };

  int started() const { return started_; }
  std::size_t maxInFlight() const { return max_in_flight_; }
  const std::map<std::string, int>& sent() const { return sent_; }

 private:
  Pick pick_;
  std::vector<Started> flying_;
  int started_ = 0;
  std::size_t max_in_flight_ = 0;
  std::map<std::string, int> sent_;  // id -> times sent
};

class ElasticsearchInFlightTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = state::openSqliteStore(tmp_.sub("state"));
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    ASSERT_TRUE(store_->registerOutput("elasticsearch"));
    config_.enabled = true;
    config_.hosts = {"http://es.invalid:9200"};
    config_.compression = false;
    config_.bulk_max_docs = 2;
  }

  // An output talking through a ScriptedClient (kept in client_).
  std::unique_ptr<Output> makeOutput(ScriptedClient::Pick pick, std::size_t in_flight) {
    config_.bulk_in_flight = in_flight;
    auto client = std::make_unique<ScriptedClient>(pick);
    client_ = client.get();
    ElasticsearchOutputOptions options;
    options.dead_letter_path = tmp_.sub("dead-letter.ndjson");
    options.concurrent_client = std::move(client);
    auto out = makeElasticsearchOutput(config_, std::move(options), counters_);
    EXPECT_TRUE(out->open(*store_));
    return out;
  }

  void addDocuments(int count) {
    state::PageCommit page;
    page.source = "src";
    for (int i = 0; i < count; ++i) {
      page.documents.push_back(
          {"id-" + std::to_string(i),
           R"({"@timestamp":"2025-11-03T14:07:14.118Z","n":)" + std::to_string(i) + "}"});
    }
    ASSERT_TRUE(store_->commitPage(page));
  }

  std::vector<state::OutboxDocument> waiting() {
    auto batch = store_->readOutbox(store_->ackedSeq("elasticsearch").value(), 100000, 1u << 30);
    EXPECT_TRUE(batch);
    return batch ? *batch : std::vector<state::OutboxDocument>{};
  }
  std::string firstWaiting() {
    auto left = waiting();
    return left.empty() ? std::string("(none)") : left.front().id;
  }

  testing::TempDir tmp_{"mdec-es-in-flight"};
  std::unique_ptr<state::StateStore> store_;
  config::ElasticsearchOutputConfig config_;
  std::shared_ptr<ElasticsearchCounters> counters_ = std::make_shared<ElasticsearchCounters>();
  ScriptedClient* client_ = nullptr;
};

TEST_F(ElasticsearchInFlightTest, TheOutboxIsReadAheadTheWindowFilledAndEveryDocumentSentOnce) {
  addDocuments(20);  // 10 bulks of 2
  auto out = makeOutput(ScriptedClient::Pick::kOldest, 3);
  EXPECT_EQ(out->maxBatchDocuments(), 2u);  // one bulk: the rest is read ahead
  // What is acknowledged while the bulks are answered.
  std::vector<std::int64_t> acked_when_answered;
  client_->answer = [&](const ScriptedClient::Started& b) -> Result<http::HttpResponse> {
    acked_when_answered.push_back(store_->ackedSeq("elasticsearch").value());
    return bulkAnswer(b.ids, nullptr);
  };
  auto batch = store_->readOutbox(0, out->maxBatchDocuments(), out->maxBatchBytes());
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->size(), 2u);
  auto s = out->deliver(*batch, *store_);
  ASSERT_TRUE(s) << s.error().message();
  // One call delivered the whole outbox, not only its batch.
  EXPECT_TRUE(waiting().empty());
  EXPECT_EQ(client_->maxInFlight(), 3u);
  EXPECT_EQ(client_->started(), 10);
  ASSERT_EQ(client_->sent().size(), 20u);
  for (const auto& [id, n] : client_->sent()) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(counters_->created.load(), 20u);
  EXPECT_EQ(counters_->bulk_requests.load(), 10u);
  // Acknowledged as it went (a bulk at a time), never backwards.
  ASSERT_EQ(acked_when_answered.size(), 10u);
  EXPECT_EQ(acked_when_answered.front(), 0);
  EXPECT_GT(acked_when_answered.back(), 0);
  EXPECT_TRUE(std::is_sorted(acked_when_answered.begin(), acked_when_answered.end()));
}

TEST_F(ElasticsearchInFlightTest, LaterBulksAnsweredFirstAcknowledgeNothingPastAFailedEarlierOne) {
  addDocuments(8);  // bulks 0..3: id-0,1 | id-2,3 | id-4,5 | id-6,7
  auto out = makeOutput(ScriptedClient::Pick::kNewest, 4);
  // Bulk 0 (answered last) fails whole; the later ones, answered before it, succeed.
  std::vector<std::int64_t> acked_when_answered;
  client_->answer = [&](const ScriptedClient::Started& b) -> Result<http::HttpResponse> {
    acked_when_answered.push_back(store_->ackedSeq("elasticsearch").value());
    if (b.number == 0) {
      http::HttpResponse res;
      res.status = 503;
      res.body = R"({"error":{"type":"unavailable","reason":"r"},"status":503})";
      return res;
    }
    return bulkAnswer(b.ids, nullptr);
  };
  auto s = out->deliver(waiting(), *store_);
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().retryable()) << s.error().message();
  EXPECT_EQ(s.error().httpStatus(), 503);
  // Nothing acknowledged, then or at any time before: the first bulk did not settle.
  EXPECT_EQ(acked_when_answered, std::vector<std::int64_t>(4, 0));
  EXPECT_EQ(waiting().size(), 8u);
  EXPECT_EQ(store_->ackedSeq("elasticsearch").value(), 0);
  EXPECT_EQ(client_->started(), 4);

  // Delivered again: only bulk 0's documents go out; everything is then acknowledged.
  client_->answer = [](const ScriptedClient::Started& b) -> Result<http::HttpResponse> {
    return bulkAnswer(b.ids, nullptr);
  };
  ASSERT_TRUE(out->deliver(waiting(), *store_));
  EXPECT_TRUE(waiting().empty());
  EXPECT_EQ(client_->started(), 5);
  EXPECT_EQ(client_->sent().at("id-0"), 2);
  EXPECT_EQ(client_->sent().at("id-1"), 2);
  for (int i = 2; i < 8; ++i) EXPECT_EQ(client_->sent().at("id-" + std::to_string(i)), 1) << i;
  EXPECT_EQ(counters_->created.load(), 8u);
}

TEST_F(ElasticsearchInFlightTest, AFailureInTheMiddleAcknowledgesExactlyThePrefixBeforeIt) {
  addDocuments(8);
  auto out = makeOutput(ScriptedClient::Pick::kNewest, 4);
  // Bulk 1 (id-2, id-3): id-3 is refused for now (429); bulks 2 and 3 answered before it.
  client_->answer = [](const ScriptedClient::Started& b) -> Result<http::HttpResponse> {
    return bulkAnswer(b.ids, [](const std::string& id) { return id == "id-3" ? 429 : 201; });
  };
  auto s = out->deliver(waiting(), *store_);
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().retryable());
  EXPECT_EQ(firstWaiting(), "id-3");
  EXPECT_EQ(waiting().size(), 5u);
  EXPECT_EQ(counters_->item_retries.load(), 1u);
  // Again: only id-3 is sent.
  client_->answer = [](const ScriptedClient::Started& b) -> Result<http::HttpResponse> {
    return bulkAnswer(b.ids, nullptr);
  };
  ASSERT_TRUE(out->deliver(waiting(), *store_));
  EXPECT_TRUE(waiting().empty());
  EXPECT_EQ(client_->sent().at("id-3"), 2);
  for (const auto& [id, n] : client_->sent()) {
    if (id != "id-3") {
      EXPECT_EQ(n, 1) << id;
    }
  }
}

TEST_F(ElasticsearchInFlightTest, NoBulkStartsAfterAWholeRequestFailure) {
  addDocuments(12);  // 6 bulks
  auto out = makeOutput(ScriptedClient::Pick::kOldest, 2);
  // Bulk 0 is answered first and refused (429); bulk 1, already in flight, succeeds.
  client_->answer = [](const ScriptedClient::Started& b) -> Result<http::HttpResponse> {
    if (b.number == 0) {
      http::HttpResponse res;
      res.status = 429;
      res.body = R"({"error":{"type":"es_rejected_execution_exception","reason":"r"}})";
      return res;
    }
    return bulkAnswer(b.ids, nullptr);
  };
  auto s = out->deliver(waiting(), *store_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().httpStatus(), 429);
  EXPECT_EQ(client_->started(), 2);
  EXPECT_EQ(waiting().size(), 12u);
  EXPECT_EQ(counters_->failed_requests.load(), 1u);
  // Again: bulk 1's documents (settled) are not sent; the rest are.
  client_->answer = [](const ScriptedClient::Started& b) -> Result<http::HttpResponse> {
    return bulkAnswer(b.ids, nullptr);
  };
  ASSERT_TRUE(out->deliver(waiting(), *store_));
  EXPECT_TRUE(waiting().empty());
  EXPECT_EQ(client_->sent().at("id-2"), 1);
  EXPECT_EQ(client_->sent().at("id-3"), 1);
  EXPECT_EQ(client_->sent().at("id-0"), 2);
  EXPECT_EQ(client_->sent().at("id-11"), 1);
  EXPECT_EQ(counters_->created.load(), 12u);
}

TEST_F(ElasticsearchInFlightTest, AConnectionFailureTriesTheNextHostForThatBulkOnly) {
  config_.hosts = {"http://es1.invalid:9200", "http://es2.invalid:9200"};
  addDocuments(4);
  auto out = makeOutput(ScriptedClient::Pick::kOldest, 2);
  // The first attempt of each bulk fails to connect; its second (the other host) works.
  client_->answer = [](const ScriptedClient::Started& b) -> Result<http::HttpResponse> {
    if (b.number < 2) return Error(ErrorCode::kNetwork, "connection refused");
    return bulkAnswer(b.ids, nullptr);
  };
  ASSERT_TRUE(out->deliver(waiting(), *store_));
  EXPECT_TRUE(waiting().empty());
  EXPECT_EQ(client_->started(), 4);
  EXPECT_EQ(counters_->bulk_requests.load(), 2u);  // a bulk, whatever hosts it tried
  EXPECT_EQ(counters_->failed_requests.load(), 0u);
  // Every host refusing: a retryable network error, nothing acknowledged.
  addDocuments(2);
  client_->answer = [](const ScriptedClient::Started&) -> Result<http::HttpResponse> {
    return Error(ErrorCode::kNetwork, "connection refused");
  };
  auto s = out->deliver(waiting(), *store_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kNetwork);
  EXPECT_EQ(waiting().size(), 2u);
}

}  // namespace
}  // namespace mdec::output
