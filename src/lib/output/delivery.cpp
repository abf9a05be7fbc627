#include "mdecollect/output/delivery.h"

#include <utility>

#include "mdecollect/core/fiber.h"

namespace mdec::output {

Delivery::Page::~Page() {
  if (begun_) end(false);
  // A destructor never throws, whatever the store does.
  try {
    dropStaged();
  } catch (...) {
  }
}

void Delivery::Page::add(std::string_view id, std::string_view body) {
  ++documents_;
  if (delivery_.use_outbox_) {
    outbox_.push_back({std::string(id), std::string(body)});
    outbox_bytes_ += id.size() + body.size();
    if (outbox_bytes_ >= kFlushBytes && !error_ && delivery_.store_.stages()) {
      if (auto s = stageOutbox(); !s) error_ = s.error();
    }
  }
  if (delivery_.direct_.empty() || error_) return;
  buffer_ += body;
  buffer_ += '\n';
  if (buffer_.size() >= kFlushBytes) {
    if (auto s = flush(); !s) error_ = s.error();
  }
}

Status Delivery::Page::flush() {
  if (!begun_) {
    for (std::size_t i = 0; i < delivery_.direct_.size(); ++i) {
      if (auto s = delivery_.direct_[i]->direct()->beginPage(delivery_.store_); !s) {
        for (std::size_t j = 0; j < i; ++j) delivery_.direct_[j]->direct()->endPage(false);
        return s;
      }
    }
    begun_ = true;
  }
  for (Output* out : delivery_.direct_) {
    if (auto s = out->direct()->write(buffer_); !s) return s;
  }
  buffer_.clear();
  return okStatus();
}

Status Delivery::Page::stageOutbox() {
  if (staged_page_ == 0) {
    auto page = delivery_.store_.beginStagedPage(source_);
    if (!page) return std::move(page.error());
    staged_page_ = *page;
  }
  if (auto s = delivery_.store_.stage(staged_page_, outbox_); !s) return s;
  staged_documents_ += outbox_.size();
  outbox_.clear();
  outbox_bytes_ = 0;
  return okStatus();
}

// Whatever was staged, gone (the page did not commit). A failure leaves the rows to the
// store's next open; they are never delivered without their page's commit.
void Delivery::Page::dropStaged() {
  if (staged_page_ == 0) return;
  static_cast<void>(delivery_.store_.dropStaged(std::exchange(staged_page_, 0)));
  staged_documents_ = 0;
}

void Delivery::Page::end(bool committed) {
  for (Output* out : delivery_.direct_) out->direct()->endPage(committed);
  begun_ = false;
}

// A page waiting to be committed in a group.
struct Delivery::Pending {
  state::PageCommit commit;
  std::string lines;  // its lines for the direct outputs
  std::size_t documents = 0;
  Status result = okStatus();
  bool lead = false;  // woken to commit the next group, not with its result
  core::FiberEvent done;
};

Status Delivery::Page::commit(state::PageCommit commit) {
  if (error_) {
    if (begun_) end(false);
    dropStaged();
    return *error_;
  }
  commit.documents = std::move(outbox_);
  commit.staged_page = staged_page_;
  commit.staged_documents = staged_documents_;
  // Committed, the staged rows are in the outbox; failed, they are dropped.
  const auto settle = [this](const Status& status) {
    if (status) {
      staged_page_ = 0;
      staged_documents_ = 0;
    } else {
      dropStaged();
    }
  };
  if (!begun_) {
    // Nothing written yet: committed in a group.
    auto page = std::make_shared<Pending>();
    page->commit = std::move(commit);
    page->lines = std::move(buffer_);
    page->documents = documents_;
    if (delivery_.direct_.empty()) page->lines.clear();
    auto status = delivery_.commitInGroup(page);
    settle(status);
    if (status) delivery_.countDelivered(page->commit.source, documents_);
    return status;
  }
  if (documents_ > 0 && !delivery_.direct_.empty()) {
    if (!buffer_.empty() || !begun_) {
      if (auto s = flush(); !s) {
        if (begun_) end(false);
        dropStaged();
        return s;
      }
    }
    for (Output* out : delivery_.direct_) {
      auto checkpoint = out->direct()->syncPage();
      if (!checkpoint) {
        end(false);
        dropStaged();
        return checkpoint.error();
      }
      commit.direct.push_back({out->name(), std::move(*checkpoint)});
    }
  }
  auto status = delivery_.store_.commitPage(commit);
  if (begun_) end(status.has_value());
  settle(status);
  if (status) {
    delivery_.countDelivered(commit.source, documents_);
    std::lock_guard lock(delivery_.group_mu_);
    ++delivery_.pages_;
    ++delivery_.groups_;
  }
  return status;
}

void Delivery::countDelivered(const std::string& source, std::size_t documents) {
  if (metrics_ == nullptr || documents == 0) return;
  for (Output* out : direct_) {
    metrics_->documents(source, out->name(), telemetry::Outcome::kDelivered, documents);
  }
}

// The first page to arrive while no group is being committed commits one group: itself and
// every page waiting (up to kMaxGroupPages). It then wakes the first page that arrived
// meanwhile to commit the next group, and returns: no caller commits others' pages for long.
Status Delivery::commitInGroup(const std::shared_ptr<Pending>& page) {
  {
    std::lock_guard lock(group_mu_);
    waiting_.push_back(page);
    if (committing_) {
      // (Below: wait for the result, or to lead.)
    } else {
      committing_ = true;
      page->lead = true;
    }
  }
  if (!page->lead) {
    page->done.wait();
    if (!page->lead) return page->result;
  }
  // The other fibers of this loop that are about to commit join the group.
  core::yieldFiber();
  std::vector<std::shared_ptr<Pending>> group;
  {
    std::lock_guard lock(group_mu_);
    const std::size_t n = std::min(waiting_.size(), kMaxGroupPages);
    group.assign(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(n));
    waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(n));
  }
  const Status status = commitGroup(group);
  std::shared_ptr<Pending> next;
  {
    std::lock_guard lock(group_mu_);
    if (status) {
      pages_ += group.size();
      ++groups_;
    }
    if (waiting_.empty()) {
      committing_ = false;
    } else {
      next = waiting_.front();
      next->lead = true;
    }
  }
  for (const auto& p : group) {
    p->result = status;
    if (p != page) p->done.set();
  }
  if (next) next->done.set();
  return page->result;
}

