// Crash injection for the SQLite state store (in the manner of leveldb's fault tests): a
// child process commits pages in a loop and is SIGKILLed at a random moment (seeded); the
// parent then reopens the store and checks that it holds whole pages only, that the
// watermark and the seen-set agree with the documents, that every commit the child saw
// succeed survived, and that the outbox's running size matches its contents. The rounds
// continue on the same store, so the child also resumes from what a killed child left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mdecollect/state/state_store.h"
#include "support/temp_dir.h"

namespace mdec::state {
namespace {

namespace fs = std::filesystem;

constexpr int kPageDocs = 16;
constexpr int kRounds = 40;
constexpr int kMaxKillDelayMs = 60;
constexpr const char* kSource = "mde";
constexpr const char* kOutput = "out";

using mdec::testing::TempDir;

std::string docId(int page, int i) { return "p" + std::to_string(page) + "-" + std::to_string(i); }

// Bodies of a few hundred bytes that differ per document, so a torn write would show.
std::string docBody(int page, int i) {
  return R"({"page":)" + std::to_string(page) + R"(,"doc":)" + std::to_string(i) + R"(,"pad":")" +
         std::string(static_cast<std::size_t>(200 + (page * 7 + i) % 100), 'x') + "\"}";
}

Version version(int page, int i) {
  return {"da" + std::to_string(page) + "_" + std::to_string(i),
          "2024-01-01T00:00:00." + std::to_string(page) + "Z"};
}

PageCommit pageFor(int page) {
  PageCommit commit;
  commit.source = kSource;
  commit.watermark = std::to_string(page);
  for (int i = 0; i < kPageDocs; ++i) {
    commit.seen.push_back(version(page, i));
    commit.documents.push_back({docId(page, i), docBody(page, i)});
  }
  return commit;
}

// The child: resume after the last committed page, commit pages until killed, report each
// commit that returned success on `progress_fd`. With `acknowledge`, an output also
// acknowledges everything but the newest page after every commit (with a file checkpoint
// tied to the seq), so deletions and the running outbox size are under fire as well.
[[noreturn]] void childLoop(const std::string& dir, bool acknowledge, int progress_fd) {
  auto opened = openSqliteStore(dir);
  if (!opened) ::_exit(10);
  std::unique_ptr<StateStore> store = std::move(*opened);
  if (acknowledge && !store->registerOutput(kOutput)) ::_exit(11);
  auto watermark = store->watermark(kSource);
  if (!watermark) ::_exit(12);
  const int first = *watermark ? std::stoi(**watermark) + 1 : 0;
  for (int page = first; page < first + 1'000'000; ++page) {
    if (!store->commitPage(pageFor(page))) ::_exit(13);
    if (::write(progress_fd, &page, sizeof page) != static_cast<ssize_t>(sizeof page)) {
      ::_exit(14);
    }
    if (!acknowledge) continue;
    auto acked = store->ackedSeq(kOutput);
    if (!acked) ::_exit(15);
    auto docs = store->readOutbox(*acked, 1000, std::numeric_limits<std::size_t>::max());
    if (!docs) ::_exit(16);
    std::int64_t up_to = *acked;
    for (const auto& doc : *docs) {
      if (doc.id.rfind("p" + std::to_string(page) + "-", 0) == 0) break;
      up_to = doc.seq;
    }
    const FileCheckpoint checkpoint{"out.ndjson", static_cast<std::uint64_t>(up_to) * 10};
    if (!store->acknowledge(kOutput, up_to, checkpoint)) ::_exit(17);
  }
  ::_exit(0);
}

struct RoundOutcome {
  int last_page = -1;  // the watermark after the round, -1 when none
};

// Reopens the store and checks every invariant; returns the last committed page.
void verify(const std::string& dir, bool acknowledge, int last_reported, RoundOutcome* outcome) {
  auto opened = openSqliteStore(dir);
  ASSERT_TRUE(opened.has_value()) << opened.error().message();
  std::unique_ptr<StateStore> store = std::move(*opened);

  auto watermark = store->watermark(kSource);
  ASSERT_TRUE(watermark.has_value());
  const int last_page = *watermark ? std::stoi(**watermark) : -1;
  // Every commit the child saw succeed survived.
  EXPECT_GE(last_page, last_reported);

  auto docs = store->readOutbox(0, std::numeric_limits<std::size_t>::max(),
                                std::numeric_limits<std::size_t>::max());
  ASSERT_TRUE(docs.has_value());
  ASSERT_EQ(docs->size() % kPageDocs, 0u) << "a partial page is in the outbox";

  // The documents are whole pages, in order, ending with the watermark's page; seqs have
  // no gaps (a rolled-back transaction gives its seqs back).
  const int pages = static_cast<int>(docs->size()) / kPageDocs;
  const int first_page = last_page - pages + 1;
  if (!acknowledge) {
    EXPECT_EQ(first_page, 0);
  } else if (last_page >= 0) {
    EXPECT_GE(pages, 1) << "the newest page is never acknowledged";
  }
  std::uint64_t bytes = 0;
  for (std::size_t k = 0; k < docs->size(); ++k) {
    const auto& doc = (*docs)[k];
    const int page = first_page + static_cast<int>(k) / kPageDocs;
    const int i = static_cast<int>(k) % kPageDocs;
    ASSERT_EQ(doc.id, docId(page, i));
    ASSERT_EQ(doc.body, docBody(page, i));
    ASSERT_EQ(doc.seq, (*docs)[0].seq + static_cast<std::int64_t>(k));
    bytes += doc.body.size();
  }
  if (!acknowledge && !docs->empty()) {
    EXPECT_EQ((*docs)[0].seq, 1);
  }

  auto size = store->outboxSize();
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(size->documents, docs->size());
  EXPECT_EQ(size->bytes, bytes);

  if (acknowledge) {
    auto acked = store->ackedSeq(kOutput);
    if (last_page >= 0 || acked.has_value()) {
      ASSERT_TRUE(acked.has_value()) << acked.error().message();
      if (!docs->empty()) {
        EXPECT_EQ((*docs)[0].seq, *acked + 1);
      }
      auto checkpoint = store->fileCheckpoint(kOutput);
      ASSERT_TRUE(checkpoint.has_value());
      if (*acked > 0) {
        ASSERT_TRUE(checkpoint->has_value());
        EXPECT_EQ((*checkpoint)->offset, static_cast<std::uint64_t>(*acked) * 10);
      }
    }
  }

  // The seen-set holds exactly the versions of the committed pages.
  std::vector<Version> versions;
  std::vector<bool> expected;
  for (int page = 0; page <= last_page + 1; ++page) {
    for (int i = 0; i < kPageDocs; ++i) {
      versions.push_back(version(page, i));
      expected.push_back(page <= last_page);
    }
  }
  auto seen = store->seen(kSource, versions);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(*seen, expected);

  outcome->last_page = last_page;
}

void runCrashRounds(bool acknowledge, std::uint32_t seed) {
  TempDir tmp;
  const std::string dir = (tmp.dir() / "state").string();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(0, kMaxKillDelayMs);
  int previous_last_page = -1;
  int rounds_with_progress = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);

