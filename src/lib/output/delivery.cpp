#include "mdecollect/output/delivery.h"

#include <utility>

namespace mdec::output {
namespace {

// Lines are handed to the direct outputs in pieces of about this size, so a page's
// documents are never all in memory at once.
constexpr std::size_t kFlushBytes = 1u << 20;

}  // namespace

Delivery::Page::~Page() {
  if (begun_) end(false);
}

void Delivery::Page::add(std::string_view id, std::string_view body) {
  ++documents_;
  if (delivery_.use_outbox_) outbox_.push_back({std::string(id), std::string(body)});
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

void Delivery::Page::end(bool committed) {
  for (Output* out : delivery_.direct_) out->direct()->endPage(committed);
  begun_ = false;
}

Status Delivery::Page::commit(state::PageCommit commit) {
  if (error_) {
    if (begun_) end(false);
    return *error_;
  }
  commit.documents = std::move(outbox_);
  if (documents_ > 0 && !delivery_.direct_.empty()) {
    if (!buffer_.empty() || !begun_) {
      if (auto s = flush(); !s) {
        if (begun_) end(false);
        return s;
      }
    }
    for (Output* out : delivery_.direct_) {
      auto checkpoint = out->direct()->syncPage();
      if (!checkpoint) {
        end(false);
        return checkpoint.error();
      }
      commit.direct.push_back({out->name(), std::move(*checkpoint)});
    }
  }
  auto status = delivery_.store_.commitPage(commit);
  if (begun_) end(status.has_value());
  if (status && delivery_.metrics_ != nullptr) {
    for (Output* out : delivery_.direct_) {
      delivery_.metrics_->documents(commit.source, out->name(), telemetry::Outcome::kDelivered,
                                    documents_);
    }
  }
  return status;
}

}  // namespace mdec::output
