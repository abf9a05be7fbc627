// The Elasticsearch output against the fake Elasticsearch over loopback (real libcurl,
// real SQLite store): bulk framing, auth, gzip, per-item outcomes (201, 409, 429, 400),
// whole-request failures (429, 503, 401, 413, connection), hosts in turn, the dead-letter
// file, and `setup`'s index template.
#include "mdecollect/output/elasticsearch_output.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <simdjson.h>
#include <zlib.h>

#include <memory>
#include <string>
#include <vector>

#include "mdecollect/output/es_setup.h"
#include "mdecollect/output/es_template.h"
#include "mdecollect/state/state_store.h"
#include "support/fake_elasticsearch.h"
#include "support/files.h"
#include "support/temp_dir.h"

namespace mdec::output {
namespace {

using mdec::testing::FakeElasticsearch;

std::string b64(std::string_view s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string gunzip(const std::string& data) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(16u << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

using mdec::testing::readFile;

// An ECS-like document of namespace `ns`.
std::string doc(int n, const std::string& ns = "default") {
  return R"({"@timestamp":"2025-11-03T14:07:14.118Z","data_stream":{"dataset":"microsoft_defender_endpoint.log","namespace":")" +
         ns + R"(","type":"logs"},"n":)" + std::to_string(n) + "}";
}

class ElasticsearchOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = state::openSqliteStore(tmp_.sub("state"));
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    ASSERT_TRUE(store_->registerOutput("elasticsearch"));
    config_.enabled = true;
    config_.hosts = {fake_->url()};
    config_.api_key = config::Secret("key-id:key-secret");
    config_.timeout = std::chrono::milliseconds(5000);
  }

  std::unique_ptr<Output> makeOutput() {
    ElasticsearchOutputOptions options;
    options.dead_letter_path = deadLetterPath();
    auto out = makeElasticsearchOutput(config_, std::move(options), counters_);
    EXPECT_TRUE(out->open(*store_));
    return out;
  }

  std::string deadLetterPath() const { return tmp_.sub("dead-letter.ndjson"); }

  // Documents id-first..id-(first+count-1) into the outbox.
  void addDocuments(int first, int count, const std::string& ns = "default") {
    state::PageCommit page;
    page.source = "src";
    for (int i = first; i < first + count; ++i) {
      page.documents.push_back({"id-" + std::to_string(i), doc(i, ns)});
    }
    ASSERT_TRUE(store_->commitPage(page));
  }

  std::vector<state::OutboxDocument> waiting() {
    auto batch = store_->readOutbox(store_->ackedSeq("elasticsearch").value(), 100000, 1u << 30);
    EXPECT_TRUE(batch);
    return batch ? *batch : std::vector<state::OutboxDocument>{};
  }

  std::size_t storedIn(const std::string& index) {
    auto stored = fake_->stored();
    return stored.count(index) != 0 ? stored[index].size() : 0;
  }

  testing::TempDir tmp_{"mdec-es-output"};
  std::unique_ptr<FakeElasticsearch> fake_ = std::make_unique<FakeElasticsearch>([] {
    FakeElasticsearch::Options o;
    o.api_key = b64("key-id:key-secret");
    return o;
  }());
  std::unique_ptr<state::StateStore> store_;
  config::ElasticsearchOutputConfig config_;
  std::shared_ptr<ElasticsearchCounters> counters_ = std::make_shared<ElasticsearchCounters>();
};

