#include <openssl/evp.h>

#include <array>
#include <charconv>
#include <cstdlib>
#include <string>

#include "mdecollect/ecs/mapper.h"

namespace mdec::ecs {
namespace {

// Fetched once: an implicit fetch per digest costs more than the digest itself.
const EVP_MD* sha256() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) std::abort();  // OpenSSL without SHA-256: cannot happen
    return fetched;
  }();
  return md;
}

}  // namespace

// id = hex(SHA-256(alert_id 0x1F last_update_time 0x1F decimal(evidence_index)))[0:32]
std::string documentId(std::string_view alert_id, std::string_view last_update_time,
                       std::uint32_t evidence_index) {
  std::string input;
  input.reserve(alert_id.size() + last_update_time.size() + 12);
  input.append(alert_id);
  input.push_back('\x1f');
  input.append(last_update_time);
  input.push_back('\x1f');
  std::array<char, 12> num{};
  auto r = std::to_chars(num.data(), num.data() + num.size(), evidence_index);
  input.append(num.data(), static_cast<std::size_t>(r.ptr - num.data()));

  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &len, sha256(), nullptr) != 1) {
    std::abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (std::size_t i = 0; i < 16; ++i) {
    id[2 * i] = kHex[digest[i] >> 4];
    id[2 * i + 1] = kHex[digest[i] & 0xF];
  }
  return id;
}

}  // namespace mdec::ecs
