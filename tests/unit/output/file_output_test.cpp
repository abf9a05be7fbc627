// The file output (outputs.md, File): batches written, fsynced and acknowledged with their
// checkpoint; rotation by size and date; keep_files; exactly once through a crash at any
// point (simulated by leaving the state a crash would leave and opening a new output over
// the same store). The fd (stdout) output: written, acknowledged, errors.
#include "mdecollect/output/file_output.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mdecollect/config/config.h"
#include "mdecollect/state/state_store.h"
#include "support/files.h"
#include "support/forwarding_store.h"
#include "support/scoped_umask.h"
#include "support/temp_dir.h"

namespace mdec::output {
namespace {

namespace fs = std::filesystem;
using state::FileCheckpoint;
using state::OutboxDocument;
using state::StateStore;

using mdec::testing::readFile;
using mdec::testing::TempDir;
using mdec::testing::writeFile;

// The files in `dir`, by name (which is not (date, N) order).
std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> sortedNames(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

// Output file names in (date, N) order.
std::vector<std::string> inWritingOrder(std::vector<std::string> names) {
  auto key = [](const std::string& name) {
    const std::string date = name.substr(std::string("microsoft_defender_endpoint-").size(), 8);
    const std::string rest = name.substr(name.find(date) + 8);  // ".N.ndjson" or ".ndjson"
    const int n = rest == ".ndjson" ? 0 : std::stoi(rest.substr(1));
    return std::make_pair(date, n);
  };
  std::sort(names.begin(), names.end(),
            [&](const std::string& a, const std::string& b) { return key(a) < key(b); });
  return names;
}

std::string fileFor(const std::string& date, int n = 0) {
  return "microsoft_defender_endpoint-" + date + (n > 0 ? "." + std::to_string(n) : "") + ".ndjson";
}

// Forwards to a real store; acknowledgements with a checkpoint past `fail_ack_above` fail
// (after nothing was changed), as a store that cannot commit would.
class FlakyStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  std::optional<std::int64_t> fail_ack_above;  // fail acknowledge(seq > this)
  int acknowledges = 0;

  Status acknowledge(const std::string& o, std::int64_t seq,
                     const std::optional<FileCheckpoint>& c) override {
    ++acknowledges;
    if (fail_ack_above && seq > *fail_ack_above) {
      return Error(ErrorCode::kIo, "injected: disk I/O error");
    }
    return ForwardingStore::acknowledge(o, seq, c);
  }
};

// A state dir, a store, an output dir and a clock for the output's date.
class FileOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = state::openSqliteStore((fs::path(tmp_.path()) / "state").string());
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    config_.path = (fs::path(tmp_.path()) / "out").string();
    config_.rotate_bytes = 1000;
    config_.keep_files = 10;
  }

  std::unique_ptr<Output> makeOutput() {
    return makeFileOutput(config_, [this] { return today_; });
  }

  // Appends documents {"n":first}..{"n":first+count-1} to the outbox.
  void addDocuments(int first, int count) {
    state::PageCommit page;
    page.source = "src";
    for (int i = first; i < first + count; ++i) {
      page.documents.push_back(state::NewDocument{"id-" + std::to_string(i), body(i)});
    }
    auto s = store_->commitPage(page);
    ASSERT_TRUE(s) << s.error().message();
  }

  static std::string body(int i) { return "{\"n\":" + std::to_string(i) + "}"; }
  static std::string lines(int first, int count) {
    std::string out;
    for (int i = first; i < first + count; ++i) out += body(i) + "\n";
    return out;
  }

  // The next `max` documents after what `output` acknowledged.
  std::vector<OutboxDocument> nextBatch(const std::string& output, std::size_t max) {
    auto acked = store_->ackedSeq(output);
    EXPECT_TRUE(acked) << acked.error().message();
    if (!acked) return {};
    auto batch = store_->readOutbox(*acked, max, 1 << 20);
    EXPECT_TRUE(batch) << batch.error().message();
    return batch ? *batch : std::vector<OutboxDocument>{};
  }

