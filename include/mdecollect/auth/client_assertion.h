// Certificate credentials for Microsoft Entra ID: a client assertion, a JSON Web Token signed
// with the app's certificate key, sent in place of a client secret
// (https://learn.microsoft.com/entra/identity-platform/certificate-credentials):
//
//   header  {"alg":"PS256"|"RS256","typ":"JWT","x5t#S256":<base64url SHA-256 of the DER>}
//           (RS256 also carries "x5t", the SHA-1 thumbprint older endpoints read)
//   claims  {"aud":<the token URL>,"iss":<client id>,"sub":<client id>,"jti":<a new UUID>,
//            "iat":now,"nbf":now,"exp":now + 10 minutes}
//   signed  PS256: RSA-PSS, SHA-256, MGF1 SHA-256, salt of 32 bytes; RS256: RSA PKCS#1 v1.5
//
// OpenSSL reads the PEM files and signs. The private key stays in this process's memory:
// no message here ever holds key material or the key's password.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "mdecollect/core/result.h"

namespace mdec::auth {

enum class AssertionAlgorithm { kPs256, kRs256 };

// "PS256" or "RS256".
const char* assertionAlgorithmName(AssertionAlgorithm algorithm);

// A certificate and its private key, read and checked together.
class CertificateCredential {
 public:
  ~CertificateCredential();
  CertificateCredential(const CertificateCredential&) = delete;
  CertificateCredential& operator=(const CertificateCredential&) = delete;

  // Reads the first certificate of `certificate_file` (PEM) and the private key of `key_file`
  // (PEM: PKCS#8, encrypted PKCS#8 or PKCS#1; empty: the certificate file, where both are in
  // one file), decrypted with `password` when it is encrypted. Errors (kInvalidArgument) name
  // the file and what is wrong with it: unreadable, no certificate, no key, an encrypted key
  // without a password or with a wrong one, not RSA (Entra ID signs with RSA only), a key
  // that is not the certificate's.
  static Result<std::unique_ptr<CertificateCredential>> load(const std::string& certificate_file,
                                                             const std::string& key_file,
                                                             const std::string& password);

  // base64url of the SHA-256 (x5t#S256) and SHA-1 (x5t) of the certificate's DER encoding.
  const std::string& thumbprintSha256() const { return x5t_s256_; }
  const std::string& thumbprintSha1() const { return x5t_; }
  // The certificate's validity period, and its subject (for messages).
  std::chrono::system_clock::time_point notBefore() const { return not_before_; }
  std::chrono::system_clock::time_point notAfter() const { return not_after_; }
  const std::string& subject() const { return subject_; }
  const std::string& file() const { return certificate_file_; }

  // Empty when `now` is within the validity period; else what is wrong, with the dates:
  // "client certificate FILE (CN=...) expired on 2026-01-31T00:00:00Z".
  std::optional<std::string> validityProblem(std::chrono::system_clock::time_point now) const;

  // The signed assertion for `client_id` and `audience` (the token URL), issued at `now`,
  // identified by `jti`. Errors: kInternal when OpenSSL fails to sign.
  Result<std::string> assertion(AssertionAlgorithm algorithm, const std::string& client_id,
                                const std::string& audience,
                                std::chrono::system_clock::time_point now,
                                const std::string& jti) const;

 private:
  struct Keys;
  CertificateCredential();

  std::unique_ptr<Keys> keys_;
  std::string certificate_file_;
  std::string x5t_s256_;
  std::string x5t_;
  std::string subject_;
  std::chrono::system_clock::time_point not_before_;
  std::chrono::system_clock::time_point not_after_;
};

// How long an assertion is valid after it is issued (Microsoft: "5-10 minutes after nbf").
inline constexpr std::chrono::seconds kAssertionLifetime{600};

// A random (version 4) UUID, from OpenSSL's generator: an assertion's jti.
std::string randomUuid();

// The assertion a workload identity platform wrote to `path` (AKS: AZURE_FEDERATED_TOKEN_FILE),
// read anew on every call because the platform replaces it before it expires; surrounding
// white space removed. Errors: kIo (unreadable: the platform may be replacing it; retried),
// kInvalidArgument (empty, or not three dot-separated parts), naming the file.
Result<std::string> readAssertionFile(const std::string& path);

}  // namespace mdec::auth
