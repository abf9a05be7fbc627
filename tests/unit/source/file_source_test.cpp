// The `file` source (collection.md): NDJSON files matching globs, tailed; complete lines
// mapped and committed with the new position in one transaction; a restart resumes there;
// rotation and truncation start the path again from the beginning.
#include "mdecollect/source/file_source.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mdecollect/config/config.h"
#include "mdecollect/source/source.h"
#include "mdecollect/state/state_store.h"
#include "support/files.h"
#include "support/forwarding_store.h"
#include "support/json_compare.h"
#include "support/temp_dir.h"

namespace mdec::source {
namespace {

namespace fs = std::filesystem;
using state::StateStore;

using mdec::testing::JsonDoc;
using mdec::testing::TempDir;
using mdec::testing::writeFile;

// One alert line; `n` makes it distinct (its id).
std::string alert(int n) {
  return R"({"id":"da)" + std::to_string(n) +
         R"(","title":"t","alertCreationTime":"2025-11-03T14:07:14.1187425Z",)"
         R"("lastUpdateTime":"2025-11-03T15:35:02.0566667Z","severity":"High"})";
}

// Forwards to a real store; counts commits of file positions and can fail one.
class CountingStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  int commits = 0;
  std::optional<int> fail_commit;  // the commit number (1-based) that fails

  Status commitPage(const state::PageCommit& p) override {
    if (p.file_position) {
      ++commits;
      if (fail_commit && *fail_commit == commits) {
        return Error(ErrorCode::kIo, "injected: database is locked");
      }
    }
    return ForwardingStore::commitPage(p);
  }
};

class FileSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = state::openSqliteStore((fs::path(tmp_.path()) / "state").string());
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    dir_ = (fs::path(tmp_.path()) / "in").string();
    fs::create_directories(dir_);
    config_.name = "files";
    config_.type = config::SourceType::kFile;
    config_.paths = {dir_ + "/*.ndjson"};
  }

  std::string in(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  FilePollStats poll(FileSource& source) {
    auto stats = source.poll();
    EXPECT_TRUE(stats) << stats.error().message();
    return stats ? *stats : FilePollStats{};
  }

  // Everything in the outbox, oldest first.
  std::vector<state::OutboxDocument> outbox() {
    auto docs = store_->readOutbox(0, 1000000, std::size_t{1} << 40);
    EXPECT_TRUE(docs) << docs.error().message();
    return docs ? *docs : std::vector<state::OutboxDocument>{};
  }

  // The alert ids (event.id) of the outbox documents, in order.
  std::vector<std::string> outboxIds() {
    std::vector<std::string> ids;
    for (const auto& doc : outbox()) {
      JsonDoc json(doc.body);
      ids.push_back(json.getString("event.id").value_or("?"));
    }
    return ids;
  }

  std::optional<state::FilePosition> position(const std::string& path) {
    auto pos = store_->filePosition("files", path);
    EXPECT_TRUE(pos);
    return pos ? *pos : std::nullopt;
  }

  TempDir tmp_{"mdec-file-source"};
  std::unique_ptr<StateStore> store_;
  std::string dir_;
  config::SourceConfig config_;
};

using Ids = std::vector<std::string>;

TEST_F(FileSourceTest, AppendedLinesArePickedUpAndAPartialLastLineWaits) {
  const std::string file = in("a.ndjson");
  writeFile(file, alert(1) + "\n" + alert(2) + "\n");
  auto source = makeFileSource(config_, *store_);
  auto stats = poll(*source);
  EXPECT_EQ(stats.files, 1u);
  EXPECT_EQ(stats.lines, 2u);
  EXPECT_EQ(stats.documents, 2u);
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(outboxIds(), (Ids{"da1", "da2"}));

  // A line still being written is not read.
  writeFile(file, alert(3), /*append=*/true);
  stats = poll(*source);
  EXPECT_EQ(stats.lines, 0u);
  EXPECT_EQ(stats.documents, 0u);
  EXPECT_EQ(outboxIds(), (Ids{"da1", "da2"}));
  EXPECT_EQ(position(file)->offset, 2 * (alert(1).size() + 1));

  writeFile(file, "\n" + alert(4) + "\n", /*append=*/true);
  stats = poll(*source);
  EXPECT_EQ(stats.lines, 2u);
  EXPECT_EQ(outboxIds(), (Ids{"da1", "da2", "da3", "da4"}));
  EXPECT_EQ(position(file)->offset, fs::file_size(file));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(position(file)->inode, static_cast<std::uint64_t>(st.st_ino));

  // Nothing new: nothing read, nothing committed.
  stats = poll(*source);
  EXPECT_EQ(stats.files, 1u);
  EXPECT_EQ(stats.lines, 0u);
}

