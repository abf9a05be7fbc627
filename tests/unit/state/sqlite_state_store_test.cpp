#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mdecollect/state/run_lock.h"
#include "mdecollect/state/state_store.h"
#include "state/sqlite_handle.h"
#include "support/scoped_umask.h"
#include "support/temp_dir.h"

namespace mdec::state {
namespace {

namespace fs = std::filesystem;

using mdec::testing::TempDir;

std::unique_ptr<StateStore> openOrDie(const fs::path& dir) {
  auto store = openSqliteStore(dir.string());
  EXPECT_TRUE(store.has_value()) << store.error().message();
  if (!store) return nullptr;
  return std::move(*store);
}

// A second, raw connection to state.db: the tests' way to look behind the interface and to
// inject faults (triggers that fail a statement midway through a transaction).
sqlite::Database rawDb(const fs::path& dir) {
  auto db = sqlite::Database::open((dir / "state.db").string(), SQLITE_OPEN_READWRITE);
  EXPECT_TRUE(db.has_value());
  EXPECT_TRUE(db->exec("PRAGMA busy_timeout = 5000").has_value());
  return std::move(*db);
}

void execOrDie(sqlite::Database& db, const char* sql) {
  auto status = db.exec(sql);
  ASSERT_TRUE(status.has_value()) << status.error().message();
}

NewDocument doc(const std::string& id, const std::string& body) { return {id, body}; }

// A file source's commit: lines of `path` read up to `position`, with their documents.
PageCommit fileLines(const std::string& source, const std::string& path,
                     const FilePosition& position, std::vector<NewDocument> documents) {
  PageCommit commit;
  commit.source = source;
  commit.file_path = path;
  commit.file_position = position;
  commit.documents = std::move(documents);
  return commit;
}

PageCommit page(const std::string& source, std::optional<std::string> watermark,
                std::vector<Version> seen, std::vector<NewDocument> documents) {
  PageCommit commit;
  commit.source = source;
  commit.watermark = std::move(watermark);
  commit.seen = std::move(seen);
  commit.documents = std::move(documents);
  return commit;
}

std::vector<OutboxDocument> readAll(StateStore& store, std::int64_t after = 0) {
  auto docs = store.readOutbox(after, std::numeric_limits<std::size_t>::max(),
                               std::numeric_limits<std::size_t>::max());
  EXPECT_TRUE(docs.has_value()) << docs.error().message();
  return docs ? *docs : std::vector<OutboxDocument>{};
}

std::vector<std::string> ids(const std::vector<OutboxDocument>& docs) {
  std::vector<std::string> out;
  for (const auto& d : docs) out.push_back(d.id);
  return out;
}

std::vector<bool> seenOf(StateStore& store, const std::string& source,
                         const std::vector<Version>& versions) {
  auto answer = store.seen(source, versions);
  EXPECT_TRUE(answer.has_value()) << answer.error().message();
  return answer ? *answer : std::vector<bool>{};
}

std::optional<std::string> watermarkOf(StateStore& store, const std::string& source) {
  auto w = store.watermark(source);
  EXPECT_TRUE(w.has_value()) << w.error().message();
  return w ? *w : std::nullopt;
}

StateStore::OutboxSize sizeOf(StateStore& store) {
  auto size = store.outboxSize();
  EXPECT_TRUE(size.has_value()) << size.error().message();
  return size ? *size : StateStore::OutboxSize{};
}

std::int64_t ackedOf(StateStore& store, const std::string& output) {
  auto acked = store.ackedSeq(output);
  EXPECT_TRUE(acked.has_value()) << acked.error().message();
  return acked ? *acked : -1;
}

const Version kV1{"da1", "2024-01-01T00:00:01.0000000Z"};
const Version kV2{"da2", "2024-01-01T00:00:02.0000000Z"};
const Version kV3{"da3", "2024-01-01T00:00:03.0000000Z"};

// ---- opening ----

TEST(SqliteStateStore, CreatesStateDirWithParentsAndAVersionedWalDatabase) {
  TempDir tmp;
  const fs::path dir = tmp.dir() / "a" / "b" / "state";
  auto store = openOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(fs::exists(dir / "state.db"));
  auto db = rawDb(dir);
  auto mode = db.queryText("PRAGMA journal_mode");
  ASSERT_TRUE(mode.has_value());
  EXPECT_EQ(*mode, "wal");
  auto version = db.queryText("SELECT value FROM meta WHERE key = 'schema_version'");
  ASSERT_TRUE(version.has_value());
  EXPECT_EQ(*version, "5");
}

TEST(SqliteStateStore, OpeningTwiceKeepsTheSchemaAndTheData) {
  TempDir tmp;
  {
    auto store = openOrDie(tmp.dir());
    ASSERT_TRUE(store->commitPage(page("s", "w1", {kV1}, {doc("d1", "{}")})).has_value());
  }
  auto store = openOrDie(tmp.dir());
  EXPECT_EQ(watermarkOf(*store, "s"), "w1");
  EXPECT_EQ(readAll(*store).size(), 1u);
}

// Regression: state.db (alert bodies wait in its outbox) and its -wal and -shm were created
// with the process umask: 0644 when started from a shell.
TEST(SqliteStateStore, TheDatabaseAndItsWalAndShmArePrivateWhateverTheUmask) {
  TempDir tmp;
  mdec::testing::ScopedUmask umask(0);
  auto store = openOrDie(tmp.dir());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->commitPage(page("s", "w1", {kV1}, {doc("d1", "{}")})).has_value());
  // Open: SQLite has made the -wal and -shm, with the database file's permissions.
  for (const char* name : {"state.db", "state.db-wal", "state.db-shm"}) {
    EXPECT_EQ(mdec::testing::permissionsOf((tmp.dir() / name).c_str()), 0600) << name;
  }
}

// An older install's files (0644, with a -wal and -shm a crash left) are tightened when the
// store opens, by path: a connection this process already has keeps its locks and works.
TEST(SqliteStateStore, AnOlderInstallsLooserDatabaseFilesAreTightened) {
  TempDir tmp;
  mdec::testing::ScopedUmask umask(0);
  auto first = openOrDie(tmp.dir());
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->commitPage(page("s", "w1", {kV1}, {doc("d1", "{}")})).has_value());
  const char* names[] = {"state.db", "state.db-wal", "state.db-shm"};
  for (const char* name : names) {
    ASSERT_EQ(::chmod((tmp.dir() / name).c_str(), 0644), 0) << name;
  }
  auto second = openOrDie(tmp.dir());
  ASSERT_NE(second, nullptr);
  for (const char* name : names) {
    EXPECT_EQ(mdec::testing::permissionsOf((tmp.dir() / name).c_str()), 0600) << name;
  }
  ASSERT_TRUE(first->commitPage(page("s", "w2", {kV2}, {doc("d2", "{}")})).has_value());
  EXPECT_EQ(watermarkOf(*second, "s"), "w2");
  EXPECT_EQ(ids(readAll(*second)), (std::vector<std::string>{"d1", "d2"}));
}

