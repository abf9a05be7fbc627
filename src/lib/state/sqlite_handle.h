// RAII for SQLite's C handles (sqlite3*, sqlite3_stmt*) and the few helpers the state store
// needs on top: a Statement with bind/step/column whose failures are Result values, and a
// Transaction that rolls back unless it was committed. sqlite3.h stays inside src/lib/state
// (and the tests that poke at a database directly).
//
// None of these types is thread-safe: the owner serialises all use of one connection.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "mdecollect/core/result.h"

namespace mdec::state::sqlite {

// An Error (kIo) carrying SQLite's message: the connection's latest one when there is a
// connection, else the generic text for `rc`.
inline Error sqliteError(sqlite3* db, int rc) {
  const char* message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Error(ErrorCode::kIo, message != nullptr ? message : "unknown SQLite error");
}

struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};

struct DatabaseCloser {
  // close_v2: never leaves the handle open, even if a statement were still alive.
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};

// One prepared statement. Bind values (1-based), step, read columns, reset to reuse.
// A failed bind is remembered and reported by the next step(), so binding chains without
// a check after every call.
class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}

  Statement& bind(int index, std::int64_t value) {
    note(sqlite3_bind_int64(stmt_.get(), index, value));
    return *this;
  }
  Statement& bindNull(int index) {
    note(sqlite3_bind_null(stmt_.get(), index));
    return *this;
  }
  // Copies the text (safe for temporaries).
  Statement& bind(int index, std::string_view text) {
    note(sqlite3_bind_text64(stmt_.get(), index, text.empty() ? "" : text.data(), text.size(),
                             SQLITE_TRANSIENT, SQLITE_UTF8));
    return *this;
  }
  // Does not copy: `text` must stay alive and unchanged until reset(). For large bodies.
  Statement& bindRef(int index, const std::string& text) {
    note(sqlite3_bind_text64(stmt_.get(), index, text.c_str(), text.size(), SQLITE_STATIC,
                             SQLITE_UTF8));
    return *this;
  }
  Statement& bindRef(int index, std::string&& text) = delete;

  // Steps once: true when a row is ready, false when the statement is done.
  Result<bool> step() {
    if (bind_error_ != SQLITE_OK) return Error(ErrorCode::kIo, bind_message_);
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqliteError(sqlite3_db_handle(stmt_.get()), rc);
  }
  // Steps to the end, for statements that return no rows (or whose rows do not matter).
  Status run() {
    for (;;) {
      auto row = step();
      if (!row) return std::move(row.error());
      if (!*row) return okStatus();
    }
  }

  // Makes the statement ready to step again; bindings stay unless cleared.
  void reset() {
    sqlite3_reset(stmt_.get());
    bind_error_ = SQLITE_OK;
    bind_message_.clear();
  }
  void clearBindings() { sqlite3_clear_bindings(stmt_.get()); }

  // Columns of the current row (0-based).
  std::int64_t columnInt64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  bool columnIsNull(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
  // Valid until the next step() or reset().
  std::string_view columnText(int col) const {
    const unsigned char* text = sqlite3_column_text(stmt_.get(), col);
    if (text == nullptr) return {};
    const int size = sqlite3_column_bytes(stmt_.get(), col);
    return {reinterpret_cast<const char*>(text), static_cast<std::size_t>(size)};
  }

  sqlite3_stmt* get() const { return stmt_.get(); }
  explicit operator bool() const { return stmt_ != nullptr; }

 private:
  void note(int rc) {
    if (rc == SQLITE_OK || bind_error_ != SQLITE_OK) return;
    bind_error_ = rc;
    const char* message = sqlite3_errmsg(sqlite3_db_handle(stmt_.get()));
    bind_message_ = std::string("bind: ") + (message != nullptr ? message : sqlite3_errstr(rc));
  }

  std::unique_ptr<sqlite3_stmt, StatementFinalizer> stmt_;
  int bind_error_ = SQLITE_OK;
  std::string bind_message_;
};

// Resets a (cached) statement and clears its bindings when the scope ends, so that no
// statement keeps a read snapshot open or holds pointers into a caller's strings.
class ScopedReset {
 public:
  explicit ScopedReset(Statement& stmt) : stmt_(stmt) {}
  ~ScopedReset() {
    stmt_.reset();
    stmt_.clearBindings();
  }
  ScopedReset(const ScopedReset&) = delete;
  ScopedReset& operator=(const ScopedReset&) = delete;

 private:
  Statement& stmt_;
};

// One connection.
class Database {
 public:
  Database() = default;

  // sqlite3_open_v2 with `flags`; extended result codes on.
  static Result<Database> open(const std::string& path, int flags) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    Database db;
    db.db_.reset(raw);  // owned even on failure: a failed open still allocates a handle
    if (rc != SQLITE_OK) return sqliteError(raw, rc);
    sqlite3_extended_result_codes(raw, 1);
    return db;
  }

  // Runs one or more statements that return no rows (or whose rows do not matter).
  Status exec(const char* sql) {
    const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return sqliteError(db_.get(), rc);
    return okStatus();
  }

  Result<Statement> prepare(std::string_view sql) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    Statement stmt(raw);
    if (rc != SQLITE_OK) return sqliteError(db_.get(), rc);
    if (!stmt) return Error(ErrorCode::kInternal, "empty SQL statement");
    return stmt;
  }

  // The first column of the first row of `sql` as text (empty when there is no row):
  // for pragmas that answer with a value.
  Result<std::string> queryText(std::string_view sql) {
    auto stmt = prepare(sql);
    if (!stmt) return std::move(stmt.error());
    auto row = stmt->step();
    if (!row) return std::move(row.error());
    return *row ? std::string(stmt->columnText(0)) : std::string();
  }

  // True while an explicit transaction is open on this connection.
  bool inTransaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }

  sqlite3* get() const { return db_.get(); }

 private:
  std::unique_ptr<sqlite3, DatabaseCloser> db_;
};

// BEGIN … COMMIT, rolled back unless commit() succeeded (also when the owner returns early
// with an error). A rollback after SQLite already rolled back by itself is a no-op.
class Transaction {
 public:
  enum class Kind {
    kRead,   // BEGIN (deferred): a consistent snapshot for several reads
    kWrite,  // BEGIN IMMEDIATE: takes the write lock now, so commit cannot fail on BUSY
  };

  static Result<Transaction> begin(Database& db, Kind kind) {
    // Every transaction here goes through this class, so one still open is the leftover of
    // a ROLLBACK that failed: discard it rather than wedge the connection.
    if (db.inTransaction()) sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    auto status = db.exec(kind == Kind::kWrite ? "BEGIN IMMEDIATE" : "BEGIN");
    if (!status) return std::move(status.error());
    return Transaction(db.get());
  }

  Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() { rollback(); }

  Status commit() {
    if (db_ == nullptr) return Error(ErrorCode::kInternal, "transaction already finished");
    const int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      Error error = sqliteError(db_, rc);
      rollback();
      return error;
    }
    db_ = nullptr;
    return okStatus();
  }

  void rollback() {
    if (db_ == nullptr) return;
    if (sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    db_ = nullptr;
  }

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}

  sqlite3* db_ = nullptr;  // null once committed or rolled back
};

}  // namespace mdec::state::sqlite
