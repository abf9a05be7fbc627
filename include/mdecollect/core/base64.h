// Base64 (RFC 4648, with padding), as HTTP authorization headers carry credentials.
#pragma once

#include <string>
#include <string_view>

namespace mdec::core {

std::string base64Encode(std::string_view data);

}  // namespace mdec::core
