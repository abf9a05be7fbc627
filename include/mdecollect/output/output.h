// An output delivers batches from the outbox and acknowledges them in the state store.
#pragma once

#include <string>
#include <vector>

#include "mdecollect/core/result.h"
#include "mdecollect/state/state_store.h"

namespace mdec::output {

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
};

}  // namespace mdec::output
