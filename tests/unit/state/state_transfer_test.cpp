#include "mdecollect/state/state_transfer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "mdecollect/state/run_lock.h"
#include "mdecollect/state/state_store.h"
#include "support/temp_dir.h"

namespace mdec::state {
namespace {

using mdec::testing::TempDir;

std::unique_ptr<StateStore> openOrDie(const std::string& dir) {
  auto store = openSqliteStore(dir);
  EXPECT_TRUE(store.has_value()) << store.error().message();
  if (!store) return nullptr;
  return std::move(*store);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A source with every kind of state: watermark, seen-set (pruned once), where live
// collection began, a file position, a backfill job, a pacing file; and a document in the
// outbox that waits for an output.
void fill(const std::string& dir, const std::string& source) {
  auto store = openOrDie(dir);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->registerOutput("elasticsearch"));
  ASSERT_TRUE(store->setCollectedSince(source, "2026-12-01T00:00:00Z"));
  PageCommit page;
  page.source = source;
  page.watermark = "2026-12-06T10:00:00.0000000Z";
  page.seen = {{"da1", "2026-12-06T09:00:00Z"}, {"da2", "2026-12-06T10:00:00Z"}};
  page.documents = {{"doc-1", "{\"a\":1}"}};
  page.file_path = "/var/log/alerts.ndjson";
  page.file_position = FilePosition{42, 4096};
  ASSERT_TRUE(store->commitPage(page));
  ASSERT_TRUE(store->pruneSeen(source, "2026-12-05T00:00:00Z"));
  BackfillJob job;
  job.source = source;
  job.since = "2026-11-01T00:00:00Z";
  job.until = "2026-12-01T00:00:00Z";
  job.position = job.since;
  auto id = store->addBackfill(job);
  ASSERT_TRUE(id);
  job.id = *id;
  job.state = "running";
  job.position = "2026-11-07T00:00:00Z";
  job.slices = 24;
  job.alerts = 300;
  job.documents = 310;
  ASSERT_TRUE(store->updateBackfill(job));
  std::ofstream(dir + "/pacing-" + source + ".txt") << "pacing v1\n1765000000\n";
}

TEST(StateTransfer, ASourceMovesWithAllItsStateAndNothingElse) {
  TempDir old_dir("mdec-transfer-old");
  TempDir new_dir("mdec-transfer-new");
  fill(old_dir.path(), "moved");
  fill(old_dir.path(), "stays");

  auto exported = exportSources(old_dir.path(), {"moved", "never-collected"});
  ASSERT_TRUE(exported) << exported.error().message();
  EXPECT_EQ(exported->exported, std::vector<std::string>{"moved"});
  EXPECT_EQ(exported->without_state, std::vector<std::string>{"never-collected"});
  EXPECT_EQ(exported->json.find("stays"), std::string::npos);
  EXPECT_EQ(exported->json.find("doc-1"), std::string::npos);  // the outbox stays

  auto imported = importSources(new_dir.path(), exported->json, {});
  ASSERT_TRUE(imported) << imported.error().message();
  EXPECT_EQ(*imported, std::vector<std::string>{"moved"});

  auto before = openOrDie(old_dir.path())->exportSource("moved");
  auto store = openOrDie(new_dir.path());
  auto after = store->exportSource("moved");
  ASSERT_TRUE(before && *before && after && *after);
  EXPECT_EQ((*after)->watermark, "2026-12-06T10:00:00.0000000Z");
  EXPECT_EQ((*after)->watermark, (*before)->watermark);
  EXPECT_EQ((*after)->seen_since, "2026-12-05T00:00:00Z");
  EXPECT_EQ((*after)->collected_since, "2026-12-01T00:00:00Z");
  EXPECT_EQ((*after)->seen, (*before)->seen);
  ASSERT_EQ((*after)->files.size(), 1u);
  EXPECT_EQ((*after)->files[0].path, "/var/log/alerts.ndjson");
  EXPECT_EQ((*after)->files[0].position.inode, 42u);
  EXPECT_EQ((*after)->files[0].position.offset, 4096u);
  ASSERT_EQ((*after)->backfills.size(), 1u);
  const BackfillJob& job = (*after)->backfills[0];
  EXPECT_EQ(job.state, "running");
  EXPECT_EQ(job.position, "2026-11-07T00:00:00Z");
  EXPECT_EQ(job.until, "2026-12-01T00:00:00Z");
  EXPECT_EQ(job.slices, 24u);
  EXPECT_EQ(job.documents, 310u);
  EXPECT_EQ(job.updated, (*before)->backfills[0].updated);

  // What the collector reads goes through the ordinary methods too.
  EXPECT_EQ(*store->watermark("moved"), std::optional<std::string>("2026-12-06T10:00:00.0000000Z"));
  auto seen = store->seen("moved", {{"da2", "2026-12-06T10:00:00Z"}, {"da3", ""}});
  ASSERT_TRUE(seen);
  EXPECT_EQ(*seen, (std::vector<bool>{true, false}));
  EXPECT_EQ(*store->seenSince("moved"), std::optional<std::string>("2026-12-05T00:00:00Z"));
  EXPECT_EQ(*store->collectedSince("moved"), std::optional<std::string>("2026-12-01T00:00:00Z"));
  auto position = store->filePosition("moved", "/var/log/alerts.ndjson");
  ASSERT_TRUE(position && *position);
  EXPECT_EQ((*position)->offset, 4096u);
  EXPECT_EQ(readFile(new_dir.sub("pacing-moved.txt")), "pacing v1\n1765000000\n");
  EXPECT_EQ(store->outboxSize()->documents, 0u);
  EXPECT_FALSE(*store->exportSource("stays"));
  EXPECT_FALSE(std::filesystem::exists(new_dir.sub("pacing-stays.txt")));

  // The old replica forgets the source; its outbox still holds the document for its output.
  auto forgotten = forgetSources(old_dir.path(), {"moved", "never-collected"});
  ASSERT_TRUE(forgotten) << forgotten.error().message();
  EXPECT_EQ(*forgotten, std::vector<std::string>{"moved"});
  auto old_store = openOrDie(old_dir.path());
  EXPECT_FALSE(*old_store->exportSource("moved"));
  EXPECT_TRUE(*old_store->exportSource("stays"));
  EXPECT_FALSE(std::filesystem::exists(old_dir.sub("pacing-moved.txt")));
  EXPECT_EQ(old_store->outboxSize()->documents, 2u);  // one document of each source
}

TEST(StateTransfer, ImportRefusesASourceThatHasStateUnlessForced) {
  TempDir old_dir("mdec-transfer-old");
  TempDir new_dir("mdec-transfer-new");
  fill(old_dir.path(), "a");
  fill(old_dir.path(), "b");
  auto exported = exportSources(old_dir.path(), {"a", "b"});
  ASSERT_TRUE(exported) << exported.error().message();
  {
    auto store = openOrDie(new_dir.path());
    PageCommit page;
    page.source = "b";
    page.watermark = "2020-01-01T00:00:00Z";
    ASSERT_TRUE(store->commitPage(page));
  }
  auto refused = importSources(new_dir.path(), exported->json, {});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("already keeps"), std::string::npos);
  EXPECT_NE(refused.error().message().find(": b;"), std::string::npos) << refused.error().message();
  EXPECT_NE(refused.error().message().find("--force"), std::string::npos);
  // Nothing was imported: not even the source that had no state.
  EXPECT_FALSE(*openOrDie(new_dir.path())->exportSource("a"));

