// Base64 (RFC 4648): with padding, as HTTP authorization headers carry credentials; and the
// URL alphabet without padding (section 5), as JSON Web Tokens carry their parts.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mdec::core {

std::string base64Encode(std::string_view data);

// '-' and '_' for '+' and '/', no '=' (RFC 7515's base64url).
std::string base64UrlEncode(std::string_view data);

// The bytes of base64url text without padding; nullopt for any other character, a dangling
// sextet, or leftover bits that are not zero (only the canonical text of some bytes decodes,
// so two texts never give the same bytes).
std::optional<std::string> base64UrlDecode(std::string_view text);

}  // namespace mdec::core
