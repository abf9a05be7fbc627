// The SQLite StateStore: <state_dir>/state.db, WAL, synchronous=FULL (an acknowledged commit
// survives power loss), one connection per store guarded by one mutex.
//
// Crash safety rests on SQLite's transactions: every method that changes more than one row
// does so inside one BEGIN IMMEDIATE … COMMIT, rolled back on any failure.
//
// Schema (version 1, kept in meta.schema_version):
//   source_state(source, watermark)
//   seen(source, alert_id, last_update_time)              the seen-set, pruned by time
//   outbox(seq AUTOINCREMENT, source, doc_id, bytes, body)
//   outbox_stats(documents, bytes)                        one row: the outbox's running size
//   outputs(name, acked_seq, file, file_offset)
//   file_positions(source, path, inode, read_offset)
//   staged_pages(page, source, first_seq)                 large pages being staged (schema 5)
// A large page's documents are written into the outbox while it is mapped (outbox.page
// names it; NULL for every other row), before its commit: they are the rows from its
// first_seq on with its page number. Until the page commits (its staged_pages row goes in
// the commit's transaction) no reader goes past the first seq of a page still staged, and
// a page abandoned, or left by a process that stopped, has its rows deleted.
// seq is AUTOINCREMENT so a seq is never reused, even after the outbox emptied: an output's
// acked_seq stays a valid "everything up to here" mark forever.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "mdecollect/core/private_file.h"
#include "mdecollect/state/state_store.h"
#include "state/sqlite_handle.h"