  std::int64_t acked(const std::string& output = "file") {
    auto seq = store_->ackedSeq(output);
    EXPECT_TRUE(seq);
    return seq ? *seq : -1;
  }

  std::optional<FileCheckpoint> checkpoint() {
    auto cp = store_->fileCheckpoint("file");
    EXPECT_TRUE(cp);
    return cp ? *cp : std::nullopt;
  }

  std::string outPath(const std::string& name) const {
    return (fs::path(config_.path) / name).string();
  }

  // Delivers everything in the outbox in batches of `per_batch`.
  void deliverAll(Output& output, std::size_t per_batch) {
    for (int guard = 0; guard < 1000; ++guard) {
      auto batch = nextBatch(output.name(), per_batch);
      if (batch.empty()) return;
      auto s = output.deliver(batch, *store_);
      ASSERT_TRUE(s) << s.error().message();
    }
    FAIL() << "deliverAll did not finish";
  }

  TempDir tmp_{"mdec-file-output"};
  std::unique_ptr<StateStore> store_;
  config::FileOutputConfig config_;
  std::string today_ = "20250301";
};

TEST_F(FileOutputTest, WritesTheBatchLinesAndAcknowledgesWithTheCheckpoint) {
  auto output = makeOutput();
  EXPECT_EQ(output->name(), "file");
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 3);
  auto batch = nextBatch("file", 100);
  ASSERT_EQ(batch.size(), 3u);
  auto s = output->deliver(batch, *store_);
  ASSERT_TRUE(s) << s.error().message();

  const std::string file = outPath(fileFor("20250301"));
  EXPECT_EQ(readFile(file), lines(1, 3));
  EXPECT_EQ(acked(), batch.back().seq);
  auto cp = checkpoint();
  ASSERT_TRUE(cp);
  EXPECT_EQ(cp->file, file);
  EXPECT_EQ(cp->offset, lines(1, 3).size());
  EXPECT_EQ(listDir(config_.path), std::vector<std::string>{fileFor("20250301")});

  // The next batch appends.
  addDocuments(4, 2);
  deliverAll(*output, 100);
  EXPECT_EQ(readFile(file), lines(1, 5));
  EXPECT_EQ(checkpoint()->offset, lines(1, 5).size());
  auto outbox = store_->outboxSize();
  ASSERT_TRUE(outbox);
  EXPECT_EQ(outbox->documents, 0u);  // acknowledged by the only output
}

TEST_F(FileOutputTest, OpenCreatesTheDirectoryWithParents) {
  config_.path = (fs::path(tmp_.path()) / "a" / "b" / "c").string();
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  EXPECT_TRUE(fs::is_directory(config_.path));
}

TEST_F(FileOutputTest, RotatesBySizeIntoNumberedFiles) {
  // Each document is 8 bytes with its newline ({"n":1}\n); batches of 2 = 16 bytes.
  config_.rotate_bytes = 40;
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 10);
  deliverAll(*output, 2);
  // 16 + 16 = 32 fits; + 16 = 48 would not: the third batch starts .1, and so on.
  EXPECT_EQ(listDir(config_.path),
            sortedNames({fileFor("20250301"), fileFor("20250301", 1), fileFor("20250301", 2)}));
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 4));
  EXPECT_EQ(readFile(outPath(fileFor("20250301", 1))), lines(5, 4));
  EXPECT_EQ(readFile(outPath(fileFor("20250301", 2))), lines(9, 2));
  EXPECT_EQ(checkpoint()->file, outPath(fileFor("20250301", 2)));
  EXPECT_EQ(checkpoint()->offset, lines(9, 2).size());
}