TEST_F(FileSourceTest, ARestartResumesWhereTheLastCommitEnded) {
  const std::string file = in("a.ndjson");
  writeFile(file, alert(1) + "\n" + alert(2) + "\n");
  poll(*makeFileSource(config_, *store_));
  auto again = makeFileSource(config_, *store_);
  EXPECT_EQ(poll(*again).documents, 0u);
  writeFile(file, alert(3) + "\n", /*append=*/true);
  EXPECT_EQ(poll(*makeFileSource(config_, *store_)).documents, 1u);
  EXPECT_EQ(outboxIds(), (Ids{"da1", "da2", "da3"}));
}

TEST_F(FileSourceTest, DocumentsCarryLogFilePathAndOffsetAndTheSourceOptions) {
  const std::string file = in("a.ndjson");
  const std::string first = alert(1) + "\n";
  writeFile(file, first + "\n" + alert(2) + "\n");
  config_.tags = std::vector<std::string>{"mine"};
  config_.data_stream_namespace = "prod";
  config_.preserve_original_event = true;
  poll(*makeFileSource(config_, *store_));
  auto docs = outbox();
  ASSERT_EQ(docs.size(), 2u);
  JsonDoc d1(docs[0].body);
  JsonDoc d2(docs[1].body);
  ASSERT_TRUE(d1.valid());
  EXPECT_EQ(d1.getString("log.file.path"), file);
  EXPECT_EQ(d1.getInt("log.offset"), 0);
  EXPECT_EQ(d2.getString("log.file.path"), file);
  EXPECT_EQ(d2.getInt("log.offset"), static_cast<std::int64_t>(first.size() + 1));
  EXPECT_EQ(d1.getStrings("tags"), (Ids{"mine", "preserve_original_event"}));
  EXPECT_EQ(d1.getString("data_stream.namespace"), "prod");
  EXPECT_TRUE(d1.has("event.original"));
  EXPECT_EQ(docs[0].source, "files");
  EXPECT_EQ(docs[0].id.size(), 32u);
  EXPECT_NE(docs[0].id, docs[1].id);
}

TEST_F(FileSourceTest, DefaultTagsWhenTheSourceSetsNone) {
  writeFile(in("a.ndjson"), alert(1) + "\n");
  poll(*makeFileSource(config_, *store_));
  auto docs = outbox();
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(JsonDoc(docs[0].body).getStrings("tags"),
            (Ids{"microsoft-defender-endpoint", "forwarded"}));
  EXPECT_FALSE(JsonDoc(docs[0].body).has("event.original"));
}

TEST_F(FileSourceTest, BlankLinesProduceNothingAndBadLinesYieldErrorDocuments) {
  const std::string file = in("a.ndjson");
  writeFile(file, "\n   \n{not json\n" + alert(1) + "\n\n");
  auto stats = poll(*makeFileSource(config_, *store_));
  EXPECT_EQ(stats.lines, 5u);
  EXPECT_EQ(stats.documents, 2u);
  EXPECT_EQ(stats.errors, 1u);
  auto docs = outbox();
  ASSERT_EQ(docs.size(), 2u);
  JsonDoc bad(docs[0].body);
  EXPECT_EQ(bad.getString("event.kind"), "pipeline_error");
  EXPECT_EQ(bad.getString("event.original"), "{not json");
  EXPECT_EQ(bad.getInt("log.offset"), 5);
  EXPECT_EQ(JsonDoc(docs[1].body).getString("event.id"), "da1");
  EXPECT_EQ(position(file)->offset, fs::file_size(file));  // blank lines consumed too
}

