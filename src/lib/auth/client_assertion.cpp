#include "mdecollect/auth/client_assertion.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <ctime>

#include "mdecollect/core/base64.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"
#include "mdecollect/core/openssl_ptr.h"
#include "mdecollect/core/small_file.h"

namespace mdec::auth {
namespace {

using core::BioPtr;
using core::MdCtxPtr;
using core::PkeyPtr;
using core::X509Ptr;

// OpenSSL's queued errors, reasons only ("bad decrypt"), then cleared: they name no data.
std::string opensslReasons() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    if (reason == nullptr) continue;
    if (!out.empty()) out += "; ";
    out += reason;
  }
  return out;
}

// A PEM file: certificates and keys are a few KiB; a chain of them well under this.
constexpr std::size_t kMaxPemFileBytes = 1u << 20;
// A platform's token: a JWT of a few KiB.
constexpr std::size_t kMaxAssertionFileBytes = 64u << 10;

Result<std::string> readPemFile(const std::string& path, const char* what) {
  auto text = core::readSmallFile(path, kMaxPemFileBytes);
  if (!text) {
    return Error(
        ErrorCode::kInvalidArgument,
        std::string(what) + " " + path + ": cannot be read (" + text.error().message() + ")");
  }
  return text;
}

BioPtr memoryBio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::chrono::system_clock::time_point timeOf(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  return core::formatRfc3339(core::Instant{s, 0}, 0);
}

std::string digestOf(const EVP_MD* md, const std::string& der) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int n = 0;
  if (EVP_Digest(der.data(), der.size(), out.data(), &n, md, nullptr) != 1) return {};
  return core::base64UrlEncode(std::string_view(reinterpret_cast<const char*>(out.data()), n));
}

// PEM_read_bio_PrivateKey's password callback: the configured password, or none (which makes
// OpenSSL fail on an encrypted key instead of prompting on a terminal).
int passwordCallback(char* buf, int size, int, void* user) {
  const auto* password = static_cast<const std::string*>(user);
  if (password == nullptr || password->empty()) return -1;
  const int n = static_cast<int>(std::min<std::size_t>(password->size(), size));
  std::copy_n(password->data(), n, buf);
  return n;
}

bool looksEncrypted(const std::string& pem) {
  return pem.find("ENCRYPTED PRIVATE KEY") != std::string::npos ||
         pem.find("Proc-Type: 4,ENCRYPTED") != std::string::npos;
}

}  // namespace

struct CertificateCredential::Keys {
  X509Ptr certificate;
  PkeyPtr key;
};

CertificateCredential::CertificateCredential() : keys_(std::make_unique<Keys>()) {}
CertificateCredential::~CertificateCredential() = default;

const char* assertionAlgorithmName(AssertionAlgorithm algorithm) {
  return algorithm == AssertionAlgorithm::kRs256 ? "RS256" : "PS256";
}

Result<std::unique_ptr<CertificateCredential>> CertificateCredential::load(
    const std::string& certificate_file, const std::string& key_file, const std::string& password) {
  ERR_clear_error();
  auto cert_text = readPemFile(certificate_file, "client_certificate_file");
  if (!cert_text) return cert_text.error();
  std::unique_ptr<CertificateCredential> c(new CertificateCredential());
  c->certificate_file_ = certificate_file;
  {
    BioPtr bio = memoryBio(*cert_text);
    c->keys_->certificate.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  }
  if (!c->keys_->certificate) {
    ERR_clear_error();
    return Error(ErrorCode::kInvalidArgument,
                 "client_certificate_file " + certificate_file +
                     ": no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)");
  }
  X509* cert = c->keys_->certificate.get();

  std::string key_text_storage;
  const std::string* key_text = &*cert_text;
  const std::string key_name = key_file.empty() ? "client_certificate_file" : "client_key_file";
  const std::string key_path = key_file.empty() ? certificate_file : key_file;
  if (!key_file.empty()) {
    auto text = readPemFile(key_file, "client_key_file");
    if (!text) return text.error();
    key_text_storage = std::move(*text);
    key_text = &key_text_storage;
  }
  {
    BioPtr bio = memoryBio(*key_text);
    c->keys_->key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, &passwordCallback,
                                                const_cast<std::string*>(&password)));
  }
  if (!c->keys_->key) {
    const std::string reasons = opensslReasons();
    std::string what;
    if (key_text->find("PRIVATE KEY-----") == std::string::npos) {
      what = key_file.empty() ? "no PEM private key in it: set client_key_file to the key's file"
                              : "no PEM private key in it (expected -----BEGIN PRIVATE KEY-----)";
    } else if (looksEncrypted(*key_text) && password.empty()) {
      what = "the key is encrypted: set client_key_password or client_key_password_file";
    } else if (looksEncrypted(*key_text)) {
      what = "the key cannot be decrypted: check client_key_password (" + reasons + ")";
    } else {
      what = "the private key cannot be read (" + reasons + ")";
    }
    return Error(ErrorCode::kInvalidArgument, key_name + " " + key_path + ": " + what);
  }
  EVP_PKEY* key = c->keys_->key.get();
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    return Error(ErrorCode::kInvalidArgument,
                 key_name + " " + key_path + ": not an RSA key (" +
                     OBJ_nid2sn(EVP_PKEY_get_base_id(key)) +
                     "); Microsoft Entra ID verifies RS256 and PS256 signatures, of RSA keys");
  }
  if (X509_check_private_key(cert, key) != 1) {
    ERR_clear_error();
    return Error(ErrorCode::kInvalidArgument, key_name + " " + key_path +
                                                  ": the key is not the certificate's (" +
                                                  certificate_file + " holds another public key)");
  }

  const int der_size = i2d_X509(cert, nullptr);
  std::string der(static_cast<std::size_t>(std::max(der_size, 0)), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (der_size <= 0 || i2d_X509(cert, &p) != der_size) {
    return Error(ErrorCode::kInternal, "client_certificate_file " + certificate_file +
                                           ": the certificate cannot be encoded (" +
                                           opensslReasons() + ")");
  }
  c->x5t_s256_ = digestOf(EVP_sha256(), der);
  c->x5t_ = digestOf(EVP_sha1(), der);
  c->not_before_ = timeOf(X509_get0_notBefore(cert));
  c->not_after_ = timeOf(X509_get0_notAfter(cert));
  std::array<char, 256> subject{};
  X509_NAME_oneline(X509_get_subject_name(cert), subject.data(), subject.size());
  c->subject_ = subject.data();
  ERR_clear_error();
  return c;
}

