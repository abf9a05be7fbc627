// The outputs a configuration asks for, made in one place: the collector takes them from
// here (or, in tests, from a factory of their own) and treats them all alike.
#pragma once

#include <memory>
#include <vector>

#include "mdecollect/config/config.h"
#include "mdecollect/output/output.h"

namespace mdec::http {
class TraceWriter;
}
namespace mdec::telemetry {
class Metrics;
}

namespace mdec::output {

struct OutputContext {
  telemetry::Metrics* metrics = nullptr;     // where outputs that count items count them
  std::shared_ptr<http::TraceWriter> trace;  // null: tracing off
};

// The file, stdout and Elasticsearch outputs that are enabled, in that order. Before the
// Elasticsearch output is made, the index templates the configured sources write to are
// checked (templatesWritten): a missing or outdated one is a warning that says how to fix it
// (the documents wait in the outbox meanwhile).
std::vector<std::unique_ptr<Output>> makeOutputs(const config::Config& config,
                                                 const OutputContext& context);

}  // namespace mdec::output