TEST_F(FileSourceTest, RotationStartsTheNewFileAtThePathFromTheBeginning) {
  config_.paths = {in("alerts.ndjson")};
  const std::string file = in("alerts.ndjson");
  writeFile(file, alert(1) + "\n" + alert(2) + "\n" + alert(3) + "\n");
  auto source = makeFileSource(config_, *store_);
  poll(*source);
  fs::rename(file, in("alerts.ndjson.1"));  // not matched by the glob
  writeFile(file, alert(4) + "\n" + alert(5) + "\n" + alert(6) + "\n" + alert(7) + "\n");
  auto stats = poll(*source);
  EXPECT_EQ(stats.documents, 4u);
  EXPECT_EQ(outboxIds(), (Ids{"da1", "da2", "da3", "da4", "da5", "da6", "da7"}));
  auto docs = outbox();
  EXPECT_EQ(JsonDoc(docs[3].body).getInt("log.offset"), 0);
}

TEST_F(FileSourceTest, ARenamedFileStillMatchedIsNotReadTwice) {
  const std::string file = in("alerts.ndjson");
  writeFile(file, alert(1) + "\n" + alert(2) + "\n");
  auto source = makeFileSource(config_, *store_);
  poll(*source);
  // The writer adds a line, then the file is rotated to a name the glob matches too.
  writeFile(file, alert(3) + "\n", /*append=*/true);
  fs::rename(file, in("alerts-1.ndjson"));
  writeFile(file, alert(4) + "\n");
  auto stats = poll(*source);
  EXPECT_EQ(stats.files, 2u);
  EXPECT_EQ(stats.documents, 2u);
  auto ids = outboxIds();
  std::sort(ids.begin() + 2, ids.end());
  EXPECT_EQ(ids, (Ids{"da1", "da2", "da3", "da4"}));
  // And after a restart neither is read again.
  EXPECT_EQ(poll(*makeFileSource(config_, *store_)).documents, 0u);
}

TEST_F(FileSourceTest, TruncationStartsAgainFromZero) {
  const std::string file = in("a.ndjson");
  writeFile(file, alert(1) + "\n" + alert(2) + "\n" + alert(3) + "\n");
  auto source = makeFileSource(config_, *store_);
  poll(*source);
  writeFile(file, alert(4) + "\n");  // same inode, shorter
  auto stats = poll(*source);
  EXPECT_EQ(stats.documents, 1u);
  EXPECT_EQ(outboxIds(), (Ids{"da1", "da2", "da3", "da4"}));
  EXPECT_EQ(JsonDoc(outbox()[3].body).getInt("log.offset"), 0);
  EXPECT_EQ(position(file)->offset, alert(4).size() + 1);
}

TEST_F(FileSourceTest, GlobsMatchSeveralFilesEachReadOnce) {
  writeFile(in("a.ndjson"), alert(1) + "\n");
  writeFile(in("b.ndjson"), alert(2) + "\n" + alert(3) + "\n");
  writeFile(in("c.txt"), alert(9) + "\n");
  fs::create_directories(in("d.ndjson"));  // a directory the glob matches
  config_.paths = {dir_ + "/*.ndjson", dir_ + "/b.*", dir_ + "/nothing-*.json"};
  auto stats = poll(*makeFileSource(config_, *store_));
  EXPECT_EQ(stats.files, 2u);
  EXPECT_EQ(stats.documents, 3u);
  EXPECT_EQ(outboxIds(), (Ids{"da1", "da2", "da3"}));
  EXPECT_TRUE(position(in("a.ndjson")));
  EXPECT_TRUE(position(in("b.ndjson")));
}

