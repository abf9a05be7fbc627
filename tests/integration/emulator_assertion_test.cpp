// mde-emulator's token endpoints with client assertions (issue 16), over loopback: certificate
// assertions (PS256, RS256, x5t#S256 and the legacy x5t) and federated ones (workload identity
// federation), each of Entra ID's refusals with its status, error and AADSTS code, the jti
// replay check, and the `cloud` setting's resources.
//
// Keys, certificates and assertions are made here with OpenSSL (support/emulator_test_pki.h),
// apart from the emulator and from the collector's client (src/lib/auth). The emulator runs in
// process over a world that stands still (its clock at 1 µs per second from 2026-03-02); Entra
// judges exp and nbf by the wall clock, so each assertion's are set against kStartSeconds, the
// wall clock when the tests start.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/emulator/server.h"
#include "mdecollect/http/http_client.h"
#include "support/emulator_test_pki.h"
#include "support/files.h"
#include "support/json_pointer.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace mdec::emulator {
namespace {

using http::HttpRequest;
using http::HttpResponse;
using mdec::testing::base64Url;
using mdec::testing::Json;
using mdec::testing::TempDir;
using mdec::testing::TestKey;
using mdec::testing::writeFile;
using std::chrono::seconds;
using Form = std::vector<std::pair<std::string, std::string>>;
using Fields = std::vector<std::pair<std::string, std::string>>;  // name, JSON value as text

// The wall clock when the tests start, in whole seconds: "now" for the assertions' times.
const std::int64_t kStartSeconds =
    std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();

// "2026-03-01T23:40:00.0000000Z": how Entra writes a time in AADSTS700024.
std::string entraTime(std::int64_t unix_seconds) {
  return mdec::core::formatRfc3339(mdec::core::Instant{unix_seconds, 0}, 7);
}

constexpr const char* kTenant = "tenant-a";
constexpr const char* kCertClient = "cert-client";
constexpr const char* kSecretClient = "secret-client";
constexpr const char* kSecret = "secret-value-1";
constexpr const char* kFedClient = "fed-client";
constexpr const char* kIssuer = "https://oidc.cluster.example/issuer-1";
constexpr const char* kSubject = "system:serviceaccount:collectors:mdecollect";
constexpr const char* kFedAudience = "api://AzureADTokenExchange";
constexpr const char* kDefenderScope = "https://api.securitycenter.microsoft.com/.default";
constexpr const char* kDefenderResource = "https://api.securitycenter.microsoft.com";
constexpr std::string_view kJwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// The keys of this file, made once (RSA 2048 takes a while).
const TestKey& clientKey() {
  static const TestKey key("cert-client");
  return key;
}
const TestKey& otherKey() {
  static const TestKey key("someone-else");
  return key;
}
const TestKey& issuerKey() {
  static const TestKey key("oidc-issuer");
  return key;
}

std::string brief(const std::string& body) {
  return body.size() > 400 ? body.substr(0, 400) + "..." : body;
}

// ---------------------------------------------------------------------------------------
// JWTs

std::string text(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::string number(std::int64_t n) { return std::to_string(n); }

std::string object(const Fields& fields) {
  std::string out = "{";
  for (const auto& [name, value] : fields) {
    out += (out.size() > 1 ? "," : "") + text(name) + ":" + value;
  }
  return out + "}";
}

Fields with(Fields fields, const std::string& name, const std::string& value) {
  for (auto& [n, v] : fields) {
    if (n == name) {
      v = value;
      return fields;
    }
  }
  fields.emplace_back(name, value);
  return fields;
}

Fields without(Fields fields, const std::string& name) {
  std::erase_if(fields, [&name](const auto& f) { return f.first == name; });
  return fields;
}

// header.claims.signature, signed by `key` with the header's alg (PS256; RS256 otherwise).
std::string signedJwt(const TestKey& key, const Fields& header, const Fields& claims) {
  const std::string input = base64Url(object(header)) + "." + base64Url(object(claims));
  bool pss = false;
  for (const auto& [n, v] : header) pss = pss || (n == "alg" && v == text("PS256"));
  return input + "." + base64Url(pss ? key.signPs256(input) : key.signRs256(input));
}

std::string nextJti() {
  static int n = 0;
  return "00000000-0000-4000-8000-" + std::to_string(100000000000 + ++n);
}

Fields certHeader(const char* alg = "PS256", const TestKey& thumbprint_of = clientKey()) {
  return {{"alg", text(alg)},
          {"typ", text("JWT")},
          {"x5t#S256", text(base64Url(thumbprint_of.sha256Thumbprint()))}};
}

// Claims of a certificate assertion as Microsoft documents them, valid around kStart.
Fields certClaims(const std::string& aud) {
  return {{"aud", text(aud)},
          {"iss", text(kCertClient)},
          {"sub", text(kCertClient)},
          {"jti", text(nextJti())},
          {"nbf", number(kStartSeconds - 60)},
          {"iat", number(kStartSeconds - 60)},
          {"exp", number(kStartSeconds + 540)}};
}

// A service account token as a Kubernetes issuer makes it (RS256, a kid, aud a list).
Fields fedHeader() { return {{"alg", text("RS256")}, {"kid", text("issuer-key-1")}}; }
Fields fedClaims() {
  return {{"aud", "[" + text(kFedAudience) + "]"},
          {"iss", text(kIssuer)},
          {"sub", text(kSubject)},
          {"nbf", number(kStartSeconds - 60)},
          {"iat", number(kStartSeconds - 60)},
          {"exp", number(kStartSeconds + 3600)}};
}

// ---------------------------------------------------------------------------------------
// The emulator, configured from YAML, and a libcurl client talking to it

class Emulator {
 public:
  // `extra` is appended to the config file (top-level keys).
  explicit Emulator(const std::string& extra = "") : dir_("mdec-emuassert") {
    writeFile(dir_.sub("client.pem"), clientKey().certificatePem());
    writeFile(dir_.sub("issuer.pem"), issuerKey().certificatePem());
    writeFile(dir_.sub("emulator.yaml"),
              "seed: 17\nalerts: 20\nstart: 2026-03-02T00:00:00Z\nhistory: 12h\n"
              "speed: 0.000001\n"
              "world: {new_alerts_per_hour: 0, updates_per_hour: 0, late_fraction: 0}\n"
              "tenants:\n"
              "  - tenant: " +
                  std::string(kTenant) + "\n    client_id: " + kCertClient +
                  "\n    client_certificate: " + dir_.sub("client.pem") +
                  "\n  - tenant: " + kTenant + "\n    client_id: " + kSecretClient +
                  "\n    client_secret: " + kSecret + "\n  - tenant: " + kTenant +
                  "\n    client_id: " + kFedClient + "\n    federated:\n      issuer: " + kIssuer +
                  "\n      subject: " + kSubject +
                  "\n      issuer_certificate: " + dir_.sub("issuer.pem") + "\n" + extra);
    EmulatorConfig config;
    if (const mdec::Status s = loadEmulatorConfig(dir_.sub("emulator.yaml"), config); !s) {
      error_ = s.error().message();
      return;
    }
    config.host = "127.0.0.1";
    config.port = 0;
    server_ = std::make_unique<EmulatorServer>(std::move(config));
    const mdec::Status s = server_->start();
    if (!s) error_ = s.error().message();
  }

  bool started() const { return server_ && error_.empty(); }
  const std::string& error() const { return error_; }
  std::string base() const { return server_->baseUrl(); }
  std::string v1Url() const { return base() + "/" + kTenant + "/oauth2/token"; }
  std::string v2Url() const { return base() + "/" + kTenant + "/oauth2/v2.0/token"; }

  HttpResponse must(const std::string& method, const std::string& path, const Form& headers = {},
                    const std::string& body = {}) {
    HttpRequest request;
    request.method = method;
    request.url = base() + path;
    request.headers = headers;
    request.body = body;
    request.timeout = seconds(20);
    request.connect_timeout = seconds(5);
    auto r = http_->send(request);
    if (!r) {
      ADD_FAILURE() << method << " " << path << ": " << r.error().message();
      return HttpResponse{};
    }
    return std::move(*r);
  }

  HttpResponse token(bool v2, const Form& form, const std::string& tenant = kTenant) {
    return must("POST", "/" + tenant + (v2 ? "/oauth2/v2.0/token" : "/oauth2/token"),
                {{"Content-Type", "application/x-www-form-urlencoded"}}, http::formEncode(form));
  }

 private:
  TempDir dir_;
  std::unique_ptr<EmulatorServer> server_;
  std::string error_;
  std::unique_ptr<http::HttpClient> http_ = http::makeCurlClient();
};

#define START_EMULATOR(name, ...) \
  Emulator name{__VA_ARGS__};     \
  ASSERT_TRUE(name.started()) << name.error()

// A client-credentials form with an assertion (and the client_id, unless it is "").
Form assertionForm(bool v2, const std::string& assertion, const std::string& client_id,
                   const std::string& what = "") {
  Form form = {{"grant_type", "client_credentials"}};
  if (!client_id.empty()) form.emplace_back("client_id", client_id);
  form.emplace_back("client_assertion_type", std::string(kJwtBearer));
  form.emplace_back("client_assertion", assertion);
  if (v2) {
    form.emplace_back("scope", what.empty() ? kDefenderScope : what);
  } else {
    form.emplace_back("resource", what.empty() ? kDefenderResource : what);
  }
  return form;
}

// A token answer: its access token ("" and a failure when there is none).
std::string accessTokenOf(const HttpResponse& r) {
  EXPECT_EQ(r.status, 200) << brief(r.body);
  Json j(r.body);
  const std::string token = j.str("/access_token");
  if (r.status != 200 || token.empty() || token[0] == '<') return {};
  return token;
}

// Entra's error body: the status, error, the one code and its AADSTS prefix.
void expectRefusal(const HttpResponse& r, int status, const std::string& error, int code,
                   const std::string& says = "") {
  EXPECT_EQ(r.status, status) << brief(r.body);
  Json j(r.body);
  ASSERT_TRUE(j.ok()) << brief(r.body);
  EXPECT_EQ(j.str("/error"), error) << brief(r.body);
  EXPECT_EQ(j.integer("/error_codes/0"), code) << brief(r.body);
  EXPECT_FALSE(j.has("/error_codes/1"));
  EXPECT_FALSE(j.has("/access_token"));
  const std::string description = j.str("/error_description");
  EXPECT_EQ(description.rfind("AADSTS" + std::to_string(code) + ": ", 0), 0u) << description;
  EXPECT_NE(description.find("\r\nTrace ID: " + j.str("/trace_id")), std::string::npos);
  if (!says.empty()) {
    EXPECT_NE(description.find(says), std::string::npos) << description;
  }
}

// ---------------------------------------------------------------------------------------
// Certificate assertions

TEST(EmulatorAssertion, APs256AssertionGetsATokenOnV2AndV1) {
  START_EMULATOR(emu);
  const std::string v2 = accessTokenOf(emu.token(
      true, assertionForm(true, signedJwt(clientKey(), certHeader(), certClaims(emu.v2Url())),
                          kCertClient)));
  ASSERT_FALSE(v2.empty());
  const HttpResponse v1r = emu.token(
      false, assertionForm(false, signedJwt(clientKey(), certHeader(), certClaims(emu.v1Url())),
                           kCertClient));
  const std::string v1 = accessTokenOf(v1r);
  ASSERT_FALSE(v1.empty());
  EXPECT_EQ(Json(v1r.body).str("/resource"), kDefenderResource);
  // The tokens open the API like a secret's.
  for (const std::string& token : {v2, v1}) {
    EXPECT_EQ(
        emu.must("GET", "/api/alerts?%24top=1", {{"Authorization", "Bearer " + token}}).status,
        200);
  }
}

TEST(EmulatorAssertion, Rs256TheLegacyX5tAndNoFormClientIdAreAccepted) {
  START_EMULATOR(emu);
  EXPECT_FALSE(
      accessTokenOf(emu.token(true, assertionForm(true,
                                                  signedJwt(clientKey(), certHeader("RS256"),
                                                            certClaims(emu.v2Url())),
                                                  kCertClient)))
          .empty());
  const Fields sha1_header = {{"alg", text("PS256")},
                              {"typ", text("JWT")},
                              {"x5t", text(base64Url(clientKey().sha1Thumbprint()))}};
  EXPECT_FALSE(accessTokenOf(emu.token(true, assertionForm(true,
                                                           signedJwt(clientKey(), sha1_header,
                                                                     certClaims(emu.v2Url())),
                                                           kCertClient)))
                   .empty());
  // Without client_id the assertion's iss names the client.
  EXPECT_FALSE(accessTokenOf(emu.token(true, assertionForm(true,
                                                           signedJwt(clientKey(), certHeader(),
                                                                     certClaims(emu.v2Url())),
                                                           "")))
                   .empty());
}

TEST(EmulatorAssertion, SignedByAnotherKeyOrAnUnregisteredThumbprintIs700027) {
  START_EMULATOR(emu);
  // The registered certificate's thumbprint, another key's signature.
  expectRefusal(
      emu.token(true,
                assertionForm(true, signedJwt(otherKey(), certHeader(), certClaims(emu.v2Url())),
                              kCertClient)),
      401, "invalid_client", 700027, "Client assertion failed signature validation.");
  // Another certificate altogether: not registered, named by its thumbprint.
  std::string hex;
  for (unsigned char c : otherKey().sha256Thumbprint()) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  expectRefusal(emu.token(true, assertionForm(true,
                                              signedJwt(otherKey(), certHeader("PS256", otherKey()),
                                                        certClaims(emu.v2Url())),
                                              kCertClient)),
                401, "invalid_client", 700027,
                "is not registered on application. [Reason - The key was not found., Thumbprint "
                "of key used by client: '" +
                    hex + "'");
  // A secret-only client has no certificate at all.
  expectRefusal(
      emu.token(true, assertionForm(
                          true,
                          signedJwt(clientKey(), certHeader(),
                                    with(with(certClaims(emu.v2Url()), "iss", text(kSecretClient)),
                                         "sub", text(kSecretClient))),
                          kSecretClient)),
      401, "invalid_client", 700027);
  // An assertion's signature is checked as PS256 when it says PS256: an RS256 signature under
  // a PS256 header fails.
  const std::string rs_signed =
      signedJwt(clientKey(), certHeader("RS256"), certClaims(emu.v2Url()));
  const std::string header_ps = base64Url(object(certHeader("PS256")));
  const std::string swapped = header_ps + rs_signed.substr(rs_signed.find('.'));
  expectRefusal(emu.token(true, assertionForm(true, swapped, kCertClient)), 401, "invalid_client",
                700027);
}

TEST(EmulatorAssertion, OutsideItsValidTimeRangeIs700024WithFiveMinutesOfSkew) {
  START_EMULATOR(emu);
  auto attempt = [&emu](std::int64_t nbf, std::int64_t exp) {
    const Fields claims = with(with(certClaims(emu.v2Url()), "nbf", number(kStartSeconds + nbf)),
                               "exp", number(kStartSeconds + exp));
    return emu.token(
        true, assertionForm(true, signedJwt(clientKey(), certHeader(), claims), kCertClient));
  };
  // Expired 10 minutes ago.
  expectRefusal(attempt(-1200, -600), 401, "invalid_client", 700024,
                "Client assertion is not within its valid time range. Current time: ");
  expectRefusal(attempt(-1200, -600), 401, "invalid_client", 700024,
                "assertion valid from " + entraTime(kStartSeconds - 1200) +
                    ", expiry time of assertion " + entraTime(kStartSeconds - 600) + ".");
  // Valid only from 10 minutes on.
  expectRefusal(attempt(600, 1200), 401, "invalid_client", 700024);
  // Within the skew on either side.
  EXPECT_FALSE(accessTokenOf(attempt(-600, -200)).empty());
  EXPECT_FALSE(accessTokenOf(attempt(200, 900)).empty());
  // exp is required.
  expectRefusal(emu.token(true, assertionForm(true,
                                              signedJwt(clientKey(), certHeader(),
                                                        without(certClaims(emu.v2Url()), "exp")),
                                              kCertClient)),
                400, "invalid_request", 90014, "The required field 'exp' is missing");
}

TEST(EmulatorAssertion, AnAudienceThatIsNotThisEndpointIs700023) {
  START_EMULATOR(emu);
  const std::string port_host = emu.base().substr(emu.base().find("//") + 2);
  for (const std::string& aud :
       {emu.v1Url(),  // the v1 endpoint's URL, sent to v2
        std::string("https://login.microsoftonline.com/") + kTenant + "/oauth2/v2.0/token",
        "http://localhost:" + port_host.substr(port_host.find(':') + 1) + "/" + kTenant +
            "/oauth2/v2.0/token",
        emu.base() + "/other-tenant/oauth2/v2.0/token", emu.v2Url() + "/"}) {
    SCOPED_TRACE(aud);
    expectRefusal(
        emu.token(true, assertionForm(true, signedJwt(clientKey(), certHeader(), certClaims(aud)),
                                      kCertClient)),
        401, "invalid_client", 700023,
        "Client assertion audience claim does not match Realm issuer.");
  }
}

TEST(EmulatorAssertion, AnIssuerOrSubjectThatIsNotTheClientIs700021) {
  START_EMULATOR(emu);
  for (const char* claim : {"iss", "sub"}) {
    SCOPED_TRACE(claim);
    expectRefusal(emu.token(true, assertionForm(true,
                                                signedJwt(clientKey(), certHeader(),
                                                          with(certClaims(emu.v2Url()), claim,
                                                               text(kSecretClient))),
                                                kCertClient)),
                  401, "invalid_client", 700021,
                  "Client assertion application identifier doesn't match 'client_id' parameter.");
  }
  // A client id the tenant does not have.
  expectRefusal(
      emu.token(true,
                assertionForm(true, signedJwt(clientKey(), certHeader(), certClaims(emu.v2Url())),
                              "no-such-client")),
      400, "unauthorized_client", 700016);
}

TEST(EmulatorAssertion, AReplayedJtiIsRefusedAndANewOneAccepted) {
  START_EMULATOR(emu);
  const Fields claims = certClaims(emu.v2Url());
  const std::string assertion = signedJwt(clientKey(), certHeader(), claims);
  EXPECT_FALSE(accessTokenOf(emu.token(true, assertionForm(true, assertion, kCertClient))).empty());
  expectRefusal(emu.token(true, assertionForm(true, assertion, kCertClient)), 401, "invalid_client",
                50013, "was already used");
  // The same jti in a newly signed assertion is still a replay.
  expectRefusal(
      emu.token(true, assertionForm(true, signedJwt(clientKey(), certHeader("RS256"), claims),
                                    kCertClient)),
      401, "invalid_client", 50013);
  EXPECT_FALSE(
      accessTokenOf(emu.token(true, assertionForm(true,
                                                  signedJwt(clientKey(), certHeader(),
                                                            with(claims, "jti", text(nextJti()))),
                                                  kCertClient)))
          .empty());
  // A refused assertion does not spend its jti.
  const Fields late = with(certClaims(emu.v2Url()), "exp", number(kStartSeconds - 900));
  expectRefusal(
      emu.token(true, assertionForm(true, signedJwt(clientKey(), certHeader(), late), kCertClient)),
      401, "invalid_client", 700024);
  EXPECT_FALSE(
      accessTokenOf(
          emu.token(true, assertionForm(true,
                                        signedJwt(clientKey(), certHeader(),
                                                  with(late, "exp", number(kStartSeconds + 60))),
                                        kCertClient)))
          .empty());
}

TEST(EmulatorAssertion, MalformedAssertionsAre50027) {
  START_EMULATOR(emu);
  const std::string good = signedJwt(clientKey(), certHeader(), certClaims(emu.v2Url()));
  const std::string signature = good.substr(good.rfind('.'));
  const std::string claims64 = base64Url(object(certClaims(emu.v2Url())));
  const std::string header64 = base64Url(object(certHeader()));
  for (const std::string& bad : {
           std::string(""), std::string("not-a-jwt"),
           header64 + "." + claims64,                           // two parts
           good + ".more",                                      // four parts
           header64 + "=." + claims64 + signature,              // padding
           "e30!." + claims64 + signature,                      // not base64url
           base64Url("not json") + "." + claims64 + signature,  // header not JSON
           header64 + "." + base64Url("[1,2]") + signature,     // claims not an object
           header64 + "." + base64Url(object(with(certClaims(emu.v2Url()), "exp", text("soon")))) +
               signature,  // exp not a number
           header64 + "." + base64Url(object(with(certClaims(emu.v2Url()), "aud", "42"))) +
               signature,  // aud not a string
           base64Url(object(without(certHeader(), "alg"))) + "." + claims64 + signature,
           header64 + "." + claims64 + ".",  // no signature
       }) {
    SCOPED_TRACE(bad);
    expectRefusal(emu.token(true, assertionForm(true, bad, kCertClient)), 400, "invalid_request",
                  50027, "JWT token is invalid or malformed.");
  }
  // A typ other than JWT.
  expectRefusal(emu.token(true, assertionForm(true,
                                              signedJwt(clientKey(),
                                                        with(certHeader(), "typ", text("at+jwt")),
                                                        certClaims(emu.v2Url())),
                                              kCertClient)),
                400, "invalid_request", 50027);
  // A claim the certificate credential requires.
  expectRefusal(emu.token(true, assertionForm(true,
                                              signedJwt(clientKey(), certHeader(),
                                                        without(certClaims(emu.v2Url()), "jti")),
                                              kCertClient)),
                400, "invalid_request", 90014, "The required field 'jti' is missing");
}

TEST(EmulatorAssertion, AnUnsupportedAlgorithmOrNoThumbprintIsRefused) {
  START_EMULATOR(emu);
  // HS256 with some bytes as its "signature".
  const std::string hs = base64Url(object(with(certHeader(), "alg", text("HS256")))) + "." +
                         base64Url(object(certClaims(emu.v2Url()))) + "." + base64Url("mac");
  expectRefusal(emu.token(true, assertionForm(true, hs, kCertClient)), 401, "invalid_client",
                5002738, "'HS256' is not a supported signature algorithm");
  expectRefusal(
      emu.token(true, assertionForm(true,
                                    signedJwt(clientKey(), without(certHeader(), "x5t#S256"),
                                              certClaims(emu.v2Url())),
                                    kCertClient)),
      401, "invalid_client", 5002723);
}

TEST(EmulatorAssertion, TheFormIsCheckedFirst) {
  START_EMULATOR(emu);
  const std::string assertion = signedJwt(clientKey(), certHeader(), certClaims(emu.v2Url()));
  Form no_type = assertionForm(true, assertion, kCertClient);
  std::erase_if(no_type, [](const auto& f) { return f.first == "client_assertion_type"; });
  expectRefusal(emu.token(true, no_type), 400, "invalid_request", 900144,
                "'client_assertion_type'");
  Form other_type = assertionForm(true, assertion, kCertClient);
  other_type[2].second = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer";
  expectRefusal(emu.token(true, other_type), 400, "invalid_request", 90023);
  Form both = assertionForm(true, assertion, kCertClient);
  both.emplace_back("client_secret", kSecret);
  expectRefusal(emu.token(true, both), 400, "invalid_request", 90023);
  // A certificate client has no secret to send.
  expectRefusal(emu.token(true, {{"grant_type", "client_credentials"},
                                 {"client_id", kCertClient},
                                 {"client_secret", ""},
                                 {"scope", kDefenderScope}}),
                401, "invalid_client", 7000215);
  // None of these spent the assertion.
  EXPECT_FALSE(accessTokenOf(emu.token(true, assertionForm(true, assertion, kCertClient))).empty());
  // The secret client still works.
  EXPECT_FALSE(accessTokenOf(emu.token(true, {{"grant_type", "client_credentials"},
                                              {"client_id", kSecretClient},
                                              {"client_secret", kSecret},
                                              {"scope", kDefenderScope}}))
                   .empty());
}

TEST(EmulatorAssertion, NoAssertionOrSecretReachesTheTestEndpoints) {
  START_EMULATOR(emu);
  const std::string assertion = signedJwt(clientKey(), certHeader(), certClaims(emu.v2Url()));
  ASSERT_FALSE(accessTokenOf(emu.token(true, assertionForm(true, assertion, kCertClient))).empty());
  expectRefusal(emu.token(true, assertionForm(true, assertion, kCertClient)), 401, "invalid_client",
                50013);
  std::string tampered = assertion;  // the signature's first character changed: still base64url
  char& first = tampered[tampered.rfind('.') + 1];
  first = first == 'A' ? 'B' : 'A';
  expectRefusal(emu.token(true, assertionForm(true, tampered, kCertClient)), 401, "invalid_client",
                700027);
  emu.token(true, {{"grant_type", "client_credentials"},
                   {"client_id", kSecretClient},
                   {"client_secret", kSecret},
                   {"scope", kDefenderScope}});
  const std::string signature = assertion.substr(assertion.rfind('.') + 1);
  const std::string claims = assertion.substr(assertion.find('.') + 1, 40);
  for (const char* path : {"/_emulator/requests", "/_emulator/stats", "/_emulator/faults"}) {
    SCOPED_TRACE(path);
    const HttpResponse r = emu.must("GET", path);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body.find(signature), std::string::npos);
    EXPECT_EQ(r.body.find(claims), std::string::npos);
    EXPECT_EQ(r.body.find(kSecret), std::string::npos);
  }
  // The request log has the four token requests, by path.
  Json log(emu.must("GET", "/_emulator/requests?tenant=tenant-a").body);
  EXPECT_EQ(log.str("/requests/3/path"), "POST /{tenant}/oauth2/v2.0/token");
  EXPECT_FALSE(log.has("/requests/4"));
}

// ---------------------------------------------------------------------------------------
// Federated assertions

TEST(EmulatorFederated, AValidAssertionGetsATokenAndMayBeReusedUntilItExpires) {
  START_EMULATOR(emu);
  const std::string assertion = signedJwt(issuerKey(), fedHeader(), fedClaims());
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_FALSE(
        accessTokenOf(emu.token(i != 1, assertionForm(i != 1, assertion, kFedClient))).empty());
  }
  // aud as one string, and among others.
  EXPECT_FALSE(accessTokenOf(emu.token(true, assertionForm(true,
                                                           signedJwt(issuerKey(), fedHeader(),
                                                                     with(fedClaims(), "aud",
                                                                          text(kFedAudience))),
                                                           kFedClient)))
                   .empty());
  EXPECT_FALSE(
      accessTokenOf(
          emu.token(true, assertionForm(true,
                                        signedJwt(issuerKey(), fedHeader(),
                                                  with(fedClaims(), "aud",
                                                       "[\"other\"," + text(kFedAudience) + "]")),
                                        kFedClient)))
          .empty());
}