// Schema 4 (staged documents in their own table) to 5: the outbox keeps its documents and
// seqs, what a stopped process had staged is gone, and large pages stage again.
TEST(SqliteStateStore, MigratesSchema4AndItsStagingTable) {
  TempDir tmp;
  {
    auto store = openOrDie(tmp.dir());
    ASSERT_TRUE(store->registerOutput("es"));
    ASSERT_TRUE(store->commitPage(page("s", "w1", {kV1}, {doc("d1", "{}"), doc("d2", "{}")})));
  }
  {
    // What schema 4 looked like, with a page a stopped process had staged.
    auto db = rawDb(tmp.dir());
    execOrDie(db,
              "DROP TABLE staged_pages; ALTER TABLE outbox DROP COLUMN page; "
              "CREATE TABLE staged(n INTEGER PRIMARY KEY, page INTEGER NOT NULL, doc_id TEXT "
              "NOT NULL, bytes INTEGER NOT NULL, body TEXT NOT NULL); "
              "CREATE INDEX staged_by_page ON staged(page); "
              "INSERT INTO staged(page, doc_id, bytes, body) VALUES(1, 'x', 2, '{}'); "
              "UPDATE meta SET value = 4 WHERE key = 'schema_version'");
  }
  auto store = openOrDie(tmp.dir());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"d1", "d2"}));
  EXPECT_EQ(store->outboxSize().value().documents, 2u);
  auto a = store->beginStagedPage("sa");
  ASSERT_TRUE(a);
  ASSERT_TRUE(store->stage(*a, {doc("a1", "x")}));
  PageCommit commit;
  commit.source = "sa";
  commit.staged_page = *a;
  commit.staged_documents = 1;
  ASSERT_TRUE(store->commitPage(commit));
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"d1", "d2", "a1"}));
  auto db = rawDb(tmp.dir());
  EXPECT_EQ(db.queryText("SELECT value FROM meta WHERE key = 'schema_version'").value(), "5");
  EXPECT_EQ(db.queryText("SELECT COUNT(*) FROM sqlite_master WHERE name = 'staged'").value(), "0");
}

TEST(SqliteStateStore, RefusesANewerSchema) {
  TempDir tmp;
  { openOrDie(tmp.dir()); }
  {
    auto db = rawDb(tmp.dir());
    execOrDie(db, "UPDATE meta SET value = 7 WHERE key = 'schema_version'");
  }
  auto store = openSqliteStore(tmp.dir().string());
  ASSERT_FALSE(store.has_value());
  EXPECT_NE(store.error().message().find(
                "state.db was written by a newer mdecollect (schema 7); this version "
                "understands up to 5"),
            std::string::npos)
      << store.error().message();
  EXPECT_FALSE(store.error().retryable());
}

TEST(SqliteStateStore, CreatesTheSchemaInAnExistingDatabaseWithoutOne) {
  TempDir tmp;
  {
    auto db = sqlite::Database::open((tmp.dir() / "state.db").string(),
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    ASSERT_TRUE(db.has_value());
    execOrDie(*db, "CREATE TABLE unrelated(x)");
  }
  auto store = openOrDie(tmp.dir());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->commitPage(page("s", "w", {kV1}, {doc("d", "{}")})).has_value());
}

TEST(SqliteStateStore, ReportsAFileThatIsNotADatabase) {
  TempDir tmp;
  std::ofstream(tmp.dir() / "state.db") << std::string(8192, 'x');
  auto store = openSqliteStore(tmp.dir().string());
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), ErrorCode::kIo);
  EXPECT_NE(store.error().message().find("open state store"), std::string::npos);
  EXPECT_NE(store.error().message().find("not a database"), std::string::npos)
      << store.error().message();
}

TEST(SqliteStateStore, ReportsAStateDirThatIsAFile) {
  TempDir tmp;
  std::ofstream(tmp.dir() / "file") << "x";
  auto store = openSqliteStore((tmp.dir() / "file").string());
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), ErrorCode::kIo);
}

TEST(SqliteStateStore, RefusesAnEmptyStateDir) {
  auto store = openSqliteStore("");
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code(), ErrorCode::kInvalidArgument);
}

// ---- sources ----

TEST(SqliteStateStore, CommitPageRoundTrip) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  EXPECT_EQ(watermarkOf(*store, "s"), std::nullopt);
  EXPECT_EQ(sizeOf(*store).documents, 0u);

  ASSERT_TRUE(store
                  ->commitPage(page("s", "2024-01-01T00:00:02.0000000Z", {kV1, kV2},
                                    {doc("d1", R"({"a":1})"), doc("d2", R"({"b":"é"})")}))
                  .has_value());
  EXPECT_EQ(watermarkOf(*store, "s"), "2024-01-01T00:00:02.0000000Z");
  EXPECT_EQ(watermarkOf(*store, "other"), std::nullopt);

  auto docs = readAll(*store);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].source, "s");
  EXPECT_EQ(docs[0].id, "d1");
  EXPECT_EQ(docs[0].body, R"({"a":1})");
  EXPECT_EQ(docs[1].id, "d2");
  EXPECT_EQ(docs[1].body, R"({"b":"é"})");
  EXPECT_LT(docs[0].seq, docs[1].seq);

  const auto size = sizeOf(*store);
  EXPECT_EQ(size.documents, 2u);
  EXPECT_EQ(size.bytes, docs[0].body.size() + docs[1].body.size());

  // A page without a watermark keeps the old one; documents keep their order across pages.
  ASSERT_TRUE(store->commitPage(page("s", std::nullopt, {kV3}, {doc("d3", "{}")})).has_value());
  EXPECT_EQ(watermarkOf(*store, "s"), "2024-01-01T00:00:02.0000000Z");
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"d1", "d2", "d3"}));

  // An empty page (nothing new) is fine, and may still move the watermark.
  ASSERT_TRUE(store->commitPage(page("s", "2024-01-02T00:00:00.0000000Z", {}, {})).has_value());
  EXPECT_EQ(watermarkOf(*store, "s"), "2024-01-02T00:00:00.0000000Z");
}

TEST(SqliteStateStore, SeenAnswersInOrderPerSource) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  EXPECT_TRUE(seenOf(*store, "s", {}).empty());
  EXPECT_EQ(seenOf(*store, "s", {kV1, kV2}), (std::vector<bool>{false, false}));

  ASSERT_TRUE(store->commitPage(page("s", "w", {kV1, kV3}, {})).has_value());
  EXPECT_EQ(seenOf(*store, "s", {kV1, kV2, kV3, kV1}),
            (std::vector<bool>{true, false, true, true}));
  // Same id, another lastUpdateTime: another version.
  EXPECT_EQ(seenOf(*store, "s", {{"da1", "2024-01-01T00:00:09.0000000Z"}}),
            (std::vector<bool>{false}));
  // Other sources have their own seen-set.
  EXPECT_EQ(seenOf(*store, "t", {kV1, kV3}), (std::vector<bool>{false, false}));
  // Seeing a version again (the overlap) is not an error.
  ASSERT_TRUE(store->commitPage(page("s", "w", {kV1, kV1, kV2}, {})).has_value());
  EXPECT_EQ(seenOf(*store, "s", {kV1, kV2, kV3}), (std::vector<bool>{true, true, true}));
}