// Regression: output files were created 0644 (by hand, and through the umask): alerts
// readable by every local user.
TEST_F(FileOutputTest, OutputFilesArePrivateWhateverTheUmask) {
  mdec::testing::ScopedUmask umask(0);
  config_.rotate_bytes = 8;  // one document per file: created by rotation too
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 2);
  deliverAll(*output, 1);
  const auto names = listDir(config_.path);
  ASSERT_EQ(names.size(), 2u);
  for (const auto& name : names) {
    EXPECT_EQ(mdec::testing::permissionsOf(outPath(name).c_str()), 0600) << name;
  }
}

// An older install's file (0644) is made private when the output opens it again.
TEST_F(FileOutputTest, ALooserFileIsTightenedWhenOpened) {
  mdec::testing::ScopedUmask umask(0);
  {
    auto output = makeOutput();
    ASSERT_TRUE(output->open(*store_));
    addDocuments(1, 1);
    deliverAll(*output, 10);
  }
  const std::string file = outPath(fileFor("20250301"));
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(2, 1);
  deliverAll(*output, 10);
  EXPECT_EQ(readFile(file), lines(1, 2));
  EXPECT_EQ(mdec::testing::permissionsOf(file.c_str()), 0600);
}

TEST_F(FileOutputTest, ABatchLargerThanRotateBytesGoesWholeIntoAnEmptyFile) {
  config_.rotate_bytes = 10;
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 5);
  deliverAll(*output, 5);
  addDocuments(6, 5);
  deliverAll(*output, 5);
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 5));
  EXPECT_EQ(readFile(outPath(fileFor("20250301", 1))), lines(6, 5));
}

TEST_F(FileOutputTest, KeepsAtMostKeepFilesDeletingTheOldest) {
  config_.rotate_bytes = 8;  // one document per file
  config_.keep_files = 3;
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 4);
  deliverAll(*output, 1);
  today_ = "20250302";
  addDocuments(5, 2);
  deliverAll(*output, 1);
  EXPECT_EQ(listDir(config_.path),
            sortedNames({fileFor("20250301", 3), fileFor("20250302"), fileFor("20250302", 1)}));
  EXPECT_EQ(readFile(outPath(fileFor("20250302", 1))), lines(6, 1));
  EXPECT_EQ(checkpoint()->file, outPath(fileFor("20250302", 1)));
}

TEST_F(FileOutputTest, KeepFilesOneKeepsOnlyTheCurrentFile) {
  config_.rotate_bytes = 8;
  config_.keep_files = 1;
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 3);
  deliverAll(*output, 1);
  EXPECT_EQ(listDir(config_.path), std::vector<std::string>{fileFor("20250301", 2)});
}

TEST_F(FileOutputTest, ANewDateStartsANewFileAndAClockGoingBackDoesNot) {
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 2);
  deliverAll(*output, 2);
  today_ = "20250302";
  addDocuments(3, 2);
  deliverAll(*output, 2);
  today_ = "20250301";  // the clock went back: keep writing the newest file
  addDocuments(5, 1);
  deliverAll(*output, 2);
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 2));
  EXPECT_EQ(readFile(outPath(fileFor("20250302"))), lines(3, 3));
  EXPECT_EQ(listDir(config_.path), sortedNames({fileFor("20250301"), fileFor("20250302")}));
}

TEST_F(FileOutputTest, CrashAfterWriteBeforeAckIsCutAndWrittenAgainExactlyOnce) {
  {
    auto output = makeOutput();
    ASSERT_TRUE(output->open(*store_));
    addDocuments(1, 3);
    deliverAll(*output, 10);
  }
  addDocuments(4, 3);
  const std::string file = outPath(fileFor("20250301"));
  // What a crash between write and acknowledge leaves: the batch (here cut in the middle of
  // a line) past the checkpoint, and a newer file the acknowledgement never reached.
  writeFile(file, lines(4, 2) + "{\"n\":", /*append=*/true);
  writeFile(outPath(fileFor("20250301", 1)), lines(4, 3));
  writeFile(outPath(fileFor("20250302")), lines(4, 3));
  writeFile(outPath("unrelated.txt"), "keep me\n");

  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  EXPECT_EQ(readFile(file), lines(1, 3));  // cut back to the checkpoint
  EXPECT_EQ(listDir(config_.path), sortedNames({fileFor("20250301"), "unrelated.txt"}));
  deliverAll(*output, 10);
  EXPECT_EQ(readFile(file), lines(1, 6));  // no duplicate, no gap
  EXPECT_EQ(checkpoint()->offset, lines(1, 6).size());
}

