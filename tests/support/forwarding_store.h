// A StateStore that forwards every call to a real one: tests derive from it and override
// only the calls they count or make fail.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mdecollect/state/state_store.h"

namespace mdec::testing {

class ForwardingStore : public state::StateStore {
 public:
  explicit ForwardingStore(state::StateStore& inner) : inner_(inner) {}

  Result<std::optional<std::string>> watermark(const std::string& s) override {
    return inner_.watermark(s);
  }
  Result<std::vector<bool>> seen(const std::string& s,
                                 const std::vector<state::Version>& v) override {
    return inner_.seen(s, v);
  }
  Status pruneSeen(const std::string& s, const std::string& b) override {
    return inner_.pruneSeen(s, b);
  }
  Status commitPage(const state::PageCommit& p) override { return inner_.commitPage(p); }
  Status commitPages(const std::vector<state::PageCommit>& p) override {
    return inner_.commitPages(p);
  }
  bool stages() const override { return inner_.stages(); }
  Result<std::int64_t> beginStagedPage(const std::string& source) override {
    return inner_.beginStagedPage(source);
  }
  Status stage(std::int64_t p, const std::vector<state::NewDocument>& d) override {
    return inner_.stage(p, d);
  }
  Status dropStaged(std::int64_t p) override { return inner_.dropStaged(p); }
  Result<std::optional<state::FilePosition>> filePosition(const std::string& s,
                                                          const std::string& p) override {
    return inner_.filePosition(s, p);
  }
  Status registerOutput(const std::string& o) override { return inner_.registerOutput(o); }
  Result<std::vector<state::OutboxDocument>> readOutbox(std::int64_t a, std::size_t m,
                                                        std::size_t b) override {
    return inner_.readOutbox(a, m, b);
  }
  Result<std::int64_t> ackedSeq(const std::string& o) override { return inner_.ackedSeq(o); }
  Status acknowledge(const std::string& o, std::int64_t seq,
                     const std::optional<state::FileCheckpoint>& c) override {
    return inner_.acknowledge(o, seq, c);
  }
  Result<std::optional<state::FileCheckpoint>> fileCheckpoint(const std::string& o) override {
    return inner_.fileCheckpoint(o);
  }
  Result<OutboxSize> outboxSize() override { return inner_.outboxSize(); }
  Result<std::optional<std::string>> seenSince(const std::string& s) override {
    return inner_.seenSince(s);
  }
  Result<std::vector<std::string>> registeredOutputs() override {
    return inner_.registeredOutputs();
  }
  Status unregisterOutput(const std::string& o) override { return inner_.unregisterOutput(o); }
  Result<std::int64_t> addBackfill(const state::BackfillJob& j) override {
    return inner_.addBackfill(j);
  }
  Result<std::vector<state::BackfillJob>> backfills(const std::string& s) override {
    return inner_.backfills(s);
  }
  Status updateBackfill(const state::BackfillJob& j) override { return inner_.updateBackfill(j); }
  Result<std::optional<std::string>> collectedSince(const std::string& s) override {
    return inner_.collectedSince(s);
  }
  Status setCollectedSince(const std::string& s, const std::string& f) override {
    return inner_.setCollectedSince(s, f);
  }

 private:
  state::StateStore& inner_;
};

}  // namespace mdec::testing
