// Delivery: a page's documents go straight into the file output and are acknowledged by
// the page's own commit; the outbox holds them only when an output delivers from it; a
// page that does not commit (failure, crash) leaves nothing behind.
#include "mdecollect/output/delivery.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mdecollect/core/fiber.h"
#include "mdecollect/output/file_output.h"
#include "mdecollect/state/state_store.h"
#include "support/files.h"
#include "support/forwarding_store.h"
#include "support/temp_dir.h"

namespace mdec::output {
namespace {

using mdec::testing::readFile;

std::string body(int i) { return "{\"n\":" + std::to_string(i) + "}"; }

// Forwards to a real store; fails commits while `fail` is set.
class FlakyStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  bool fail = false;
  Status commitPage(const state::PageCommit& p) override {
    if (fail) return Error(ErrorCode::kIo, "injected: disk I/O error");
    return ForwardingStore::commitPage(p);
  }
  Status commitPages(const std::vector<state::PageCommit>& p) override {
    if (fail) return Error(ErrorCode::kIo, "injected: disk I/O error");
    return ForwardingStore::commitPages(p);
  }
};

// Counts the staging calls.
class CountingStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  int begun = 0;
  int staged = 0;
  int dropped = 0;
  Result<std::int64_t> beginStagedPage(const std::string& source) override {
    ++begun;
    return ForwardingStore::beginStagedPage(source);
  }
  Status stage(std::int64_t p, const std::vector<state::NewDocument>& d) override {
    ++staged;
    return ForwardingStore::stage(p, d);
  }
  Status dropStaged(std::int64_t p) override {
    ++dropped;
    return ForwardingStore::dropStaged(p);
  }
};

class DeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = state::openSqliteStore(tmp_.sub("state"));
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    flaky_ = std::make_unique<FlakyStore>(*store_);
    config_.path = tmp_.sub("out");
    config_.rotate_bytes = 1 << 30;
    config_.keep_files = 0;
  }

  std::unique_ptr<Output> openFileOutput() {
    auto out = makeFileOutput(config_, [] { return std::string("20250301"); });
    auto s = out->open(*store_);
    EXPECT_TRUE(s) << s.error().message();
    return out;
  }

  std::string outFile() const {
    return config_.path + "/microsoft_defender_endpoint-20250301.ndjson";
  }

  // A page of documents first..first+count-1 with a watermark; committed when `commit`.
  Status page(Delivery& delivery, int first, int count, bool commit = true,
              const std::string& source = "src") {
    Delivery::Page p(delivery, source);
    for (int i = first; i < first + count; ++i) p.add("id-" + std::to_string(i), body(i));
    EXPECT_EQ(p.documents(), static_cast<std::size_t>(count));
    if (!commit) return okStatus();
    state::PageCommit c;
    c.source = source;
    c.watermark = "w" + std::to_string(first + count);
    c.seen.push_back({"alert-" + std::to_string(first), "t"});
    return p.commit(std::move(c));
  }

  static std::string lines(int first, int count) {
    std::string out;
    for (int i = first; i < first + count; ++i) out += body(i) + "\n";
    return out;
  }

  // A page of `count` documents of about 1 KiB each (a few MiB: staged in pieces).
  static Status bigPage(Delivery& delivery, int first, int count, bool commit = true,
                        const std::string& source = "big") {
    Delivery::Page p(delivery, source);
    for (int i = first; i < first + count; ++i) p.add("id-" + std::to_string(i), bigBody(i));
    if (!commit) return okStatus();
    state::PageCommit c;
    c.source = source;
    c.watermark = "w" + std::to_string(first + count);
    return p.commit(std::move(c));
  }

  static std::string bigBody(int i) {
    return "{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(1000, 'p') + "\"}";
  }

  // The outbox's documents as source/id, checking that seqs rise.
  std::vector<std::string> outbox() {
    std::vector<std::string> ids;
    std::int64_t after = 0;
    for (int round = 0; round < 1000; ++round) {
      auto docs = store_->readOutbox(after, 1000, 1 << 30);
      EXPECT_TRUE(docs) << docs.error().message();
      if (!docs || docs->empty()) break;
      for (const auto& d : *docs) {
        EXPECT_GT(d.seq, after);
        after = d.seq;
        ids.push_back(d.source + "/" + d.id);
      }
    }
    return ids;
  }

  static std::vector<std::string> ids(const std::string& source, int first, int count) {
    std::vector<std::string> out;
    for (int i = first; i < first + count; ++i) out.push_back(source + "/id-" + std::to_string(i));
    return out;
  }

  testing::TempDir tmp_{"mdec-delivery"};
  std::unique_ptr<state::StateStore> store_;
  std::unique_ptr<FlakyStore> flaky_;
  config::FileOutputConfig config_;
};