TEST_F(ElasticsearchOutputTest, CreatesEachDocumentWithItsIdInItsNamespacesDataStream) {
  addDocuments(0, 3);
  addDocuments(3, 2, "prod");
  auto out = makeOutput();
  auto s = out->deliver(waiting(), *store_);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_TRUE(waiting().empty());
  auto stored = fake_->stored();
  ASSERT_EQ(stored["logs-microsoft_defender_endpoint.log-default"].size(), 3u);
  ASSERT_EQ(stored["logs-microsoft_defender_endpoint.log-prod"].size(), 2u);
  EXPECT_EQ(stored["logs-microsoft_defender_endpoint.log-default"]["id-1"], doc(1));
  EXPECT_EQ(stored["logs-microsoft_defender_endpoint.log-prod"]["id-4"], doc(4, "prod"));
  EXPECT_EQ(counters_->created.load(), 5u);
  EXPECT_EQ(counters_->bulk_requests.load(), 1u);
  // Gzip and the encoded API key went over the wire; the framing is create + source.
  EXPECT_EQ(fake_->stats().gzip_requests, 1);
  EXPECT_EQ(fake_->lastHeader("authorization"), "ApiKey " + b64("key-id:key-secret"));
  EXPECT_EQ(fake_->lastHeader("content-type"), "application/x-ndjson");
  const auto bodies = fake_->bulkBodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(bodies[0].substr(0, bodies[0].find('\n') + 1),
            R"({"create":{"_index":"logs-microsoft_defender_endpoint.log-default","_id":"id-0"}})"
            "\n");
  EXPECT_EQ(bodies[0].back(), '\n');
}

TEST_F(ElasticsearchOutputTest, BulksRespectBulkMaxDocsAndBulkMaxBytes) {
  config_.bulk_max_docs = 4;
  addDocuments(0, 10);
  auto out = makeOutput();
  ASSERT_TRUE(out->deliver(waiting(), *store_));
  EXPECT_EQ(counters_->bulk_requests.load(), 3u);  // 4 + 4 + 2
  config_.bulk_max_docs = 1000;
  config_.bulk_max_bytes = 1024;  // about 4 documents of ~230 bytes with their action lines
  addDocuments(10, 10);
  auto again = makeOutput();
  ASSERT_TRUE(again->deliver(waiting(), *store_));
  EXPECT_GE(counters_->bulk_requests.load(), 3u + 3u);
  EXPECT_EQ(storedIn("logs-microsoft_defender_endpoint.log-default"), 20u);
}

TEST_F(ElasticsearchOutputTest, MixedItemsAcknowledgeWhatSettledAndRetryOnlyTheRest) {
  // id-1 is already stored (409), id-2 is rejected once (429), id-3 cannot be indexed (400).
  fake_->scriptItems([](const std::string& id, int attempt) {
    if (id == "id-1" && attempt == 0) return 0;
    if (id == "id-2" && attempt == 0) return 429;
    if (id == "id-3") return 400;
    return 0;
  });
  addDocuments(1, 1);
  auto out = makeOutput();
  ASSERT_TRUE(out->deliver(waiting(), *store_));  // id-1 stored
  addDocuments(1, 1);                             // the same id again (as after a crash)
  addDocuments(2, 3);                             // id-2, id-3, id-4
  auto first = out->deliver(waiting(), *store_);
  ASSERT_FALSE(first);
  EXPECT_TRUE(first.error().retryable()) << first.error().message();
  // The prefix before id-2 is acknowledged; id-2..id-4 still wait.
  auto left = waiting();
  ASSERT_EQ(left.size(), 3u);
  EXPECT_EQ(left[0].id, "id-2");
  const int items_before = fake_->stats().items;
  ASSERT_TRUE(out->deliver(left, *store_));
  // Only id-2 was sent again: id-3 (dead-lettered) and id-4 (created) had settled.
  EXPECT_EQ(fake_->stats().items, items_before + 1);
  EXPECT_TRUE(waiting().empty());
  EXPECT_EQ(counters_->duplicates.load(), 1u);
  EXPECT_EQ(counters_->dead_lettered.load(), 1u);
  EXPECT_EQ(counters_->item_retries.load(), 1u);
  const auto writes = fake_->writeCounts()["logs-microsoft_defender_endpoint.log-default"];
  EXPECT_EQ(writes.at("id-1"), 1);
  EXPECT_EQ(writes.at("id-2"), 1);
  EXPECT_EQ(writes.at("id-4"), 1);
  EXPECT_EQ(writes.count("id-3"), 0u);
  // The dead letter keeps the document and Elasticsearch's error.
  const std::string dead = readFile(deadLetterPath());
  simdjson::dom::parser parser;
  simdjson::padded_string padded(dead.substr(0, dead.find('\n')));
  auto line = parser.parse(padded);
  ASSERT_EQ(line.error(), simdjson::SUCCESS) << dead;
  EXPECT_EQ(std::string_view(line["_id"].get_string().value()), "id-3");
  EXPECT_EQ(line["status"].get_int64().value(), 400);
  EXPECT_NE(std::string(line["error"].get_string().value()).find("mapper_parsing_exception"),
            std::string::npos);
  EXPECT_EQ(line["document"]["n"].get_int64().value(), 3);
  EXPECT_EQ(std::count(dead.begin(), dead.end(), '\n'), 1);
}

