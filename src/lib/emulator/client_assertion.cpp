// Client assertions: decoding (simdjson), signatures and certificates (OpenSSL), the jti replay
// set, and the order and wording of Entra ID's refusals.
//
// Sources of the codes, statuses and wording (none of them is a guess unless said so):
//   [cert]  learn.microsoft.com/entra/identity-platform/certificate-credentials (entra-docs
//           docs/identity-platform/certificate-credentials.md): header alg PS256, typ JWT,
//           x5t#S256; claims aud (the token endpoint), exp, iss, jti, nbf, sub (= iss = client id)
//   [ref]   Entra's error code reference (entra-docs docs/identity-platform/
//           reference-error-codes.md): 50013 InvalidAssertion, 50027 InvalidJwtToken,
//           700027 "Client assertion failed signature validation."
//   [msal]  MSAL.NET's recorded Entra answers (tests: MockHelpers, December 2023): 50027
//           invalid_request, 90014 invalid_request "The required field 'iss' is missing from the
//           credential. ...", 5002738 and 5002723 invalid_client, 700021 invalid_client,
//           700024 invalid_client with "Current time: ..., assertion valid from ..., expiry
//           time of assertion ... ."
//   [sdk]   Azure SDK identity TROUBLESHOOTING.md (client assertion credential issues): 700021,
//           700023 "Client assertion audience claim does not match Realm issuer.", 50027
//   [qna]   an Entra answer quoted on learn.microsoft.com/answers (AADSTS700027 error, 2026):
//           401 invalid_client "The certificate with identifier used to sign the client assertion
//           is not registered on application. [Reason - The key was not found., Thumbprint of key
//           used by client: '...', ...]"
//   [awi]   Azure/azure-workload-identity#616, an Entra answer: 400 invalid_request AADSTS70021
//           "No matching federated identity record found for presented assertion. Assertion
//           Issuer: '...'. Assertion Subject: '...'. Assertion Audience: '...'. ..."
#include "client_assertion.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>

#include "mdecollect/core/base64.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/openssl_ptr.h"

namespace mdec::emulator {
namespace {

std::string digestOf(const std::string& data, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), out, &length, md, nullptr) != 1) return {};
  return std::string(reinterpret_cast<const char*>(out), length);
}

// ---- base64url and text ----

std::string upperHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xF]);
  }
  return out;
}

bool equalsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

// A claim value quoted back in an error text: at most 200 characters.
std::string clipped(std::string_view value) {
  constexpr std::size_t kMax = 200;
  return value.size() <= kMax ? std::string(value) : std::string(value.substr(0, kMax)) + "...";
}

// ---- JSON fields ----

// The largest NumericDate accepted: 9999-12-31T23:59:59Z.
constexpr std::int64_t kMaxNumericDate = 253402300799;

// A NumericDate (RFC 7519: seconds, maybe with a fraction); false when it is not one.
bool readNumericDate(simdjson::dom::element e, std::optional<std::int64_t>& out) {
  double v = 0;
  if (e.get_double().get(v) != simdjson::SUCCESS) {
    std::int64_t i = 0;
    std::uint64_t u = 0;
    if (e.get_int64().get(i) == simdjson::SUCCESS) {
      v = static_cast<double>(i);
    } else if (e.get_uint64().get(u) == simdjson::SUCCESS) {
      v = static_cast<double>(u);
    } else {
      return false;
    }
  }
  if (!std::isfinite(v) || v < 0 || v > static_cast<double>(kMaxNumericDate)) return false;
  out = static_cast<std::int64_t>(std::floor(v));
  return true;
}

bool readString(simdjson::dom::object obj, const char* key, std::optional<std::string>& out) {
  simdjson::dom::element e;
  if (obj[key].get(e) != simdjson::SUCCESS) return true;  // absent
  std::string_view s;
  if (e.get(s) != simdjson::SUCCESS) return false;
  out = std::string(s);
  return true;
}

