// The file output and the fd (stdout) output. See file_output.h and outputs.md.
//
// Exactly once through a crash at any instant rests on one invariant: the store's
// checkpoint for this output always names the file being written, and that file is the
// last output file in (date, N) order. So:
//   - before the first byte goes into a file, the checkpoint is moved to it (same acked
//     seq, offset = the file's size then, 0 for a new file) — a crash right after cannot
//     leave bytes in a file the store does not know about;
//   - a batch is written, fsynced (and the directory fsynced when the file was created),
//     then acknowledged with {file, offset after the batch} in one store transaction;
//   - on open, bytes past the checkpoint's offset are cut off and files after the
//     checkpointed one (which can only hold unacknowledged bytes) are deleted;
//   - a new date starts a new file only when it sorts after the current file (a clock that
//     goes back keeps writing into the current file), so the invariant holds.
// Without a checkpoint nothing was ever acknowledged, and files already in the directory
// were not written by this output: they are left alone, and the first file written sorts
// after all of them.
#include "mdecollect/output/file_output.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <compare>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/private_file.h"
#include "mdecollect/core/unique_fd.h"

namespace mdec::output {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPrefix = "microsoft_defender_endpoint-";
constexpr std::string_view kSuffix = ".ndjson";
// The documents are alerts: 0600, whatever the umask, and an older install's 0644 files are
// tightened when opened. Not 0640: nothing documented reads them as a group (the packaged
// service runs as a DynamicUser= with UMask=0077 under /var/lib/private, 0700), so a log
// shipper reads them as the service's user or as root.
constexpr mode_t kOutputFileMode = core::kPrivateFileMode;

Error ioError(const std::string& what, int err) {
  return Error(ErrorCode::kIo, what + ": " + std::strerror(err));
}

// A store failure seen by an output: always retryable (the batch is delivered again).
Error storeError(const Error& error, const std::string& what) {
  return Error(ErrorCode::kIo, what + ": " + error.message());
}

using core::UniqueFd;

// (date, N): N = 0 is the file without a number.
struct FileKey {
  std::string date;  // YYYYMMDD
  std::uint64_t n = 0;
  friend auto operator<=>(const FileKey&, const FileKey&) = default;
  friend bool operator==(const FileKey&, const FileKey&) = default;
};

bool allDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string fileName(const FileKey& key) {
  std::string name(kPrefix);
  name += key.date;
  if (key.n > 0) name += "." + std::to_string(key.n);
  name += kSuffix;
  return name;
}

std::optional<FileKey> parseFileName(std::string_view name) {
  if (name.size() < kPrefix.size() + 8 + kSuffix.size()) return std::nullopt;
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  if (name.substr(name.size() - kSuffix.size()) != kSuffix) return std::nullopt;
  std::string_view middle =
      name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  FileKey key;
  key.date = std::string(middle.substr(0, 8));
  if (!allDigits(key.date)) return std::nullopt;
  middle.remove_prefix(8);
  if (middle.empty()) return key;
  if (middle.front() != '.') return std::nullopt;
  middle.remove_prefix(1);
  // At most 18 digits (fits) and no leading zero, so every name has one spelling.
  if (!allDigits(middle) || middle.size() > 18 || middle.front() == '0') return std::nullopt;
  for (const char c : middle) key.n = key.n * 10 + static_cast<std::uint64_t>(c - '0');
  return key;
}

std::string systemToday() {
  return core::formatDate(core::toInstant(std::chrono::system_clock::now()), "");
}

// Writes all of `data`; EINTR and partial writes are continued, EAGAIN waits for the fd.
// Returns 0 or the errno of the failure.
int writeAll(int fd, std::string_view data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, 10000) > 0) continue;
      return EAGAIN;
    }
    return n < 0 ? errno : EIO;
  }
  return 0;
}

std::size_t batchBytes(const std::vector<state::OutboxDocument>& batch) {
  std::size_t bytes = 0;
  for (const auto& doc : batch) bytes += doc.body.size() + 1;
  return bytes;
}

void appendBatch(const std::vector<state::OutboxDocument>& batch, std::string& out) {
  out.clear();
  out.reserve(batchBytes(batch));
  for (const auto& doc : batch) {
    out += doc.body;
    out += '\n';
  }
}