TEST_F(ElasticsearchOutputTest, WholeRequest429And503AreRetryableAndAcknowledgeNothing) {
  addDocuments(0, 3);
  auto out = makeOutput();
  fake_->scriptRequests({429, 503});
  for (int status : {429, 503}) {
    auto s = out->deliver(waiting(), *store_);
    ASSERT_FALSE(s);
    EXPECT_TRUE(s.error().retryable()) << s.error().message();
    EXPECT_EQ(s.error().httpStatus(), status);
    EXPECT_EQ(waiting().size(), 3u);
  }
  ASSERT_TRUE(out->deliver(waiting(), *store_));
  EXPECT_TRUE(waiting().empty());
  EXPECT_EQ(storedIn("logs-microsoft_defender_endpoint.log-default"), 3u);
  EXPECT_EQ(counters_->failed_requests.load(), 2u);
}

TEST_F(ElasticsearchOutputTest, WrongCredentialsAreAnAuthErrorWithoutTheSecret) {
  config_.api_key = config::Secret("key-id:wrong-secret");
  addDocuments(0, 1);
  auto out = makeOutput();
  auto s = out->deliver(waiting(), *store_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kAuth);
  EXPECT_EQ(s.error().httpStatus(), 401);
  EXPECT_NE(s.error().message().find("security_exception"), std::string::npos)
      << s.error().message();
  EXPECT_EQ(s.error().message().find("wrong-secret"), std::string::npos);
  EXPECT_EQ(s.error().message().find(b64("key-id:wrong-secret")), std::string::npos);
  EXPECT_EQ(waiting().size(), 1u);
}

TEST_F(ElasticsearchOutputTest, A413SplitsTheBulkAndADocumentTooLargeAloneIsDeadLettered) {
  fake_ = std::make_unique<FakeElasticsearch>([] {
    FakeElasticsearch::Options o;
    o.api_key = b64("key-id:key-secret");
    o.max_request_bytes = 2000;
    return o;
  }());
  config_.hosts = {fake_->url()};
  addDocuments(0, 16);  // ~3.7 KB of bulk: split until each part fits
  state::PageCommit big;
  big.source = "src";
  big.documents.push_back({"id-big", doc(99).substr(0, doc(99).size() - 1) + R"(,"pad":")" +
                                         std::string(4000, 'x') + "\"}"});
  ASSERT_TRUE(store_->commitPage(big));
  auto out = makeOutput();
  auto s = out->deliver(waiting(), *store_);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_TRUE(waiting().empty());
  EXPECT_EQ(storedIn("logs-microsoft_defender_endpoint.log-default"), 16u);
  EXPECT_EQ(counters_->dead_lettered.load(), 1u);
  const std::string dead = readFile(deadLetterPath());
  EXPECT_NE(dead.find("\"_id\":\"id-big\""), std::string::npos);
  EXPECT_NE(dead.find("\"status\":413"), std::string::npos);
}