TEST_F(FileOutputTest, AFailedAcknowledgementIsRetriedWithoutDuplicates) {
  FlakyStore flaky(*store_);
  auto output = makeOutput();
  ASSERT_TRUE(output->open(flaky));
  addDocuments(1, 2);
  deliverAll(*output, 10);
  const std::int64_t before = acked();

  addDocuments(3, 2);
  auto batch = nextBatch("file", 10);
  flaky.fail_ack_above = before;
  auto s = output->deliver(batch, flaky);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kIo);
  EXPECT_TRUE(s.error().retryable());
  EXPECT_EQ(acked(), before);
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 4));  // written, not acked

  flaky.fail_ack_above.reset();
  s = output->deliver(batch, flaky);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 4));
  EXPECT_EQ(acked(), batch.back().seq);
}

TEST_F(FileOutputTest, ABatchRetriedOnANewDayLeavesNoTailInTheOldFile) {
  FlakyStore flaky(*store_);
  auto output = makeOutput();
  ASSERT_TRUE(output->open(flaky));
  addDocuments(1, 2);
  deliverAll(*output, 10);
  addDocuments(3, 2);
  auto batch = nextBatch("file", 10);
  flaky.fail_ack_above = acked();
  ASSERT_FALSE(output->deliver(batch, flaky));  // written, not acknowledged, at 23:59:59
  flaky.fail_ack_above.reset();
  today_ = "20250302";
  ASSERT_TRUE(output->deliver(batch, flaky));
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 2));
  EXPECT_EQ(readFile(outPath(fileFor("20250302"))), lines(3, 2));
}

TEST_F(FileOutputTest, ACrashRightAfterStartingANewFileIsRecoverable) {
  // The checkpoint moves to a new file before anything is written there, so the bytes of
  // an unacknowledged first batch in it are cut on restart.
  config_.rotate_bytes = 16;
  FlakyStore flaky(*store_);
  {
    auto output = makeOutput();
    ASSERT_TRUE(output->open(flaky));
    addDocuments(1, 2);
    deliverAll(*output, 2);
    addDocuments(3, 2);
    flaky.fail_ack_above = acked();
    auto batch = nextBatch("file", 2);
    ASSERT_FALSE(output->deliver(batch, flaky));  // written into .1, not acknowledged
    EXPECT_EQ(readFile(outPath(fileFor("20250301", 1))), lines(3, 2));
    EXPECT_EQ(checkpoint()->file, outPath(fileFor("20250301", 1)));
    EXPECT_EQ(checkpoint()->offset, 0u);
  }
  // Crash; restart.
  flaky.fail_ack_above.reset();
  auto output = makeOutput();
  ASSERT_TRUE(output->open(flaky));
  EXPECT_EQ(readFile(outPath(fileFor("20250301", 1))), "");
  deliverAll(*output, 2);
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 2));
  EXPECT_EQ(readFile(outPath(fileFor("20250301", 1))), lines(3, 2));
}