  for (int round = 0; round < kRounds; ++round) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "crash rounds took too long";
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      childLoop(dir, acknowledge, fds[1]);
    }
    ::close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "the child stopped by itself, exit code "
        << (WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);

    int last_reported = -1;
    int page = 0;
    while (::read(fds[0], &page, sizeof page) == static_cast<ssize_t>(sizeof page)) {
      last_reported = page;
    }
    ::close(fds[0]);

    RoundOutcome outcome;
    verify(dir, acknowledge, last_reported, &outcome);
    if (::testing::Test::HasFatalFailure()) {
      FAIL() << "round " << round << " (seed " << seed << ")";
    }
    EXPECT_GE(outcome.last_page, previous_last_page) << "committed pages were lost";
    if (outcome.last_page > previous_last_page) ++rounds_with_progress;
    previous_last_page = outcome.last_page;
  }
  std::printf("[ crash ] %d rounds, %d with progress, %d pages committed in all\n", kRounds,
              rounds_with_progress, previous_last_page + 1);
  EXPECT_GT(rounds_with_progress, 0);
}

TEST(SqliteCrash, KilledWhileCommittingPagesLeavesWholePagesOnly) {
  runCrashRounds(/*acknowledge=*/false, 20240101);
}

TEST(SqliteCrash, KilledWhileCommittingAndAcknowledgingLeavesAConsistentOutbox) {
  runCrashRounds(/*acknowledge=*/true, 777);
}

}  // namespace
}  // namespace mdec::state
