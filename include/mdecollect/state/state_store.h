// Everything the collector must remember, in one transactional store (SQLite, WAL) under
// state_dir: per source the watermark and the seen-set, the outbox of mapped documents not
// yet acknowledged by every output, per output its acknowledged position (and for the file
// output the file and offset it ended at), per file source the read offset.
//
// The guarantee rests on commitPage: documents, watermark and seen-set (or a file source's
// offset) change together or not at all, whatever instant the process dies.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mdecollect/core/result.h"

namespace mdec::state {

struct Version {
  std::string alert_id;
  std::string last_update_time;  // as the API wrote it
  friend bool operator==(const Version&, const Version&) = default;
};

struct NewDocument {
  std::string id;    // the deterministic document id
  std::string body;  // one ECS document, compact JSON, no newline
};

// Where the file output stood when it last acknowledged.
struct FileCheckpoint {
  std::string file;          // path of the file it was writing
  std::uint64_t offset = 0;  // size of that file after the acknowledged batch
};

struct FilePosition {
  std::uint64_t inode = 0;   // to notice rotation
  std::uint64_t offset = 0;  // bytes consumed
};

// An output that wrote a page's documents itself, before the page commits (the file
// output's direct path): the commit acknowledges it up to the newest outbox document and
// records where its file ends.
struct DirectAck {
  std::string output;
  FileCheckpoint checkpoint;
};

struct PageCommit {
  std::string source;
  std::optional<std::string> watermark;  // the new watermark (ISO 8601 UTC), if it moved
  std::vector<Version> seen;             // versions delivered by this page
  // The outbox's: the documents staged under `staged_page` (when not 0; there must be
  // exactly `staged_documents` of them, staged for this source), where they were staged,
  // then `documents`, appended.
  std::int64_t staged_page = 0;
  std::uint64_t staged_documents = 0;
  std::vector<NewDocument> documents;
  // A file source's new read position in `file_path`.
  std::string file_path;
  std::optional<FilePosition> file_position;
  std::vector<DirectAck> direct;
};

struct OutboxDocument {
  std::int64_t seq = 0;  // increasing, gap-free only within one commit
  std::string source;
  std::string id;
  std::string body;
};

// A past range of a source collected on request (`mdecollect backfill`), in slices, without
// moving the live watermark.
struct BackfillJob {
  std::int64_t id = 0;
  std::string source;
  std::string since;             // ISO 8601 UTC, inclusive
  std::string until;             // exclusive
  std::string position;          // the next slice starts here (since, at first)
  std::string state = "queued";  // queued, running, done, failed
  std::uint64_t slices = 0;      // slices done
  std::uint64_t alerts = 0;      // alert versions received
  std::uint64_t documents = 0;   // documents produced from new versions
  std::string message;           // why it failed, or the last retried failure
  std::string updated;           // when it last changed (ISO 8601 UTC)
};

// Everything the store keeps about one source, for moving it to another state directory
// (`mdecollect state export` / `import`). Its outbox documents are not part of it: the
// outbox belongs to the outputs, and the store that holds them delivers them.
struct SourceFile {
  std::string path;
  FilePosition position;
};

struct SourceState {
  std::string source;
  std::optional<std::string> watermark;
  std::optional<std::string> seen_since;       // seenSince()
  std::optional<std::string> collected_since;  // collectedSince()
  std::vector<Version> seen;                   // the seen-set
  std::vector<SourceFile> files;               // a file source's read positions
  std::vector<BackfillJob> backfills;          // its jobs, oldest first
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // ---- sources ----
  virtual Result<std::optional<std::string>> watermark(const std::string& source) = 0;
  // Which of `versions` this source has already delivered (same order, true = seen). A
  // version with an empty last_update_time matches its alert_id at any time.
  virtual Result<std::vector<bool>> seen(const std::string& source,
                                         const std::vector<Version>& versions) = 0;
  // Forgets seen versions with last_update_time < `before` (ISO 8601 text compare works
  // for the API's UTC format only after normalisation; callers pass normalised text).
  // Records `before` as the oldest time the seen-set covers (seenSince), in the same
  // transaction; that time only ever rises.
  virtual Status pruneSeen(const std::string& source, const std::string& before) = 0;
  // The oldest time the seen-set still covers (nullopt: all of time, nothing pruned yet).
  // The default: nullopt.
  virtual Result<std::optional<std::string>> seenSince(const std::string& source);
  // One transaction: documents into the outbox, the watermark, the seen-set, a file
  // source's position, the direct outputs' acknowledgements (then documents every output
  // has acknowledged leave the outbox).
  virtual Status commitPage(const PageCommit& page) = 0;
  // Commits several pages (of any sources) at once, all or nothing: the SQLite store in one
  // transaction, one fsync for all (group commit).
  virtual Status commitPages(const std::vector<PageCommit>& pages) = 0;