TEST(EmulatorFederated, AnotherSubjectIssuerOrAudienceIs70021) {
  START_EMULATOR(emu);
  struct Case {
    const char* claim;
    std::string value;
    std::string says;
  };
  for (const Case& c : {Case{"sub", text("system:serviceaccount:collectors:other"),
                             "Assertion Subject: 'system:serviceaccount:collectors:other'."},
                        Case{"iss", text("https://oidc.cluster.example/issuer-2"),
                             "Assertion Issuer: 'https://oidc.cluster.example/issuer-2'."},
                        Case{"aud", "[\"api://Other\"]", "Assertion Audience: 'api://Other'."}}) {
    SCOPED_TRACE(c.claim);
    expectRefusal(emu.token(true, assertionForm(true,
                                                signedJwt(issuerKey(), fedHeader(),
                                                          with(fedClaims(), c.claim, c.value)),
                                                kFedClient)),
                  400, "invalid_request", 70021,
                  "No matching federated identity record found for presented assertion. "
                  "Assertion Issuer: '");
    expectRefusal(emu.token(true, assertionForm(true,
                                                signedJwt(issuerKey(), fedHeader(),
                                                          with(fedClaims(), c.claim, c.value)),
                                                kFedClient)),
                  400, "invalid_request", 70021, c.says);
  }
}

