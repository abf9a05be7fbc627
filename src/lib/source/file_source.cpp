// The `file` source: see file_source.h and collection.md.
//
// Each poll expands the globs, and for every regular file reads the complete lines after
// the stored position (a last line without '\n' waits for the next poll), maps them and
// commits documents and the new position together, in batches. Where to start:
//   - the stored position, when the path still holds the same inode and is not shorter;
//   - else, when the file's inode is one another matched path's stored position names
//     (the file was renamed by a rotation and the new name matches a glob too), that
//     position, so the renamed file is not read twice;
//   - else 0 (a new file, a rotation, a truncation).
#include "mdecollect/source/file_source.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "mdecollect/core/unique_fd.h"
#include "mdecollect/ecs/graph_translate.h"
#include "mdecollect/ecs/incident_mapper.h"
#include "mdecollect/ecs/mapper.h"
#include "mdecollect/source/source.h"
#include "source/map_options.h"

namespace mdec::source {
namespace {

constexpr std::size_t kBatchLines = 1000;
constexpr std::size_t kBatchBytes = 4u << 20;
constexpr std::size_t kChunk = 1u << 20;

Error ioError(const std::string& what, int err) {
  return Error(ErrorCode::kIo, what + ": " + std::strerror(err));
}

using core::UniqueFd;

// Hands the mapper's documents to the batch (page) being delivered.
class BatchSink final : public ecs::DocumentSink {
 public:
  void onDocument(const ecs::DocumentView& doc) override {
    page->add(doc.id, doc.json);
    bytes += doc.json.size();
    if (doc.error) ++errors;
  }
  void start(output::Delivery& delivery, const std::string& source) {
    page.reset();
    page.emplace(delivery, source);
    bytes = 0;
    errors = 0;
  }

  std::optional<output::Delivery::Page> page;
  std::size_t bytes = 0;
  std::uint64_t errors = 0;
};

struct Candidate {
  std::string path;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::optional<state::FilePosition> stored;
  std::uint64_t start = 0;  // where reading starts
};

class FileSourceImpl final : public FileSource {
 public:
  FileSourceImpl(const config::SourceConfig& config, output::Delivery& delivery,
                 std::unique_ptr<output::Delivery> owned = nullptr)
      : owned_(std::move(owned)),
        name_(config.name),
        patterns_(config.paths),
        delivery_(delivery),
        store_(delivery.store()),
        mapper_(mapOptions(config)),
        graph_(config.format == "graph"),
        incidents_(config.format == "graph_incidents"
                       ? std::make_unique<ecs::IncidentMapper>(incidentMapOptions(config))
                       : nullptr) {}

  Result<FilePollStats> poll() override {
    FilePollStats stats;
    std::optional<Error> first_error;

    std::vector<Candidate> candidates;
    for (const auto& path : expand()) {
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT && !first_error) first_error = ioError("stat " + path, errno);
        continue;  // gone since the glob: nothing to read
      }
      if (!S_ISREG(st.st_mode)) continue;
      auto stored = store_.filePosition(name_, path);
      if (!stored) return stored.error();
      candidates.push_back(Candidate{path, static_cast<std::uint64_t>(st.st_ino),
                                     static_cast<std::uint64_t>(st.st_size), *stored});
    }

    // Positions of files that left their path (renamed by a rotation), by inode.
    std::map<std::uint64_t, std::uint64_t> moved;
    for (const auto& c : candidates) {
      if (c.stored && c.stored->inode != c.inode) moved[c.stored->inode] = c.stored->offset;
    }

    for (auto& c : candidates) {
      if (c.stored && c.stored->inode == c.inode) {
        if (c.stored->offset <= c.size) c.start = c.stored->offset;  // else truncated: from 0
      } else if (auto it = moved.find(c.inode); it != moved.end() && it->second <= c.size) {
        // Record where the renamed file stands under its new name first, before its old
        // path's position moves on to the new file there (a crash in between would
        // otherwise read it again from 0).
        c.start = it->second;
        state::PageCommit moved_to;
        moved_to.source = name_;
        moved_to.file_path = c.path;
        moved_to.file_position = state::FilePosition{c.inode, c.start};
        auto s = store_.commitPage(moved_to);
        if (!s) return Error(s.error()).withContext("commit " + c.path);
        c.stored = state::FilePosition{c.inode, c.start};
      }
    }