Status Delivery::commitGroup(const std::vector<std::shared_ptr<Pending>>& group) {
  std::vector<state::PageCommit> commits;
  commits.reserve(group.size());
  std::size_t bytes = 0;
  for (const auto& p : group) {
    commits.push_back(std::move(p->commit));
    bytes += p->lines.size();
  }
  // Give each page its commit back (for its caller's counting) whatever happens.
  struct Restore {
    const std::vector<std::shared_ptr<Pending>>& group;
    std::vector<state::PageCommit>& commits;
    ~Restore() {
      for (std::size_t i = 0; i < group.size(); ++i) group[i]->commit = std::move(commits[i]);
    }
  } restore{group, commits};

  const bool write = bytes > 0 && !direct_.empty();
  if (write) {
    for (std::size_t i = 0; i < direct_.size(); ++i) {
      if (auto s = direct_[i]->direct()->beginPage(store_); !s) {
        for (std::size_t j = 0; j < i; ++j) direct_[j]->direct()->endPage(false);
        return s;
      }
    }
    const auto fail = [this](Status s) {
      for (Output* out : direct_) out->direct()->endPage(false);
      return s;
    };
    for (Output* out : direct_) {
      for (const auto& p : group) {
        if (p->lines.empty()) continue;
        if (auto s = out->direct()->write(p->lines); !s) return fail(s);
      }
      auto checkpoint = out->direct()->syncPage();
      if (!checkpoint) return fail(checkpoint.error());
      // Each page is acknowledged where its own lines end.
      std::uint64_t end = checkpoint->offset;
      for (std::size_t i = group.size(); i-- > 0;) {
        if (group[i]->lines.empty()) continue;
        commits[i].direct.push_back({out->name(), {checkpoint->file, end}});
        end -= group[i]->lines.size();
      }
    }
  }
  // One page alone: its own commit (a store may say more about it).
  auto status =
      commits.size() == 1 ? store_.commitPage(commits.front()) : store_.commitPages(commits);
  if (write) {
    for (Output* out : direct_) out->direct()->endPage(status.has_value());
  }
  return status;
}

std::uint64_t Delivery::pagesCommitted() const {
  std::lock_guard lock(group_mu_);
  return pages_;
}

std::uint64_t Delivery::groupsCommitted() const {
  std::lock_guard lock(group_mu_);
  return groups_;
}

}  // namespace mdec::output