// A base64url header parameter (x5t, x5t#S256), decoded.
bool readBase64Url(simdjson::dom::object obj, const char* key, std::optional<std::string>& out) {
  std::optional<std::string> text;
  if (!readString(obj, key, text)) return false;
  if (!text) return true;
  out = core::base64UrlDecode(*text);
  return out.has_value();
}

// ---- Refusals ----

TokenRefusal malformed() {
  return {400, "invalid_request", 50027, "JWT token is invalid or malformed."};
}

TokenRefusal missingField(std::string_view field) {
  return {400, "invalid_request", 90014,
          "The required field '" + std::string(field) +
              "' is missing from the credential. Ensure that you have all the necessary "
              "parameters for the login request."};
}

TokenRefusal unsupportedAlgorithm(std::string_view alg, std::string_view supported) {
  return {401, "invalid_client", 5002738,
          "Invalid JWT token. '" + clipped(alg) +
              "' is not a supported signature algorithm. Supported signing algorithms are: '" +
              std::string(supported) + "'"};
}

TokenRefusal keyNotRegistered(const std::string& thumbprint_hex, const std::string& client_id) {
  return {401, "invalid_client", 700027,
          "The certificate with identifier used to sign the client assertion is not registered "
          "on application. [Reason - The key was not found., Thumbprint of key used by client: '" +
              thumbprint_hex +
              "', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see "
              "configured keys for app Id '" +
              client_id +
              "'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments "
              "to determine the corresponding service endpoint and "
              "https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&"
              "tabs=http to build a query request URL, such as "
              "'https://graph.microsoft.com/beta/applications/" +
              client_id + "']"};
}

TokenRefusal badSignature(const std::string& thumbprint_hex) {
  std::string description = "Client assertion failed signature validation.";
  if (!thumbprint_hex.empty()) {
    description +=
        " [Reason - Key was found, but use of the key to verify the signature failed., "
        "Thumbprint of key used by client: '" +
        thumbprint_hex + "']";
  }
  return {401, "invalid_client", 700027, description};
}

std::string assertionTime(std::int64_t seconds) {
  return core::formatRfc3339(core::Instant{seconds, 0}, 7);
}

TokenRefusal outOfTimeRange(const DecodedJwt& jwt, Timestamp now) {
  const auto ns = now.time_since_epoch().count();
  const core::Instant current{ns / 1'000'000'000, static_cast<std::int32_t>(ns % 1'000'000'000)};
  return {401, "invalid_client", 700024,
          "Client assertion is not within its valid time range. Current time: " +
              core::formatRfc3339(current, 7) + ", assertion valid from " +
              assertionTime(jwt.nbf.value_or(0)) + ", expiry time of assertion " +
              assertionTime(jwt.exp.value_or(0)) +
              ". Review the documentation at "
              "https://docs.microsoft.com/azure/active-directory/develop/"
              "active-directory-certificate-credentials ."};
}

// exp and nbf against `now`, each with kAssertionClockSkew to spare.
bool withinTimeRange(const DecodedJwt& jwt, Timestamp now) {
  const std::int64_t now_s =
      std::chrono::floor<std::chrono::seconds>(now).time_since_epoch().count();
  const std::int64_t skew = kAssertionClockSkew.count();
  if (!jwt.exp || now_s >= *jwt.exp + skew) return false;
  return !jwt.nbf || now_s >= *jwt.nbf - skew;
}

bool audienceHas(const DecodedJwt& jwt, std::string_view audience) {
  return jwt.aud && std::find(jwt.aud->begin(), jwt.aud->end(), audience) != jwt.aud->end();
}

// The expiry a jti is remembered until: exp plus the skew (capped where Timestamp's
// nanoseconds still hold it, about the year 2262).
Timestamp rememberUntil(std::int64_t exp) {
  constexpr std::int64_t kMaxSeconds = 9'000'000'000;
  const std::int64_t until = std::min(exp + kAssertionClockSkew.count(), kMaxSeconds);
  return Timestamp(std::chrono::seconds(until));
}