    for (auto& c : candidates) {
      ++stats.files;
      const bool current = c.stored && c.stored->inode == c.inode && c.stored->offset == c.start;
      if (current && c.start == c.size) continue;  // nothing new
      // Opened only now (one file open at a time); a file replaced since the stat above is
      // left for the next poll.
      UniqueFd fd(::open(c.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
      struct stat st {};
      if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) {
        if (errno != ENOENT && !first_error) first_error = ioError("open " + c.path, errno);
        continue;
      }
      if (static_cast<std::uint64_t>(st.st_ino) != c.inode) continue;
      bool store_failed = false;
      auto status = readFile(c, fd.get(), !current, stats, store_failed);
      if (!status) {
        if (store_failed) return status.error();
        if (!first_error) first_error = status.error();
      }
    }
    if (first_error) return *first_error;
    return stats;
  }

 private:
  std::vector<std::string> expand() const {
    std::set<std::string> paths;
    for (const auto& pattern : patterns_) {
      glob_t g{};
      if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
        for (std::size_t i = 0; i < g.gl_pathc; ++i) paths.insert(g.gl_pathv[i]);
      }
      ::globfree(&g);
    }
    return {paths.begin(), paths.end()};
  }

  // Reads the complete lines of `c` after `c.start`, committing every batch (and the
  // position alone when `stale`: it differs from the stored one). `store_failed` tells a
  // store failure from a read failure.
  Status readFile(const Candidate& c, int fd, bool stale, FilePollStats& stats,
                  bool& store_failed) {
    const std::uint64_t start = c.start;
    if (buf_.size() < kChunk + ecs::kLinePadding) buf_.assign(kChunk + ecs::kLinePadding, '\0');
    std::size_t len = 0;         // bytes in buf_
    std::uint64_t base = start;  // file offset of buf_[0]
    std::size_t scanned = 0;     // bytes of buf_ known to hold no '\n'
    std::uint64_t committed = start;
    std::uint64_t consumed = start;
    std::size_t batch_lines = 0;
    sink_.start(delivery_, name_);

    auto commit = [&]() -> Status {
      if (consumed == committed && !stale) return okStatus();
      state::PageCommit page;
      page.source = name_;
      page.file_path = c.path;
      page.file_position = state::FilePosition{c.inode, consumed};
      const std::size_t documents = sink_.page->documents();
      const std::uint64_t errors = sink_.errors;
      auto s = sink_.page->commit(std::move(page));
      sink_.start(delivery_, name_);
      if (!s) {
        store_failed = true;
        return Error(s.error()).withContext("commit " + c.path);
      }
      stale = false;
      stats.documents += documents;
      stats.errors += errors;
      batch_lines = 0;
      committed = consumed;
      return okStatus();
    };

    for (;;) {
      const std::size_t capacity = buf_.size() - ecs::kLinePadding;
      if (capacity - len < kChunk / 2) {
        buf_.resize(capacity * 2 + ecs::kLinePadding, '\0');
        continue;
      }
      // Up to the size seen when the poll began: a file that keeps growing waits for the
      // next poll rather than holding this one.
      if (base + len >= c.size) break;
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(capacity - len, c.size - (base + len)));
      const ssize_t n = ::pread(fd, buf_.data() + len, want, static_cast<off_t>(base + len));
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        if (auto s = commit(); !s) return s;
        return ioError("read " + c.path, err);
      }
      if (n == 0) break;
      len += static_cast<std::size_t>(n);

