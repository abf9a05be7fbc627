// The client-credentials token provider over a fake HTTP client and a fake clock: a token
// is cached until shortly before it expires, whatever expires_in the identity platform
// sends (a number, a string, absurd, missing) — never an overflow in the expiry arithmetic.
#include "mdecollect/auth/token_provider.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "mdecollect/core/percent_decoding.h"
#include "support/collector_test_pki.h"
#include "support/temp_dir.h"

namespace mdec::auth {
namespace {

using std::chrono::seconds;

// Steady time moves only when the test says so.
class ManualClock final : public core::Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::time_point(seconds(1'800'000'000) + elapsed_);
  }
  std::chrono::steady_clock::time_point steadyNow() const override {
    return std::chrono::steady_clock::time_point(seconds(1000) + elapsed_);
  }
  bool sleepFor(std::chrono::milliseconds d, std::stop_token) override {
    elapsed_ += d;
    return true;
  }
  void advance(std::chrono::milliseconds d) { elapsed_ += d; }

 private:
  std::chrono::milliseconds elapsed_{0};
};

// Answers every token request with `body` (the access token numbered by the request).
class TokenEndpoint final : public http::HttpClient {
 public:
  explicit TokenEndpoint(std::string expires_in_member)
      : expires_in_member_(std::move(expires_in_member)) {}

  Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    requests.push_back(request);
    http::HttpResponse res;
    res.status = 200;
    res.body = R"({"token_type":"Bearer",)" + expires_in_member_ + R"("access_token":"token-)" +
               std::to_string(requests.size()) + R"("})";
    return res;
  }

  std::vector<http::HttpRequest> requests;

 private:
  std::string expires_in_member_;  // `"expires_in":…,` or empty
};

config::SourceConfig source() {
  config::SourceConfig s;
  s.name = "tenant";
  s.tenant_id = "t";
  s.client_id = "c";
  s.client_secret = config::Secret("s3cret-value");
  s.login_url = "https://login.example";
  return s;
}

// How long the provider keeps its first token: the first steady time (whole seconds after
// the first request) at which token() asks for a new one, or -1 when it did not within
// `limit`. Bounded: one step a second up to `limit`, then a jump past the day.
std::int64_t renewsAfter(const std::string& expires_in_member, seconds limit) {
  const auto config = source();
  TokenEndpoint endpoint(expires_in_member);
  ManualClock clock;
  auto provider = makeClientCredentialsProvider(config, endpoint, clock);
  auto first = provider->token();
  EXPECT_TRUE(first) << first.error().message();
  EXPECT_EQ(first ? *first : "", "token-1");
  for (std::int64_t s = 1; s <= limit.count(); ++s) {
    clock.advance(seconds(1));
    auto token = provider->token();
    EXPECT_TRUE(token) << token.error().message();
    if (endpoint.requests.size() > 1) {
      EXPECT_EQ(token ? *token : "", "token-2");
      return s;
    }
    EXPECT_EQ(token ? *token : "", "token-1") << "at " << s << " s";
  }
  return -1;
}

// The provider renews at 90% of the lifetime, at most 5 minutes early.
constexpr std::int64_t kFallbackRenewal = 270;  // 300 s, renewed 30 s early
constexpr std::int64_t kUsualRenewal = 3599 - 300;

TEST(TokenProviderTest, ExpiresInAsANumberOrAStringIsHonoured) {
  EXPECT_EQ(renewsAfter(R"("expires_in":3599,)", seconds(4000)), kUsualRenewal);
  EXPECT_EQ(renewsAfter(R"("expires_in":"3599",)", seconds(4000)), kUsualRenewal);
  EXPECT_EQ(renewsAfter(R"("expires_in":600,)", seconds(4000)), 540);
}

// Regression: a huge expires_in overflowed the expiry arithmetic (undefined behaviour: the
// token was renewed at a nonsense time, or never), and a negative one made every call fetch
// a new token.
TEST(TokenProviderTest, AnAbsurdOrMissingExpiresInFallsBackToAShortLifetime) {
  for (const std::string member : {
           R"("expires_in":"99999999999999999999",)",  // 20 digits: does not fit
           R"("expires_in":1e300,)", R"("expires_in":-5,)", R"("expires_in":"-5",)",
           R"("expires_in":0,)", R"("expires_in":"soon",)", R"("expires_in":"3599abc",)",
           R"("expires_in":3599.5,)", R"("expires_in":null,)",
           "",  // missing
       }) {
    SCOPED_TRACE(member);
    EXPECT_EQ(renewsAfter(member, seconds(4000)), kFallbackRenewal);
  }
}