TEST(SqliteStateStore, SeenAnswersManyVersionsAtOnce) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  std::vector<Version> committed;
  std::vector<Version> asked;
  std::vector<bool> expected;
  for (int i = 0; i < 5000; ++i) {
    Version v{"id" + std::to_string(i), "2024-01-01T00:00:00." + std::to_string(i) + "Z"};
    if (i % 3 == 0) committed.push_back(v);
    asked.push_back(v);
    expected.push_back(i % 3 == 0);
  }
  ASSERT_TRUE(store->commitPage(page("s", "w", committed, {})).has_value());
  EXPECT_EQ(seenOf(*store, "s", asked), expected);
}

TEST(SqliteStateStore, PruneSeenForgetsOlderVersionsOfThatSourceOnly) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->commitPage(page("s", "w", {kV1, kV2, kV3}, {})).has_value());
  ASSERT_TRUE(store->commitPage(page("t", "w", {kV1, kV2, kV3}, {})).has_value());
  ASSERT_TRUE(store->pruneSeen("s", kV2.last_update_time).has_value());
  EXPECT_EQ(seenOf(*store, "s", {kV1, kV2, kV3}), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(seenOf(*store, "t", {kV1, kV2, kV3}), (std::vector<bool>{true, true, true}));
  ASSERT_TRUE(store->pruneSeen("s", "2099-01-01T00:00:00.0000000Z").has_value());
  EXPECT_EQ(seenOf(*store, "s", {kV1, kV2, kV3}), (std::vector<bool>{false, false, false}));
}

// Fails the statement that touches `table` when the row matches `when` (a trigger added
// through a second connection), so a commit breaks midway through its transaction.
void injectFailure(const fs::path& dir, const std::string& event, const std::string& table,
                   const std::string& when) {
  auto db = rawDb(dir);
  const std::string sql = "CREATE TRIGGER inject_failure BEFORE " + event + " ON " + table +
                          " WHEN " + when + " BEGIN SELECT RAISE(ABORT, 'injected failure'); END";
  execOrDie(db, sql.c_str());
}

void removeFailure(const fs::path& dir) {
  auto db = rawDb(dir);
  execOrDie(db, "DROP TRIGGER inject_failure");
}

struct FailurePoint {
  const char* name;
  const char* event;
  const char* table;
  const char* when;
};

class CommitPageAtomicity : public ::testing::TestWithParam<FailurePoint> {};

TEST_P(CommitPageAtomicity, AFailureMidwayLeavesNothing) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->commitPage(page("s", "w0", {kV1}, {doc("d0", "zero")})).has_value());
  const auto before = sizeOf(*store);

  injectFailure(tmp.dir(), GetParam().event, GetParam().table, GetParam().when);
  auto status = store->commitPage(
      page("s", "w1", {kV2, kV3}, {doc("d1", "one"), doc("boom", "two"), doc("d3", "three")}));
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), ErrorCode::kIo);
  EXPECT_EQ(status.error().message(), "commit page for source 's': injected failure");

  EXPECT_EQ(watermarkOf(*store, "s"), "w0");
  EXPECT_EQ(seenOf(*store, "s", {kV1, kV2, kV3}), (std::vector<bool>{true, false, false}));
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"d0"}));
  EXPECT_EQ(sizeOf(*store).documents, before.documents);
  EXPECT_EQ(sizeOf(*store).bytes, before.bytes);

  // The connection is not left inside a transaction: the same page commits afterwards.
  removeFailure(tmp.dir());
  ASSERT_TRUE(store
                  ->commitPage(page("s", "w1", {kV2, kV3},
                                    {doc("d1", "one"), doc("boom", "two"), doc("d3", "three")}))
                  .has_value());
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"d0", "d1", "boom", "d3"}));
  EXPECT_EQ(seenOf(*store, "s", {kV2, kV3}), (std::vector<bool>{true, true}));
  EXPECT_EQ(watermarkOf(*store, "s"), "w1");
  EXPECT_EQ(sizeOf(*store).documents, 4u);
}

INSTANTIATE_TEST_SUITE_P(
    SqliteStateStore, CommitPageAtomicity,
    ::testing::Values(FailurePoint{"SecondDocument", "INSERT", "outbox", "NEW.doc_id = 'boom'"},
                      FailurePoint{"SecondSeenVersion", "INSERT", "seen", "NEW.alert_id = 'da3'"},
                      FailurePoint{"OutboxSize", "UPDATE", "outbox_stats", "1"},
                      FailurePoint{"Watermark", "INSERT", "source_state", "NEW.watermark = 'w1'"}),
    [](const auto& failure) { return std::string(failure.param.name); });

// ---- file sources ----

TEST(SqliteStateStore, FilePositionRoundTrip) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  auto none = store->filePosition("f", "/var/log/a.ndjson");
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->has_value());

  const std::uint64_t big_inode = std::numeric_limits<std::uint64_t>::max() - 5;
  ASSERT_TRUE(store
                  ->commitPage(fileLines("f", "/var/log/a.ndjson", {big_inode, 120},
                                         {doc("l1", "{\"x\":1}"), doc("l2", "{\"x\":2}")}))
                  .has_value());
  auto pos = store->filePosition("f", "/var/log/a.ndjson");
  ASSERT_TRUE(pos.has_value() && pos->has_value());
  EXPECT_EQ((*pos)->inode, big_inode);
  EXPECT_EQ((*pos)->offset, 120u);
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"l1", "l2"}));
  EXPECT_EQ(readAll(*store)[0].source, "f");

  // Moving on, with no documents (blank lines), and other files and sources stay apart.
  ASSERT_TRUE(
      store->commitPage(fileLines("f", "/var/log/a.ndjson", {big_inode, 130}, {})).has_value());
  ASSERT_TRUE(store->commitPage(fileLines("f", "/var/log/b.ndjson", {7, 1}, {})).has_value());
  pos = store->filePosition("f", "/var/log/a.ndjson");
  ASSERT_TRUE(pos.has_value() && pos->has_value());
  EXPECT_EQ((*pos)->offset, 130u);
  auto other = store->filePosition("g", "/var/log/a.ndjson");
  ASSERT_TRUE(other.has_value());
  EXPECT_FALSE(other->has_value());
  EXPECT_EQ(sizeOf(*store).documents, 2u);
}

TEST(SqliteStateStore, CommittingFileLinesIsAtomic) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->commitPage(fileLines("f", "/p", {1, 10}, {doc("a", "{}")})).has_value());

  injectFailure(tmp.dir(), "UPDATE", "file_positions", "1");
  auto status = store->commitPage(fileLines("f", "/p", {1, 20}, {doc("b", "{}"), doc("c", "{}")}));
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().message(), "commit lines of file '/p' for source 'f': injected failure");
  auto pos = store->filePosition("f", "/p");
  ASSERT_TRUE(pos.has_value() && pos->has_value());
  EXPECT_EQ((*pos)->offset, 10u);
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"a"}));
  EXPECT_EQ(sizeOf(*store).documents, 1u);
}

// ---- outbox and outputs ----

std::vector<NewDocument> numberedDocs(int from, int count, std::size_t body_size = 10) {
  std::vector<NewDocument> docs;
  for (int i = from; i < from + count; ++i) {
    docs.push_back(doc("d" + std::to_string(i), std::string(body_size, 'x')));
  }
  return docs;
}