namespace mdec::state {
namespace {

using sqlite::Database;
using sqlite::ScopedReset;
using sqlite::Statement;
using sqlite::Transaction;

constexpr std::int64_t kSchemaVersion = 5;

// migrations[v] takes a database from schema v to v + 1.
constexpr const char* kMigrations[] = {
    // 0 → 1
    R"sql(
CREATE TABLE IF NOT EXISTS meta(
  key TEXT PRIMARY KEY NOT NULL,
  value
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_state(
  source TEXT PRIMARY KEY NOT NULL,
  watermark TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen(
  source TEXT NOT NULL,
  alert_id TEXT NOT NULL,
  last_update_time TEXT NOT NULL,
  PRIMARY KEY(source, alert_id, last_update_time)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_time ON seen(source, last_update_time);
CREATE TABLE IF NOT EXISTS outbox(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL,
  doc_id TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_stats(
  id INTEGER PRIMARY KEY CHECK (id = 0),
  documents INTEGER NOT NULL,
  bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO outbox_stats(id, documents, bytes) VALUES(0, 0, 0);
CREATE TABLE IF NOT EXISTS outputs(
  name TEXT PRIMARY KEY NOT NULL,
  acked_seq INTEGER NOT NULL,
  file TEXT,
  file_offset INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_positions(
  source TEXT NOT NULL,
  path TEXT NOT NULL,
  inode INTEGER NOT NULL,
  read_offset INTEGER NOT NULL,
  PRIMARY KEY(source, path)
) WITHOUT ROWID;
)sql",
    // 1 → 2: backfill jobs
    R"sql(
CREATE TABLE IF NOT EXISTS backfills(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL,
  since TEXT NOT NULL,
  until TEXT NOT NULL,
  position TEXT NOT NULL,
  state TEXT NOT NULL,
  slices INTEGER NOT NULL DEFAULT 0,
  alerts INTEGER NOT NULL DEFAULT 0,
  documents INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  updated TEXT NOT NULL DEFAULT ''
);
ALTER TABLE source_state ADD COLUMN collected_since TEXT;
)sql",
    // 2 → 3: the oldest time the seen-set still covers
    R"sql(
ALTER TABLE source_state ADD COLUMN seen_since TEXT;
)sql",
    // 3 → 4: documents of large pages, staged while the page is mapped (n keeps their order)
    R"sql(
CREATE TABLE IF NOT EXISTS staged(
  n INTEGER PRIMARY KEY,
  page INTEGER NOT NULL,
  doc_id TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS staged_by_page ON staged(page);
)sql",
    // 4 → 5: large pages are staged in the outbox itself (no second copy at commit)
    R"sql(
DROP TABLE IF EXISTS staged;
ALTER TABLE outbox ADD COLUMN page INTEGER;
CREATE TABLE IF NOT EXISTS staged_pages(
  page INTEGER PRIMARY KEY,
  source TEXT NOT NULL,
  first_seq INTEGER
);
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

// The seq every outbox row so far has been below or at (0 before the first): AUTOINCREMENT
// keeps it in sqlite_sequence.
#define MDEC_MAX_SEQ_SQL "(SELECT seq FROM sqlite_sequence WHERE name = 'outbox')"

// Every statement the store runs, prepared once at open.
struct Statements {
  Statement get_watermark;
  Statement set_watermark;
  Statement seen_lookup;
  Statement seen_insert;
  Statement seen_prune;
  Statement outbox_insert;
  Statement outbox_read;
  Statement outbox_range;
  Statement outbox_delete;
  Statement stats_add;
  Statement stats_get;
  Statement file_position_get;
  Statement file_position_set;
  Statement output_register;
  Statement output_acked;
  Statement output_set_acked;
  Statement output_set_checkpoint;
  Statement output_checkpoint;
  Statement outputs_min_acked;
  Statement max_seq;
  Statement backfill_add;
  Statement backfill_list;
  Statement backfill_update;
  Statement collected_since_get;
  Statement outputs_list;
  Statement output_delete;
  Statement collected_since_set;
  Statement seen_since_get;
  Statement seen_since_set;
  Statement staged_next_page;
  Statement staged_open;
  Statement staged_first;
  Statement staged_insert;
  Statement staged_delete;
  Statement staged_close;
};

struct StatementSpec {
  Statement Statements::*member;
  const char* sql;
};

const StatementSpec kStatementSpecs[] = {
    {&Statements::get_watermark, "SELECT watermark FROM source_state WHERE source = ?1"},
    {&Statements::set_watermark,
     "INSERT INTO source_state(source, watermark) VALUES(?1, ?2) "
     "ON CONFLICT(source) DO UPDATE SET watermark = excluded.watermark"},
    {&Statements::seen_lookup,
     "SELECT 1 FROM seen WHERE source = ?1 AND alert_id = ?2 AND (last_update_time = ?3 OR "
     "?3 = '') LIMIT 1"},
    {&Statements::seen_insert,
     "INSERT OR IGNORE INTO seen(source, alert_id, last_update_time) VALUES(?1, ?2, ?3)"},
    {&Statements::seen_prune, "DELETE FROM seen WHERE source = ?1 AND last_update_time < ?2"},
    {&Statements::outbox_insert,
     "INSERT INTO outbox(source, doc_id, bytes, body) VALUES(?1, ?2, ?3, ?4)"},
    // ?3: the first seq of the pages still staged (rows from there on are not readable yet).
    {&Statements::outbox_read,
     "SELECT seq, bytes, source, doc_id, body FROM outbox WHERE seq > ?1 AND seq < ?3 "
     "ORDER BY seq LIMIT ?2"},
    {&Statements::outbox_range,
     "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM outbox WHERE seq <= ?1"},
    {&Statements::outbox_delete, "DELETE FROM outbox WHERE seq <= ?1"},
    {&Statements::stats_add,
     "UPDATE outbox_stats SET documents = documents + ?1, bytes = bytes + ?2 WHERE id = 0"},
    {&Statements::stats_get, "SELECT documents, bytes FROM outbox_stats WHERE id = 0"},
    {&Statements::file_position_get,
     "SELECT inode, read_offset FROM file_positions WHERE source = ?1 AND path = ?2"},
    {&Statements::file_position_set,
     "INSERT INTO file_positions(source, path, inode, read_offset) VALUES(?1, ?2, ?3, ?4) "
     "ON CONFLICT(source, path) DO UPDATE SET inode = excluded.inode, "
     "read_offset = excluded.read_offset"},
    // A new output starts after the newest document ever stored: it receives the documents
    // committed from then on (state_store.h says why); ?2, below the pages still staged.
    {&Statements::output_register,
     "INSERT INTO outputs(name, acked_seq) VALUES(?1, MIN(COALESCE(" MDEC_MAX_SEQ_SQL
     ", 0), ?2)) ON CONFLICT(name) DO NOTHING"},
    {&Statements::output_acked, "SELECT acked_seq FROM outputs WHERE name = ?1"},
    {&Statements::output_set_acked, "UPDATE outputs SET acked_seq = ?2 WHERE name = ?1"},
    {&Statements::output_set_checkpoint,
     "UPDATE outputs SET file = ?2, file_offset = ?3 WHERE name = ?1"},
    {&Statements::output_checkpoint, "SELECT file, file_offset FROM outputs WHERE name = ?1"},
    {&Statements::outputs_min_acked, "SELECT MIN(acked_seq) FROM outputs"},
    {&Statements::max_seq, "SELECT COALESCE(" MDEC_MAX_SEQ_SQL ", 0)"},
    {&Statements::backfill_add,
     "INSERT INTO backfills(source, since, until, position, state, message, updated) "
     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) RETURNING id"},
    {&Statements::backfill_list,
     "SELECT id, source, since, until, position, state, slices, alerts, documents, message, "
     "updated FROM backfills WHERE ?1 = '' OR source = ?1 ORDER BY id"},
    {&Statements::outputs_list, "SELECT name FROM outputs ORDER BY name"},
    {&Statements::output_delete, "DELETE FROM outputs WHERE name = ?1"},
    {&Statements::seen_since_get, "SELECT seen_since FROM source_state WHERE source = ?1"},
    {&Statements::seen_since_set,
     "INSERT INTO source_state(source, watermark, seen_since) VALUES(?1, NULL, ?2) "
     "ON CONFLICT(source) DO UPDATE SET seen_since = "
     "max(COALESCE(source_state.seen_since, ''), excluded.seen_since)"},
    {&Statements::collected_since_get,
     "SELECT collected_since FROM source_state WHERE source = ?1"},
    {&Statements::collected_since_set,
     "INSERT INTO source_state(source, watermark, collected_since) VALUES(?1, NULL, ?2) "
     "ON CONFLICT(source) DO UPDATE SET collected_since = excluded.collected_since "
     "WHERE source_state.watermark IS NULL"},
    {&Statements::staged_next_page,
     "INSERT INTO meta(key, value) VALUES('last_staged_page', 1) "
     "ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value"},
    {&Statements::staged_open, "INSERT INTO staged_pages(page, source) VALUES(?1, ?2)"},
    {&Statements::staged_first, "UPDATE staged_pages SET first_seq = ?2 WHERE page = ?1"},
    {&Statements::staged_insert,
     "INSERT INTO outbox(source, doc_id, bytes, body, page) VALUES(?1, ?2, ?3, ?4, ?5)"},
    {&Statements::staged_delete, "DELETE FROM outbox WHERE seq >= ?2 AND page = ?1"},
    {&Statements::staged_close, "DELETE FROM staged_pages WHERE page = ?1"},
    {&Statements::backfill_update,
     "UPDATE backfills SET position = ?2, state = ?3, slices = ?4, alerts = ?5, documents = "
     "?6, message = ?7, updated = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?1"},
};

#undef MDEC_MAX_SEQ_SQL

std::string quoted(const std::string& text) { return "'" + text + "'"; }

Error withWhat(Error error, const std::string& what) {
  error.withContext(what);
  return error;
}

// Unsigned values (inodes, offsets) are stored as their 64-bit pattern in SQLite's signed
// integers; the conversions are modular both ways, so every value round-trips.
std::int64_t toStored(std::uint64_t value) { return static_cast<std::int64_t>(value); }
std::uint64_t fromStored(std::int64_t value) { return static_cast<std::uint64_t>(value); }

// A write transaction that does not wait for the disk (synchronous = NORMAL: in WAL mode the
// commit is not synced, checkpoints still are). Used only for staged documents: what it
// writes counts only once a later synchronous = FULL commit (a page's) moves it into the
// outbox, and that commit's sync of the write-ahead log covers the frames appended before
// it too. The connection is back to FULL when it ends, whatever happened.
class Relaxed {
 public:
  static Result<Relaxed> begin(Database& db) {
    if (auto s = db.exec("PRAGMA synchronous = NORMAL"); !s) return std::move(s.error());
    Relaxed relaxed(db);
    auto txn = Transaction::begin(db, Transaction::Kind::kWrite);
    if (!txn) return std::move(txn.error());
    relaxed.txn_.emplace(std::move(*txn));
    return relaxed;
  }
  Relaxed(Relaxed&& other) noexcept
      : db_(std::exchange(other.db_, nullptr)), txn_(std::move(other.txn_)) {}
  Relaxed(const Relaxed&) = delete;
  Relaxed& operator=(const Relaxed&) = delete;
  Relaxed& operator=(Relaxed&&) = delete;
  ~Relaxed() {
    txn_.reset();  // rolled back unless ended
    if (db_ != nullptr) static_cast<void>(db_->exec("PRAGMA synchronous = FULL"));
  }
  Status end() {
    auto status = txn_->commit();
    txn_.reset();
    if (auto s = db_->exec("PRAGMA synchronous = FULL"); !s && status) status = s;
    db_ = nullptr;
    return status;
  }

 private:
  explicit Relaxed(Database& db) : db_(&db) {}
  Database* db_;
  std::optional<Transaction> txn_;
};

class SqliteStateStore final : public StateStore {
 public:
  explicit SqliteStateStore(Database db) : db_(std::move(db)) {}
  ~SqliteStateStore() override {
    // Statements first, then the connection (members are destroyed in reverse order anyway;
    // this only makes the order explicit).
    st_ = Statements{};
  }

  Status prepareAll() {
    for (const auto& spec : kStatementSpecs) {
      auto stmt = db_.prepare(spec.sql);
      if (!stmt) return withWhat(std::move(stmt.error()), std::string("prepare ") + spec.sql);
      st_.*spec.member = std::move(*stmt);
    }
    return okStatus();
  }

  // ---- sources ----

  Result<std::optional<std::string>> watermark(const std::string& source) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.get_watermark;
    ScopedReset reset(stmt);
    auto row = stmt.bindRef(1, source).step();
    if (!row) return withWhat(std::move(row.error()), "read watermark of source " + quoted(source));
    if (!*row || stmt.columnIsNull(0)) return std::optional<std::string>();
    return std::optional<std::string>(std::string(stmt.columnText(0)));
  }

  Result<std::vector<bool>> seen(const std::string& source,
                                 const std::vector<Version>& versions) override {
    std::lock_guard lock(mu_);
    auto answer = seenLocked(source, versions);
    if (!answer) {
      return withWhat(std::move(answer.error()),
                      "look up seen versions of source " + quoted(source));
    }
    return answer;
  }

  Status pruneSeen(const std::string& source, const std::string& before) override {
    std::lock_guard lock(mu_);
    auto status = pruneSeenLocked(source, before);
    if (!status) {
      return withWhat(std::move(status.error()), "prune seen versions of source " + quoted(source));
    }
    return status;
  }

  Result<std::optional<std::string>> seenSince(const std::string& source) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.seen_since_get;
    ScopedReset reset(stmt);
    stmt.bind(1, std::string_view(source));
    auto row = stmt.step();
    if (!row) {
      return withWhat(std::move(row.error()),
                      "read what the seen-set of source " + quoted(source) + " covers");
    }
    if (!*row || stmt.columnIsNull(0) || stmt.columnText(0).empty()) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(std::string(stmt.columnText(0)));
  }

  Status commitPage(const PageCommit& page) override {
    std::lock_guard lock(mu_);
    retryAbandonedLocked();
    auto status = commitPageLocked(page);
    if (!status) return withWhat(std::move(status.error()), whatCommits(page));
    return status;
  }

  // Group commit: every page in one transaction, one fsync.
  Status commitPages(const std::vector<PageCommit>& pages) override {
    if (pages.size() == 1) return commitPage(pages.front());
    std::lock_guard lock(mu_);
    retryAbandonedLocked();
    auto txn = Transaction::begin(db_, Transaction::Kind::kWrite);
    if (!txn) return withWhat(std::move(txn.error()), "commit a group of pages");
    for (const PageCommit& page : pages) {
      if (auto status = applyPageLocked(page); !status) {
        return withWhat(std::move(status.error()), whatCommits(page) + " (in a group of " +
                                                       std::to_string(pages.size()) + " pages)");
      }
    }
    if (auto status = txn->commit(); !status) {
      return withWhat(std::move(status.error()),
                      "commit a group of " + std::to_string(pages.size()) + " pages");
    }
    for (const PageCommit& page : pages) closeStaged(page);
    return okStatus();
  }

  // ---- staged documents ----

  bool stages() const override { return true; }

  Result<std::int64_t> beginStagedPage(const std::string& source) override {
    std::lock_guard lock(mu_);
    retryAbandonedLocked();
    auto page = [&]() -> Result<std::int64_t> {
      auto relaxed = Relaxed::begin(db_);
      if (!relaxed) return std::move(relaxed.error());
      Statement& stmt = st_.staged_next_page;
      ScopedReset reset(stmt);
      auto row = stmt.step();
      if (!row) return std::move(row.error());
      if (!*row) return Error(ErrorCode::kInternal, "no page id returned");
      const std::int64_t id = stmt.columnInt64(0);
      stmt.reset();
      {
        Statement& open = st_.staged_open;
        ScopedReset reset_open(open);
        if (auto s = open.bind(1, id).bindRef(2, source).run(); !s) return std::move(s.error());
      }
      if (auto s = relaxed->end(); !s) return std::move(s.error());
      return id;
    }();
    if (!page) return withWhat(std::move(page.error()), "begin a staged page");
    staged_.emplace(*page, StagedPage{source});
    return page;
  }

  // Straight into the outbox, marked with the page: no copy at commit.
  Status stage(std::int64_t page, const std::vector<NewDocument>& documents) override {
    std::lock_guard lock(mu_);
    auto open = staged_.find(page);
    if (open == staged_.end() || open->second.abandoned) {
      return Error(ErrorCode::kInternal, "stage documents of page " + std::to_string(page) +
                                             ": the page is not being staged");
    }
    StagedPage& staged = open->second;
    std::int64_t first_seq = staged.first_seq;
    std::uint64_t bytes = 0;
    auto status = [&]() -> Status {
      auto relaxed = Relaxed::begin(db_);
      if (!relaxed) return std::move(relaxed.error());
      Statement& insert = st_.staged_insert;
      ScopedReset reset(insert);
      insert.bindRef(1, staged.source).bind(5, page);
      for (const NewDocument& doc : documents) {
        insert.reset();
        auto s = insert.bindRef(2, doc.id)
                     .bind(3, static_cast<std::int64_t>(doc.body.size()))
                     .bindRef(4, doc.body)
                     .run();
        if (!s) return s;
        bytes += doc.body.size();
        if (first_seq == 0) first_seq = sqlite3_last_insert_rowid(db_.get());
      }
      insert.reset();
      if (staged.first_seq == 0 && first_seq != 0) {
        Statement& stmt = st_.staged_first;
        ScopedReset reset_first(stmt);
        if (auto s = stmt.bind(1, page).bind(2, first_seq).run(); !s) return s;
      }
      return relaxed->end();
    }();
    if (!status) {
      return withWhat(std::move(status.error()), "stage " + std::to_string(documents.size()) +
                                                     " documents of page " + std::to_string(page));
    }
    staged.first_seq = first_seq;
    staged.documents += documents.size();
    staged.bytes += bytes;
    return status;
  }

  Status dropStaged(std::int64_t page) override {
    std::lock_guard lock(mu_);
    auto open = staged_.find(page);
    if (open == staged_.end()) return okStatus();
    auto status = dropStagedLocked(page, open->second.first_seq);
    if (!status) {
      // Its rows stay unreadable (the page still bounds the readers) and are dropped again
      // at the next page staged or committed, or at the next open.
      open->second.abandoned = true;
      return withWhat(std::move(status.error()),
                      "drop staged documents of page " + std::to_string(page));
    }
    staged_.erase(open);
    return status;
  }

  // Staged documents of pages never committed (the process stopped first) are forgotten.
  Status dropAllStaged() {
    return db_.exec(
        "DELETE FROM outbox WHERE seq >= (SELECT MIN(first_seq) FROM staged_pages) "
        "AND page IN (SELECT page FROM staged_pages); "
        "DELETE FROM staged_pages;");
  }

  // ---- file sources ----

  Result<std::optional<FilePosition>> filePosition(const std::string& source,
                                                   const std::string& path) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.file_position_get;
    ScopedReset reset(stmt);
    auto row = stmt.bindRef(1, source).bindRef(2, path).step();
    if (!row) {
      return withWhat(std::move(row.error()),
                      "read position of file " + quoted(path) + " for source " + quoted(source));
    }
    if (!*row) return std::optional<FilePosition>();
    FilePosition position;
    position.inode = fromStored(stmt.columnInt64(0));
    position.offset = fromStored(stmt.columnInt64(1));
    return std::optional<FilePosition>(position);
  }

  // ---- outbox and outputs ----

  Status registerOutput(const std::string& output) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.output_register;
    ScopedReset reset(stmt);
    auto status = stmt.bindRef(1, output).bind(2, readLimit() - 1).run();
    if (!status) return withWhat(std::move(status.error()), "register output " + quoted(output));
    return status;
  }

  Result<std::vector<OutboxDocument>> readOutbox(std::int64_t after_seq, std::size_t max_documents,
                                                 std::size_t max_bytes) override {
    std::lock_guard lock(mu_);
    std::vector<OutboxDocument> documents;
    if (max_documents == 0) return documents;
    const auto limit = static_cast<std::int64_t>(
        std::min<std::size_t>(max_documents, std::numeric_limits<std::int64_t>::max()));
    Statement& stmt = st_.outbox_read;
    ScopedReset reset(stmt);
    stmt.bind(1, after_seq).bind(2, limit).bind(3, readLimit());
    std::size_t total = 0;
    for (;;) {
      auto row = stmt.step();
      if (!row) {
        return withWhat(std::move(row.error()),
                        "read outbox after seq " + std::to_string(after_seq));
      }
      if (!*row) break;
      const auto bytes = static_cast<std::size_t>(stmt.columnInt64(1));
      if (!documents.empty() && (bytes > max_bytes || total > max_bytes - bytes)) break;
      total += bytes;
      OutboxDocument& doc = documents.emplace_back();
      doc.seq = stmt.columnInt64(0);
      doc.source = std::string(stmt.columnText(2));
      doc.id = std::string(stmt.columnText(3));
      doc.body = std::string(stmt.columnText(4));
    }
    return documents;
  }

  Result<std::int64_t> ackedSeq(const std::string& output) override {
    std::lock_guard lock(mu_);
    auto acked = ackedSeqLocked(output);
    if (!acked) {
      return withWhat(std::move(acked.error()),
                      "read acknowledged seq of output " + quoted(output));
    }
    return acked;
  }

  Status acknowledge(const std::string& output, std::int64_t up_to_seq,
                     const std::optional<FileCheckpoint>& checkpoint) override {
    std::lock_guard lock(mu_);
    auto status = acknowledgeLocked(output, up_to_seq, checkpoint);
    if (!status) {
      return withWhat(std::move(status.error()), "acknowledge output " + quoted(output) +
                                                     " up to seq " + std::to_string(up_to_seq));
    }
    return status;
  }

  Result<std::optional<FileCheckpoint>> fileCheckpoint(const std::string& output) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.output_checkpoint;
    ScopedReset reset(stmt);
    auto row = stmt.bindRef(1, output).step();
    if (!row) {
      return withWhat(std::move(row.error()), "read file checkpoint of output " + quoted(output));
    }
    if (!*row || stmt.columnIsNull(0)) return std::optional<FileCheckpoint>();
    FileCheckpoint checkpoint;
    checkpoint.file = std::string(stmt.columnText(0));
    checkpoint.offset = fromStored(stmt.columnInt64(1));
    return std::optional<FileCheckpoint>(std::move(checkpoint));
  }

