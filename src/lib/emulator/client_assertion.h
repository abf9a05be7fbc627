// Client assertions at the emulated token endpoint (issue 16): a JWT signed with a client's
// registered certificate (Microsoft's "certificate credentials", private_key_jwt) or by an
// external issuer the client trusts (workload identity federation), checked as Microsoft Entra
// ID checks them. Every refusal carries Entra's HTTP status, OAuth error, AADSTS code and
// wording; verifyAssertion() below lists them with their sources.
//
// The assertion itself is never copied into an error text, a log or the request log.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/core/result.h"
#include "mdecollect/emulator/server.h"

namespace mdec::emulator {

inline constexpr std::string_view kJwtBearerAssertionType =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
// The clock skew allowed on exp and nbf (Entra allows five minutes).
inline constexpr std::chrono::seconds kAssertionClockSkew{300};

// A JWT in compact form, decoded (not verified). Claims of an unexpected JSON type make the
// whole token malformed, so a field here is either absent or of its type.
struct DecodedJwt {
  std::string signing_input;  // header.payload, as sent
  std::string signature;      // decoded
  // Header.
  std::string alg;
  std::optional<std::string> typ;
  std::optional<std::string> x5t_s256;  // decoded bytes of x5t#S256
  std::optional<std::string> x5t;       // decoded bytes of x5t
  std::optional<std::string> kid;
  // Claims.
  std::optional<std::string> iss;
  std::optional<std::string> sub;
  std::optional<std::string> jti;
  std::optional<std::vector<std::string>> aud;  // a string is a list of one
  std::optional<std::int64_t> exp;              // seconds since the epoch (fractions dropped)
  std::optional<std::int64_t> nbf;
  std::optional<std::int64_t> iat;
};

// Three base64url (no padding) parts of which the first two are JSON objects; kParse otherwise.
// The error text never quotes the token.
mdec::Result<DecodedJwt> decodeJwt(std::string_view compact);

// True when `jwt`'s signature verifies with `public_key_der` (an RSA SubjectPublicKeyInfo):
// RS256 is RSASSA-PKCS1-v1_5 with SHA-256, PS256 RSASSA-PSS with SHA-256, MGF1 with SHA-256 and
// a 32-byte salt. Any other alg is false.
bool verifyJwtSignature(const DecodedJwt& jwt, const std::string& public_key_der);

// The jti of the certificate assertions accepted, per client, each until its exp (plus the
// clock skew): a second use before then is a replay. Entries past their expiry are dropped at
// each call, and at most kMax are kept (the soonest to expire go first), so the set stays
// bounded whatever exp clients choose.
class SeenAssertions {
 public:
  static constexpr std::size_t kMax = 100'000;

  // True (and remembered until `expires`) when `key` is not held; false when it is and has not
  // expired by `now`.
  bool firstUse(const std::string& key, Timestamp expires, Timestamp now);
  std::size_t size() const { return by_key_.size(); }

 private:
  void forget(std::multimap<Timestamp, std::string>::iterator it);

  std::map<std::string, std::multimap<Timestamp, std::string>::iterator> by_key_;
  std::multimap<Timestamp, std::string> by_expiry_;
};

// How the token endpoint refuses a request (tokenError() in server.cpp writes the body).
struct TokenRefusal {
  int status = 400;
  std::string error;
  int code = 0;
  std::string description;
};

// AADSTS700016: the tenant has no application `client_id` (also for client secrets).
TokenRefusal unknownClient(const std::string& tenant, const std::string& client_id);

struct AssertionRequest {
  std::string tenant;
  const std::string* client_id = nullptr;  // the form's client_id; nullptr when absent
  std::string_view assertion;              // client_assertion
  std::string endpoint;  // the token endpoint URL the request came to (scheme://host/path)
  Timestamp now;         // the wall clock: Entra's, not the emulated world's (see server.cpp)
};

// The client an assertion authenticates, or why it does not.
struct AssertionOutcome {
  const ClientConfig* client = nullptr;
  std::optional<TokenRefusal> refusal;
  std::string jti;  // the accepted assertion's jti, clipped ("" when it has none): the request log
};

// The tenant's client of a client id; nullptr when there is none.
using ClientLookup = std::function<const ClientConfig*(const std::string& client_id)>;

// Verifies a client_assertion of the jwt-bearer type. The client is the form's client_id, or
// the assertion's iss without one. An assertion whose iss is the client's federated issuer (or
// for a client with no certificate) is checked as a federated credential, any other as a
// certificate assertion; `seen` keeps certificate assertions' jti (federated ones may be reused
// until they expire: a platform's token file is read many times).
AssertionOutcome verifyAssertion(const AssertionRequest& request, const ClientLookup& find_client,
                                 SeenAssertions& seen);

}  // namespace mdec::emulator