TEST_F(ElasticsearchOutputTest, AnUnreachableHostIsSkippedForTheNext) {
  // A port nobody listens on: bind one and close it.
  std::string dead_host;
  {
    FakeElasticsearch gone;
    dead_host = gone.url();
  }
  config_.hosts = {dead_host, fake_->url()};
  addDocuments(0, 2);
  auto out = makeOutput();
  auto s = out->deliver(waiting(), *store_);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(storedIn("logs-microsoft_defender_endpoint.log-default"), 2u);
  // With no host reachable: a retryable network error naming the hosts.
  config_.hosts = {dead_host};
  addDocuments(2, 1);
  auto alone = makeOutput();
  auto failed = alone->deliver(waiting(), *store_);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), ErrorCode::kNetwork);
  EXPECT_TRUE(failed.error().retryable());
  EXPECT_NE(failed.error().message().find(dead_host), std::string::npos);
}

TEST_F(ElasticsearchOutputTest, DocumentsSentAgainAfterALostAcknowledgementAreStoredOnce) {
  addDocuments(0, 5);
  const auto batch = waiting();
  auto out = makeOutput();
  ASSERT_TRUE(out->deliver(batch, *store_));
  // A new process (the acknowledgement never happened) sends the same documents again.
  auto again = makeOutput();
  ASSERT_TRUE(again->deliver(batch, *store_));
  EXPECT_EQ(counters_->duplicates.load(), 5u);
  const auto counts = fake_->writeCounts();
  const auto& writes = counts.at("logs-microsoft_defender_endpoint.log-default");
  EXPECT_EQ(writes.size(), 5u);
  for (const auto& [id, n] : writes) EXPECT_EQ(n, 1) << id;
}

TEST_F(ElasticsearchOutputTest, BasicAuthAndNoCompression) {
  fake_ = std::make_unique<FakeElasticsearch>([] {
    FakeElasticsearch::Options o;
    o.username = "elastic";
    o.password = "changeme";
    return o;
  }());
  config_.hosts = {fake_->url()};
  config_.api_key = config::Secret();
  config_.username = "elastic";
  config_.password = config::Secret("changeme");
  config_.compression = false;
  addDocuments(0, 2);
  auto out = makeOutput();
  ASSERT_TRUE(out->deliver(waiting(), *store_));
  EXPECT_EQ(fake_->stats().gzip_requests, 0);
  EXPECT_EQ(fake_->lastHeader("authorization"), "Basic " + b64("elastic:changeme"));
}

TEST(ElasticsearchPiecesTest, DataStreamComesFromTheDocumentsNamespace) {
  EXPECT_EQ(dataStreamOf(doc(1, "prod")), "logs-microsoft_defender_endpoint.log-prod");
  EXPECT_EQ(dataStreamOf(R"({"a":1})"), "logs-microsoft_defender_endpoint.log-default");
  // A "namespace" elsewhere in the document is not the data stream's.
  EXPECT_EQ(dataStreamOf(R"({"data_stream":{"type":"logs"},"x":{"namespace":"evil"}})"),
            "logs-microsoft_defender_endpoint.log-default");
  // Read as JSON, not searched as text: white space, key order, nesting and escapes.
  EXPECT_EQ(dataStreamOf(R"({ "data_stream" : { "type" : "logs", "namespace" : "prod" } })"),
            "logs-microsoft_defender_endpoint.log-prod");
  EXPECT_EQ(
      dataStreamOf(
          R"({"x":{"data_stream":{"namespace":"evil"}},"data_stream":{"namespace":"p\u0072od"}})"),
      "logs-microsoft_defender_endpoint.log-prod");
  EXPECT_EQ(dataStreamOf(R"({"data_stream":{"namespace":7}})"),
            "logs-microsoft_defender_endpoint.log-default");
  EXPECT_EQ(dataStreamOf(R"({"data_stream":{"namespace":""}})"),
            "logs-microsoft_defender_endpoint.log-default");
  EXPECT_EQ(dataStreamOf("not json"), "logs-microsoft_defender_endpoint.log-default");
  // Incidents go to their own data stream; a dataset this project does not write does not
  // choose an index.
  EXPECT_EQ(dataStreamOf(R"({"data_stream":{"type":"logs","dataset":"m365_defender.incident",)"
                         R"("namespace":"prod"}})"),
            "logs-m365_defender.incident-prod");
  EXPECT_EQ(dataStreamOf(R"({"data_stream":{"dataset":"m365_defender.incident"}})"),
            "logs-m365_defender.incident-default");
  EXPECT_EQ(dataStreamOf(R"({"data_stream":{"dataset":"evil","namespace":"prod"}})"),
            "logs-microsoft_defender_endpoint.log-prod");
}

