// Keys and self-signed certificates made with OpenSSL for the collector's tests, written as
// PEM files: the credentials an app registration would hold. Nothing here comes from the code
// under test (src/lib/auth).
#pragma once

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

namespace mdec::testing {

struct PkeyDelete {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Delete {
  void operator()(X509* x) const { X509_free(x); }
};
using TestKey = std::unique_ptr<EVP_PKEY, PkeyDelete>;
using TestCert = std::unique_ptr<X509, X509Delete>;

inline TestKey makeRsaKey(unsigned bits = 2048) {
  TestKey key(EVP_RSA_gen(bits));
  if (!key) throw std::runtime_error("EVP_RSA_gen failed");
  return key;
}

inline TestKey makeEcKey() {
  TestKey key(EVP_EC_gen("P-256"));
  if (!key) throw std::runtime_error("EVP_EC_gen failed");
  return key;
}

// A certificate for `key`, signed by itself, valid from now + from_s to now + to_s seconds.
inline TestCert makeCertificate(EVP_PKEY* key, const std::string& cn, long from_s, long to_s) {
  TestCert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), from_s);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), to_s);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) throw std::runtime_error("X509_sign failed");
  return cert;
}

// mode "a" appends (a certificate and its key in one file).
inline void writeCertificate(const std::string& path, X509* cert, const char* mode = "w") {
  FILE* f = std::fopen(path.c_str(), mode);
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  PEM_write_X509(f, cert);
  std::fclose(f);
}

// PKCS#8; encrypted with AES-256-CBC when `password` is not empty.
inline void writeKey(const std::string& path, EVP_PKEY* key, const std::string& password = "",
                     const char* mode = "w") {
  FILE* f = std::fopen(path.c_str(), mode);
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  if (password.empty()) {
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    PEM_write_PKCS8PrivateKey(f, key, EVP_aes_256_cbc(), const_cast<char*>(password.data()),
                              static_cast<int>(password.size()), nullptr, nullptr);
  }
  std::fclose(f);
}

}  // namespace mdec::testing