TEST(SqliteStateStore, ReadOutboxHonoursSeqCountAndBytes) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  auto empty = store->readOutbox(0, 10, 1000);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());

  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 10, 100))).has_value());
  const auto all = readAll(*store);
  ASSERT_EQ(all.size(), 10u);

  auto docs = store->readOutbox(0, 3, 1'000'000);
  ASSERT_TRUE(docs.has_value());
  EXPECT_EQ(ids(*docs), (std::vector<std::string>{"d0", "d1", "d2"}));

  docs = store->readOutbox(all[6].seq, 100, 1'000'000);
  ASSERT_TRUE(docs.has_value());
  EXPECT_EQ(ids(*docs), (std::vector<std::string>{"d7", "d8", "d9"}));

  // Stops before exceeding max_bytes: 250 bytes hold two 100-byte documents, 300 three.
  docs = store->readOutbox(0, 100, 250);
  ASSERT_TRUE(docs.has_value());
  EXPECT_EQ(docs->size(), 2u);
  docs = store->readOutbox(0, 100, 300);
  ASSERT_TRUE(docs.has_value());
  EXPECT_EQ(docs->size(), 3u);
  // ... but the first document always comes, however large.
  docs = store->readOutbox(0, 100, 1);
  ASSERT_TRUE(docs.has_value());
  EXPECT_EQ(ids(*docs), (std::vector<std::string>{"d0"}));
  docs = store->readOutbox(0, 0, 1000);
  ASSERT_TRUE(docs.has_value());
  EXPECT_TRUE(docs->empty());
  docs = store->readOutbox(all.back().seq, 100, 1000);
  ASSERT_TRUE(docs.has_value());
  EXPECT_TRUE(docs->empty());
}

TEST(SqliteStateStore, RegisterOutputIsIdempotent) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("file").has_value());
  EXPECT_EQ(ackedOf(*store, "file"), 0);
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 3))).has_value());
  ASSERT_TRUE(store->registerOutput("file").has_value());
  EXPECT_EQ(ackedOf(*store, "file"), 0);
  const auto docs = readAll(*store);
  ASSERT_TRUE(store->acknowledge("file", docs[1].seq, std::nullopt).has_value());
  ASSERT_TRUE(store->registerOutput("file").has_value());
  EXPECT_EQ(ackedOf(*store, "file"), docs[1].seq);
}

TEST(SqliteStateStore, UnknownOutputsAreErrors) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  auto acked = store->ackedSeq("nope");
  ASSERT_FALSE(acked.has_value());
  EXPECT_EQ(acked.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(acked.error().message().find("'nope'"), std::string::npos);
  auto status = store->acknowledge("nope", 0, std::nullopt);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), ErrorCode::kNotFound);
  auto checkpoint = store->fileCheckpoint("nope");
  ASSERT_TRUE(checkpoint.has_value());
  EXPECT_FALSE(checkpoint->has_value());
}

TEST(SqliteStateStore, DocumentsLeaveTheOutboxOnlyWhenEveryOutputAcknowledged) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("a").has_value());
  ASSERT_TRUE(store->registerOutput("b").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 5))).has_value());
  const auto docs = readAll(*store);
  ASSERT_EQ(docs.size(), 5u);

  ASSERT_TRUE(store->acknowledge("a", docs[4].seq, std::nullopt).has_value());
  EXPECT_EQ(readAll(*store).size(), 5u);
  EXPECT_EQ(sizeOf(*store).documents, 5u);
  EXPECT_EQ(ackedOf(*store, "a"), docs[4].seq);
  EXPECT_EQ(ackedOf(*store, "b"), 0);

  ASSERT_TRUE(store->acknowledge("b", docs[1].seq, std::nullopt).has_value());
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"d2", "d3", "d4"}));
  EXPECT_EQ(sizeOf(*store).documents, 3u);
  EXPECT_EQ(sizeOf(*store).bytes, 30u);

  ASSERT_TRUE(store->acknowledge("b", docs[4].seq, std::nullopt).has_value());
  EXPECT_TRUE(readAll(*store).empty());
  EXPECT_EQ(sizeOf(*store).documents, 0u);
  EXPECT_EQ(sizeOf(*store).bytes, 0u);
}

// Regression: an output removed from the config kept its documents in the outbox for ever
// (counted against max_spool_bytes, which pauses polling).
TEST(SqliteStateStore, AForgottenOutputsDocumentsLeaveTheOutbox) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("file").has_value());
  ASSERT_TRUE(store->registerOutput("elasticsearch").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 5))).has_value());
  const auto docs = readAll(*store);
  ASSERT_EQ(docs.size(), 5u);
  ASSERT_TRUE(store->acknowledge("file", docs[4].seq, std::nullopt).has_value());
  ASSERT_TRUE(store->acknowledge("elasticsearch", docs[1].seq, std::nullopt).has_value());
  EXPECT_EQ(sizeOf(*store).documents, 3u);  // waiting for elasticsearch only

  auto names = store->registeredOutputs();
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"elasticsearch", "file"}));
  ASSERT_TRUE(store->unregisterOutput("elasticsearch").has_value());
  names = store->registeredOutputs();
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, (std::vector<std::string>{"file"}));
  EXPECT_TRUE(readAll(*store).empty());
  EXPECT_EQ(sizeOf(*store).documents, 0u);
  EXPECT_EQ(sizeOf(*store).bytes, 0u);

  // Registered again, it starts with what comes from then on.
  ASSERT_TRUE(store->registerOutput("elasticsearch").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w2", {}, numberedDocs(5, 2))).has_value());
  EXPECT_EQ(ids(readAll(*store, ackedOf(*store, "elasticsearch"))),
            (std::vector<std::string>{"d5", "d6"}));
}

TEST(SqliteStateStore, AckedSeqNeverMovesBackwards) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("file").has_value());
  ASSERT_TRUE(store->registerOutput("other").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 5))).has_value());
  const auto docs = readAll(*store);
  ASSERT_TRUE(
      store->acknowledge("file", docs[3].seq, FileCheckpoint{"/out/a.ndjson", 400}).has_value());
  // A stale acknowledgement changes nothing, not even the checkpoint.
  ASSERT_TRUE(
      store->acknowledge("file", docs[1].seq, FileCheckpoint{"/out/a.ndjson", 200}).has_value());
  EXPECT_EQ(ackedOf(*store, "file"), docs[3].seq);
  auto checkpoint = store->fileCheckpoint("file");
  ASSERT_TRUE(checkpoint.has_value() && checkpoint->has_value());
  EXPECT_EQ((*checkpoint)->offset, 400u);
}

TEST(SqliteStateStore, AcknowledgingPastTheLastDocumentIsRefused) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("file").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 2))).has_value());
  const auto docs = readAll(*store);
  auto status = store->acknowledge("file", docs[1].seq + 1, std::nullopt);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ackedOf(*store, "file"), 0);
  EXPECT_EQ(readAll(*store).size(), 2u);
}