TEST_F(FileOutputTest, AFirstBatchNeverAcknowledgedIsCutOnRestart) {
  FlakyStore flaky(*store_);
  // Registered before anything is committed, as the collector does (a new output receives
  // only what is committed after it is registered).
  ASSERT_TRUE(store_->registerOutput("file"));
  addDocuments(1, 3);
  {
    auto output = makeOutput();
    ASSERT_TRUE(output->open(flaky));
    flaky.fail_ack_above = acked();
    ASSERT_FALSE(output->deliver(nextBatch("file", 10), flaky));
  }
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 3));
  flaky.fail_ack_above.reset();
  auto output = makeOutput();
  ASSERT_TRUE(output->open(flaky));
  deliverAll(*output, 10);
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 3));
  EXPECT_EQ(listDir(config_.path), std::vector<std::string>{fileFor("20250301")});
}

TEST_F(FileOutputTest, APartialWriteIsCutBeforeTheBatchIsWrittenAgain) {
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 2);
  deliverAll(*output, 10);
  const std::string file = outPath(fileFor("20250301"));
  const auto size = fs::file_size(file);
  const std::int64_t before = acked();

  // Files may not grow past size + 5 bytes: the next write stops in the middle of a line.
  addDocuments(3, 3);
  auto batch = nextBatch("file", 10);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(size + 5);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &low), 0);
  auto s = output->deliver(batch, *store_);
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);

  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kIo);
  EXPECT_TRUE(s.error().retryable());
  EXPECT_EQ(acked(), before);
  EXPECT_EQ(fs::file_size(file), size + 5);

  s = output->deliver(batch, *store_);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(readFile(file), lines(1, 5));
  EXPECT_EQ(acked(), batch.back().seq);
}

TEST_F(FileOutputTest, APathThatIsNotADirectoryIsARetryableErrorAndNothingIsAcknowledged) {
  config_.path = (fs::path(tmp_.path()) / "not-a-dir").string();
  writeFile(config_.path, "x");
  auto output = makeOutput();
  auto s = output->open(*store_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kIo);
  EXPECT_TRUE(s.error().retryable());

  ASSERT_TRUE(store_->registerOutput("file"));
  addDocuments(1, 2);
  const std::int64_t before = acked();
  s = output->deliver(nextBatch("file", 10), *store_);
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().retryable());
  EXPECT_EQ(acked(), before);
  EXPECT_FALSE(checkpoint());
}

TEST_F(FileOutputTest, ACheckpointedFileCutShorterByHandIsAppendedTo) {
  {
    auto output = makeOutput();
    ASSERT_TRUE(output->open(*store_));
    addDocuments(1, 3);
    deliverAll(*output, 10);
  }
  const std::string file = outPath(fileFor("20250301"));
  writeFile(file, lines(1, 1));  // someone cut it
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(4, 1);
  deliverAll(*output, 10);
  EXPECT_EQ(readFile(file), lines(1, 1) + lines(4, 1));
  EXPECT_EQ(checkpoint()->offset, (lines(1, 1) + lines(4, 1)).size());
}

TEST_F(FileOutputTest, ACheckpointedFileDeletedByHandIsCreatedAgain) {
  {
    auto output = makeOutput();
    ASSERT_TRUE(output->open(*store_));
    addDocuments(1, 3);
    deliverAll(*output, 10);
  }
  const std::string file = outPath(fileFor("20250301"));
  fs::remove(file);
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(4, 1);
  deliverAll(*output, 10);
  EXPECT_EQ(readFile(file), lines(4, 1));
}

TEST_F(FileOutputTest, AFileDeletedWhileOpenIsCreatedAgain) {
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 2);
  deliverAll(*output, 10);
  const std::string file = outPath(fileFor("20250301"));
  fs::remove(file);
  addDocuments(3, 2);
  deliverAll(*output, 10);
  EXPECT_EQ(readFile(file), lines(3, 2));
  EXPECT_EQ(checkpoint()->offset, lines(3, 2).size());
}

TEST_F(FileOutputTest, WithoutACheckpointFilesAlreadyThereAreLeftAlone) {
  fs::create_directories(config_.path);
  writeFile(outPath(fileFor("20250301")), "not ours\n");
  writeFile(outPath(fileFor("20250228")), "older\n");
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 2);
  deliverAll(*output, 10);
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), "not ours\n");
  EXPECT_EQ(readFile(outPath(fileFor("20250228"))), "older\n");
  EXPECT_EQ(readFile(outPath(fileFor("20250301", 1))), lines(1, 2));
}

