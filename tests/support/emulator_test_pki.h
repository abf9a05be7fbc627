// Keys, self-signed certificates and JWT signatures for the emulator's client-assertion tests,
// made with OpenSSL's C API apart from the emulator and from the collector's client (src/lib/auth),
// so the tests share no assumption with either.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mdec::testing {

// RFC 4648 section 5, without padding.
inline std::string base64Url(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  auto byte = [&bytes](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    for (int shift : {18, 12, 6, 0}) out.push_back(kAlphabet[(v >> shift) & 63]);
  }
  if (i + 1 == bytes.size()) {
    const unsigned v = byte(i) << 16;
    for (int shift : {18, 12}) out.push_back(kAlphabet[(v >> shift) & 63]);
  } else if (i + 2 == bytes.size()) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    for (int shift : {18, 12, 6}) out.push_back(kAlphabet[(v >> shift) & 63]);
  }
  return out;
}

// A key pair (RSA 2048, or EC P-256 with kEc) and a self-signed X.509 certificate of it, valid
// from a day before the real clock until `valid_for` after.
class TestKey {
 public:
  enum class Type { kRsa, kEc };

  explicit TestKey(const std::string& common_name, Type type = Type::kRsa,
                   std::chrono::hours valid_for = std::chrono::hours(24 * 3650)) {
    key_.reset(type == Type::kRsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
    if (!key_) throw std::runtime_error("key generation failed");
    cert_.reset(X509_new());
    X509_set_version(cert_.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert_.get()), serial()++);
    X509_gmtime_adj(X509_getm_notBefore(cert_.get()), -24L * 3600);
    X509_gmtime_adj(X509_getm_notAfter(cert_.get()),
                    static_cast<long>(std::chrono::seconds(valid_for).count()));
    X509_set_pubkey(cert_.get(), key_.get());
    X509_NAME* name = X509_get_subject_name(cert_.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                               0);
    X509_set_issuer_name(cert_.get(), name);
    if (X509_sign(cert_.get(), key_.get(), EVP_sha256()) <= 0) {
      throw std::runtime_error("certificate signing failed");
    }
  }

  std::string certificatePem() const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_X509(bio.get(), cert_.get());
    return bioText(bio.get());
  }
  std::string privateKeyPem() const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr);
    return bioText(bio.get());
  }
  // The raw SHA-256 (x5t#S256) and SHA-1 (x5t) thumbprints of the certificate's DER.
  std::string sha256Thumbprint() const { return digest(EVP_sha256()); }
  std::string sha1Thumbprint() const { return digest(EVP_sha1()); }

  // RSASSA-PKCS1-v1_5 with SHA-256.
  std::string signRs256(std::string_view input) const { return sign(input, false); }
  // RSASSA-PSS with SHA-256, MGF1-SHA-256, a 32-byte salt.
  std::string signPs256(std::string_view input) const { return sign(input, true); }

 private:
  static long& serial() {
    static long next = 1;
    return next;
  }

  static std::string bioText(BIO* bio) {
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(length));
  }

  std::string digest(const EVP_MD* md) const {
    unsigned char* der = nullptr;
    const int length = i2d_X509(cert_.get(), &der);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int out_length = 0;
    EVP_Digest(der, static_cast<std::size_t>(length), out, &out_length, md, nullptr);
    OPENSSL_free(der);
    return std::string(reinterpret_cast<const char*>(out), out_length);
  }

  std::string sign(std::string_view input, bool pss) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key_.get()) != 1) {
      throw std::runtime_error("EVP_DigestSignInit failed");
    }
    if (pss) {
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256());
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
    }
    std::size_t length = 0;
    const auto* data = reinterpret_cast<const unsigned char*>(input.data());
    EVP_DigestSign(ctx.get(), nullptr, &length, data, input.size());
    std::string signature(length, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length, data,
                       input.size()) != 1) {
      throw std::runtime_error("EVP_DigestSign failed");
    }
    signature.resize(length);
    return signature;
  }

  struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
  };
  std::unique_ptr<EVP_PKEY, PkeyFree> key_;
  std::unique_ptr<X509, X509Free> cert_;
};

}  // namespace mdec::testing
