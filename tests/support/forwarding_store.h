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

 private:
  state::StateStore& inner_;
};

}  // namespace mdec::testing
