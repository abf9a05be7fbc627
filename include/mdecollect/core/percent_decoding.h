// %XX escapes (RFC 3986) undone, written once for the URL mapper and the request tracer.
#pragma once

#include <string>
#include <string_view>

namespace mdec::core {

// Each %XX (two hex digits, either case) as its byte; a '%' not followed by two hex digits
// is kept as it is; '+' is not a space. The bytes are not checked to be UTF-8.
std::string percentDecode(std::string_view s);

}  // namespace mdec::core
