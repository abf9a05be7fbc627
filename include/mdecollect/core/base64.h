// Base64 (RFC 4648): with padding, as HTTP authorization headers carry credentials; and the
// URL alphabet without padding (section 5), as JSON Web Tokens carry their parts.
#pragma once

#include <string>
#include <string_view>

namespace mdec::core {

std::string base64Encode(std::string_view data);

// '-' and '_' for '+' and '/', no '=' (RFC 7515's base64url).
std::string base64UrlEncode(std::string_view data);

}  // namespace mdec::core