TEST(SqliteStateStore, ANewOutputReceivesOnlyWhatIsCommittedAfterItIsRegistered) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  // The first start: outputs are registered before any source commits, so a first output
  // receives everything.
  ASSERT_TRUE(store->registerOutput("a").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 3))).has_value());
  auto waiting = readAll(*store, ackedOf(*store, "a"));
  EXPECT_EQ(ids(waiting), (std::vector<std::string>{"d0", "d1", "d2"}));

  // "a" acknowledges one; an output added now starts after the newest document: the two
  // still waiting are "a"'s, not "b"'s.
  ASSERT_TRUE(store->acknowledge("a", waiting[0].seq, std::nullopt).has_value());
  ASSERT_TRUE(store->registerOutput("b").has_value());
  EXPECT_EQ(ackedOf(*store, "b"), waiting[2].seq);
  EXPECT_TRUE(readAll(*store, ackedOf(*store, "b")).empty());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(3, 1))).has_value());
  EXPECT_EQ(ids(readAll(*store, ackedOf(*store, "b"))), (std::vector<std::string>{"d3"}));
  EXPECT_EQ(ids(readAll(*store, ackedOf(*store, "a"))),
            (std::vector<std::string>{"d1", "d2", "d3"}));

  // Once "a" has them too, d1 and d2 leave the outbox ("b" never waited for them).
  ASSERT_TRUE(store->acknowledge("a", waiting[2].seq, std::nullopt).has_value());
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"d3"}));
  EXPECT_EQ(sizeOf(*store).documents, 1u);
}

// Regression: an output removed from the configuration and added again started with the
// oldest document waiting in the outbox (for the other outputs), documents it may have had
// long ago, while the log said it "starts with the documents collected from then on".
TEST(SqliteStateStore, AnOutputForgottenAndRegisteredAgainReceivesOnlyWhatIsCommittedAfter) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("file").has_value());
  ASSERT_TRUE(store->registerOutput("elasticsearch").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 5))).has_value());
  const auto docs = readAll(*store);
  ASSERT_EQ(docs.size(), 5u);
  ASSERT_TRUE(store->acknowledge("elasticsearch", docs[4].seq, std::nullopt).has_value());
  ASSERT_TRUE(store->acknowledge("file", docs[1].seq, std::nullopt).has_value());
  ASSERT_EQ(ids(readAll(*store)), (std::vector<std::string>{"d2", "d3", "d4"}));  // for "file"

  ASSERT_TRUE(store->unregisterOutput("elasticsearch").has_value());
  ASSERT_TRUE(store->registerOutput("elasticsearch").has_value());
  EXPECT_TRUE(readAll(*store, ackedOf(*store, "elasticsearch")).empty());
  ASSERT_TRUE(store->commitPage(page("s", "w2", {}, numberedDocs(5, 2))).has_value());
  EXPECT_EQ(ids(readAll(*store, ackedOf(*store, "elasticsearch"))),
            (std::vector<std::string>{"d5", "d6"}));
  // "file" still receives everything it had not acknowledged.
  EXPECT_EQ(ids(readAll(*store, ackedOf(*store, "file"))),
            (std::vector<std::string>{"d2", "d3", "d4", "d5", "d6"}));
}

// Documents nobody waits for any more leave the outbox: an output registered later would
// not receive them, and they would count against max_spool_bytes for ever.
TEST(SqliteStateStore, ForgettingTheLastOutputEmptiesTheOutbox) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("stdout").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 3))).has_value());
  ASSERT_TRUE(store->unregisterOutput("stdout").has_value());
  EXPECT_TRUE(readAll(*store).empty());
  EXPECT_EQ(sizeOf(*store).documents, 0u);
  EXPECT_EQ(sizeOf(*store).bytes, 0u);
  ASSERT_TRUE(store->registerOutput("stdout").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(3, 1))).has_value());
  EXPECT_EQ(ids(readAll(*store, ackedOf(*store, "stdout"))), (std::vector<std::string>{"d3"}));
}

TEST(SqliteStateStore, SeqsAreNeverReusedAfterTheOutboxEmpties) {
  TempDir tmp;
  std::int64_t last = 0;
  {
    auto store = openOrDie(tmp.dir());
    ASSERT_TRUE(store->registerOutput("a").has_value());
    ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 3))).has_value());
    last = readAll(*store).back().seq;
    ASSERT_TRUE(store->acknowledge("a", last, std::nullopt).has_value());
    EXPECT_TRUE(readAll(*store).empty());
  }
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(3, 1))).has_value());
  const auto docs = readAll(*store, ackedOf(*store, "a"));
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_GT(docs[0].seq, last);
}

TEST(SqliteStateStore, FileCheckpointRoundTrip) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("file").has_value());
  auto checkpoint = store->fileCheckpoint("file");
  ASSERT_TRUE(checkpoint.has_value());
  EXPECT_FALSE(checkpoint->has_value());

  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 4))).has_value());
  const auto docs = readAll(*store);
  ASSERT_TRUE(store
                  ->acknowledge("file", docs[1].seq,
                                FileCheckpoint{"/out/mde-20240101.ndjson", 1234567890123ULL})
                  .has_value());
  checkpoint = store->fileCheckpoint("file");
  ASSERT_TRUE(checkpoint.has_value() && checkpoint->has_value());
  EXPECT_EQ((*checkpoint)->file, "/out/mde-20240101.ndjson");
  EXPECT_EQ((*checkpoint)->offset, 1234567890123ULL);

  // Without a checkpoint the recorded one stays; with one at the same seq it is replaced
  // (a rotation to a new, empty file).
  ASSERT_TRUE(store->acknowledge("file", docs[2].seq, std::nullopt).has_value());
  checkpoint = store->fileCheckpoint("file");
  ASSERT_TRUE(checkpoint.has_value() && checkpoint->has_value());
  EXPECT_EQ((*checkpoint)->offset, 1234567890123ULL);
  ASSERT_TRUE(
      store->acknowledge("file", docs[2].seq, FileCheckpoint{"/out/b.ndjson", 0}).has_value());
  checkpoint = store->fileCheckpoint("file");
  ASSERT_TRUE(checkpoint.has_value() && checkpoint->has_value());
  EXPECT_EQ((*checkpoint)->file, "/out/b.ndjson");
  EXPECT_EQ((*checkpoint)->offset, 0u);
}

TEST(SqliteStateStore, AcknowledgeIsAtomic) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("file").has_value());
  ASSERT_TRUE(store->commitPage(page("s", "w", {}, numberedDocs(0, 4))).has_value());
  const auto docs = readAll(*store);
  injectFailure(tmp.dir(), "DELETE", "outbox", "1");
  auto status = store->acknowledge("file", docs[1].seq, FileCheckpoint{"/f", 99});
  ASSERT_FALSE(status.has_value());
  EXPECT_NE(status.error().message().find("acknowledge output 'file'"), std::string::npos);
  EXPECT_EQ(ackedOf(*store, "file"), 0);
  auto checkpoint = store->fileCheckpoint("file");
  ASSERT_TRUE(checkpoint.has_value());
  EXPECT_FALSE(checkpoint->has_value());
  EXPECT_EQ(readAll(*store).size(), 4u);
  EXPECT_EQ(sizeOf(*store).documents, 4u);
}