Status fsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ioError("open directory " + dir, errno);
  if (::fsync(fd.get()) != 0) return ioError("fsync directory " + dir, errno);
  return okStatus();
}

// Cuts `path` to `size` when it is longer; a missing file is fine.
Status truncateIfLonger(const std::string& path, std::uint64_t size) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return okStatus();
    return ioError("stat " + path, errno);
  }
  if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) <= size) return okStatus();
  auto file = core::openPrivateFile(path, O_WRONLY, kOutputFileMode);
  if (!file) return Error(ErrorCode::kIo, file.error().message());
  const UniqueFd& fd = file->fd;
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return ioError("truncate " + path, errno);
  }
  if (::fsync(fd.get()) != 0) return ioError("fsync " + path, errno);
  return okStatus();
}

class FileOutput final : public Output, public DirectWriter {
 public:
  FileOutput(config::FileOutputConfig config, std::function<std::string()> today)
      : config_(std::move(config)), today_(today ? std::move(today) : systemToday) {}

  const std::string& name() const override { return name_; }

  Status open(state::StateStore& store) override {
    opened_ = false;
    fd_.reset();
    current_.reset();
    offset_ = 0;
    dirty_ = false;
    if (config_.path.empty()) {
      return Error(ErrorCode::kInvalidArgument, "file output: path is empty");
    }
    dir_ = config_.path;
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec || !fs::is_directory(dir_, ec)) {
      return Error(ErrorCode::kIo, "file output: cannot create directory " + dir_ + ": " +
                                       (ec ? ec.message() : std::string("not a directory")));
    }
    if (auto s = store.registerOutput(name_); !s) return storeError(s.error(), "register output");
    auto checkpoint = store.fileCheckpoint(name_);
    if (!checkpoint) return storeError(checkpoint.error(), "read file checkpoint");