  Result<std::vector<std::string>> registeredOutputs() override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.outputs_list;
    ScopedReset reset(stmt);
    std::vector<std::string> names;
    for (;;) {
      auto row = stmt.step();
      if (!row) return withWhat(std::move(row.error()), "list outputs");
      if (!*row) break;
      names.emplace_back(stmt.columnText(0));
    }
    return names;
  }

  Status unregisterOutput(const std::string& output) override {
    std::lock_guard lock(mu_);
    auto status = [&]() -> Status {
      auto txn = Transaction::begin(db_, Transaction::Kind::kWrite);
      if (!txn) return std::move(txn.error());
      {
        Statement& stmt = st_.output_delete;
        ScopedReset reset(stmt);
        if (auto s = stmt.bindRef(1, output).run(); !s) return s;
      }
      if (auto s = dropAcknowledged(); !s) return s;
      return txn->commit();
    }();
    if (!status) return withWhat(std::move(status.error()), "forget output " + quoted(output));
    return status;
  }

  Result<std::int64_t> addBackfill(const BackfillJob& job) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.backfill_add;
    ScopedReset reset(stmt);
    stmt.bind(1, std::string_view(job.source))
        .bind(2, std::string_view(job.since))
        .bind(3, std::string_view(job.until))
        .bind(4, std::string_view(job.position.empty() ? job.since : job.position))
        .bind(5, std::string_view(job.state))
        .bind(6, std::string_view(job.message));
    auto row = stmt.step();
    if (!row) return withWhat(std::move(row.error()), "record a backfill job");
    if (!*row) return Error(ErrorCode::kInternal, "record a backfill job: no id returned");
    return stmt.columnInt64(0);
  }

  Result<std::vector<BackfillJob>> backfills(const std::string& source) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.backfill_list;
    ScopedReset reset(stmt);
    stmt.bind(1, std::string_view(source));
    std::vector<BackfillJob> jobs;
    for (;;) {
      auto row = stmt.step();
      if (!row) return withWhat(std::move(row.error()), "read backfill jobs");
      if (!*row) break;
      BackfillJob j;
      j.id = stmt.columnInt64(0);
      j.source = std::string(stmt.columnText(1));
      j.since = std::string(stmt.columnText(2));
      j.until = std::string(stmt.columnText(3));
      j.position = std::string(stmt.columnText(4));
      j.state = std::string(stmt.columnText(5));
      j.slices = fromStored(stmt.columnInt64(6));
      j.alerts = fromStored(stmt.columnInt64(7));
      j.documents = fromStored(stmt.columnInt64(8));
      j.message = std::string(stmt.columnText(9));
      j.updated = std::string(stmt.columnText(10));
      jobs.push_back(std::move(j));
    }
    return jobs;
  }

  Status updateBackfill(const BackfillJob& job) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.backfill_update;
    ScopedReset reset(stmt);
    auto status = stmt.bind(1, job.id)
                      .bind(2, std::string_view(job.position))
                      .bind(3, std::string_view(job.state))
                      .bind(4, toStored(job.slices))
                      .bind(5, toStored(job.alerts))
                      .bind(6, toStored(job.documents))
                      .bind(7, std::string_view(job.message))
                      .run();
    if (!status)
      return withWhat(std::move(status.error()), "update backfill job " + std::to_string(job.id));
    return status;
  }

  Result<std::optional<std::string>> collectedSince(const std::string& source) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.collected_since_get;
    ScopedReset reset(stmt);
    stmt.bind(1, std::string_view(source));
    auto row = stmt.step();
    if (!row)
      return withWhat(std::move(row.error()), "read where source " + quoted(source) + " began");
    if (!*row || stmt.columnText(0).empty()) return std::optional<std::string>();
    return std::optional<std::string>(std::string(stmt.columnText(0)));
  }

  Status setCollectedSince(const std::string& source, const std::string& from) override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.collected_since_set;
    ScopedReset reset(stmt);
    auto status = stmt.bind(1, std::string_view(source)).bind(2, std::string_view(from)).run();
    if (!status) {
      return withWhat(std::move(status.error()),
                      "record where source " + quoted(source) + " began");
    }
    return status;
  }

  Result<OutboxSize> outboxSize() override {
    std::lock_guard lock(mu_);
    Statement& stmt = st_.stats_get;
    ScopedReset reset(stmt);
    auto row = stmt.step();
    if (!row) return withWhat(std::move(row.error()), "read outbox size");
    if (!*row) return Error(ErrorCode::kInternal, "read outbox size: outbox_stats has no row");
    OutboxSize size;
    size.documents = fromStored(stmt.columnInt64(0));
    size.bytes = fromStored(stmt.columnInt64(1));
    return size;
  }

 private:
  // Forgets the versions before `before` and records that the seen-set covers no earlier
  // ones, in one transaction.
  Status pruneSeenLocked(const std::string& source, const std::string& before) {
    auto txn = Transaction::begin(db_, Transaction::Kind::kWrite);
    if (!txn) return std::move(txn.error());
    {
      Statement& stmt = st_.seen_prune;
      ScopedReset reset(stmt);
      if (auto s = stmt.bindRef(1, source).bindRef(2, before).run(); !s) return s;
    }
    {
      Statement& stmt = st_.seen_since_set;
      ScopedReset reset(stmt);
      if (auto s = stmt.bindRef(1, source).bindRef(2, before).run(); !s) return s;
    }
    return txn->commit();
  }

  Result<std::vector<bool>> seenLocked(const std::string& source,
                                       const std::vector<Version>& versions) {
    std::vector<bool> answer;
    answer.reserve(versions.size());
    if (versions.empty()) return answer;
    // One snapshot for all lookups (and one lock acquisition instead of one per lookup).
    auto txn = Transaction::begin(db_, Transaction::Kind::kRead);
    if (!txn) return std::move(txn.error());
    Statement& stmt = st_.seen_lookup;
    ScopedReset reset(stmt);
    stmt.bindRef(1, source);
    for (const Version& version : versions) {
      stmt.reset();
      auto row = stmt.bindRef(2, version.alert_id).bindRef(3, version.last_update_time).step();
      if (!row) return std::move(row.error());
      answer.push_back(*row);
    }
    stmt.reset();
    auto status = txn->commit();
    if (!status) return std::move(status.error());
    return answer;
  }

  // Appends `documents` to the outbox and adds them to the running size. Inside a write
  // transaction.
  Status appendDocuments(const std::string& source, const std::vector<NewDocument>& documents) {
    if (documents.empty()) return okStatus();
    Statement& insert = st_.outbox_insert;
    ScopedReset reset(insert);
    insert.bindRef(1, source);
    std::uint64_t bytes = 0;
    for (const NewDocument& doc : documents) {
      insert.reset();
      auto status = insert.bindRef(2, doc.id)
                        .bind(3, static_cast<std::int64_t>(doc.body.size()))
                        .bindRef(4, doc.body)
                        .run();
      if (!status) return status;
      bytes += doc.body.size();
    }
    return addToStats(static_cast<std::int64_t>(documents.size()), toStored(bytes));
  }

  Status addToStats(std::int64_t documents, std::int64_t bytes) {
    Statement& stmt = st_.stats_add;
    ScopedReset reset(stmt);
    return stmt.bind(1, documents).bind(2, bytes).run();
  }

  static std::string whatCommits(const PageCommit& page) {
    return page.file_position ? "commit lines of file " + quoted(page.file_path) + " for source " +
                                    quoted(page.source)
                              : "commit page for source " + quoted(page.source);
  }

  // A page's staged documents become part of the outbox: counted, and its staged_pages row
  // gone (its rows are readable once the transaction commits and closeStaged has run).
  // Inside the caller's transaction.
  Status commitStaged(const PageCommit& page) {
    auto open = staged_.find(page.staged_page);
    if (open == staged_.end() || open->second.abandoned) {
      return Error(ErrorCode::kInternal,
                   "page " + std::to_string(page.staged_page) + " is not being staged");
    }
    const StagedPage& staged = open->second;
    if (staged.documents != page.staged_documents || staged.source != page.source) {
      return Error(ErrorCode::kInternal, "page " + std::to_string(page.staged_page) + " staged " +
                                             std::to_string(staged.documents) +
                                             " documents of source " + quoted(staged.source) +
                                             ", not " + std::to_string(page.staged_documents) +
                                             " of " + quoted(page.source));
    }
    Statement& stmt = st_.staged_close;
    ScopedReset reset(stmt);
    if (auto s = stmt.bind(1, page.staged_page).run(); !s) return s;
    // No row: another process opened the store meanwhile and dropped what this one staged
    // (as it does for a process that stopped): the page must not commit without them.
    if (sqlite3_changes(db_.get()) != 1) {
      return Error(ErrorCode::kIo, "page " + std::to_string(page.staged_page) +
                                       ": its staged documents were dropped (the state "
                                       "directory was opened by another process)");
    }
    return addToStats(static_cast<std::int64_t>(staged.documents), toStored(staged.bytes));
  }

  // After the transaction that committed `page` succeeded.
  void closeStaged(const PageCommit& page) {
    if (page.staged_page != 0) staged_.erase(page.staged_page);
  }

  Status dropStagedLocked(std::int64_t page, std::int64_t first_seq) {
    auto relaxed = Relaxed::begin(db_);
    if (!relaxed) return std::move(relaxed.error());
    if (first_seq != 0) {
      Statement& stmt = st_.staged_delete;
      ScopedReset reset(stmt);
      if (auto s = stmt.bind(1, page).bind(2, first_seq).run(); !s) return s;
    }
    {
      Statement& stmt = st_.staged_close;
      ScopedReset reset(stmt);
      if (auto s = stmt.bind(1, page).run(); !s) return s;
    }
    return relaxed->end();
  }

  // Pages whose drop failed: dropped again (a failure leaves them for the next try).
  void retryAbandonedLocked() {
    for (auto it = staged_.begin(); it != staged_.end();) {
      if (it->second.abandoned && dropStagedLocked(it->first, it->second.first_seq)) {
        it = staged_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Readers stop below this seq: the first of the pages still staged.
  std::int64_t readLimit() const {
    std::int64_t limit = std::numeric_limits<std::int64_t>::max();
    for (const auto& [page, staged] : staged_) {
      if (staged.first_seq != 0) limit = std::min(limit, staged.first_seq);
    }
    return limit;
  }

  Status commitPageLocked(const PageCommit& page) {
    auto txn = Transaction::begin(db_, Transaction::Kind::kWrite);
    if (!txn) return std::move(txn.error());
    if (auto status = applyPageLocked(page); !status) return status;
    if (auto status = txn->commit(); !status) return status;
    closeStaged(page);
    return okStatus();
  }

  // A page's changes, inside the caller's transaction.
  Status applyPageLocked(const PageCommit& page) {
    if (page.staged_page != 0) {
      if (auto status = commitStaged(page); !status) return status;
    }
    if (auto status = appendDocuments(page.source, page.documents); !status) return status;
    if (!page.seen.empty()) {
      Statement& insert = st_.seen_insert;
      ScopedReset reset(insert);
      insert.bindRef(1, page.source);
      for (const Version& version : page.seen) {
        insert.reset();
        auto status =
            insert.bindRef(2, version.alert_id).bindRef(3, version.last_update_time).run();
        if (!status) return status;
      }
    }
    if (page.watermark) {
      Statement& stmt = st_.set_watermark;
      ScopedReset reset(stmt);
      if (auto status = stmt.bindRef(1, page.source).bindRef(2, *page.watermark).run(); !status) {
        return status;
      }
    }
    if (page.file_position) {
      Statement& stmt = st_.file_position_set;
      ScopedReset reset(stmt);
      auto status = stmt.bindRef(1, page.source)
                        .bindRef(2, page.file_path)
                        .bind(3, toStored(page.file_position->inode))
                        .bind(4, toStored(page.file_position->offset))
                        .run();
      if (!status) return status;
    }
    if (!page.direct.empty()) {
      // The direct outputs hold every document so far (they were caught up before the
      // first direct page, and every page since went to them).
      auto max_seq = queryInt(st_.max_seq);
      if (!max_seq) return std::move(max_seq.error());
      for (const DirectAck& ack : page.direct) {
        if (auto status = setAcknowledged(ack.output, max_seq->value_or(0), ack.checkpoint);
            !status) {
          return status;
        }
      }
      if (auto status = dropAcknowledged(); !status) return status;
    }
    return okStatus();
  }

  // A one-row, one-integer query (NULL reads as nullopt; no row is an error).
  Result<std::optional<std::int64_t>> queryInt(Statement& stmt) {
    ScopedReset reset(stmt);
    auto row = stmt.step();
    if (!row) return std::move(row.error());
    if (!*row || stmt.columnIsNull(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(stmt.columnInt64(0));
  }

  Result<std::int64_t> ackedSeqLocked(const std::string& output) {
    Statement& stmt = st_.output_acked;
    stmt.bindRef(1, output);
    auto acked = queryInt(stmt);
    if (!acked) return std::move(acked.error());
    if (!*acked) {
      return Error(ErrorCode::kNotFound, "output " + quoted(output) + " is not registered");
    }
    return **acked;
  }

  Status acknowledgeLocked(const std::string& output, std::int64_t up_to_seq,
                           const std::optional<FileCheckpoint>& checkpoint) {
    auto txn = Transaction::begin(db_, Transaction::Kind::kWrite);
    if (!txn) return std::move(txn.error());

    auto acked = ackedSeqLocked(output);
    if (!acked) return std::move(acked.error());
    // Older than what is recorded: a stale acknowledgement. Its checkpoint would describe a
    // file position before the recorded one, so it is ignored as a whole.
    if (up_to_seq < *acked) return okStatus();

    auto max_seq = queryInt(st_.max_seq);
    if (!max_seq) return std::move(max_seq.error());
    if (up_to_seq > max_seq->value_or(0)) {
      // Acknowledging documents that do not exist yet would make this output skip them.
      return Error(ErrorCode::kInvalidArgument, "seq " + std::to_string(up_to_seq) +
                                                    " is past the last document (" +
                                                    std::to_string(max_seq->value_or(0)) + ")");
    }

    if (auto status = setAcknowledged(output, up_to_seq, checkpoint); !status) return status;
    if (auto status = dropAcknowledged(); !status) return status;
    return txn->commit();
  }

  Status setAcknowledged(const std::string& output, std::int64_t up_to_seq,
                         const std::optional<FileCheckpoint>& checkpoint) {
    {
      Statement& stmt = st_.output_set_acked;
      ScopedReset reset(stmt);
      if (auto status = stmt.bindRef(1, output).bind(2, up_to_seq).run(); !status) return status;
    }
    if (checkpoint) {
      Statement& stmt = st_.output_set_checkpoint;
      ScopedReset reset(stmt);
      auto status = stmt.bindRef(1, output)
                        .bindRef(2, checkpoint->file)
                        .bind(3, toStored(checkpoint->offset))
                        .run();
      if (!status) return status;
    }
    return okStatus();
  }

  // Documents every output has acknowledged leave the outbox; with no output left (the
  // last one was forgotten), all of them: no output registered later would receive them.
  Status dropAcknowledged() {
    auto min_acked = queryInt(st_.outputs_min_acked);
    if (!min_acked) return std::move(min_acked.error());
    if (!*min_acked) {
      min_acked = queryInt(st_.max_seq);
      if (!min_acked) return std::move(min_acked.error());
    }
    if (!*min_acked) return okStatus();
    // Never a page still staged: its rows are not the outbox's yet.
    **min_acked = std::min(**min_acked, readLimit() - 1);
    std::int64_t gone_documents = 0;
    std::int64_t gone_bytes = 0;
    {
      Statement& stmt = st_.outbox_range;
      ScopedReset reset(stmt);
      auto row = stmt.bind(1, **min_acked).step();
      if (!row) return std::move(row.error());
      if (*row) {
        gone_documents = stmt.columnInt64(0);
        gone_bytes = stmt.columnInt64(1);
      }
    }
    if (gone_documents == 0) return okStatus();
    Statement& stmt = st_.outbox_delete;
    ScopedReset reset(stmt);
    if (auto status = stmt.bind(1, **min_acked).run(); !status) return status;
    return addToStats(-gone_documents, -gone_bytes);
  }

  // A page being staged (beginStagedPage until it commits or is dropped).
  struct StagedPage {
    std::string source;
    std::int64_t first_seq = 0;  // its first row's seq (0: none yet)
    std::uint64_t documents = 0;
    std::uint64_t bytes = 0;
    bool abandoned = false;  // dropped, but its rows could not be deleted yet
  };

  std::mutex mu_;
  Database db_;
  Statements st_;
  std::map<std::int64_t, StagedPage> staged_;

  // ---- moving a source between state directories: defined at the end of this file ----
 public:
  Result<std::optional<SourceState>> exportSource(const std::string& source) override;
  Status importSource(const SourceState& state, bool replace) override;
  Status forgetSource(const std::string& source) override;

 private:
  Result<std::optional<SourceState>> exportSourceLocked(const std::string& source);
  Status importSourceLocked(const SourceState& state, bool replace);
  Status forgetSourceLocked(const std::string& source);
  Result<bool> keepsSourceLocked(const std::string& source);
};

// Reads the schema version (0 for a database without the meta table) and migrates it to
// kSchemaVersion, all in one write transaction; refuses a newer schema.
Status migrate(Database& db) {
  auto txn = Transaction::begin(db, Transaction::Kind::kWrite);
  if (!txn) return std::move(txn.error());
  std::int64_t version = 0;
  {
    auto has_meta =
        db.queryText("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
    if (!has_meta) return std::move(has_meta.error());
    if (!has_meta->empty()) {
      auto stmt = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'");
      if (!stmt) return std::move(stmt.error());
      auto row = stmt->step();
      if (!row) return std::move(row.error());
      if (*row) version = stmt->columnInt64(0);
    }
  }
  if (version > kSchemaVersion) {
    return Error(ErrorCode::kInvalidArgument,
                 "state.db was written by a newer mdecollect (schema " + std::to_string(version) +
                     "); this version understands up to " + std::to_string(kSchemaVersion));
  }
  if (version == kSchemaVersion) return txn->commit();
  for (std::int64_t v = std::max<std::int64_t>(version, 0); v < kSchemaVersion; ++v) {
    auto status = db.exec(kMigrations[static_cast<std::size_t>(v)]);
    if (!status) {
      return withWhat(std::move(status.error()),
                      "migrate schema " + std::to_string(v) + " to " + std::to_string(v + 1));
    }
  }
  auto stmt = db.prepare(
      "INSERT INTO meta(key, value) VALUES('schema_version', ?1) "
      "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  if (!stmt) return std::move(stmt.error());
  if (auto status = stmt->bind(1, kSchemaVersion).run(); !status) return status;
  return txn->commit();
}

Status configure(Database& db) {
  // busy_timeout first: switching to WAL needs a lock another connection may hold.
  // page_size only takes effect on a new database (before WAL is on): 16 KiB pages hold
  // five ~3 KB documents where 4 KiB pages hold one, which halves to thirds the time to
  // commit and to delete a full page of documents.
  if (auto status = db.exec("PRAGMA busy_timeout = 10000; PRAGMA page_size = 16384"); !status) {
    return status;
  }
  auto mode = db.queryText("PRAGMA journal_mode = WAL");
  if (!mode) return std::move(mode.error());
  if (*mode != "wal") {
    return Error(ErrorCode::kIo, "cannot use write-ahead logging (journal_mode is '" + *mode +
                                     "'); is state_dir on a local file system?");
  }
  // FULL: in WAL mode, NORMAL may lose the last commits on power loss.
  return db.exec(
      "PRAGMA synchronous = FULL;"
      "PRAGMA foreign_keys = ON;"
      // Debian builds SQLite with SECURE_DELETE: every deleted outbox row zeroed and every
      // freed page written, through the WAL and again at its checkpoint. FAST zeroes only
      // what is written anyway: delivering 136,000 documents from the outbox wrote 945 MB
      // (WAL and checkpoint), now 409 MB. What a deleted row leaves in a free page stays in this
      // 0600 file until the page is reused; the state holds alert documents and positions, no
      // secret.
      "PRAGMA secure_delete = FAST;"
      "PRAGMA cache_size = -16384;"              // KiB: a 30 MB page commits without spilling
      "PRAGMA journal_size_limit = 67108864;");  // the WAL shrinks back to 64 MiB
}

// state.db holds alert bodies (the outbox): it is 0600 whatever the umask. A new database is
// created here, empty, so that SQLite opens it instead of creating it with the umask; SQLite
// gives the -wal and -shm files it creates the database file's permissions. Files of an
// older install (0644; a -wal and -shm are left behind by a crash) are tightened by path,
// never by opening and closing them: closing any descriptor of a file releases every POSIX
// lock this process holds on it, and another connection in this process may hold SQLite's.
Status makeDatabasePrivate(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    if (auto status = core::restrictPermissions(path + suffix); !status) return status;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return okStatus();
  if (errno != ENOENT) {
    return Error(ErrorCode::kIo, "stat " + path + ": " + std::strerror(errno));
  }
  auto file = core::openPrivateFile(path, O_RDWR | O_CREAT);
  if (!file) return std::move(file.error());
  return okStatus();
}

}  // namespace

Result<std::int64_t> StateStore::addBackfill(const BackfillJob&) {
  return Error(ErrorCode::kInternal, "this state store keeps no backfill jobs");
}
Result<std::vector<BackfillJob>> StateStore::backfills(const std::string&) {
  return Error(ErrorCode::kInternal, "this state store keeps no backfill jobs");
}
Status StateStore::updateBackfill(const BackfillJob&) {
  return Error(ErrorCode::kInternal, "this state store keeps no backfill jobs");
}
Result<std::vector<std::string>> StateStore::registeredOutputs() {
  return std::vector<std::string>();
}

Status StateStore::unregisterOutput(const std::string&) { return okStatus(); }
Result<std::int64_t> StateStore::beginStagedPage(const std::string& /*source*/) {
  return Error(ErrorCode::kInternal, "this state store stages no documents");
}
Status StateStore::stage(std::int64_t, const std::vector<NewDocument>&) {
  return Error(ErrorCode::kInternal, "this state store stages no documents");
}
Status StateStore::dropStaged(std::int64_t) {
  return Error(ErrorCode::kInternal, "this state store stages no documents");
}
Result<std::optional<std::string>> StateStore::seenSince(const std::string&) {
  return std::optional<std::string>();
}
Result<std::optional<std::string>> StateStore::collectedSince(const std::string&) {
  return std::optional<std::string>();
}
Status StateStore::setCollectedSince(const std::string&, const std::string&) { return okStatus(); }

Result<std::unique_ptr<StateStore>> openSqliteStore(const std::string& state_dir,
                                                    StagedOnOpen staged) {
  if (state_dir.empty()) return Error(ErrorCode::kInvalidArgument, "state_dir is empty");
  const std::filesystem::path dir(state_dir);
  const std::string path = (dir / "state.db").string();
  const std::string what = "open state store " + quoted(path);

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Error(ErrorCode::kIo, "create state_dir " + quoted(state_dir) + ": " + ec.message());
  }

  if (auto status = makeDatabasePrivate(path); !status) {
    return withWhat(std::move(status.error()), what);
  }
  // NOMUTEX: the store serialises every use of its connection with its own mutex.
  auto db = Database::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
  if (!db) return withWhat(std::move(db.error()), what);
  if (auto status = configure(*db); !status) return withWhat(std::move(status.error()), what);
  if (auto status = migrate(*db); !status) return withWhat(std::move(status.error()), what);

  auto store = std::make_unique<SqliteStateStore>(std::move(*db));
  if (auto status = store->prepareAll(); !status) {
    return withWhat(std::move(status.error()), what);
  }
  if (staged == StagedOnOpen::kKeep) return std::unique_ptr<StateStore>(std::move(store));
  if (auto status = store->dropAllStaged(); !status) {
    return withWhat(std::move(status.error()), what + ": drop documents staged before a stop");
  }
  return std::unique_ptr<StateStore>(std::move(store));
}

// ---- Moving a source between state directories (`mdecollect state export` / `import`).
// Statements prepared per call: these run once per source moved, never on the hot path.

Result<std::optional<SourceState>> StateStore::exportSource(const std::string&) {
  return Error(ErrorCode::kInternal, "this state store cannot export a source");
}
Status StateStore::importSource(const SourceState&, bool) {
  return Error(ErrorCode::kInternal, "this state store cannot import a source");
}
Status StateStore::forgetSource(const std::string&) {
  return Error(ErrorCode::kInternal, "this state store cannot forget a source");
}

namespace {

// The tables that hold something of one source, each with a `source` column.
constexpr const char* kSourceTables[] = {"source_state", "seen", "file_positions", "backfills"};

Statement& bindOptional(Statement& stmt, int index, const std::optional<std::string>& text) {
  return text ? stmt.bind(index, std::string_view(*text)) : stmt.bindNull(index);
}

std::optional<std::string> optionalText(const Statement& stmt, int col) {
  if (stmt.columnIsNull(col)) return std::nullopt;
  return std::string(stmt.columnText(col));
}

// Runs `sql` with ?1 = source and calls `row` for each row.
template <class Row>
Status eachRow(Database& db, const char* sql, const std::string& source, Row row) {
  auto stmt = db.prepare(sql);
  if (!stmt) return std::move(stmt.error());
  stmt->bind(1, std::string_view(source));
  for (;;) {
    auto more = stmt->step();
    if (!more) return std::move(more.error());
    if (!*more) return okStatus();
    row(*stmt);
  }
}

}  // namespace

Result<std::optional<SourceState>> SqliteStateStore::exportSource(const std::string& source) {
  std::lock_guard lock(mu_);
  auto state = exportSourceLocked(source);
  if (!state) return withWhat(std::move(state.error()), "export source " + quoted(source));
  return state;
}

Status SqliteStateStore::importSource(const SourceState& state, bool replace) {
  std::lock_guard lock(mu_);
  auto status = importSourceLocked(state, replace);
  if (!status) return withWhat(std::move(status.error()), "import source " + quoted(state.source));
  return status;
}

Status SqliteStateStore::forgetSource(const std::string& source) {
  std::lock_guard lock(mu_);
  auto status = [&]() -> Status {
    auto txn = Transaction::begin(db_, Transaction::Kind::kWrite);
    if (!txn) return std::move(txn.error());
    if (auto s = forgetSourceLocked(source); !s) return s;
    return txn->commit();
  }();
  if (!status) return withWhat(std::move(status.error()), "forget source " + quoted(source));
  return status;
}

Result<std::optional<SourceState>> SqliteStateStore::exportSourceLocked(const std::string& source) {
  auto txn = Transaction::begin(db_, Transaction::Kind::kRead);
  if (!txn) return std::move(txn.error());
  SourceState state;
  state.source = source;
  bool found = false;
  auto status = eachRow(db_,
                        "SELECT watermark, seen_since, collected_since FROM source_state "
                        "WHERE source = ?1",
                        source, [&](const Statement& row) {
                          found = true;
                          state.watermark = optionalText(row, 0);
                          state.seen_since = optionalText(row, 1);
                          state.collected_since = optionalText(row, 2);
                        });
  if (!status) return std::move(status.error());
  status = eachRow(
      db_,
      "SELECT alert_id, last_update_time FROM seen WHERE source = ?1 "
      "ORDER BY last_update_time, alert_id",
      source, [&](const Statement& row) {
        state.seen.push_back({std::string(row.columnText(0)), std::string(row.columnText(1))});
      });
  if (!status) return std::move(status.error());
  status = eachRow(db_,
                   "SELECT path, inode, read_offset FROM file_positions WHERE source = ?1 "
                   "ORDER BY path",
                   source, [&](const Statement& row) {
                     SourceFile& file = state.files.emplace_back();
                     file.path = std::string(row.columnText(0));
                     file.position.inode = fromStored(row.columnInt64(1));
                     file.position.offset = fromStored(row.columnInt64(2));
                   });
  if (!status) return std::move(status.error());
  status = eachRow(db_,
                   "SELECT id, since, until, position, state, slices, alerts, documents, "
                   "message, updated FROM backfills WHERE source = ?1 ORDER BY id",
                   source, [&](const Statement& row) {
                     BackfillJob& j = state.backfills.emplace_back();
                     j.id = row.columnInt64(0);
                     j.source = source;
                     j.since = std::string(row.columnText(1));
                     j.until = std::string(row.columnText(2));
                     j.position = std::string(row.columnText(3));
                     j.state = std::string(row.columnText(4));
                     j.slices = fromStored(row.columnInt64(5));
                     j.alerts = fromStored(row.columnInt64(6));
                     j.documents = fromStored(row.columnInt64(7));
                     j.message = std::string(row.columnText(8));
                     j.updated = std::string(row.columnText(9));
                   });
  if (!status) return std::move(status.error());
  if (auto done = txn->commit(); !done) return std::move(done.error());
  if (!found && state.seen.empty() && state.files.empty() && state.backfills.empty()) {
    return std::optional<SourceState>();
  }
  return std::optional<SourceState>(std::move(state));
}

Result<bool> SqliteStateStore::keepsSourceLocked(const std::string& source) {
  for (const char* table : kSourceTables) {
    bool any = false;
    const std::string sql = std::string("SELECT 1 FROM ") + table + " WHERE source = ?1 LIMIT 1";
    auto status = eachRow(db_, sql.c_str(), source, [&](const Statement&) { any = true; });
    if (!status) return std::move(status.error());
    if (any) return true;
  }
  return false;
}

Status SqliteStateStore::forgetSourceLocked(const std::string& source) {
  for (const char* table : kSourceTables) {
    const std::string sql = std::string("DELETE FROM ") + table + " WHERE source = ?1";
    auto stmt = db_.prepare(sql);
    if (!stmt) return std::move(stmt.error());
    if (auto s = stmt->bind(1, std::string_view(source)).run(); !s) return s;
  }
  return okStatus();
}

Status SqliteStateStore::importSourceLocked(const SourceState& state, bool replace) {
  if (state.source.empty()) return Error(ErrorCode::kInvalidArgument, "the source has no name");
  auto txn = Transaction::begin(db_, Transaction::Kind::kWrite);
  if (!txn) return std::move(txn.error());
  auto keeps = keepsSourceLocked(state.source);
  if (!keeps) return std::move(keeps.error());
  if (*keeps && !replace) {
    return Error(ErrorCode::kInvalidArgument,
                 "this state already has a watermark, seen versions, file positions or backfill "
                 "jobs of source " +
                     quoted(state.source) + " (--force replaces them)");
  }
  if (*keeps) {
    if (auto s = forgetSourceLocked(state.source); !s) return s;
  }
  {
    auto stmt = db_.prepare(
        "INSERT INTO source_state(source, watermark, seen_since, collected_since) "
        "VALUES(?1, ?2, ?3, ?4)");
    if (!stmt) return std::move(stmt.error());
    stmt->bind(1, std::string_view(state.source));
    bindOptional(*stmt, 2, state.watermark);
    bindOptional(*stmt, 3, state.seen_since);
    bindOptional(*stmt, 4, state.collected_since);
    if (auto s = stmt->run(); !s) return s;
  }
  {
    auto stmt = db_.prepare(
        "INSERT OR IGNORE INTO seen(source, alert_id, last_update_time) VALUES(?1, ?2, ?3)");
    if (!stmt) return std::move(stmt.error());
    for (const Version& v : state.seen) {
      ScopedReset reset(*stmt);
      auto s = stmt->bind(1, std::string_view(state.source))
                   .bind(2, std::string_view(v.alert_id))
                   .bind(3, std::string_view(v.last_update_time))
                   .run();
      if (!s) return s;
    }
  }
  {
    auto stmt = db_.prepare(
        "INSERT INTO file_positions(source, path, inode, read_offset) VALUES(?1, ?2, ?3, ?4)");
    if (!stmt) return std::move(stmt.error());
    for (const SourceFile& f : state.files) {
      ScopedReset reset(*stmt);
      auto s = stmt->bind(1, std::string_view(state.source))
                   .bind(2, std::string_view(f.path))
                   .bind(3, toStored(f.position.inode))
                   .bind(4, toStored(f.position.offset))
                   .run();
      if (!s) return s;
    }
  }
  {
    auto stmt = db_.prepare(
        "INSERT INTO backfills(source, since, until, position, state, slices, alerts, documents, "
        "message, updated) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    if (!stmt) return std::move(stmt.error());
    for (const BackfillJob& j : state.backfills) {
      ScopedReset reset(*stmt);
      auto s = stmt->bind(1, std::string_view(state.source))
                   .bind(2, std::string_view(j.since))
                   .bind(3, std::string_view(j.until))
                   .bind(4, std::string_view(j.position.empty() ? j.since : j.position))
                   .bind(5, std::string_view(j.state))
                   .bind(6, toStored(j.slices))
                   .bind(7, toStored(j.alerts))
                   .bind(8, toStored(j.documents))
                   .bind(9, std::string_view(j.message))
                   .bind(10, std::string_view(j.updated))
                   .run();
      if (!s) return s;
    }
  }
  return txn->commit();
}

}  // namespace mdec::state