TEST_F(FileOutputTest, OpenTwiceIsHarmless) {
  auto output = makeOutput();
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 2);
  deliverAll(*output, 10);
  ASSERT_TRUE(output->open(*store_));
  addDocuments(3, 2);
  deliverAll(*output, 10);
  EXPECT_EQ(readFile(outPath(fileFor("20250301"))), lines(1, 4));
}

TEST_F(FileOutputTest, ManyBatchesAcrossRestartsAndRotationsAreWrittenExactlyOnce) {
  // A run cut by "crashes" (written, not acknowledged) at every third batch, reopened each
  // time; the concatenation of all files is every document once, in order.
  config_.rotate_bytes = 50;
  config_.keep_files = 100;
  FlakyStore flaky(*store_);
  ASSERT_TRUE(store_->registerOutput("file"));  // before anything is committed
  addDocuments(1, 60);
  int day = 1;
  for (int round = 0; round < 40; ++round) {
    auto output = makeOutput();
    ASSERT_TRUE(output->open(flaky));
    auto batch = nextBatch("file", 3);
    if (batch.empty()) break;
    ASSERT_TRUE(output->deliver(batch, flaky));
    batch = nextBatch("file", 2);
    if (batch.empty()) break;
    flaky.fail_ack_above = acked();
    EXPECT_FALSE(output->deliver(batch, flaky));
    flaky.fail_ack_above.reset();
    if (round % 7 == 6) {
      ++day;
      today_ = "202503" + std::string(day < 10 ? "0" : "") + std::to_string(day);
    }
  }
  std::string all;
  const auto names = inWritingOrder(listDir(config_.path));
  EXPECT_GT(names.size(), 5u);  // rotated by size and by date
  for (const auto& name : names) all += readFile(outPath(name));
  EXPECT_EQ(all, lines(1, 60));
}

// ---- the fd output ----

TEST_F(FileOutputTest, FdOutputWritesTheLinesAndAcknowledges) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  auto output = makeFdOutput(fds[1]);
  EXPECT_EQ(output->name(), "stdout");
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 3);
  auto batch = nextBatch("stdout", 10);
  ASSERT_TRUE(output->deliver(batch, *store_));
  EXPECT_EQ(acked("stdout"), batch.back().seq);
  ::close(fds[1]);
  std::string got;
  char buf[256];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) {
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  EXPECT_EQ(got, lines(1, 3));
  auto cp = store_->fileCheckpoint("stdout");
  ASSERT_TRUE(cp);
  EXPECT_FALSE(*cp);
}

TEST_F(FileOutputTest, FdOutputWriteErrorIsRetryableAndNotAcknowledged) {
  const int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto output = makeFdOutput(fd, "full");
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 2);
  const std::int64_t before = acked("full");
  auto s = output->deliver(nextBatch("full", 10), *store_);
  ::close(fd);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kIo);
  EXPECT_TRUE(s.error().retryable());
  EXPECT_EQ(acked("full"), before);
}

TEST_F(FileOutputTest, FdOutputClosedPipeIsNotRetryable) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  // SIGPIPE is blocked in this thread for the write, then the pending one is taken.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set), 0);
  auto output = makeFdOutput(fds[1]);
  ASSERT_TRUE(output->open(*store_));
  addDocuments(1, 2);
  const std::int64_t before = acked("stdout");
  auto s = output->deliver(nextBatch("stdout", 10), *store_);
  timespec zero{0, 0};
  while (::sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  ::close(fds[1]);
  ASSERT_FALSE(s);
  EXPECT_FALSE(s.error().retryable());
  EXPECT_EQ(acked("stdout"), before);
}

}  // namespace
}  // namespace mdec::output