    if (checkpoint->has_value()) {
      const state::FileCheckpoint& cp = **checkpoint;
      // Bytes past the acknowledged offset were written but never acknowledged.
      if (auto s = truncateIfLonger(cp.file, cp.offset); !s) return s;
      const fs::path file(cp.file);
      const auto key = parseFileName(file.filename().string());
      const fs::path parent = file.parent_path().empty() ? fs::path(".") : file.parent_path();
      if (key && fs::equivalent(parent, dir_, ec)) {
        current_ = *key;
        offset_ = cp.offset;
        // Files after the checkpointed one hold only unacknowledged bytes.
        auto files = listFiles();
        if (!files) return files.error();
        for (const auto& f : *files) {
          if (f > *current_ && ::unlink(pathOf(f).c_str()) != 0 && errno != ENOENT) {
            return ioError("file output: delete " + pathOf(f), errno);
          }
        }
      }
      // Otherwise the checkpoint names a file elsewhere (the path changed): its tail was
      // cut above; writing here starts after every file already in the directory.
    }
    prune();
    opened_ = true;
    return okStatus();
  }

  // A batch from the outbox (the documents that waited from before a restart) goes the
  // same way as a page: begun, written, made durable, then acknowledged with its checkpoint.
  Status deliver(const std::vector<state::OutboxDocument>& batch,
                 state::StateStore& store) override {
    if (batch.empty()) return okStatus();
    std::string lines;
    appendBatch(batch, lines);
    if (auto s = begin(store, lines.size()); !s) return s;
    Status done = write(lines);
    if (done) {
      auto checkpoint = syncPage();
      if (!checkpoint) {
        done = checkpoint.error();
      } else if (auto s = store.acknowledge(name_, batch.back().seq, *checkpoint); !s) {
        done = storeError(s.error(), "file output: acknowledge");
      }
    }
    endPage(done.has_value());
    return done;
  }

  DirectWriter* direct() override { return this; }

  // ---- DirectWriter: a page goes in whole or not at all, acknowledged by its commit ----

  // The page's size is not known yet: it rotates before the page when the file is full,
  // so a file can pass rotate_bytes by one page.
  Status beginPage(state::StateStore& store) override { return begin(store, 0); }

  Status write(std::string_view lines) override {
    if (const int err = writeAll(fd_.get(), lines); err != 0) {
      return fail(ioError("file output: write " + pathOf(*current_), err));
    }
    page_bytes_ += lines.size();
    return okStatus();
  }

  Result<state::FileCheckpoint> syncPage() override {
    if (auto s = sync(); !s) return s.error();
    return state::FileCheckpoint{pathOf(*current_), offset_ + page_bytes_};
  }

  void endPage(bool committed) override {
    if (committed) {
      offset_ += page_bytes_;
      dirty_ = false;
    } else {
      dirty_ = true;  // the next write cuts the file back to offset_ first
    }
    page_bytes_ = 0;
    mu_.unlock();
  }

 private:
  // Holds the output for one page or batch of about `bytes` (0: unknown); on failure the
  // output is not held.
  Status begin(state::StateStore& store, std::size_t bytes) {
    mu_.lock();
    if (auto s = prepare(store, bytes); !s) {
      mu_.unlock();
      return s;
    }
    dirty_ = true;  // until the page commits
    page_bytes_ = 0;
    return okStatus();
  }

  // Opens what needs opening, rotates when `bytes` more would pass rotate_bytes, and
  // positions the fd at the acknowledged end of the current file.
  Status prepare(state::StateStore& store, std::size_t bytes) {
    if (!opened_) {
      if (auto s = open(store); !s) return s;
    }
    const std::string today = today_();
    if (today.size() != 8 || !allDigits(today)) {
      return Error(ErrorCode::kInternal, "file output: bad date '" + today + "'");
    }

    auto target = chooseTarget(today, bytes);
    if (!target) return target.error();
    if (!current_ || *target != *current_) {
      if (auto s = switchTo(*target, store); !s) return s;
    }
    const std::string path = pathOf(*current_);

    if (fd_.valid()) {
      // Deleted under us (by hand, or by a rotation tool): start the file again.
      struct stat st {};
      if (::fstat(fd_.get(), &st) == 0 && st.st_nlink == 0) fd_.reset();
    }
    if (!fd_.valid()) {
      if (auto s = openCurrent(path); !s) return s;
    }
    if (dirty_) {
      // A failed delivery may have left part of a batch: cut back to the acknowledged end.
      struct stat st {};
      if (::fstat(fd_.get(), &st) != 0) return fail(ioError("file output: stat " + path, errno));
      const auto size = static_cast<std::uint64_t>(st.st_size);
      if (size > offset_ && ::ftruncate(fd_.get(), static_cast<off_t>(offset_)) != 0) {
        return fail(ioError("file output: truncate " + path, errno));
      }
      if (size < offset_) offset_ = size;  // someone cut the file: keep appending
      if (::lseek(fd_.get(), static_cast<off_t>(offset_), SEEK_SET) < 0) {
        return fail(ioError("file output: seek " + path, errno));
      }
      dirty_ = false;
    }
    return okStatus();
  }

  Status sync() {
    if (::fdatasync(fd_.get()) != 0) {
      return fail(ioError("file output: fsync " + pathOf(*current_), errno));
    }
    if (dir_needs_sync_) {
      if (auto s = fsyncDir(dir_); !s) return fail(s.error());
      dir_needs_sync_ = false;
    }
    return okStatus();
  }

  std::string pathOf(const FileKey& key) const { return (fs::path(dir_) / fileName(key)).string(); }

  // After a failure: the file may hold part of the batch; an fsync error may also have left
  // the page cache unreliable, so the file is opened again before the next write.
  Error fail(Error error) {
    dirty_ = true;
    fd_.reset();
    return error;
  }

  // Output files in the directory, in (date, N) order.
  Result<std::vector<FileKey>> listFiles() const {
    std::vector<FileKey> keys;
    std::error_code ec;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      if (auto key = parseFileName(it->path().filename().string())) keys.push_back(*key);
    }
    if (ec) return Error(ErrorCode::kIo, "file output: list " + dir_ + ": " + ec.message());
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  Result<FileKey> chooseTarget(const std::string& today, std::size_t bytes) const {
    if (current_ && current_->date >= today) {
      if (offset_ > 0 && offset_ + bytes > config_.rotate_bytes) {
        return FileKey{current_->date, current_->n + 1};
      }
      return *current_;
    }
    if (current_) return FileKey{today, 0};  // a new day
    // Nothing written by this output yet: start after every file already there.
    auto files = listFiles();
    if (!files) return files.error();
    if (!files->empty() && files->back().date >= today) {
      return FileKey{files->back().date, files->back().n + 1};
    }
    return FileKey{today, 0};
  }

  // Moves the checkpoint to `key` before anything is written there.
  Status switchTo(const FileKey& key, state::StateStore& store) {
    if (current_ && dirty_) {
      // A failed delivery left bytes past the acknowledged end of the file being left
      // (the batch is retried on a new day, or rotates differently): cut them first.
      fd_.reset();
      if (auto s = truncateIfLonger(pathOf(*current_), offset_); !s) return s;
      dirty_ = false;
    }
    const std::string path = pathOf(key);
    std::uint64_t size = 0;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      size = static_cast<std::uint64_t>(st.st_size);
    } else if (errno != ENOENT) {
      return ioError("file output: stat " + path, errno);
    }
    auto acked = store.ackedSeq(name_);
    if (!acked) return storeError(acked.error(), "file output: acked seq");
    if (auto s = store.acknowledge(name_, *acked, state::FileCheckpoint{path, size}); !s) {
      return storeError(s.error(), "file output: move checkpoint");
    }
    fd_.reset();
    current_ = key;
    offset_ = size;
    dirty_ = false;
    prune();
    return okStatus();
  }

  Status openCurrent(const std::string& path) {
    auto file = core::openPrivateFile(path, O_WRONLY | O_CREAT, kOutputFileMode);
    if (!file) return fail(Error(ErrorCode::kIo, "file output: " + file.error().message()));
    if (file->created) dir_needs_sync_ = true;
    fd_ = std::move(file->fd);
    dirty_ = true;  // check the size against the checkpoint and position the fd
    return okStatus();
  }

  // Keeps at most keep_files output files (0 or less: no limit), deleting the oldest; never
  // the current one (which is the one the checkpoint names). Failures are left for the
  // next time.
  void prune() const {
    if (config_.keep_files <= 0) return;
    auto files = listFiles();
    if (!files) return;
    std::size_t count = files->size();
    // The current file counts even before its first write creates it.
    if (current_ && !std::binary_search(files->begin(), files->end(), *current_)) ++count;
    const auto keep = static_cast<std::size_t>(config_.keep_files);
    for (const auto& f : *files) {
      if (count <= keep) break;
      if (current_ && f == *current_) continue;
      if (::unlink(pathOf(f).c_str()) == 0 || errno == ENOENT) --count;
    }
  }

  config::FileOutputConfig config_;
  std::function<std::string()> today_;
  std::string name_ = "file";
  std::string dir_;
  bool opened_ = false;
  std::optional<FileKey> current_;  // the file the checkpoint names (in dir_)
  std::uint64_t offset_ = 0;        // its acknowledged size
  UniqueFd fd_;                     // open on current_, or not yet
  bool dirty_ = false;              // bytes past offset_ may be in the file
  bool dir_needs_sync_ = false;     // the current file was created, not yet made durable
  std::uint64_t page_bytes_ = 0;    // written by the page in progress
  std::mutex mu_;                   // one page (or batch) at a time
};

