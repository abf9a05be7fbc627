#include "mdecollect/output/outputs.h"

#include <spdlog/spdlog.h>

#include "mdecollect/http/tracing_http_client.h"
#include "mdecollect/output/elasticsearch_output.h"
#include "mdecollect/output/es_setup.h"
#include "mdecollect/output/file_output.h"

namespace mdec::output {
namespace {

// Says how to fix a missing or outdated index template, for each template whose data streams
// the configured sources write to (an absent incident template is no concern when no
// graph_incidents source is configured); never stops the run (the documents wait in the
// outbox while the cluster is unreachable).
void checkIndexTemplates(const config::Config& config) {
  EsTransport transport(config.elasticsearch);
  for (const auto id : templatesWritten(config)) {
    const IndexTemplateSpec& spec = indexTemplate(id);
    auto state = templateState(config.elasticsearch, transport, spec);
    if (!state) {
      spdlog::warn("elasticsearch: cannot check the index template {}: {}", spec.name,
                   state.error().message());
      return;  // the next one would fail the same way
    }
    if (*state == TemplateState::kMissing) {
      spdlog::warn(
          "elasticsearch: the index template {} is missing, so documents in {} would get "
          "Elasticsearch's default mappings; install it with: mdecollect setup -c FILE",
          spec.name, spec.pattern);
    } else if (*state == TemplateState::kOutdated) {
      spdlog::warn(
          "elasticsearch: the index template {} is from another version of mdecollect "
          "(or another ILM policy); update it with: mdecollect setup -c FILE",
          spec.name);
    }
  }
}

}  // namespace

std::vector<std::unique_ptr<Output>> makeOutputs(const config::Config& config,
                                                 const OutputContext& context) {
  std::vector<std::unique_ptr<Output>> outputs;
  if (config.file_output.enabled) outputs.push_back(makeFileOutput(config.file_output));
  if (config.stdout_output.enabled) outputs.push_back(makeFdOutput(1, "stdout"));
  if (config.elasticsearch.enabled) {
    checkIndexTemplates(config);
    ElasticsearchOutputOptions es;
    es.dead_letter_path = config.state_dir + "/dead-letter-elasticsearch.ndjson";
    es.metrics = context.metrics;
    if (context.trace) {
      es.make_client = [es_config = config.elasticsearch, trace = context.trace] {
        return http::makeTracingClient(makeElasticsearchClient(es_config), trace,
                                       "output.elasticsearch");
      };
    }
    outputs.push_back(makeElasticsearchOutput(config.elasticsearch, std::move(es), nullptr));
  }
  return outputs;
}

}  // namespace mdec::output