std::optional<std::string> CertificateCredential::validityProblem(
    std::chrono::system_clock::time_point now) const {
  const std::string which = "client certificate " + certificate_file_ + " (" + subject_ + ")";
  if (now < not_before_) {
    return which + " is not valid before " + rfc3339(not_before_) +
           ": check the machine's clock, or use a certificate valid now";
  }
  if (now > not_after_) {
    return which + " expired on " + rfc3339(not_after_) +
           ": make a new certificate, upload it to the app registration (Certificates & "
           "secrets) and point client_certificate_file and client_key_file at it";
  }
  return std::nullopt;
}

Result<std::string> CertificateCredential::assertion(AssertionAlgorithm algorithm,
                                                     const std::string& client_id,
                                                     const std::string& audience,
                                                     std::chrono::system_clock::time_point now,
                                                     const std::string& jti) const {
  const std::int64_t issued =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  std::string header;
  {
    core::ObjectWriter h(header);
    h.string("alg", assertionAlgorithmName(algorithm));
    h.string("typ", "JWT");
    h.string("x5t#S256", x5t_s256_);
    if (algorithm == AssertionAlgorithm::kRs256) h.string("x5t", x5t_);
    h.close();
  }
  std::string claims;
  {
    core::ObjectWriter c(claims);
    c.string("aud", audience);
    c.string("iss", client_id);
    c.string("sub", client_id);
    c.string("jti", jti);
    c.integer("iat", issued);
    c.integer("nbf", issued);
    c.integer("exp", issued + kAssertionLifetime.count());
    c.close();
  }
  std::string signing_input = core::base64UrlEncode(header) + "." + core::base64UrlEncode(claims);

  ERR_clear_error();
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok =
      ctx && EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, keys_->key.get()) == 1;
  if (ok && algorithm == AssertionAlgorithm::kPs256) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1;
  }
  std::size_t size = 0;
  ok = ok && EVP_DigestSign(ctx.get(), nullptr, &size,
                            reinterpret_cast<const unsigned char*>(signing_input.data()),
                            signing_input.size()) == 1;
  std::string signature(size, '\0');
  ok = ok && EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                            reinterpret_cast<const unsigned char*>(signing_input.data()),
                            signing_input.size()) == 1;
  if (!ok) {
    return Error(ErrorCode::kInternal, std::string("signing the ") +
                                           assertionAlgorithmName(algorithm) +
                                           " client assertion failed (" + opensslReasons() + ")");
  }
  signature.resize(size);
  signing_input += ".";
  signing_input += core::base64UrlEncode(signature);
  return signing_input;
}

std::string randomUuid() {
  std::array<unsigned char, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    // OpenSSL's generator failing is not something to sign in with; a jti must still be
    // unique, so fall back to the clock and a counter rather than give up.
    static std::atomic<std::uint64_t> counter{0};
    const auto t = std::chrono::system_clock::now().time_since_epoch().count();
    const std::uint64_t n = counter.fetch_add(1);
    for (std::size_t i = 0; i < 8; ++i) {
      b[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(t) >> (8 * i));
      b[8 + i] = static_cast<unsigned char>(n >> (8 * i));
    }
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::array<char, 37> out{};
  std::snprintf(out.data(), out.size(),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out.data();
}

Result<std::string> readAssertionFile(const std::string& path) {
  auto text = core::readSmallFile(path, kMaxAssertionFileBytes);
  if (!text) {
    // Too large is the file's fault; missing or unreadable may be the platform replacing it.
    const ErrorCode code =
        text.error().code() == ErrorCode::kTooLarge ? ErrorCode::kInvalidArgument : ErrorCode::kIo;
    return Error(code, "client_assertion_file " + path + ": cannot be read (" +
                           text.error().message() + ")");
  }
  std::string s = std::move(*text);
  const auto first = s.find_first_not_of(" \t\r\n");
  const auto last = s.find_last_not_of(" \t\r\n");
  s = first == std::string::npos ? std::string() : s.substr(first, last - first + 1);
  if (s.empty()) {
    return Error(ErrorCode::kInvalidArgument, "client_assertion_file " + path + ": empty");
  }
  if (std::count(s.begin(), s.end(), '.') != 2 || s.find_first_of(" \t\r\n") != std::string::npos) {
    return Error(ErrorCode::kInvalidArgument,
                 "client_assertion_file " + path +
                     ": not a JSON Web Token (three base64url parts separated by dots)");
  }
  return s;
}

}  // namespace mdec::auth