      std::size_t line_begin = 0;
      while (scanned < len) {
        const void* nl = std::memchr(buf_.data() + scanned, '\n', len - scanned);
        if (nl == nullptr) {
          scanned = len;
          break;
        }
        const auto end = static_cast<std::size_t>(static_cast<const char*>(nl) - buf_.data());
        const std::string_view line(buf_.data() + line_begin, end - line_begin);
        const ecs::LineContext context{c.path, static_cast<std::int64_t>(base + line_begin), true};
        if (incidents_) {
          incidents_->mapLine(line, context, sink_);
        } else if (graph_) {
          ecs::mapGraphLine(mapper_, translator_, line, context, sink_);
        } else {
          mapper_.mapLine(line, context, sink_);
        }
        ++stats.lines;
        ++batch_lines;
        line_begin = end + 1;
        scanned = line_begin;
        consumed = base + line_begin;
        if (batch_lines >= kBatchLines || sink_.bytes >= kBatchBytes) {
          if (auto s = commit(); !s) return s;
        }
      }
      // Keep the incomplete tail for the next read.
      if (line_begin > 0) {
        std::memmove(buf_.data(), buf_.data() + line_begin, len - line_begin);
        len -= line_begin;
        scanned -= line_begin;
        base += line_begin;
      }
    }
    return commit();
  }

  std::unique_ptr<output::Delivery> owned_;  // when made from a store alone
  std::string name_;
  std::vector<std::string> patterns_;
  output::Delivery& delivery_;
  state::StateStore& store_;
  ecs::Mapper mapper_;
  bool graph_;  // format: graph (Microsoft Graph alerts_v2 alerts or pages)
  ecs::GraphTranslator translator_;
  std::unique_ptr<ecs::IncidentMapper> incidents_;  // format: graph_incidents
  BatchSink sink_;
  std::vector<char> buf_;
};

}  // namespace

std::unique_ptr<FileSource> makeFileSource(const config::SourceConfig& config,
                                           state::StateStore& store) {
  auto owned = std::make_unique<output::Delivery>(store);
  output::Delivery& delivery = *owned;
  return std::make_unique<FileSourceImpl>(config, delivery, std::move(owned));
}

std::unique_ptr<FileSource> makeFileSource(const config::SourceConfig& config,
                                           output::Delivery& delivery) {
  return std::make_unique<FileSourceImpl>(config, delivery);
}

}  // namespace mdec::source

namespace mdec::source {
namespace {

// The file source behind the Source interface: one poll reads what is new in every file.
class FileSourceAdapter final : public Source {
 public:
  FileSourceAdapter(const config::SourceConfig& config, output::Delivery& delivery,
                    SourceOptions options)
      : files_(makeFileSource(config, delivery)), options_(std::move(options)) {}

  Result<PollStats> poll(std::stop_token stop) override {
    PollStats stats;
    // The outbox bound (max_spool_bytes) holds for files too: no poll while it is full.
    if (options_.wait_for_room) options_.wait_for_room(stop);
    if (stop.stop_requested()) {
      stats.stopped = true;
      return stats;
    }
    auto polled = files_->poll();
    if (!polled) return polled.error();
    stats.files = polled->files;
    stats.alerts = polled->lines;
    stats.documents = polled->documents;
    stats.errors = polled->errors;
    if (telemetry::SourceMetrics* m = options_.metrics) {
      m->alerts_fetched += polled->lines;
      m->documents_produced += polled->documents;
      m->error_documents += polled->errors;
    }
    return stats;
  }

  bool backfills() const override { return false; }

  Result<PollStats> pollRange(const core::Instant&, const core::Instant&,
                              std::stop_token) override {
    return Error(ErrorCode::kInvalidArgument, "a file source has no backfill");
  }

  std::string summary(const PollStats& s) const override {
    return fmt::format("poll: {} files, {} lines read, {} documents written ({} error)", s.files,
                       s.alerts, s.documents, s.errors);
  }

 private:
  std::unique_ptr<FileSource> files_;
  SourceOptions options_;
};

}  // namespace

std::unique_ptr<Source> makeFileSourceOf(const config::SourceConfig& config,
                                         output::Delivery& delivery, SourceOptions options) {
  return std::make_unique<FileSourceAdapter>(config, delivery, std::move(options));
}

}  // namespace mdec::source