TEST_F(FileSourceTest, LargeFilesAreCommittedInBatches) {
  const std::string file = in("big.ndjson");
  std::string content;
  for (int i = 0; i < 2500; ++i) content += alert(i) + "\n";
  writeFile(file, content);
  CountingStore counting(*store_);
  auto stats = poll(*makeFileSource(config_, counting));
  EXPECT_EQ(stats.lines, 2500u);
  EXPECT_EQ(stats.documents, 2500u);
  EXPECT_EQ(counting.commits, 3);  // 1000 + 1000 + 500
  auto ids = outboxIds();
  ASSERT_EQ(ids.size(), 2500u);
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], "da" + std::to_string(i));
  EXPECT_EQ(position(file)->offset, content.size());
}

TEST_F(FileSourceTest, AFailedCommitLosesNothingAndDuplicatesNothing) {
  const std::string file = in("big.ndjson");
  std::string content;
  for (int i = 0; i < 2500; ++i) content += alert(i) + "\n";
  writeFile(file, content);
  CountingStore counting(*store_);
  counting.fail_commit = 2;
  auto source = makeFileSource(config_, counting);
  auto stats = source->poll();
  ASSERT_FALSE(stats);
  EXPECT_TRUE(stats.error().retryable());
  EXPECT_EQ(outboxIds().size(), 1000u);
  std::uint64_t first_batch = 0;
  for (int i = 0; i < 1000; ++i) first_batch += alert(i).size() + 1;
  EXPECT_EQ(position(file)->offset, first_batch);

  counting.fail_commit.reset();
  EXPECT_EQ(poll(*makeFileSource(config_, counting)).documents, 1500u);
  auto ids = outboxIds();
  ASSERT_EQ(ids.size(), 2500u);
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], "da" + std::to_string(i));
}

TEST_F(FileSourceTest, ALineLongerThanTheReadChunkIsReadWhole) {
  const std::string file = in("a.ndjson");
  std::string huge = R"({"id":"big","lastUpdateTime":"2025-11-03T15:35:02Z","title":")" +
                     std::string(3 << 20, 'x') + "\"}";
  writeFile(file, alert(1) + "\n" + huge + "\n" + alert(2) + "\n");
  auto stats = poll(*makeFileSource(config_, *store_));
  EXPECT_EQ(stats.documents, 3u);
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(outboxIds(), (Ids{"da1", "big", "da2"}));
  EXPECT_EQ(JsonDoc(outbox()[2].body).getInt("log.offset"),
            static_cast<std::int64_t>(alert(1).size() + 1 + huge.size() + 1));
}

// One Graph alerts_v2 alert (graph.md): a device and a file evidence; `n` makes its id.
std::string graphAlert(int n) {
  return R"({"id":"ga)" + std::to_string(n) +
         R"(","status":"inProgress","severity":"high","tenantId":"t-1",)"
         R"("detectionSource":"antivirus","createdDateTime":"2025-11-03T14:07:14.1187425Z",)"
         R"("lastUpdateDateTime":"2025-11-03T15:35:02.0566667Z","title":"t","evidence":[)"
         R"({"@odata.type":"#microsoft.graph.security.deviceEvidence","mdeDeviceId":"dev1",)"
         R"("deviceDnsName":"WKS-1.corp","loggedOnUsers":[{"accountName":"ann","domainName":"C"}]},)"
         R"({"@odata.type":"#microsoft.graph.security.fileEvidence",)"
         R"("createdDateTime":"2025-11-03T14:07:15Z","detectionStatus":"blocked",)"
         R"("fileDetails":{"fileName":"evil.dll","sha1":"abc","fileSize":5}}]})";
}

