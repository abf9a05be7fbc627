#include "mdecollect/auth/token_provider.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string_view>
#include <system_error>

#include "mdecollect/auth/client_assertion.h"

namespace mdec::auth {
namespace {

std::string joinUrl(std::string a, std::string_view b) {
  while (!a.empty() && a.back() == '/') a.pop_back();
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  return a + "/" + std::string(b);
}

// The first line of an error_description (the rest is Trace ID, Correlation ID, time).
std::string firstLine(std::string_view s) {
  const auto end = s.find_first_of("\r\n");
  return std::string(s.substr(0, end));
}

constexpr std::chrono::seconds kMinTokenLifetime{60};
constexpr std::chrono::seconds kMaxTokenLifetime{24 * 3600};
constexpr std::chrono::seconds kFallbackTokenLifetime{300};

// What the identity platform says a token lives (expires_in, seconds: a number in v2, a
// string in v1; 3599 in practice), as a lifetime the expiry arithmetic can always hold:
// clamped to [kMinTokenLifetime, kMaxTokenLifetime]. A value that is not a whole number of
// seconds of at least 1 (missing, text, negative, zero, fractional, or too large to read:
// 20 digits, 1e300) counts as kFallbackTokenLifetime: short, so a token that really lives
// less is renewed soon (and a 401 renews it at once anyway).
std::chrono::seconds tokenLifetime(const simdjson::dom::element* expires_in) {
  std::int64_t seconds = 0;
  if (expires_in != nullptr) {
    if (expires_in->is<std::int64_t>()) {
      seconds = expires_in->get_int64().value_unsafe();
    } else if (expires_in->is<std::string_view>()) {
      const std::string_view text = expires_in->get_string().value_unsafe();
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
      if (ec != std::errc() || end != text.data() + text.size()) seconds = 0;
    }
  }
  if (seconds < 1) return kFallbackTokenLifetime;
  return std::chrono::seconds(
      std::clamp<std::int64_t>(seconds, kMinTokenLifetime.count(), kMaxTokenLifetime.count()));
}

class ClientCredentials : public TokenProvider {
 public:
  ClientCredentials(const config::SourceConfig& source, http::HttpClient& client,
                    core::Clock& clock)
      : source_(source), client_(client), clock_(clock), url_(tokenUrl(source)) {}

  Result<std::string> token(bool refresh) override {
    const auto now = clock_.steadyNow();
    if (!refresh && !token_.empty() && now < renew_at_) return token_;
    http::HttpRequest req;
    req.method = "POST";
    req.url = url_;
    req.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                   {"Accept", "application/json"}};
    std::vector<std::pair<std::string, std::string>> form = {{"grant_type", "client_credentials"},
                                                             {"client_id", source_.client_id}};
    if (auto credential = addCredential(form); !credential) return credential.error();
    if (source_.scopes.empty()) {
      form.emplace_back("resource", source_.azure_resource);
    } else {
      std::string scopes;
      for (const auto& s : source_.scopes) scopes += (scopes.empty() ? "" : " ") + s;
      form.emplace_back("scope", scopes);
    }
    for (const auto& param : source_.token_params) form.push_back(param);
    req.body = http::formEncode(form);
    req.timeout = source_.request_timeout;
    req.max_response_bytes = 1 << 20;
    auto res = client_.send(req);
    if (!res) return Error(res.error()).withContext("token request to " + url_);
    return parse(*res, now);
  }

  std::uint64_t refreshes() const override { return refreshes_; }

 private:
  static constexpr const char* kAssertionType =
      "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