TEST_F(DeliveryTest, APageIsWrittenToTheFileAndAcknowledgedByItsOwnCommit) {
  auto file = openFileOutput();
  Delivery delivery(*store_, {file.get()}, /*use_outbox=*/false);
  ASSERT_TRUE(page(delivery, 0, 3));
  ASSERT_TRUE(page(delivery, 3, 2));
  EXPECT_EQ(readFile(outFile()), lines(0, 5));
  auto cp = store_->fileCheckpoint("file");
  ASSERT_TRUE(cp && *cp);
  EXPECT_EQ((*cp)->file, outFile());
  EXPECT_EQ((*cp)->offset, lines(0, 5).size());
  // Nothing went through the outbox, and the state moved with the page.
  auto size = store_->outboxSize();
  ASSERT_TRUE(size);
  EXPECT_EQ(size->documents, 0u);
  EXPECT_EQ(store_->watermark("src").value(), std::optional<std::string>("w5"));
  EXPECT_EQ(store_->seen("src", {{"alert-3", "t"}}).value(), std::vector<bool>{true});
}

TEST_F(DeliveryTest, LargePagesAreWrittenInPiecesAndArriveWhole) {
  auto file = openFileOutput();
  Delivery delivery(*store_, {file.get()}, false);
  ASSERT_TRUE(page(delivery, 0, 200'000));  // several MiB: flushed before the commit
  EXPECT_EQ(readFile(outFile()), lines(0, 200'000));
}

TEST_F(DeliveryTest, APageNeverCommittedLeavesNothingInTheFile) {
  auto file = openFileOutput();
  Delivery delivery(*store_, {file.get()}, false);
  ASSERT_TRUE(page(delivery, 0, 2));
  ASSERT_TRUE(page(delivery, 2, 100'000, /*commit=*/false));  // abandoned after flushing
  ASSERT_TRUE(page(delivery, 2, 1));
  EXPECT_EQ(readFile(outFile()), lines(0, 3));
  EXPECT_EQ(store_->watermark("src").value(), std::optional<std::string>("w3"));
}

TEST_F(DeliveryTest, AFailedCommitCutsThePageAndTheRetryWritesItOnce) {
  auto file = openFileOutput();
  Delivery delivery(*flaky_, {file.get()}, false);
  ASSERT_TRUE(page(delivery, 0, 2));
  flaky_->fail = true;
  auto failed = page(delivery, 2, 100'000);
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message().find("injected"), std::string::npos);
  EXPECT_EQ(store_->watermark("src").value(), std::optional<std::string>("w2"));
  flaky_->fail = false;
  ASSERT_TRUE(page(delivery, 2, 3));
  EXPECT_EQ(readFile(outFile()), lines(0, 5));
}

TEST_F(DeliveryTest, ACrashBeforeTheCommitIsCutWhenTheOutputOpensAgain) {
  {
    auto file = openFileOutput();
    Delivery delivery(*store_, {file.get()}, false);
    ASSERT_TRUE(page(delivery, 0, 2));
    // The process dies with a page written and synced but not committed.
    DirectWriter* writer = file->direct();
    ASSERT_TRUE(writer->beginPage(*store_));
    ASSERT_TRUE(writer->write(lines(2, 50'000)));
    ASSERT_TRUE(writer->syncPage());
    EXPECT_EQ(readFile(outFile()), lines(0, 50'002));
    writer->endPage(false);  // (only so that this process can go on)
    std::ofstream(outFile(), std::ios::app) << lines(7, 7);  // more unacknowledged bytes
  }
  auto file = openFileOutput();
  EXPECT_EQ(readFile(outFile()), lines(0, 2));
  Delivery delivery(*store_, {file.get()}, false);
  ASSERT_TRUE(page(delivery, 2, 1));
  EXPECT_EQ(readFile(outFile()), lines(0, 3));
}

TEST_F(DeliveryTest, WithAnOutboxOutputTheDocumentsAreQueuedAndTheFileIsAcknowledgedPastThem) {
  ASSERT_TRUE(store_->registerOutput("stdout"));
  auto file = openFileOutput();
  Delivery delivery(*store_, {file.get()}, /*use_outbox=*/true);
  ASSERT_TRUE(page(delivery, 0, 3));
  EXPECT_EQ(readFile(outFile()), lines(0, 3));
  auto waiting = store_->readOutbox(store_->ackedSeq("stdout").value(), 100, 1 << 20);
  ASSERT_TRUE(waiting);
  ASSERT_EQ(waiting->size(), 3u);
  EXPECT_EQ((*waiting)[2].id, "id-2");
  EXPECT_EQ((*waiting)[2].body, body(2));
  EXPECT_EQ(store_->ackedSeq("file").value(), (*waiting)[2].seq);
  // Once the other output has them too, they leave the outbox.
  ASSERT_TRUE(store_->acknowledge("stdout", (*waiting)[2].seq, std::nullopt));
  EXPECT_EQ(store_->outboxSize().value().documents, 0u);
}

TEST_F(DeliveryTest, WithoutDirectOutputsEverythingGoesToTheOutbox) {
  ASSERT_TRUE(store_->registerOutput("stdout"));
  Delivery delivery(*store_);
  ASSERT_TRUE(page(delivery, 0, 4));
  EXPECT_EQ(store_->outboxSize().value().documents, 4u);
  EXPECT_EQ(store_->watermark("src").value(), std::optional<std::string>("w4"));
}

TEST_F(DeliveryTest, APageWithoutDocumentsStillCommitsItsState) {
  auto file = openFileOutput();
  Delivery delivery(*store_, {file.get()}, false);
  Delivery::Page p(delivery, "src");
  state::PageCommit c;
  c.source = "src";
  c.watermark = "w-empty";
  ASSERT_TRUE(p.commit(std::move(c)));
  EXPECT_EQ(store_->watermark("src").value(), std::optional<std::string>("w-empty"));
}

// Sorted lines of a file (pages of a group are in it in the order they joined).
std::vector<std::string> sortedLines(const std::string& text) {
  std::vector<std::string> out;
  std::string line;
  for (char c : text) {
    if (c == '\n') {
      out.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Pages of many fibers that commit at once share one store commit: the first leads and
// yields, the others join its group. Each page's lines are in the file once, each source's
// state moved, and the checkpoint is at the end of them all.
TEST_F(DeliveryTest, PagesCommittingTogetherShareOneCommit) {
  auto file = openFileOutput();
  Delivery delivery(*store_, {file.get()}, false);
  constexpr int kPages = 20;
  std::vector<bool> ok(kPages, false);
  core::FiberLoop loop;
  for (int i = 0; i < kPages; ++i) {
    loop.post([&, i] {
      ok[static_cast<std::size_t>(i)] =
          page(delivery, i * 10, 10, true, "src-" + std::to_string(i)).has_value();
    });
  }
  loop.finish();
  loop.run();
  for (int i = 0; i < kPages; ++i) EXPECT_TRUE(ok[static_cast<std::size_t>(i)]) << i;
  EXPECT_EQ(delivery.pagesCommitted(), static_cast<std::uint64_t>(kPages));
  EXPECT_EQ(delivery.groupsCommitted(), 1u);
  EXPECT_EQ(sortedLines(readFile(outFile())), sortedLines(lines(0, kPages * 10)));
  auto cp = store_->fileCheckpoint("file");
  ASSERT_TRUE(cp && *cp);
  EXPECT_EQ((*cp)->offset, lines(0, kPages * 10).size());
  for (int i = 0; i < kPages; ++i) {
    EXPECT_EQ(store_->watermark("src-" + std::to_string(i)).value(),
              std::optional<std::string>("w" + std::to_string(i * 10 + 10)));
  }
}

// A group whose commit fails commits none of its pages and leaves none of their lines;
// committed again, each arrives once.
TEST_F(DeliveryTest, AFailedGroupLeavesNothingAndItsPagesCommitAgainOnce) {
  auto file = openFileOutput();
  Delivery delivery(*flaky_, {file.get()}, false);
  ASSERT_TRUE(page(delivery, 0, 2));
  const auto commitAll = [&](std::vector<bool>& ok) {
    core::FiberLoop loop;
    for (int i = 0; i < 5; ++i) {
      loop.post([&, i] {
        ok[static_cast<std::size_t>(i)] =
            page(delivery, 2 + i * 3, 3, true, "src-" + std::to_string(i)).has_value();
      });
    }
    loop.finish();
    loop.run();
  };
  flaky_->fail = true;
  std::vector<bool> failed(5, true);
  commitAll(failed);
  for (bool b : failed) EXPECT_FALSE(b);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(store_->watermark("src-" + std::to_string(i)).value(), std::nullopt);
  }
  flaky_->fail = false;
  std::vector<bool> ok(5, false);
  commitAll(ok);
  for (bool b : ok) EXPECT_TRUE(b);
  EXPECT_EQ(sortedLines(readFile(outFile())), sortedLines(lines(0, 17)));
  auto cp = store_->fileCheckpoint("file");
  ASSERT_TRUE(cp && *cp);
  EXPECT_EQ((*cp)->offset, lines(0, 17).size());
}

// Off a fiber loop (plain threads) pages still commit, alone or in groups, each once.
TEST_F(DeliveryTest, PagesOfPlainThreadsCommitEachOnce) {
  auto file = openFileOutput();
  Delivery delivery(*store_, {file.get()}, false);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 10; ++j) {
        const int first = (i * 10 + j) * 4;
        if (page(delivery, first, 4, true, "t" + std::to_string(i))) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
  EXPECT_EQ(delivery.pagesCommitted(), 80u);
  EXPECT_LE(delivery.groupsCommitted(), 80u);
  EXPECT_EQ(sortedLines(readFile(outFile())), sortedLines(lines(0, 320)));
}

// A page whose outbox documents pass kFlushBytes is staged in pieces while it is mapped and
// arrives whole and in order with its commit; small pages around it are not staged.
TEST_F(DeliveryTest, ALargePageThroughTheOutboxIsStagedAndArrivesWholeInOrder) {
  ASSERT_TRUE(store_->registerOutput("es"));
  CountingStore counting(*store_);
  Delivery delivery(counting);
  ASSERT_TRUE(page(delivery, 0, 3, true, "small"));
  EXPECT_EQ(counting.begun, 0);
  ASSERT_TRUE(bigPage(delivery, 3, 4000));  // about 4 MiB
  EXPECT_EQ(counting.begun, 1);
  EXPECT_GE(counting.staged, 3);
  ASSERT_TRUE(page(delivery, 4003, 2, true, "small"));
  EXPECT_EQ(counting.begun, 1);
  std::vector<std::string> expected = ids("small", 0, 3);
  for (const auto& id : ids("big", 3, 4000)) expected.push_back(id);
  for (const auto& id : ids("small", 4003, 2)) expected.push_back(id);
  EXPECT_EQ(outbox(), expected);
  EXPECT_EQ(store_->outboxSize().value().documents, 4005u);
  auto first = store_->readOutbox(3, 1, 1 << 30);
  ASSERT_TRUE(first && first->size() == 1);
  EXPECT_EQ((*first)[0].body, bigBody(3));
  EXPECT_EQ(store_->watermark("big").value(), std::optional<std::string>("w4003"));
}

// Abandoned or failed, a staged page leaves no outbox rows and drops what it staged; its
// retry arrives once.
TEST_F(DeliveryTest, AbandonedAndFailedStagedPagesLeaveNothingInTheOutbox) {
  ASSERT_TRUE(store_->registerOutput("es"));
  CountingStore counting(*flaky_);
  Delivery delivery(counting);
  ASSERT_TRUE(bigPage(delivery, 0, 3000, /*commit=*/false));
  EXPECT_EQ(counting.begun, 1);
  EXPECT_EQ(counting.dropped, 1);
  EXPECT_EQ(store_->outboxSize().value().documents, 0u);
  flaky_->fail = true;
  auto failed = bigPage(delivery, 0, 3000);
  ASSERT_FALSE(failed);
  EXPECT_EQ(counting.begun, 2);
  EXPECT_EQ(counting.dropped, 2);
  EXPECT_EQ(store_->outboxSize().value().documents, 0u);
  EXPECT_EQ(store_->watermark("big").value(), std::nullopt);
  flaky_->fail = false;
  ASSERT_TRUE(bigPage(delivery, 0, 3000));
  EXPECT_EQ(counting.dropped, 2);  // committed: nothing to drop
  EXPECT_EQ(outbox(), ids("big", 0, 3000));
}

// A process that stops after staging and before the commit: reopened, the store holds
// nothing of the page, and the page read again arrives once.
TEST_F(DeliveryTest, ACrashAfterStagingLeavesNothingAfterReopen) {
  ASSERT_TRUE(store_->registerOutput("es"));
  {
    // A page staged by a process that died: staged, never committed nor dropped.
    auto page = store_->beginStagedPage("big");
    ASSERT_TRUE(page);
    std::vector<state::NewDocument> docs;
    for (int i = 0; i < 100; ++i) docs.push_back({"id-" + std::to_string(i), bigBody(i)});
    ASSERT_TRUE(store_->stage(*page, docs));
  }
  flaky_.reset();
  store_.reset();
  auto reopened = state::openSqliteStore(tmp_.sub("state"));
  ASSERT_TRUE(reopened) << reopened.error().message();
  store_ = std::move(*reopened);
  EXPECT_EQ(store_->outboxSize().value().documents, 0u);
  Delivery delivery(*store_);
  ASSERT_TRUE(bigPage(delivery, 0, 2000));
  EXPECT_EQ(outbox(), ids("big", 0, 2000));
}

// A staged page commits in a group with small ones: all or nothing, each page's documents
// in order (the small pages' may sit among the big page's: it staged while they committed).
TEST_F(DeliveryTest, AStagedPageCommitsInAGroupWithSmallOnes) {
  ASSERT_TRUE(store_->registerOutput("es"));
  CountingStore counting(*store_);
  Delivery delivery(counting);
  constexpr int kSmall = 5;
  std::vector<bool> ok(kSmall + 1, false);
  core::FiberLoop loop;
  for (int i = 0; i < kSmall; ++i) {
    loop.post([&, i] {
      ok[static_cast<std::size_t>(i)] =
          page(delivery, i * 10, 10, true, "s" + std::to_string(i)).has_value();
    });
  }
  loop.post([&] { ok[kSmall] = bigPage(delivery, 1000, 2500).has_value(); });
  loop.finish();
  loop.run();
  for (std::size_t i = 0; i < ok.size(); ++i) EXPECT_TRUE(ok[i]) << i;
  EXPECT_EQ(counting.begun, 1);
  EXPECT_EQ(delivery.pagesCommitted(), static_cast<std::uint64_t>(kSmall + 1));
  EXPECT_EQ(delivery.groupsCommitted(), 1u);
  const auto got = outbox();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kSmall * 10 + 2500));
  std::map<std::string, std::vector<std::string>> by_source;
  for (const auto& id : got) by_source[id.substr(0, id.find('/'))].push_back(id);
  EXPECT_EQ(by_source["big"], ids("big", 1000, 2500));
  for (int i = 0; i < kSmall; ++i) {
    EXPECT_EQ(by_source["s" + std::to_string(i)], ids("s" + std::to_string(i), i * 10, 10));
  }
}

}  // namespace
}  // namespace mdec::output