TEST(ElasticsearchPiecesTest, CreateLinesEscapeTheirValues) {
  std::string body;
  appendCreate(body, "logs-x", "a\"b", R"({"k":1})");
  EXPECT_EQ(body, "{\"create\":{\"_index\":\"logs-x\",\"_id\":\"a\\\"b\"}}\n{\"k\":1}\n");
}

TEST(ElasticsearchPiecesTest, GzipRoundTrips) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += doc(i) + "\n";
  auto packed = gzip(text);
  ASSERT_TRUE(packed);
  EXPECT_LT(packed->size(), text.size() / 4);
  EXPECT_EQ(static_cast<unsigned char>((*packed)[0]), 0x1f);  // gzip magic
  EXPECT_EQ(static_cast<unsigned char>((*packed)[1]), 0x8b);
  EXPECT_EQ(gunzip(*packed), text);
}

TEST(ElasticsearchPiecesTest, AuthorizationHeaderForms) {
  config::ElasticsearchOutputConfig c;
  EXPECT_EQ(authorizationHeader(c), "");
  c.api_key = config::Secret("id:secret");
  EXPECT_EQ(authorizationHeader(c), "ApiKey " + b64("id:secret"));
  c.api_key = config::Secret("aWQ6c2VjcmV0");  // already encoded
  EXPECT_EQ(authorizationHeader(c), "ApiKey aWQ6c2VjcmV0");
  c.api_key = config::Secret();
  c.username = "u";
  c.password = config::Secret("p");
  EXPECT_EQ(authorizationHeader(c), "Basic " + b64("u:p"));
}

TEST(ElasticsearchPiecesTest, BulkResponsesAreReadItemByItem) {
  auto items = parseBulkResponse(
      R"({"took":3,"errors":true,"items":[{"create":{"_index":"i","_id":"a","status":201}},)"
      R"({"create":{"_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}}]})");
  ASSERT_TRUE(items);
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].status, 201);
  EXPECT_EQ((*items)[0].id, "a");
  EXPECT_EQ((*items)[1].status, 409);
  EXPECT_EQ((*items)[1].error_type, "version_conflict_engine_exception");
  EXPECT_FALSE(parseBulkResponse("not json"));
  EXPECT_FALSE(parseBulkResponse(R"({"errors":false})"));
  EXPECT_FALSE(parseBulkResponse(R"({"items":[{"create":{"_id":"a"}}]})"));
  // A status is bounded before use: 4294967497 is 201 cut to 32 bits, and must not read as
  // "created".
  EXPECT_FALSE(parseBulkResponse(R"({"items":[{"create":{"_id":"a","status":4294967497}}]})"));
  EXPECT_FALSE(parseBulkResponse(R"({"items":[{"create":{"_id":"a","status":-201}}]})"));
  EXPECT_FALSE(parseBulkResponse(R"({"items":[{"create":{"_id":"a","status":600}}]})"));
  EXPECT_EQ(elasticsearchError(R"({"error":{"type":"t","reason":"r"},"status":400})"), "t: r");
}

TEST_F(ElasticsearchOutputTest, SetupInstallsTheTemplateOnceAndUpdatesItForAnotherPolicy) {
  EsTransport transport(config_);
  auto state = templateState(config_, transport);
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_EQ(*state, TemplateState::kMissing);
  auto first = installIndexTemplate(config_, transport);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_NE(first->find("created"), std::string::npos) << *first;
  ASSERT_EQ(fake_->templates().count(std::string(kIndexTemplateName)), 1u);
  EXPECT_EQ(templateState(config_, transport).value(), TemplateState::kCurrent);
  auto second = installIndexTemplate(config_, transport);
  ASSERT_TRUE(second);
  EXPECT_NE(second->find("left unchanged"), std::string::npos) << *second;
  config_.ilm_policy = "mdecollect-90d";
  EXPECT_EQ(templateState(config_, transport).value(), TemplateState::kOutdated);
  auto third = installIndexTemplate(config_, transport);
  ASSERT_TRUE(third);
  EXPECT_NE(third->find("updated"), std::string::npos) << *third;
  EXPECT_NE(fake_->templates()[std::string(kIndexTemplateName)].find("mdecollect-90d"),
            std::string::npos);
  // With the data stream template in place, documents are created in a data stream.
  addDocuments(0, 1);
  auto out = makeOutput();
  ASSERT_TRUE(out->deliver(waiting(), *store_));
}