TEST(SqliteStateStore, ReopeningSeesEverythingCommitted) {
  TempDir tmp;
  std::vector<OutboxDocument> before;
  {
    auto store = openOrDie(tmp.dir());
    ASSERT_TRUE(store->registerOutput("file").has_value());
    ASSERT_TRUE(store->registerOutput("es").has_value());
    ASSERT_TRUE(store->commitPage(page("s", "w9", {kV1, kV2}, numberedDocs(0, 4))).has_value());
    ASSERT_TRUE(store->commitPage(fileLines("f", "/in.ndjson", {42, 4096}, numberedDocs(4, 2)))
                    .has_value());
    before = readAll(*store);
    ASSERT_TRUE(
        store->acknowledge("file", before[5].seq, FileCheckpoint{"/out.ndjson", 600}).has_value());
    ASSERT_TRUE(store->acknowledge("es", before[1].seq, std::nullopt).has_value());
    ASSERT_TRUE(store->pruneSeen("s", kV2.last_update_time).has_value());
  }
  auto store = openOrDie(tmp.dir());
  EXPECT_EQ(watermarkOf(*store, "s"), "w9");
  EXPECT_EQ(seenOf(*store, "s", {kV1, kV2}), (std::vector<bool>{false, true}));
  auto pos = store->filePosition("f", "/in.ndjson");
  ASSERT_TRUE(pos.has_value() && pos->has_value());
  EXPECT_EQ((*pos)->inode, 42u);
  EXPECT_EQ((*pos)->offset, 4096u);
  EXPECT_EQ(ackedOf(*store, "file"), before[5].seq);
  EXPECT_EQ(ackedOf(*store, "es"), before[1].seq);
  auto checkpoint = store->fileCheckpoint("file");
  ASSERT_TRUE(checkpoint.has_value() && checkpoint->has_value());
  EXPECT_EQ((*checkpoint)->file, "/out.ndjson");
  EXPECT_EQ((*checkpoint)->offset, 600u);
  EXPECT_EQ(ids(readAll(*store)), (std::vector<std::string>{"d2", "d3", "d4", "d5"}));
  EXPECT_EQ(sizeOf(*store).documents, 4u);
  EXPECT_EQ(sizeOf(*store).bytes, 40u);
}

TEST(SqliteStateStore, IsSafeToUseFromSeveralThreads) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("out").has_value());
  constexpr int kThreads = 4;
  constexpr int kPages = 25;
  constexpr int kDocs = 8;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      const std::string source = "s" + std::to_string(t);
      for (int p = 0; p < kPages; ++p) {
        std::vector<Version> versions;
        for (int d = 0; d < kDocs; ++d) versions.push_back({std::to_string(p * kDocs + d), "t"});
        EXPECT_TRUE(store
                        ->commitPage(page(source, std::to_string(p), versions,
                                          numberedDocs(p * kDocs, kDocs)))
                        .has_value());
        auto seen = store->seen(source, versions);
        EXPECT_TRUE(seen.has_value());
        EXPECT_TRUE(store->outboxSize().has_value());
      }
    });
  }
  // A reader that acknowledges as it goes, like an output.
  std::thread output([&store] {
    std::int64_t acked = 0;
    for (int i = 0; i < 200; ++i) {
      auto docs = store->readOutbox(acked, 16, 1 << 20);
      ASSERT_TRUE(docs.has_value());
      if (docs->empty()) continue;
      acked = docs->back().seq;
      ASSERT_TRUE(store->acknowledge("out", acked, std::nullopt).has_value());
    }
  });
  for (auto& thread : threads) thread.join();
  output.join();
  const auto left = readAll(*store, ackedOf(*store, "out"));
  const auto size = sizeOf(*store);
  EXPECT_EQ(size.documents, left.size());
  EXPECT_EQ(size.bytes, left.size() * 10);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(watermarkOf(*store, "s" + std::to_string(t)), std::to_string(kPages - 1));
  }
}

// Not a benchmark and no timing is asserted: it logs how long a full-size page (10,000
// documents of about 3 KB) takes to commit, read and acknowledge.
TEST(SqliteStateStore, CommitsAFullSizePage) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(store->registerOutput("out").has_value());
  constexpr int kDocs = 10000;
  PageCommit big;
  big.source = "mde";
  big.watermark = "2024-01-01T00:00:00.0000000Z";
  std::string body(3000, 'a');
  for (int i = 0; i < kDocs; ++i) {
    const std::string n = std::to_string(i);
    body.replace(0, n.size(), n);
    big.documents.push_back(doc("id-" + n, body));
    big.seen.push_back({"da" + n, "2024-01-01T00:00:00." + n + "Z"});
  }
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  ASSERT_TRUE(store->commitPage(big).has_value());
  const auto t1 = Clock::now();
  auto docs = store->readOutbox(0, kDocs, std::numeric_limits<std::size_t>::max());
  const auto t2 = Clock::now();
  ASSERT_TRUE(docs.has_value());
  ASSERT_EQ(docs->size(), static_cast<std::size_t>(kDocs));
  ASSERT_TRUE(store->acknowledge("out", docs->back().seq, std::nullopt).has_value());
  const auto t3 = Clock::now();
  EXPECT_EQ(sizeOf(*store).documents, 0u);
  auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::printf("[ timing ] 10,000 x 3 KB page: commit %.1f ms, read %.1f ms, acknowledge %.1f ms\n",
              ms(t1 - t0), ms(t2 - t1), ms(t3 - t2));
}

TEST(SqliteStateStore, BackfillJobsAreRecordedListedAndUpdated) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_NE(store, nullptr);
  BackfillJob job;
  job.source = "a";
  job.since = "2026-11-01T00:00:00.0000000Z";
  job.until = "2026-11-03T00:00:00.0000000Z";
  auto first = store->addBackfill(job);
  ASSERT_TRUE(first) << first.error().message();
  job.source = "b";
  auto second = store->addBackfill(job);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_GT(*second, *first);

  auto all = store->backfills("");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  auto of_a = store->backfills("a");
  ASSERT_TRUE(of_a);
  ASSERT_EQ(of_a->size(), 1u);
  BackfillJob a = of_a->front();
  EXPECT_EQ(a.id, *first);
  EXPECT_EQ(a.position, job.since);  // starts at since
  EXPECT_EQ(a.state, "queued");
  EXPECT_EQ(a.updated.size(), 20u) << a.updated;  // 2026-11-28T06:00:00Z

  a.position = "2026-11-01T06:00:00.0000000Z";
  a.state = "running";
  a.slices = 1;
  a.alerts = 1200;
  a.documents = 3400;
  a.message = "HTTP 503 from the API";
  ASSERT_TRUE(store->updateBackfill(a));
  // Another process (another connection) sees the change.
  store.reset();
  auto again = openOrDie(tmp.dir());
  auto read = again->backfills("a");
  ASSERT_TRUE(read);
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ(read->front().position, a.position);
  EXPECT_EQ(read->front().state, "running");
  EXPECT_EQ(read->front().slices, 1u);
  EXPECT_EQ(read->front().alerts, 1200u);
  EXPECT_EQ(read->front().documents, 3400u);
  EXPECT_EQ(read->front().message, "HTTP 503 from the API");
}

// Rows left in the staging table (behind the interface).
std::string stagedRows(const fs::path& dir) {
  auto db = rawDb(dir);
  // Rows of pages still staged (those of committed pages keep their page number).
  auto n =
      db.queryText("SELECT COUNT(*) FROM outbox WHERE page IN (SELECT page FROM staged_pages)");
  EXPECT_TRUE(n.has_value());
  return n ? *n : "";
}