// A certificate assertion (private_key_jwt) of `client`.
std::optional<TokenRefusal> checkCertificateAssertion(const DecodedJwt& jwt,
                                                      const ClientConfig& client,
                                                      const AssertionRequest& request,
                                                      SeenAssertions& seen) {
  for (const auto& [name, present] :
       {std::pair{"iss", jwt.iss.has_value()}, std::pair{"sub", jwt.sub.has_value()},
        std::pair{"aud", jwt.aud.has_value()}, std::pair{"exp", jwt.exp.has_value()},
        std::pair{"jti", jwt.jti.has_value()}}) {
    if (!present) return missingField(name);
  }
  if (jwt.alg != "PS256" && jwt.alg != "RS256") return unsupportedAlgorithm(jwt.alg, "PS256,RS256");
  if (jwt.typ && !equalsNoCase(*jwt.typ, "JWT")) return malformed();
  // [cert]: x5t#S256; the legacy x5t (SHA-1) still works.
  const bool by_sha256 = jwt.x5t_s256.has_value();
  const std::optional<std::string>& presented = by_sha256 ? jwt.x5t_s256 : jwt.x5t;
  if (!presented && !jwt.kid) {
    return TokenRefusal{401, "invalid_client", 5002723,
                        "Invalid JWT token. No certificate SHA-1 thumbprint, certificate SHA-256 "
                        "thumbprint, nor keyId specified in token header."};
  }
  const std::string presented_hex = presented ? upperHex(*presented) : clipped(*jwt.kid);
  const bool registered =
      client.certificate && presented &&
      *presented == (by_sha256 ? client.certificate->sha256 : client.certificate->sha1);
  if (!registered) return keyNotRegistered(presented_hex, client.client_id);
  if (!verifyJwtSignature(jwt, client.certificate->public_key_der)) {
    return badSignature(presented_hex);
  }
  if (*jwt.iss != client.client_id || *jwt.sub != client.client_id) {
    return TokenRefusal{401, "invalid_client", 700021,
                        "Client assertion application identifier doesn't match 'client_id' "
                        "parameter. Review the documentation at "
                        "https://docs.microsoft.com/azure/active-directory/develop/"
                        "active-directory-certificate-credentials ."};
  }
  if (!audienceHas(jwt, request.endpoint)) {
    return TokenRefusal{
        401, "invalid_client", 700023,
        "Client assertion audience claim does not match Realm issuer. Review the "
        "documentation at "
        "https://learn.microsoft.com/entra/identity-platform/certificate-credentials."};
  }
  if (!withinTimeRange(jwt, request.now)) return outOfTimeRange(jwt, request.now);
  // A replay. Entra documents no code for it (its reference and the SDKs' troubleshooting
  // guides list none): AADSTS50013, InvalidAssertion "Assertion is invalid because of various
  // reasons" [ref], is the documented code nearest in meaning.
  if (!seen.firstUse(request.tenant + '\n' + client.client_id + '\n' + *jwt.jti,
                     rememberUntil(*jwt.exp), request.now)) {
    return TokenRefusal{401, "invalid_client", 50013,
                        "Assertion is invalid because of various reasons - the client assertion "
                        "with jti '" +
                            clipped(*jwt.jti) +
                            "' was already used. A client assertion is accepted once; sign a new "
                            "one with a new jti for each request."};
  }
  return std::nullopt;
}