TEST(EmulatorFederated, AnotherSignerIs700027AndAnExpiredTokenIs700024) {
  START_EMULATOR(emu);
  expectRefusal(emu.token(true, assertionForm(true, signedJwt(otherKey(), fedHeader(), fedClaims()),
                                              kFedClient)),
                401, "invalid_client", 700027);
  expectRefusal(
      emu.token(true,
                assertionForm(true,
                              signedJwt(issuerKey(), fedHeader(),
                                        with(fedClaims(), "exp", number(kStartSeconds - 600))),
                              kFedClient)),
      401, "invalid_client", 700024, "Client assertion is not within its valid time range");
  // RS256 only.
  expectRefusal(
      emu.token(true, assertionForm(true,
                                    signedJwt(issuerKey(), with(fedHeader(), "alg", text("PS256")),
                                              fedClaims()),
                                    kFedClient)),
      401, "invalid_client", 5002738);
}

// ---------------------------------------------------------------------------------------
// cloud: the resources tokens are issued for

Form secretForm(bool v2, const std::string& what) {
  return {{"grant_type", "client_credentials"},
          {"client_id", kSecretClient},
          {"client_secret", kSecret},
          {v2 ? "scope" : "resource", what}};
}

TEST(EmulatorCloud, UsGovHighAcceptsItsOwnGraphAndDefenderOnly) {
  START_EMULATOR(emu, "cloud: usgov_high\n");
  const std::string graph =
      accessTokenOf(emu.token(true, secretForm(true, "https://graph.microsoft.us/.default")));
  ASSERT_FALSE(graph.empty());
  // A Graph token: it opens Graph's alerts_v2 and not /api/alerts.
  EXPECT_EQ(
      emu.must("GET", "/v1.0/security/alerts_v2?%24top=1", {{"Authorization", "Bearer " + graph}})
          .status,
      200);
  EXPECT_EQ(emu.must("GET", "/api/alerts?%24top=1", {{"Authorization", "Bearer " + graph}}).status,
            401);
  expectRefusal(emu.token(true, secretForm(true, "https://graph.microsoft.com/.default")), 400,
                "invalid_scope", 70011);
  EXPECT_FALSE(
      accessTokenOf(
          emu.token(false, secretForm(false, "https://api-gov.securitycenter.microsoft.us")))
          .empty());
  expectRefusal(emu.token(false, secretForm(false, kDefenderResource)), 400, "invalid_resource",
                500011);
  // Certificate assertions work the same in any cloud.
  EXPECT_FALSE(
      accessTokenOf(
          emu.token(true, assertionForm(
                              true, signedJwt(clientKey(), certHeader(), certClaims(emu.v2Url())),
                              kCertClient, "https://graph.microsoft.us/.default")))
          .empty());
}

