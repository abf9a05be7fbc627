// Talking to an Elasticsearch cluster (hosts tried in turn, auth, TLS, gzip) and what
// `mdecollect setup` and `run` do with the index templates (es_template.h).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "mdecollect/config/config.h"
#include "mdecollect/core/result.h"
#include "mdecollect/http/http_client.h"
#include "mdecollect/output/es_template.h"

namespace mdec::output {

class EsTransport {
 public:
  // `client` null: a curl client made from the config.
  EsTransport(const config::ElasticsearchOutputConfig& config,
              std::unique_ptr<http::HttpClient> client = nullptr);
  // Sends to the host that last answered, then to the others in turn while the connection
  // fails; any HTTP answer is returned as it is. Bodies are gzipped when compression is on.
  Result<http::HttpResponse> send(const std::string& method, const std::string& path,
                                  std::string body, bool ndjson);

  // The request send() makes (headers, auth, gzipped body), without its URL.
  static Result<http::HttpRequest> request(const config::ElasticsearchOutputConfig& config,
                                           const std::string& authorization,
                                           const std::string& method, std::string body,
                                           bool ndjson);

 private:
  const config::ElasticsearchOutputConfig& config_;
  std::unique_ptr<http::HttpClient> client_;
  std::string authorization_;
  std::size_t current_ = 0;
};

enum class TemplateState { kMissing, kOutdated, kCurrent };

// Whether the cluster holds this version of the index template (with the configured ILM
// policy). Without `spec`: the endpoint template.
Result<TemplateState> templateState(const config::ElasticsearchOutputConfig& config,
                                    EsTransport& transport, const IndexTemplateSpec& spec);
Result<TemplateState> templateState(const config::ElasticsearchOutputConfig& config,
                                    EsTransport& transport);

// Installs the index template unless the current one is there; says what it did. Without
// `spec`: the endpoint template.
Result<std::string> installIndexTemplate(const config::ElasticsearchOutputConfig& config,
                                         EsTransport& transport, const IndexTemplateSpec& spec);
Result<std::string> installIndexTemplate(const config::ElasticsearchOutputConfig& config,
                                         EsTransport& transport);

// What `mdecollect setup` does: installs every template of indexTemplates(), in order (each
// unless current), whatever sources are configured, so adding a source later needs no new
// setup. One line per template; the first failure stops it and is returned.
Result<std::string> installIndexTemplates(const config::ElasticsearchOutputConfig& config,
                                          EsTransport& transport);

// The templates whose data streams the configured sources write to, in indexTemplates()
// order: the incident template for a graph_incidents source, the endpoint template for the
// others (and when no source is configured).
std::vector<IndexTemplateId> templatesWritten(const config::Config& config);

}  // namespace mdec::output