// A federated assertion (workload identity federation) for `client`.
std::optional<TokenRefusal> checkFederatedAssertion(const DecodedJwt& jwt,
                                                    const ClientConfig& client,
                                                    const AssertionRequest& request) {
  for (const auto& [name, present] :
       {std::pair{"iss", jwt.iss.has_value()}, std::pair{"sub", jwt.sub.has_value()},
        std::pair{"aud", jwt.aud.has_value()}, std::pair{"exp", jwt.exp.has_value()}}) {
    if (!present) return missingField(name);
  }
  if (jwt.alg != "RS256") return unsupportedAlgorithm(jwt.alg, "RS256");
  const FederatedCredential* federated = client.federated ? &*client.federated : nullptr;
  auto no_match = [&jwt] {
    std::string audiences;
    for (const std::string& a : *jwt.aud) audiences += (audiences.empty() ? "" : ",") + clipped(a);
    return TokenRefusal{400, "invalid_request", 70021,
                        "No matching federated identity record found for presented assertion. "
                        "Assertion Issuer: '" +
                            clipped(*jwt.iss) + "'. Assertion Subject: '" + clipped(*jwt.sub) +
                            "'. Assertion Audience: '" + audiences +
                            "'. https://docs.microsoft.com/en-us/azure/active-directory/develop/"
                            "workload-identity-federation"};
  };
  if (federated == nullptr || *jwt.iss != federated->issuer) return no_match();
  if (!verifyJwtSignature(jwt, federated->issuer_certificate.public_key_der)) {
    return badSignature("");
  }
  if (*jwt.sub != federated->subject || !audienceHas(jwt, federated->audience)) return no_match();
  if (!withinTimeRange(jwt, request.now)) return outOfTimeRange(jwt, request.now);
  return std::nullopt;
}

}  // namespace

mdec::Result<RegisteredCertificate> loadCertificate(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in) return Error(ErrorCode::kNotFound, "cannot read the certificate file '" + path + "'");
  const std::string pem = text.str();
  core::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  core::X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (!cert) {
    return Error(ErrorCode::kInvalidArgument, "'" + path + "' is not a PEM X.509 certificate");
  }
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  if (key == nullptr || EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    return Error(ErrorCode::kInvalidArgument,
                 "the certificate '" + path + "' does not hold an RSA public key");
  }
  RegisteredCertificate out;
  out.path = path;
  const int der_length = i2d_X509(cert.get(), nullptr);
  const int key_length = i2d_PUBKEY(key, nullptr);
  if (der_length <= 0 || key_length <= 0) {
    ERR_clear_error();
    return Error(ErrorCode::kInvalidArgument, "cannot encode the certificate '" + path + "'");
  }
  std::string der(static_cast<std::size_t>(der_length), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509(cert.get(), &p);
  out.public_key_der.resize(static_cast<std::size_t>(key_length));
  p = reinterpret_cast<unsigned char*>(out.public_key_der.data());
  i2d_PUBKEY(key, &p);
  out.sha256 = digestOf(der, EVP_sha256());
  out.sha1 = digestOf(der, EVP_sha1());
  return out;
}

mdec::Result<DecodedJwt> decodeJwt(std::string_view compact) {
  const auto bad = [](const char* what) {
    return Error(ErrorCode::kParse, std::string("the JWT ") + what);
  };
  const std::size_t dot1 = compact.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : compact.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || compact.find('.', dot2 + 1) != std::string_view::npos) {
    return bad("is not three parts");
  }
  const auto header = core::base64UrlDecode(compact.substr(0, dot1));
  const auto payload = core::base64UrlDecode(compact.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = core::base64UrlDecode(compact.substr(dot2 + 1));
  if (!header || !payload || !signature) return bad("is not base64url");
  if (header->empty() || payload->empty() || signature->empty()) return bad("has an empty part");

  DecodedJwt jwt;
  jwt.signing_input = std::string(compact.substr(0, dot2));
  jwt.signature = std::move(*signature);
  simdjson::dom::parser parser;
  simdjson::dom::object h;
  if (parser.parse(*header).get(h) != simdjson::SUCCESS) return bad("header is not a JSON object");
  std::optional<std::string> alg;
  if (!readString(h, "alg", alg) || !alg || !readString(h, "typ", jwt.typ) ||
      !readString(h, "kid", jwt.kid) || !readBase64Url(h, "x5t#S256", jwt.x5t_s256) ||
      !readBase64Url(h, "x5t", jwt.x5t)) {
    return bad("header has a missing or malformed parameter");
  }
  jwt.alg = std::move(*alg);

  simdjson::dom::parser claims_parser;
  simdjson::dom::object c;
  if (claims_parser.parse(*payload).get(c) != simdjson::SUCCESS) {
    return bad("claims are not a JSON object");
  }
  if (!readString(c, "iss", jwt.iss) || !readString(c, "sub", jwt.sub) ||
      !readString(c, "jti", jwt.jti)) {
    return bad("has a claim of the wrong type");
  }
  for (const auto& [name, field] :
       {std::pair{"exp", &jwt.exp}, std::pair{"nbf", &jwt.nbf}, std::pair{"iat", &jwt.iat}}) {
    simdjson::dom::element e;
    if (c[name].get(e) == simdjson::SUCCESS && !readNumericDate(e, *field)) {
      return bad("has a claim that is not a NumericDate");
    }
  }
  simdjson::dom::element aud;
  if (c["aud"].get(aud) == simdjson::SUCCESS) {
    std::vector<std::string> audiences;
    std::string_view one;
    simdjson::dom::array many;
    if (aud.get(one) == simdjson::SUCCESS) {
      audiences.emplace_back(one);
    } else if (aud.get(many) == simdjson::SUCCESS) {
      for (simdjson::dom::element a : many) {
        if (a.get(one) != simdjson::SUCCESS) return bad("aud holds a value that is not a string");
        audiences.emplace_back(one);
      }
    } else {
      return bad("aud is neither a string nor an array");
    }
    jwt.aud = std::move(audiences);
  }
  return jwt;
}

