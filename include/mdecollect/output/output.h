// An output delivers batches from the outbox and acknowledges them in the state store.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/core/result.h"
#include "mdecollect/state/state_store.h"

namespace mdec::output {

// An output that can take a page's documents while the page is mapped (the file output):
// they are written and made durable before the page commits, and the page's own
// transaction acknowledges them and records the checkpoint — no round trip through the
// outbox. Used by one page at a time: beginPage holds the output until endPage.
class DirectWriter {
 public:
  virtual ~DirectWriter() = default;
  // On failure the output is not held.
  virtual Status beginPage(state::StateStore& store) = 0;
  // Appends NDJSON lines.
  virtual Status write(std::string_view lines) = 0;
  // Makes the page durable; returns the checkpoint to commit with it.
  virtual Result<state::FileCheckpoint> syncPage() = 0;
  // Releases the output. `committed`: the page's transaction committed; otherwise its bytes
  // are cut off before anything else is written.
  virtual void endPage(bool committed) = 0;
};

class Output {
 public:
  virtual ~Output() = default;
  // The name it acknowledges under in the store ("file", "stdout", "elasticsearch").
  virtual const std::string& name() const = 0;
  // Called once before the first delivery, after a restart too: restores a consistent
  // destination from the store's checkpoint (the file output cuts off bytes written but
  // never acknowledged).
  virtual Status open(state::StateStore& store) = 0;
  // Delivers `batch` (outbox order) and, once it is durable at the destination,
  // acknowledges it in `store` (for the file output in the same transaction as its
  // checkpoint). A retryable error (Error::retryable) means: nothing was acknowledged,
  // the pipeline backs off and delivers the same batch again.
  virtual Status deliver(const std::vector<state::OutboxDocument>& batch,
                         state::StateStore& store) = 0;
  // How much the pipeline hands to one deliver() call.
  virtual std::size_t maxBatchDocuments() const { return 1000; }
  virtual std::size_t maxBatchBytes() const { return 4u << 20; }
  // Non-null when the output can be written directly (see DirectWriter).
  virtual DirectWriter* direct() { return nullptr; }
  // True when the output counts its documents per source in the metrics itself (item by
  // item, as the Elasticsearch output does); otherwise the pipeline counts each batch
  // deliver() acknowledged whole.
  virtual bool countsDelivered() const { return false; }
  // One line for the log when the run ends (empty: nothing to say).
  virtual std::string summary() const { return {}; }
};

}  // namespace mdec::output
