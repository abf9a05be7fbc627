// OAuth 2.0 client credentials against Microsoft Entra ID (v1 `resource` or v2 `scope`),
// cached until shortly before expiry.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "mdecollect/config/config.h"
#include "mdecollect/core/clock.h"
#include "mdecollect/core/result.h"
#include "mdecollect/http/http_client.h"

namespace mdec::auth {

class TokenProvider {
 public:
  virtual ~TokenProvider() = default;
  // A valid access token; `refresh` forces a new one (after a 401). Errors: kAuth for
  // what the identity platform refused (message: "<error>: <first line of
  // error_description>" — never the secret), kNetwork/kHttp (retryable) otherwise.
  virtual Result<std::string> token(bool refresh = false) = 0;
  // How many tokens were fetched (for metrics and tests).
  virtual std::uint64_t refreshes() const = 0;
};

// The token URL: {login_url}/{tenant_id}/{token_url}, joined without doubled slashes.
std::string tokenUrl(const config::SourceConfig& source);

std::unique_ptr<TokenProvider> makeClientCredentialsProvider(const config::SourceConfig& source,
                                                             http::HttpClient& client,
                                                             core::Clock& clock);

}  // namespace mdec::auth
