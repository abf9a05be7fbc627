// Certificate credentials: the PEM files are read and checked together, and the client
// assertion is the JSON Web Token Microsoft's identity platform documents. Each assertion is
// taken apart here (base64url decoded by this file's own decoder, JSON read by simdjson) and
// its signature verified by OpenSSL with the certificate's public key.
#include "mdecollect/auth/client_assertion.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <simdjson.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "mdecollect/core/base64.h"
#include "support/collector_test_pki.h"
#include "support/temp_dir.h"

namespace mdec::auth {
namespace {

using mdec::testing::TempDir;
using std::chrono::seconds;
using std::chrono::system_clock;

// RFC 4648 section 5, no padding: written here, not taken from the code under test.
std::string base64UrlDecode(const std::string& in) {
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (char c : in) {
    const auto v = alphabet.find(c);
    if (v == std::string::npos) throw std::runtime_error("not base64url: " + in);
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& jwt) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = jwt.find('.', start)) != std::string::npos; start = dot + 1) {
    parts.push_back(jwt.substr(start, dot - start));
  }
  parts.push_back(jwt.substr(start));
  return parts;
}

std::string sha256Thumbprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  return core::base64UrlEncode(std::string(reinterpret_cast<char*>(md), n));
}

// OpenSSL's verdict on the JWT's signature with `cert`'s key, as PS256 or RS256.
bool verifies(const std::string& jwt, X509* cert, bool pss) {
  const auto parts = split(jwt);
  if (parts.size() != 3) return false;
  const std::string input = parts[0] + "." + parts[1];
  const std::string signature = base64UrlDecode(parts[2]);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok = EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), nullptr, X509_get0_pubkey(cert)) == 1;
  if (ok && pss) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1;
  }
  ok = ok && EVP_DigestVerify(
                 ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                 reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

struct Files {
  TempDir dir{"mdec-assertion"};
  testing::TestKey key = testing::makeRsaKey();
  testing::TestCert cert = testing::makeCertificate(key.get(), "mdecollect-test", -3600, 86400);
  std::string cert_file = dir.sub("cert.pem");
  std::string key_file = dir.sub("key.pem");
  Files() {
    testing::writeCertificate(cert_file, cert.get());
    testing::writeKey(key_file, key.get());
  }
};

std::unique_ptr<CertificateCredential> loaded(const Files& f) {
  auto c = CertificateCredential::load(f.cert_file, f.key_file, "");
  EXPECT_TRUE(c) << c.error().message();
  return c ? std::move(*c) : nullptr;
}

TEST(Base64Url, EncodesWithTheUrlAlphabetAndNoPadding) {
  EXPECT_EQ(core::base64UrlEncode(""), "");
  EXPECT_EQ(core::base64UrlEncode("f"), "Zg");
  EXPECT_EQ(core::base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(core::base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(core::base64UrlEncode("\xfb\xff\xbf"), "-_-_");  // "+/+/" in base64
}

TEST(ClientAssertion, HeaderAndClaimsAreMicrosoftsAndThePs256SignatureVerifies) {
  Files f;
  auto c = loaded(f);
  ASSERT_NE(c, nullptr);
  const auto now = system_clock::time_point(seconds(1'800'000'000));
  const std::string aud = "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token";
  auto jwt = c->assertion(AssertionAlgorithm::kPs256, "client-1", aud, now, "jti-1");
  ASSERT_TRUE(jwt) << jwt.error().message();
  const auto parts = split(*jwt);
  ASSERT_EQ(parts.size(), 3u);

  simdjson::dom::parser parser;
  simdjson::dom::element header = parser.parse(base64UrlDecode(parts[0]));
  EXPECT_EQ(std::string_view(header["alg"]), "PS256");
  EXPECT_EQ(std::string_view(header["typ"]), "JWT");
  EXPECT_EQ(std::string(std::string_view(header["x5t#S256"])), sha256Thumbprint(f.cert.get()));
  EXPECT_EQ(std::string(std::string_view(header["x5t#S256"])), c->thumbprintSha256());
  EXPECT_EQ(header["x5t"].error(), simdjson::NO_SUCH_FIELD);

  simdjson::dom::parser claims_parser;
  simdjson::dom::element claims = claims_parser.parse(base64UrlDecode(parts[1]));
  EXPECT_EQ(std::string_view(claims["aud"]), aud);
  EXPECT_EQ(std::string_view(claims["iss"]), "client-1");
  EXPECT_EQ(std::string_view(claims["sub"]), "client-1");
  EXPECT_EQ(std::string_view(claims["jti"]), "jti-1");
  EXPECT_EQ(std::int64_t(claims["nbf"]), 1'800'000'000);
  EXPECT_EQ(std::int64_t(claims["iat"]), 1'800'000'000);
  EXPECT_EQ(std::int64_t(claims["exp"]), 1'800'000'600);  // 10 minutes

  EXPECT_TRUE(verifies(*jwt, f.cert.get(), /*pss=*/true));
  EXPECT_FALSE(verifies(*jwt, f.cert.get(), /*pss=*/false));
  // Another key's certificate does not verify it.
  auto other = testing::makeRsaKey();
  auto other_cert = testing::makeCertificate(other.get(), "other", 0, 3600);
  EXPECT_FALSE(verifies(*jwt, other_cert.get(), true));
}

TEST(ClientAssertion, Rs256IsPkcs1AndCarriesTheSha1ThumbprintToo) {
  Files f;
  auto c = loaded(f);
  ASSERT_NE(c, nullptr);
  auto jwt =
      c->assertion(AssertionAlgorithm::kRs256, "client-1", "https://login.example/t/oauth2/token",
                   system_clock::now(), randomUuid());
  ASSERT_TRUE(jwt);
  simdjson::dom::parser parser;
  simdjson::dom::element header = parser.parse(base64UrlDecode(split(*jwt)[0]));
  EXPECT_EQ(std::string_view(header["alg"]), "RS256");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(f.cert.get(), EVP_sha1(), md, &n);
  EXPECT_EQ(std::string(std::string_view(header["x5t"])),
            core::base64UrlEncode(std::string(reinterpret_cast<char*>(md), n)));
  EXPECT_TRUE(verifies(*jwt, f.cert.get(), /*pss=*/false));
  EXPECT_FALSE(verifies(*jwt, f.cert.get(), /*pss=*/true));
}

TEST(ClientAssertion, EachJtiIsANewVersion4Uuid) {
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = randomUuid();
    EXPECT_TRUE(std::regex_match(id, uuid)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(ClientAssertion, KeyAndCertificateInOneFile) {
  Files f;
  const std::string both = f.dir.sub("both.pem");
  testing::writeCertificate(both, f.cert.get());
  testing::writeKey(both, f.key.get(), "", "a");
  auto c = CertificateCredential::load(both, "", "");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ((*c)->thumbprintSha256(), sha256Thumbprint(f.cert.get()));
}

TEST(ClientAssertion, AnEncryptedKeyNeedsItsPassword) {
  Files f;
  const std::string encrypted = f.dir.sub("encrypted.pem");
  testing::writeKey(encrypted, f.key.get(), "correct horse");
  auto none = CertificateCredential::load(f.cert_file, encrypted, "");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("client_key_file " + encrypted), std::string::npos);
  EXPECT_NE(none.error().message().find("set client_key_password"), std::string::npos);
  auto wrong = CertificateCredential::load(f.cert_file, encrypted, "battery staple");
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message().find("cannot be decrypted"), std::string::npos);
  EXPECT_EQ(wrong.error().message().find("battery"), std::string::npos);  // never the password
  auto right = CertificateCredential::load(f.cert_file, encrypted, "correct horse");
  EXPECT_TRUE(right) << right.error().message();
}

TEST(ClientAssertion, FilesThatCannotServeSayWhichAndWhy) {
  Files f;
  auto missing = CertificateCredential::load(f.dir.sub("nope.pem"), f.key_file, "");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("client_certificate_file"), std::string::npos);
  EXPECT_NE(missing.error().message().find("cannot be read"), std::string::npos);

  auto not_pem = CertificateCredential::load(f.key_file, f.key_file, "");  // a key, no cert
  ASSERT_FALSE(not_pem);
  EXPECT_NE(not_pem.error().message().find("no PEM certificate"), std::string::npos);

  auto no_key = CertificateCredential::load(f.cert_file, "", "");  // key_file: the cert's file
  ASSERT_FALSE(no_key);
  EXPECT_NE(no_key.error().message().find("set client_key_file"), std::string::npos);

  auto other = testing::makeRsaKey();
  const std::string other_key = f.dir.sub("other.pem");
  testing::writeKey(other_key, other.get());
  auto mismatch = CertificateCredential::load(f.cert_file, other_key, "");
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().message().find("not the certificate's"), std::string::npos);

  auto ec = testing::makeEcKey();
  auto ec_cert = testing::makeCertificate(ec.get(), "ec", 0, 3600);
  const std::string ec_cert_file = f.dir.sub("ec-cert.pem");
  const std::string ec_key_file = f.dir.sub("ec-key.pem");
  testing::writeCertificate(ec_cert_file, ec_cert.get());
  testing::writeKey(ec_key_file, ec.get());
  auto not_rsa = CertificateCredential::load(ec_cert_file, ec_key_file, "");
  ASSERT_FALSE(not_rsa);
  EXPECT_NE(not_rsa.error().message().find("not an RSA key"), std::string::npos);
  // No message carries key material.
  for (const auto* e : {&missing, &not_pem, &no_key, &mismatch, &not_rsa}) {
    EXPECT_EQ(e->error().message().find("PRIVATE KEY"), std::string::npos);
  }
}

TEST(ClientAssertion, ValidityIsCheckedLocally) {
  Files f;
  auto c = loaded(f);
  ASSERT_NE(c, nullptr);
  const auto now = system_clock::now();
  EXPECT_FALSE(c->validityProblem(now));
  auto after = c->validityProblem(now + std::chrono::hours(48));
  ASSERT_TRUE(after);
  EXPECT_NE(after->find("expired on"), std::string::npos) << *after;
  EXPECT_NE(after->find("CN=mdecollect-test"), std::string::npos) << *after;
  auto before = c->validityProblem(now - std::chrono::hours(2));
  ASSERT_TRUE(before);
  EXPECT_NE(before->find("not valid before"), std::string::npos) << *before;
  const auto left = std::chrono::duration_cast<seconds>(c->notAfter() - now).count();
  EXPECT_GE(left, 86400 - 5);
  EXPECT_LE(left, 86400 + 5);
}

TEST(ClientAssertion, TheFederatedFileIsReadTrimmedAndChecked) {
  TempDir dir("mdec-federated");
  const std::string path = dir.sub("token");
  auto missing = readAssertionFile(path);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kIo);
  std::ofstream(path) << "  aaa.bbb.ccc\n";
  auto ok = readAssertionFile(path);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, "aaa.bbb.ccc");
  std::ofstream(path) << "\n";
  auto empty = readAssertionFile(path);
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message().find("empty"), std::string::npos);
  std::ofstream(path) << "not a token";
  auto bad = readAssertionFile(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("not a JSON Web Token"), std::string::npos);
  EXPECT_EQ(bad.error().message().find("not a token"), std::string::npos);  // never its content
  // A file no platform writes (a token is a few KiB) is refused, not read whole.
  std::ofstream(path) << std::string(64 * 1024, 'a') + ".b.c";
  auto huge = readAssertionFile(path);
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(huge.error().message().find("larger than 65536 bytes"), std::string::npos)
      << huge.error().message();
}

TEST(ClientAssertion, APemFileOverAMebibyteIsRefused) {
  Files f;
  const std::string big = f.dir.sub("big.pem");
  testing::writeCertificate(big, f.cert.get());
  std::ofstream(big, std::ios::app) << std::string(1 << 20, '#');
  auto c = CertificateCredential::load(big, f.key_file, "");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("client_certificate_file " + big), std::string::npos);
  EXPECT_NE(c.error().message().find("larger than 1048576 bytes"), std::string::npos)
      << c.error().message();
}

}  // namespace
}  // namespace mdec::auth