  ImportOptions only_a;
  only_a.only = {"a"};
  auto imported = importSources(new_dir.path(), exported->json, only_a);
  ASSERT_TRUE(imported) << imported.error().message();
  EXPECT_EQ(*imported, std::vector<std::string>{"a"});
  EXPECT_EQ(*openOrDie(new_dir.path())->watermark("b"),
            std::optional<std::string>("2020-01-01T00:00:00Z"));

  ImportOptions force;
  force.force = true;
  imported = importSources(new_dir.path(), exported->json, force);
  ASSERT_TRUE(imported) << imported.error().message();
  EXPECT_EQ(imported->size(), 2u);
  auto store = openOrDie(new_dir.path());
  EXPECT_EQ(*store->watermark("b"), std::optional<std::string>("2026-12-06T10:00:00.0000000Z"));
  EXPECT_EQ((*store->exportSource("a"))->backfills.size(), 1u);  // replaced, not added

  ImportOptions unknown;
  unknown.only = {"c"};
  EXPECT_FALSE(importSources(new_dir.path(), exported->json, unknown));
}

TEST(StateTransfer, RefusedWhileACollectorHoldsTheStateDirectory) {
  TempDir dir("mdec-transfer");
  fill(dir.path(), "a");
  auto exported = exportSources(dir.path(), {"a"});
  ASSERT_TRUE(exported);
  auto lock = RunLock::tryAcquire(dir.path());
  ASSERT_TRUE(lock && *lock);
  for (const auto& error : {exportSources(dir.path(), {"a"}).error().message(),
                            importSources(dir.path(), exported->json, {}).error().message(),
                            forgetSources(dir.path(), {"a"}).error().message()}) {
    EXPECT_NE(error.find("a collector (pid "), std::string::npos) << error;
    EXPECT_NE(error.find("stop it first"), std::string::npos) << error;
  }
  EXPECT_TRUE(*openOrDie(dir.path())->exportSource("a"));
}

TEST(StateTransfer, ExportOfADirectoryWithoutStateIsAnError) {
  TempDir dir("mdec-transfer");
  auto exported = exportSources(dir.sub("nothing-here"), {"a"});
  ASSERT_FALSE(exported);
  EXPECT_NE(exported.error().message().find("no state.db"), std::string::npos);
}

TEST(StateTransfer, TheFileFormatRoundTripsAndIsChecked) {
  MovedSource moved;
  moved.state.source = "we\"ird\nname";
  moved.state.watermark = "2026-12-06T10:00:00Z";
  moved.state.seen = {{"id\\1", "t1"}};
  moved.state.files = {{"/p", {18446744073709551615ull, 7}}};
  moved.pacing = std::nullopt;
  const std::string json = encodeStateExport({moved});
  auto decoded = decodeStateExport(json);
  ASSERT_TRUE(decoded) << decoded.error().message();
  ASSERT_EQ(decoded->size(), 1u);
  EXPECT_EQ((*decoded)[0].state.source, moved.state.source);
  EXPECT_EQ((*decoded)[0].state.watermark, moved.state.watermark);
  EXPECT_EQ((*decoded)[0].state.seen_since, std::nullopt);
  EXPECT_EQ((*decoded)[0].state.seen, moved.state.seen);
  EXPECT_EQ((*decoded)[0].state.files[0].position.inode, 18446744073709551615ull);
  EXPECT_EQ((*decoded)[0].pacing, std::nullopt);

  const std::string empty = encodeStateExport({});
  EXPECT_EQ(empty, "{\"format\":\"mdecollect-state\",\"version\":1,\"sources\":[\n]}\n");
  EXPECT_TRUE(decodeStateExport(empty));

  for (const char* bad : {
           "",
           "[]",
           "{\"format\":\"other\",\"version\":1,\"sources\":[]}",
           "{\"format\":\"mdecollect-state\",\"sources\":[]}",
           "{\"format\":\"mdecollect-state\",\"version\":1,\"sources\":[{\"source\":\"a\"}]}",
           "{\"format\":\"mdecollect-state\",\"version\":1,\"sources\":[{\"source\":\"a\","
           "\"seen\":[[\"x\"]],\"files\":[],\"backfills\":[]}]}",
           "{\"format\":\"mdecollect-state\",\"version\":1,\"sources\":[{\"source\":\"a\","
           "\"seen\":[],\"files\":[],\"backfills\":[]},{\"source\":\"a\",\"seen\":[],"
           "\"files\":[],\"backfills\":[]}]}",
       }) {
    auto r = decodeStateExport(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code(), ErrorCode::kParse) << bad;
    }
  }
  auto newer = decodeStateExport("{\"format\":\"mdecollect-state\",\"version\":2,\"sources\":[]}");
  ASSERT_FALSE(newer);
  EXPECT_NE(newer.error().message().find("reads version 1"), std::string::npos);
}

}  // namespace
}  // namespace mdec::state