bool verifyJwtSignature(const DecodedJwt& jwt, const std::string& public_key_der) {
  const bool pss = jwt.alg == "PS256";
  if (!pss && jwt.alg != "RS256") return false;
  const auto* p = reinterpret_cast<const unsigned char*>(public_key_der.data());
  core::PkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(public_key_der.size())));
  core::MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok =
      key && ctx && EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key.get()) == 1;
  if (ok && pss) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1;
  }
  ok = ok &&
       EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(jwt.signature.data()),
                        jwt.signature.size(),
                        reinterpret_cast<const unsigned char*>(jwt.signing_input.data()),
                        jwt.signing_input.size()) == 1;
  ERR_clear_error();
  return ok;
}

void SeenAssertions::forget(std::multimap<Timestamp, std::string>::iterator it) {
  by_key_.erase(it->second);
  by_expiry_.erase(it);
}

bool SeenAssertions::firstUse(const std::string& key, Timestamp expires, Timestamp now) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) forget(by_expiry_.begin());
  if (by_key_.count(key) != 0) return false;
  while (by_key_.size() >= kMax) forget(by_expiry_.begin());
  by_key_.emplace(key, by_expiry_.emplace(expires, key));
  return true;
}

TokenRefusal unknownClient(const std::string& tenant, const std::string& client_id) {
  return {400, "unauthorized_client", 700016,
          "Application with identifier '" + client_id + "' was not found in the directory '" +
              tenant +
              "'. This can happen if the application has not been installed by the "
              "administrator of the tenant or consented to by any user in the tenant. "
              "You may have sent your authentication request to the wrong tenant."};
}

AssertionOutcome verifyAssertion(const AssertionRequest& request, const ClientLookup& find_client,
                                 SeenAssertions& seen) {
  auto refuse = [](TokenRefusal r) { return AssertionOutcome{nullptr, std::move(r), {}}; };
  auto jwt = decodeJwt(request.assertion);
  if (!jwt) return refuse(malformed());
  std::string client_id;
  if (request.client_id != nullptr) {
    client_id = *request.client_id;
  } else if (jwt->iss) {
    client_id = *jwt->iss;
  } else {
    return refuse(missingField("iss"));
  }
  const ClientConfig* client = find_client(client_id);
  if (client == nullptr) return refuse(unknownClient(request.tenant, client_id));
  const bool federated =
      client->federated && (!client->certificate || jwt->iss == client->federated->issuer);
  std::optional<TokenRefusal> refusal =
      federated ? checkFederatedAssertion(*jwt, *client, request)
                : checkCertificateAssertion(*jwt, *client, request, seen);
  if (refusal) return refuse(std::move(*refusal));
  return AssertionOutcome{client, std::nullopt, clipped(jwt->jti.value_or(""))};
}

}  // namespace mdec::emulator