  // The credential's fields: the secret; a client assertion signed with the certificate's
  // key (the certificate's validity checked first, here, before Entra ID says so); or the
  // federated assertion the platform keeps in its file.
  Status addCredential(std::vector<std::pair<std::string, std::string>>& form) {
    switch (config::credentialOf(source_)) {
      case config::Credential::kSecret:
        form.emplace_back("client_secret", source_.client_secret.reveal());
        return okStatus();
      case config::Credential::kFederated: {
        auto assertion = readAssertionFile(source_.client_assertion_file);
        if (!assertion) {
          // Unreadable (being replaced): retried. Empty or not a token: the file is wrong.
          const ErrorCode code =
              assertion.error().code() == ErrorCode::kIo ? ErrorCode::kIo : ErrorCode::kAuth;
          return Error(code, assertion.error().message());
        }
        form.emplace_back("client_assertion_type", kAssertionType);
        form.emplace_back("client_assertion", std::move(*assertion));
        return okStatus();
      }
      case config::Credential::kCertificate:
        break;
    }
    if (!certificate_) {
      auto loaded =
          CertificateCredential::load(source_.client_certificate_file, source_.client_key_file,
                                      source_.client_key_password.reveal());
      if (!loaded) return Error(ErrorCode::kAuth, loaded.error().message());
      certificate_ = std::move(*loaded);
    }
    const auto now = clock_.now();
    if (auto problem = certificate_->validityProblem(now)) {
      return Error(ErrorCode::kAuth, *problem);
    }
    const auto algorithm = source_.client_assertion_algorithm == "RS256"
                               ? AssertionAlgorithm::kRs256
                               : AssertionAlgorithm::kPs256;
    auto assertion = certificate_->assertion(algorithm, source_.client_id, url_, now, randomUuid());
    if (!assertion) return assertion.error();
    form.emplace_back("client_assertion_type", kAssertionType);
    form.emplace_back("client_assertion", std::move(*assertion));
    return okStatus();
  }

  Result<std::string> parse(const http::HttpResponse& res,
                            std::chrono::steady_clock::time_point sent) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    const bool json_ok =
        parser.parse(simdjson::padded_string(res.body)).get(root) == simdjson::SUCCESS &&
        root.type() == simdjson::dom::element_type::OBJECT;
    if (res.status != 200) {
      std::string_view error;
      std::string_view description;
      if (json_ok) {
        if (root["error"].get(error) != simdjson::SUCCESS) error = {};
        if (root["error_description"].get(description) != simdjson::SUCCESS) description = {};
      }
      std::string message =
          "token request to " + url_ + " failed: HTTP " + std::to_string(res.status);
      if (!error.empty()) message += " " + std::string(error);
      if (!description.empty()) message += ": " + firstLine(description);
      // The identity platform refused the request: configuration, not a passing fault.
      if (res.status >= 400 && res.status < 500 && res.status != 408 && res.status != 429) {
        return Error(ErrorCode::kAuth, message).withHttpStatus(res.status);
      }
      return Error(ErrorCode::kHttp, message).withHttpStatus(res.status);
    }
    std::string_view access;
    if (!json_ok || root["access_token"].get(access) != simdjson::SUCCESS || access.empty()) {
      return Error(ErrorCode::kParse, "token response from " + url_ + " has no access_token");
    }
    simdjson::dom::element expires_in;
    const auto lifetime = tokenLifetime(
        root["expires_in"].get(expires_in) == simdjson::SUCCESS ? &expires_in : nullptr);
    // Renew at 90% of the lifetime, and never later than 5 minutes before expiry.
    const auto margin = std::min<std::chrono::seconds>(std::chrono::minutes(5), lifetime / 10);
    token_ = std::string(access);
    renew_at_ = sent + lifetime - margin;
    ++refreshes_;
    return token_;
  }

  const config::SourceConfig& source_;
  http::HttpClient& client_;
  core::Clock& clock_;
  std::string url_;
  std::unique_ptr<CertificateCredential> certificate_;  // loaded at the first token request
  std::string token_;
  std::chrono::steady_clock::time_point renew_at_{};
  std::uint64_t refreshes_ = 0;
};

}  // namespace

std::string tokenUrl(const config::SourceConfig& source) {
  std::string path = source.token_url;
  if (path.empty()) path = source.scopes.empty() ? "oauth2/token" : "oauth2/v2.0/token";
  return joinUrl(joinUrl(source.login_url, source.tenant_id), path);
}

std::unique_ptr<TokenProvider> makeClientCredentialsProvider(const config::SourceConfig& source,
                                                             http::HttpClient& client,
                                                             core::Clock& clock) {
  return std::make_unique<ClientCredentials>(source, client, clock);
}

}  // namespace mdec::auth