std::vector<std::string> outboxIds(StateStore& store) {
  auto docs = store.readOutbox(0, 1000, 1 << 30);
  EXPECT_TRUE(docs.has_value());
  std::vector<std::string> ids;
  if (!docs) return ids;
  std::int64_t last = 0;
  for (const auto& d : *docs) {
    EXPECT_GT(d.seq, last);
    last = d.seq;
    ids.push_back(d.source + "/" + d.id);
  }
  return ids;
}

PageCommit stagedCommit(const std::string& source, std::int64_t page, std::uint64_t staged,
                        std::vector<NewDocument> documents) {
  PageCommit commit;
  commit.source = source;
  commit.watermark = "w-" + source;
  commit.staged_page = page;
  commit.staged_documents = staged;
  commit.documents = std::move(documents);
  return commit;
}

// Staged documents are written into the outbox where they were staged, but count only with
// their page's commit: until then no reader goes past the first of them (documents committed
// after it wait too), and the outbox's running size leaves them out.
TEST(SqliteStateStore, StagedDocumentsAreReadOnlyAfterTheirPagesCommit) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->stages());
  ASSERT_TRUE(store->registerOutput("es"));
  ASSERT_TRUE(store->commitPage(stagedCommit("s0", 0, 0, {doc("z0", "z")})));
  auto a = store->beginStagedPage("sa");
  auto b = store->beginStagedPage("sb");
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  ASSERT_TRUE(store->stage(*a, {doc("a1", "x"), doc("a2", "xx")}));
  ASSERT_TRUE(store->stage(*b, {doc("b1", "y")}));
  ASSERT_TRUE(store->stage(*a, {doc("a3", "xxx")}));
  ASSERT_TRUE(store->commitPage(stagedCommit("s1", 0, 0, {doc("z1", "z")})));
  // Staged, not committed: not read, and z1 (committed after a1) waits behind them.
  EXPECT_EQ(outboxIds(*store), (std::vector<std::string>{"s0/z0"}));
  EXPECT_EQ(store->outboxSize().value().documents, 2u);
  EXPECT_EQ(stagedRows(tmp.dir()), "4");
  // b commits: a still bounds the readers.
  ASSERT_TRUE(store->commitPages({stagedCommit("sb", *b, 1, {})}));
  EXPECT_EQ(outboxIds(*store), (std::vector<std::string>{"s0/z0"}));
  ASSERT_TRUE(store->commitPages({stagedCommit("sa", *a, 3, {doc("a4", "xxxx")})}));
  EXPECT_EQ(outboxIds(*store), (std::vector<std::string>{"s0/z0", "sa/a1", "sa/a2", "sb/b1",
                                                         "sa/a3", "s1/z1", "sa/a4"}));
  const auto size = store->outboxSize().value();
  EXPECT_EQ(size.documents, 7u);
  EXPECT_EQ(size.bytes, 1u + 1 + 2 + 1 + 3 + 1 + 4);
  EXPECT_EQ(store->watermark("sa").value(), std::optional<std::string>("w-sa"));
  EXPECT_EQ(stagedRows(tmp.dir()), "0");
}

// While a page is staged its rows are nobody's: acknowledgements cannot pass them, no
// output (with none registered, the outbox empties itself) deletes them, and an output
// registered meanwhile starts below them, so it receives them once the page commits.
TEST(SqliteStateStore, AStagedPageIsNeitherDeletedNorSkipped) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->commitPage(stagedCommit("s0", 0, 0, {doc("z0", "z")})));
  auto a = store->beginStagedPage("sa");
  ASSERT_TRUE(a);
  ASSERT_TRUE(store->stage(*a, {doc("a1", "x"), doc("a2", "x")}));
  // No output: committed documents leave at once, staged ones stay.
  ASSERT_TRUE(store->commitPage(stagedCommit("s1", 0, 0, {doc("z1", "z")})));
  EXPECT_EQ(stagedRows(tmp.dir()), "2");
  ASSERT_TRUE(store->registerOutput("late"));
  auto acked = store->ackedSeq("late");
  ASSERT_TRUE(acked);
  ASSERT_TRUE(store->commitPage(stagedCommit("sa", *a, 2, {})));
  auto docs = store->readOutbox(*acked, 100, 1 << 20);
  ASSERT_TRUE(docs);
  std::vector<std::string> ids;
  for (const auto& d : *docs) ids.push_back(d.source + "/" + d.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"sa/a1", "sa/a2", "s1/z1"}));
  ASSERT_TRUE(store->acknowledge("late", docs->back().seq, std::nullopt));
  EXPECT_EQ(store->outboxSize().value().documents, 0u);
}

// A store with the output "es" registered and a page of source "sa" being staged.
class StagedPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = openOrDie(tmp_.dir());
    ASSERT_NE(store_, nullptr);
    ASSERT_TRUE(store_->registerOutput("es"));
    auto page = store_->beginStagedPage("sa");
    ASSERT_TRUE(page);
    page_ = *page;
  }

  TempDir tmp_;
  std::unique_ptr<StateStore> store_;
  std::int64_t page_ = 0;
};

// A page whose staged rows are not what its commit says does not commit, and its group with
// it; a dropped page leaves nothing, and its commit is refused.
TEST_F(StagedPageTest, APageMissingStagedDocumentsDoesNotCommit) {
  ASSERT_TRUE(store_->stage(page_, {doc("a1", "x"), doc("a2", "x")}));
  auto failed = store_->commitPages(
      {stagedCommit("s0", 0, 0, {doc("z1", "z")}), stagedCommit("sa", page_, 3, {})});
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message().find("staged 2 documents of source 'sa', not 3"),
            std::string::npos)
      << failed.error().message();
  EXPECT_TRUE(outboxIds(*store_).empty());
  EXPECT_EQ(store_->watermark("s0").value(), std::nullopt);
  ASSERT_TRUE(store_->dropStaged(page_));
  EXPECT_EQ(stagedRows(tmp_.dir()), "0");
  EXPECT_FALSE(store_->commitPage(stagedCommit("sa", page_, 2, {})));
  EXPECT_EQ(store_->outboxSize().value().documents, 0u);
  // Nothing of the dropped page bounds the readers any more.
  ASSERT_TRUE(store_->commitPage(stagedCommit("s0", 0, 0, {doc("z2", "z")})));
  EXPECT_EQ(outboxIds(*store_), (std::vector<std::string>{"s0/z2"}));
}

// Another process opening the state directory drops what was staged (as for a process that
// stopped): the page being staged here then refuses to commit without its documents.
TEST_F(StagedPageTest, APageWhoseStagedRowsAnotherOpenDroppedDoesNotCommit) {
  ASSERT_TRUE(store_->stage(page_, {doc("a1", "x")}));
  {
    auto other = openOrDie(tmp_.dir());
    ASSERT_NE(other, nullptr);
  }
  EXPECT_EQ(stagedRows(tmp_.dir()), "0");
  auto failed = store_->commitPage(stagedCommit("sa", page_, 1, {}));
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message().find("were dropped"), std::string::npos)
      << failed.error().message();
  EXPECT_EQ(store_->watermark("sa").value(), std::nullopt);
  ASSERT_TRUE(store_->dropStaged(page_));
  EXPECT_TRUE(outboxIds(*store_).empty());
  EXPECT_EQ(store_->outboxSize().value().documents, 0u);
}