  // ---- staged documents: a large page's outbox documents, written while it is mapped ----
  // Whether this store stages (the default: no; the other calls then fail).
  virtual bool stages() const { return false; }
  // A new staging area for one page of `source`: its id (never 0).
  virtual Result<std::int64_t> beginStagedPage(const std::string& source);
  // Appends documents to the page's staging area, without waiting for the disk: they count
  // (are read, acknowledged, sized) only once a commit (commitPage, commitPages) takes
  // them into the outbox, and that commit makes them durable.
  virtual Status stage(std::int64_t page, const std::vector<NewDocument>& documents);
  // Forgets a page's staged documents (a page abandoned or failed). Staged documents of
  // pages never committed are also forgotten when the store is opened.
  virtual Status dropStaged(std::int64_t page);

  // ---- file sources ----
  virtual Result<std::optional<FilePosition>> filePosition(const std::string& source,
                                                           const std::string& path) = 0;

  // ---- outbox and outputs ----
  // Declares an output (idempotent: one already registered keeps its position). A new
  // output (never registered, or forgotten by unregisterOutput) starts after the newest
  // document ever committed: it receives exactly the documents committed after this call,
  // none of those already in the outbox (they wait for the other outputs). So an output
  // added to the configuration, or configured again after it was forgotten, starts with
  // what is collected from then on (`backfill --force` fills in the past). At the very
  // first start nothing is missed because the collector registers every output before any
  // source commits a page: a caller must keep that order.
  virtual Status registerOutput(const std::string& output) = 0;
  // Documents with seq > after_seq, oldest first, at most max_documents and about
  // max_bytes (at least one document when any is there).
  virtual Result<std::vector<OutboxDocument>> readOutbox(std::int64_t after_seq,
                                                         std::size_t max_documents,
                                                         std::size_t max_bytes) = 0;
  virtual Result<std::int64_t> ackedSeq(const std::string& output) = 0;
  // One transaction: the output's position, and for the file output where the file
  // stands; then documents every output has acknowledged leave the outbox.
  virtual Status acknowledge(const std::string& output, std::int64_t up_to_seq,
                             const std::optional<FileCheckpoint>& checkpoint) = 0;
  virtual Result<std::optional<FileCheckpoint>> fileCheckpoint(const std::string& output) = 0;
  // The outputs registered so far (the defaults: none, and nothing to forget).
  virtual Result<std::vector<std::string>> registeredOutputs();
  // Forgets an output that is no longer configured: documents that waited only for it
  // leave the outbox (one transaction; all of them when it was the last output).
  // Registered again later, it starts afresh, as a new output (see registerOutput).
  virtual Status unregisterOutput(const std::string& output);
  // Bytes and documents waiting in the outbox (for the spool bound and metrics).
  struct OutboxSize {
    std::uint64_t documents = 0;
    std::uint64_t bytes = 0;
  };
  virtual Result<OutboxSize> outboxSize() = 0;

  // ---- backfill jobs (the defaults: not supported by this store) ----
  // Records a job (its id is assigned and returned).
  virtual Result<std::int64_t> addBackfill(const BackfillJob& job);
  // The jobs of `source` ("" : of every source), oldest first.
  virtual Result<std::vector<BackfillJob>> backfills(const std::string& source);
  // Saves the job's position, state and counts.
  virtual Status updateBackfill(const BackfillJob& job);
  // Where the live poll's coverage of a source begins: the start of the poll that set its
  // first watermark (nullopt: not known, e.g. a state from before this was kept). A
  // backfill up to there reads nothing the live poll delivered.
  virtual Result<std::optional<std::string>> collectedSince(const std::string& source);
  // Records `from` as where coverage begins, while the source has no watermark yet.
  virtual Status setCollectedSince(const std::string& source, const std::string& from);

  // ---- moving a source between state directories (the defaults: not supported) ----
  // All the store keeps about `source`, read in one transaction (nullopt: nothing at all).
  virtual Result<std::optional<SourceState>> exportSource(const std::string& source);
  // Writes `state` in one transaction. A source the store already keeps something about is
  // refused unless `replace`, which forgets that first. Backfill jobs get new ids.
  virtual Status importSource(const SourceState& state, bool replace);
  // Forgets all the store keeps about `source`, in one transaction. Its documents still in
  // the outbox stay there until every output has them.
  virtual Status forgetSource(const std::string& source);
};

// What opening the store does with the documents of pages staged and never committed:
// kDrop for the collector, which holds the state directory's run lock (whoever staged them
// has stopped); kKeep for a command beside a running collector (`mdecollect backfill`),
// whose pages they may be.
enum class StagedOnOpen { kDrop, kKeep };

// Opens (creating when needed) <state_dir>/state.db; checks and migrates the schema
// version; refuses a newer schema with a clear error.
Result<std::unique_ptr<StateStore>> openSqliteStore(const std::string& state_dir,
                                                    StagedOnOpen staged = StagedOnOpen::kDrop);

}  // namespace mdec::state