class FdOutput final : public Output {
 public:
  FdOutput(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}

  const std::string& name() const override { return name_; }

  Status open(state::StateStore& store) override {
    if (auto s = store.registerOutput(name_); !s) return storeError(s.error(), "register output");
    return okStatus();
  }

  Status deliver(const std::vector<state::OutboxDocument>& batch,
                 state::StateStore& store) override {
    if (batch.empty()) return okStatus();
    appendBatch(batch, buffer_);
    if (const int err = writeAll(fd_, buffer_); err != 0) {
      if (err == EPIPE) {
        // The reader is gone: retrying cannot help (not retryable).
        return Error(ErrorCode::kNotFound, name_ + " output: the reader closed the pipe (EPIPE)");
      }
      return ioError(name_ + " output: write", err);
    }
    if (auto s = store.acknowledge(name_, batch.back().seq, std::nullopt); !s) {
      return storeError(s.error(), name_ + " output: acknowledge");
    }
    return okStatus();
  }

 private:
  int fd_;
  std::string name_;
  std::string buffer_;
};

}  // namespace

std::unique_ptr<Output> makeFileOutput(const config::FileOutputConfig& config,
                                       std::function<std::string()> today) {
  return std::make_unique<FileOutput>(config, std::move(today));
}

std::unique_ptr<Output> makeFdOutput(int fd, std::string name) {
  return std::make_unique<FdOutput>(fd, std::move(name));
}

}  // namespace mdec::output