// As a JSON number, 20 digits are more than the JSON parser takes: the response is refused
// as malformed (an error the source retries), and no token is cached.
TEST(TokenProviderTest, ATwentyDigitNumberIsAMalformedResponse) {
  const auto config = source();
  TokenEndpoint endpoint(R"("expires_in":99999999999999999999,)");
  ManualClock clock;
  auto provider = makeClientCredentialsProvider(config, endpoint, clock);
  auto token = provider->token();
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().code(), ErrorCode::kParse);
  EXPECT_FALSE(provider->token());
  EXPECT_EQ(endpoint.requests.size(), 2u);
  EXPECT_EQ(provider->refreshes(), 0u);
}

TEST(TokenProviderTest, AHugeButReadableExpiresInIsCappedAtADay) {
  constexpr std::int64_t kDay = 24 * 3600;
  for (const std::string member : {
           R"("expires_in":9223372036854775807,)",  // INT64_MAX seconds
           R"("expires_in":"9223372036854775807",)",
           R"("expires_in":99999999999,)",  // overflows nanoseconds
           R"("expires_in":"99999999999",)",
       }) {
    SCOPED_TRACE(member);
    EXPECT_EQ(renewsAfter(member, seconds(kDay)), kDay - 300);
  }
}

TEST(TokenProviderTest, AVeryShortExpiresInIsRaisedToAMinute) {
  EXPECT_EQ(renewsAfter(R"("expires_in":1,)", seconds(100)), 54);
  EXPECT_EQ(renewsAfter(R"("expires_in":"10",)", seconds(100)), 54);
}

TEST(TokenProviderTest, ARefreshAlwaysFetchesANewToken) {
  const auto config = source();
  TokenEndpoint endpoint(R"("expires_in":3599,)");
  ManualClock clock;
  auto provider = makeClientCredentialsProvider(config, endpoint, clock);
  ASSERT_TRUE(provider->token());
  auto again = provider->token(/*refresh=*/true);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, "token-2");
  EXPECT_EQ(provider->refreshes(), 2u);
  EXPECT_EQ(endpoint.requests.size(), 2u);
  EXPECT_EQ(endpoint.requests[0].url, "https://login.example/t/oauth2/token");
}

// The form fields of a token request (application/x-www-form-urlencoded).
std::map<std::string, std::string> formOf(const http::HttpRequest& request) {
  std::map<std::string, std::string> out;
  std::string body = request.body;
  for (auto& c : body) {
    if (c == '+') c = ' ';
  }
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t end = body.find('&', start);
    if (end == std::string::npos) end = body.size();
    const std::string pair = body.substr(start, end - start);
    const auto eq = pair.find('=');
    if (eq != std::string::npos) {
      out[core::percentDecode(pair.substr(0, eq))] = core::percentDecode(pair.substr(eq + 1));
    }
    start = end + 1;
  }
  return out;
}

TEST(TokenProviderTest, ASecretIsSentWithTheTokenParams) {
  auto config = source();
  config.token_params = {{"client_info", "1"}, {"x-hint", "a b&c"}};
  TokenEndpoint endpoint(R"("expires_in":3599,)");
  ManualClock clock;
  auto provider = makeClientCredentialsProvider(config, endpoint, clock);
  ASSERT_TRUE(provider->token());
  const auto form = formOf(endpoint.requests.at(0));
  EXPECT_EQ(form.at("client_secret"), "s3cret-value");
  EXPECT_EQ(form.at("client_info"), "1");
  EXPECT_EQ(form.at("x-hint"), "a b&c");
  EXPECT_EQ(form.count("client_assertion"), 0u);
}