TEST_F(FileSourceTest, GraphFormatFilesAreTranslatedFirst) {
  config_.format = "graph";
  const std::string file = in("graph.ndjson");
  const std::string page_line =
      R"({"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2",)"
      R"("value":[)" +
      graphAlert(1) + "," + graphAlert(2) + "]}";
  writeFile(file, page_line + "\n" + graphAlert(3) + "\n{not json\n");
  auto stats = poll(*makeFileSource(config_, *store_));
  EXPECT_EQ(stats.lines, 3u);
  EXPECT_EQ(stats.documents, 4u);  // one file evidence per alert, one error document
  EXPECT_EQ(stats.errors, 1u);
  EXPECT_EQ(outboxIds(), (Ids{"ga1", "ga2", "ga3", "?"}));
  auto docs = outbox();
  ASSERT_EQ(docs.size(), 4u);
  const JsonDoc first(docs[0].body);
  EXPECT_EQ(first.getString("host.id"), "dev1");
  EXPECT_EQ(first.getString("host.name"), "wks-1.corp");
  EXPECT_EQ(first.getString("user.name"), "ann");
  EXPECT_EQ(first.getString("cloud.account.id"), "t-1");
  EXPECT_EQ(first.getString("observer.name"), "WindowsDefenderAv");
  EXPECT_EQ(first.getInt("event.severity"), 4);
  EXPECT_EQ(first.getString("file.name"), "evil.dll");
  EXPECT_EQ(first.getString("microsoft.defender_endpoint.status"), "InProgress");
  EXPECT_EQ(first.getString("microsoft.defender_endpoint.evidence.entityType"), "File");
  EXPECT_EQ(first.getString("microsoft.defender_endpoint.evidence.detectionStatus"), "Blocked");
  EXPECT_EQ(first.getString("log.file.path"), file);
  EXPECT_EQ(first.getInt("log.offset"), 0);
  EXPECT_EQ(JsonDoc(docs[1].body).getInt("log.offset"), 0);  // the same page line
  EXPECT_EQ(JsonDoc(docs[2].body).getInt("log.offset"),
            static_cast<std::int64_t>(page_line.size() + 1));
  const JsonDoc bad(docs[3].body);
  EXPECT_EQ(bad.getString("event.kind"), "pipeline_error");
  EXPECT_EQ(bad.getString("event.original"), "{not json");
  EXPECT_EQ(position(file)->offset, fs::file_size(file));

  // The same file read as Defender for Endpoint input keeps the Graph shape (no translation):
  // the device evidence is a document of its own and nothing lands in host.*.
  config_.name = "as-mde";
  config_.format = "mde";
  config_.paths = {file};
  auto mde = makeFileSource(config_, *store_);
  EXPECT_EQ(poll(*mde).documents, 7u);
  auto all = outbox();
  ASSERT_EQ(all.size(), 11u);
  EXPECT_FALSE(JsonDoc(all[4].body).has("host.id"));
}

TEST_F(FileSourceTest, NoMatchIsNotAnError) {
  auto stats = poll(*makeFileSource(config_, *store_));
  EXPECT_EQ(stats.files, 0u);
  EXPECT_EQ(stats.documents, 0u);
}

// The outbox bound (max_spool_bytes) holds for file sources: before each poll the source
// waits for room (the collector's waiter pauses while the outbox is full), and a stop while
// waiting reads nothing.
TEST_F(FileSourceTest, TheSourceInterfaceWaitsForRoomBeforeEachPoll) {
  writeFile(in("a.ndjson"), alert(1) + "\n");
  output::Delivery delivery(*store_);
  int waits = 0;
  std::stop_source stopper;
  SourceOptions options;
  options.wait_for_room = [&](std::stop_token) {
    if (++waits == 2) stopper.request_stop();  // the outbox stays full; then SIGTERM
  };
  auto source = makeFileSourceOf(config_, delivery, options);
  EXPECT_FALSE(source->backfills());
  auto first = source->poll(stopper.get_token());
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(waits, 1);
  EXPECT_EQ(first->alerts, 1u);
  EXPECT_EQ(outbox().size(), 1u);
  writeFile(in("a.ndjson"), alert(2) + "\n", true);
  auto second = source->poll(stopper.get_token());
  ASSERT_TRUE(second);
  EXPECT_EQ(waits, 2);
  EXPECT_TRUE(second->stopped);
  EXPECT_EQ(outbox().size(), 1u) << "nothing read while there is no room";
}

}  // namespace
}  // namespace mdec::source