// `mdecollect setup` (installIndexTemplates) PUTs both templates, each as indexTemplateJson
// makes it (so with index.default_pipeline "_none"), then leaves both alone; a template that
// went missing is put back on its own.
TEST_F(ElasticsearchOutputTest, SetupInstallsBothTemplates) {
  EsTransport transport(config_);
  auto first = installIndexTemplates(config_, transport);
  ASSERT_TRUE(first) << first.error().message();
  auto templates = fake_->templates();
  EXPECT_EQ(templates.size(), 2u);
  for (const auto& spec : indexTemplates()) {
    const std::string name(spec.name);
    ASSERT_EQ(templates.count(name), 1u) << name;
    EXPECT_EQ(templates[name], indexTemplateJson(spec, IndexTemplateOptions{})) << name;
    EXPECT_NE(templates[name].find(R"("settings":{"index":{"default_pipeline":"_none"}})"),
              std::string::npos)
        << name;
    EXPECT_NE(first->find("index template " + name + " created"), std::string::npos) << *first;
    EXPECT_EQ(templateState(config_, transport, spec).value(), TemplateState::kCurrent) << name;
  }
  EXPECT_NE(first->find("pattern logs-m365_defender.incident-*"), std::string::npos) << *first;

  auto again = installIndexTemplates(config_, transport);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(*again,
            "index template mdecollect-microsoft_defender_endpoint.log left unchanged (version " +
                std::to_string(indexTemplateVersion(kEndpointTemplate)) +
                ")\nindex template mdecollect-m365_defender.incident left unchanged (version " +
                std::to_string(indexTemplateVersion(kIncidentTemplate)) + ")");

  auto deleted = transport.send("DELETE", "/_index_template/" + std::string(kIncidentTemplate.name),
                                {}, false);
  ASSERT_TRUE(deleted);
  ASSERT_EQ(deleted->status, 200);
  EXPECT_EQ(templateState(config_, transport, kIncidentTemplate).value(), TemplateState::kMissing);
  EXPECT_EQ(templateState(config_, transport).value(), TemplateState::kCurrent);
  auto third = installIndexTemplates(config_, transport);
  ASSERT_TRUE(third) << third.error().message();
  EXPECT_NE(third->find("mdecollect-microsoft_defender_endpoint.log left unchanged"),
            std::string::npos)
      << *third;
  EXPECT_NE(third->find("mdecollect-m365_defender.incident created"), std::string::npos) << *third;

  // Another ILM policy: both are updated and both name it.
  config_.ilm_policy = "mdecollect-90d";
  auto fourth = installIndexTemplates(config_, transport);
  ASSERT_TRUE(fourth) << fourth.error().message();
  templates = fake_->templates();
  for (const auto& spec : indexTemplates()) {
    const std::string name(spec.name);
    EXPECT_NE(fourth->find(name + " updated"), std::string::npos) << *fourth;
    EXPECT_NE(templates[name].find(
                  R"("index":{"default_pipeline":"_none","lifecycle":{"name":"mdecollect-90d"}})"),
              std::string::npos)
        << templates[name].substr(0, 400);
  }
}

TEST_F(ElasticsearchOutputTest, SetupWithWrongCredentialsSaysSo) {
  config_.api_key = config::Secret("key-id:nope");
  EsTransport transport(config_);
  auto done = installIndexTemplate(config_, transport);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code(), ErrorCode::kAuth);
}

}  // namespace
}  // namespace mdec::output
