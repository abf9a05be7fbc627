// Talking to an Elasticsearch cluster (hosts tried in turn, auth, TLS, gzip) and what
// `mdecollect setup` and `run` do with the index template.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "mdecollect/config/config.h"
#include "mdecollect/core/result.h"
#include "mdecollect/http/http_client.h"

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

 private:
  const config::ElasticsearchOutputConfig& config_;
  std::unique_ptr<http::HttpClient> client_;
  std::string authorization_;
  std::size_t current_ = 0;
};

enum class TemplateState { kMissing, kOutdated, kCurrent };

// Whether the cluster holds this version of the index template (with the configured ILM
// policy).
Result<TemplateState> templateState(const config::ElasticsearchOutputConfig& config,
                                    EsTransport& transport);

// Installs the index template unless the current one is there; says what it did.
Result<std::string> installIndexTemplate(const config::ElasticsearchOutputConfig& config,
                                         EsTransport& transport);

}  // namespace mdec::output