TEST(EmulatorCloud, EachCloudHasItsResources) {
  struct Case {
    const char* cloud;
    std::vector<std::string> accepted;  // v2 scopes without /.default
    std::vector<std::string> refused;
  };
  for (const Case& c : {
           Case{"global",
                {"https://api.securitycenter.microsoft.com", "https://api.security.microsoft.com",
                 "https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"},
                {"https://graph.microsoft.us", "https://api-gov.securitycenter.microsoft.us"}},
           Case{"usgov",
                {"https://api-gcc.securitycenter.microsoft.us", "https://graph.microsoft.com"},
                {"https://api.securitycenter.microsoft.com", "https://graph.microsoft.us"}},
           Case{"dod",
                {"https://api-gov.securitycenter.microsoft.us", "https://dod-graph.microsoft.us"},
                {"https://graph.microsoft.us", "https://api-gcc.securitycenter.microsoft.us"}},
           Case{"china",
                {"https://microsoftgraph.chinacloudapi.cn"},
                {"https://api.securitycenter.microsoft.com", "https://graph.microsoft.com"}},
       }) {
    SCOPED_TRACE(c.cloud);
    START_EMULATOR(emu, std::string("cloud: ") + c.cloud + "\n");
    for (const std::string& r : c.accepted) {
      SCOPED_TRACE(r);
      EXPECT_FALSE(accessTokenOf(emu.token(true, secretForm(true, r + "/.default"))).empty());
    }
    for (const std::string& r : c.refused) {
      SCOPED_TRACE(r);
      expectRefusal(emu.token(true, secretForm(true, r + "/.default")), 400, "invalid_scope",
                    70011);
    }
  }
}

TEST(EmulatorBinary, TheCloudFlagTakesOnlyKnownClouds) {
  const mdec::testing::ProcessResult r =
      mdec::testing::runProcess({MDEC_EMULATOR, "--cloud", "mars"}, {}, seconds(30));
  EXPECT_FALSE(r.timed_out) << "it started serving instead";
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--cloud must be global, usgov, usgov_high, dod or china"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace
}  // namespace mdec::emulator