// A command beside the running collector (`mdecollect backfill`) opens the store keeping
// what is staged: the collector's page commits whole.
TEST_F(StagedPageTest, AnOpenThatKeepsStagedRowsLetsTheStagedPageCommit) {
  ASSERT_TRUE(store_->stage(page_, {doc("a1", "x")}));
  {
    auto other = openSqliteStore(tmp_.dir().string(), StagedOnOpen::kKeep);
    ASSERT_TRUE(other) << other.error().message();
    BackfillJob job;
    job.source = "sa";
    job.since = job.position = "2026-01-01T00:00:00Z";
    job.until = "2026-01-02T00:00:00Z";
    auto queued = (*other)->addBackfill(job);
    ASSERT_TRUE(queued) << queued.error().message();
  }
  EXPECT_EQ(stagedRows(tmp_.dir()), "1");
  ASSERT_TRUE(store_->stage(page_, {doc("a2", "x")}));
  ASSERT_TRUE(store_->commitPage(stagedCommit("sa", page_, 2, {})));
  EXPECT_EQ(outboxIds(*store_), (std::vector<std::string>{"sa/a1", "sa/a2"}));
}

// The process stops after staging and before the commit: the store opened again holds
// nothing of the page, and the page's commit (had it come) would be refused.
TEST(SqliteStateStore, DocumentsStagedBeforeAStopAreGoneWhenTheStoreOpensAgain) {
  TempDir tmp;
  std::int64_t page = 0;
  {
    auto store = openOrDie(tmp.dir());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->registerOutput("es"));
    ASSERT_TRUE(store->commitPage(stagedCommit("s0", 0, 0, {doc("z0", "z")})));
    auto a = store->beginStagedPage("sa");
    ASSERT_TRUE(a);
    page = *a;
    ASSERT_TRUE(store->stage(page, {doc("a1", "x"), doc("a2", "x")}));
    ASSERT_TRUE(store->commitPage(stagedCommit("s1", 0, 0, {doc("z1", "z")})));
    EXPECT_EQ(stagedRows(tmp.dir()), "2");
  }
  auto store = openOrDie(tmp.dir());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(stagedRows(tmp.dir()), "0");
  EXPECT_FALSE(store->commitPage(stagedCommit("sa", page, 2, {})));
  EXPECT_EQ(outboxIds(*store), (std::vector<std::string>{"s0/z0", "s1/z1"}));
  EXPECT_EQ(store->outboxSize().value().documents, 2u);
  // Page ids are not reused after the reopen.
  auto next = store->beginStagedPage("sa");
  ASSERT_TRUE(next);
  EXPECT_GT(*next, page);
}

TEST(RunLock, OneHolderPerStateDirectory) {
  TempDir tmp;
  auto first = RunLock::tryAcquire(tmp.path());
  ASSERT_TRUE(first) << first.error().message();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ(RunLock::holder(tmp.path()), static_cast<long>(::getpid()));
  // flock locks belong to the open file: a second open is refused, even in this process.
  auto second = RunLock::tryAcquire(tmp.path());
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_FALSE(second->has_value());
  first->reset();  // released
  auto third = RunLock::tryAcquire(tmp.path());
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->has_value());
  // A state directory that is a file: an error naming the lock file.
  std::ofstream(tmp.path() + "/file") << "x";
  auto bad = RunLock::tryAcquire(tmp.path() + "/file");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("file/run.lock"), std::string::npos)
      << bad.error().message();
}

TEST(SqliteStateStore, CollectedSinceIsKeptOnceAWatermarkExists) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_NE(store, nullptr);
  auto none = store->collectedSince("a");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  // Polls without a watermark yet move it (each starts its range later).
  ASSERT_TRUE(store->setCollectedSince("a", "2026-11-01T00:00:00.0000000Z"));
  ASSERT_TRUE(store->setCollectedSince("a", "2026-11-01T00:05:00.0000000Z"));
  PageCommit page;
  page.source = "a";
  page.watermark = "2026-11-02T00:00:00.0000000Z";
  ASSERT_TRUE(store->commitPage(page));
  // Then it stays.
  ASSERT_TRUE(store->setCollectedSince("a", "2026-11-02T00:00:00.0000000Z"));
  auto since = store->collectedSince("a");
  ASSERT_TRUE(since);
  ASSERT_TRUE(since->has_value());
  EXPECT_EQ(**since, "2026-11-01T00:05:00.0000000Z");
  auto wm = store->watermark("a");
  ASSERT_TRUE(wm);
  EXPECT_EQ(wm->value_or(""), "2026-11-02T00:00:00.0000000Z");
}

// The seen-set's floor: pruning records the oldest time it still covers, which only rises,
// so that a poll can be kept from reading below it (late_arrival_window raised later).
TEST(SqliteStateStore, PruningRecordsWhatTheSeenSetStillCovers) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  auto since = store->seenSince("s");
  ASSERT_TRUE(since);
  EXPECT_FALSE(since->has_value());
  ASSERT_TRUE(store->commitPage(page("s", "2024-01-01T00:00:03.0000000Z", {kV1, kV2, kV3}, {})));
  ASSERT_TRUE(store->pruneSeen("s", "2024-01-01T00:00:02.0000000Z"));
  EXPECT_EQ(seenOf(*store, "s", {kV1, kV2, kV3}), (std::vector<bool>{false, true, true}));
  since = store->seenSince("s");
  ASSERT_TRUE(since && since->has_value());
  EXPECT_EQ(**since, "2024-01-01T00:00:02.0000000Z");
  // An earlier bound (a shorter overlap now) does not lower it.
  ASSERT_TRUE(store->pruneSeen("s", "2024-01-01T00:00:01.0000000Z"));
  since = store->seenSince("s");
  ASSERT_TRUE(since && since->has_value());
  EXPECT_EQ(**since, "2024-01-01T00:00:02.0000000Z");
  // Other sources are not touched; the watermark stays.
  since = store->seenSince("t");
  ASSERT_TRUE(since);
  EXPECT_FALSE(since->has_value());
  EXPECT_EQ(watermarkOf(*store, "s").value_or(""), "2024-01-01T00:00:03.0000000Z");
}

// Alerts with no readable id and time are kept by their documents' ids, stored with the time
// they were delivered and looked up with no time: any time matches.
TEST(SqliteStateStore, AVersionWithoutATimeMatchesItsIdAtAnyTime) {
  TempDir tmp;
  auto store = openOrDie(tmp.dir());
  ASSERT_TRUE(
      store->commitPage(page("s", std::nullopt, {{"!doc1", "2024-01-01T00:00:05.0000000Z"}}, {})));
  EXPECT_EQ(seenOf(*store, "s",
                   {{"!doc1", ""}, {"!doc2", ""}, {"!doc1", "2024-01-01T00:00:06.0000000Z"}}),
            (std::vector<bool>{true, false, false}));
  // Kept until the overlap has passed the time it was delivered.
  ASSERT_TRUE(store->pruneSeen("s", "2024-01-01T00:00:05.0000000Z"));
  EXPECT_EQ(seenOf(*store, "s", {{"!doc1", ""}}), (std::vector<bool>{true}));
  ASSERT_TRUE(store->pruneSeen("s", "2024-01-01T00:00:06.0000000Z"));
  EXPECT_EQ(seenOf(*store, "s", {{"!doc1", ""}}), (std::vector<bool>{false}));
}

}  // namespace
}  // namespace mdec::state