TEST(TokenProviderTest, ACertificateSendsANewSignedAssertionEachTimeAndNoSecret) {
  testing::TempDir dir("mdec-token-cert");
  auto key = testing::makeRsaKey();
  // Valid until long after the manual clock's 2027-01-15.
  auto cert = testing::makeCertificate(key.get(), "collector", -86400, 5L * 365 * 86400);
  testing::writeCertificate(dir.sub("cert.pem"), cert.get());
  testing::writeKey(dir.sub("key.pem"), key.get());
  auto config = source();
  config.client_secret = config::Secret();
  config.client_certificate_file = dir.sub("cert.pem");
  config.client_key_file = dir.sub("key.pem");
  config.scopes = {"https://graph.microsoft.com/.default"};
  config.token_url = "oauth2/v2.0/token";
  TokenEndpoint endpoint(R"("expires_in":3599,)");
  ManualClock clock;
  auto provider = makeClientCredentialsProvider(config, endpoint, clock);
  ASSERT_TRUE(provider->token());
  ASSERT_TRUE(provider->token(/*refresh=*/true));
  ASSERT_EQ(endpoint.requests.size(), 2u);
  const auto first = formOf(endpoint.requests[0]);
  const auto second = formOf(endpoint.requests[1]);
  EXPECT_EQ(first.count("client_secret"), 0u);
  EXPECT_EQ(first.at("client_assertion_type"),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
  EXPECT_EQ(first.at("scope"), "https://graph.microsoft.com/.default");
  const std::string& jwt = first.at("client_assertion");
  EXPECT_EQ(std::count(jwt.begin(), jwt.end(), '.'), 2);
  EXPECT_NE(jwt, second.at("client_assertion"));  // a new jti each time
  // Its audience is the URL it was sent to (the claims are checked in client_assertion_test).
  EXPECT_EQ(endpoint.requests[0].url, "https://login.example/t/oauth2/v2.0/token");
}

TEST(TokenProviderTest, AnExpiredCertificateFailsBeforeAnyRequest) {
  testing::TempDir dir("mdec-token-expired");
  auto key = testing::makeRsaKey();
  auto cert = testing::makeCertificate(key.get(), "old", -86400, 3600);  // gone by 2027-01-15
  testing::writeCertificate(dir.sub("cert.pem"), cert.get());
  testing::writeKey(dir.sub("key.pem"), key.get());
  auto config = source();
  config.client_certificate_file = dir.sub("cert.pem");
  config.client_key_file = dir.sub("key.pem");
  TokenEndpoint endpoint(R"("expires_in":3599,)");
  ManualClock clock;
  auto provider = makeClientCredentialsProvider(config, endpoint, clock);
  auto token = provider->token();
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().code(), ErrorCode::kAuth);
  EXPECT_NE(token.error().message().find("expired on"), std::string::npos);
  EXPECT_TRUE(endpoint.requests.empty());
}

TEST(TokenProviderTest, TheFederatedFileIsReadAgainForEachToken) {
  testing::TempDir dir("mdec-token-federated");
  const std::string file = dir.sub("azure-identity-token");
  std::ofstream(file) << "eyJhIjoxfQ.eyJiIjoxfQ.first\n";
  auto config = source();
  config.client_secret = config::Secret();
  config.client_assertion_file = file;
  TokenEndpoint endpoint(R"("expires_in":3599,)");
  ManualClock clock;
  auto provider = makeClientCredentialsProvider(config, endpoint, clock);
  ASSERT_TRUE(provider->token());
  std::ofstream(file) << "eyJhIjoxfQ.eyJiIjoxfQ.second";
  ASSERT_TRUE(provider->token(/*refresh=*/true));
  ASSERT_EQ(endpoint.requests.size(), 2u);
  EXPECT_EQ(formOf(endpoint.requests[0]).at("client_assertion"), "eyJhIjoxfQ.eyJiIjoxfQ.first");
  EXPECT_EQ(formOf(endpoint.requests[1]).at("client_assertion"), "eyJhIjoxfQ.eyJiIjoxfQ.second");
  EXPECT_EQ(formOf(endpoint.requests[1]).count("client_secret"), 0u);
  // Gone (the platform swapping it): a retryable I/O error, and nothing sent.
  std::filesystem::remove(file);
  auto gone = provider->token(/*refresh=*/true);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), ErrorCode::kIo);
  EXPECT_EQ(endpoint.requests.size(), 2u);
}

}  // namespace
}  // namespace mdec::auth
