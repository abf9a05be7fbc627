#include "ecs/url_parts.h"

#include <uriparser/Uri.h>

#include "mdecollect/core/host_port.h"
#include "mdecollect/core/percent_decoding.h"

namespace mdec::ecs {
namespace {

// java.net.URI decodes %XX into UTF-8; where that is not valid UTF-8 we keep the text.
std::string percentDecode(std::string_view s) {
  std::string out = core::percentDecode(s);
  if (!isValidUtf8(out)) return std::string(s);
  return out;
}

}  // namespace

bool isValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::optional<UrlParts> parseUrlParts(std::string_view url) {
  if (url.empty()) return std::nullopt;
  {
    UriUriA uri;
    const char* error_pos = nullptr;
    const int rc = uriParseSingleUriExA(&uri, url.data(), url.data() + url.size(), &error_pos);
    uriFreeUriMembersA(&uri);
    if (rc != URI_SUCCESS) return std::nullopt;
  }
  // A valid RFC 3986 reference splits exactly by the grammar of its appendix B:
  //   [scheme ":"] ["//" authority] path ["?" query] ["#" fragment]
  UrlParts parts;
  std::string_view rest = url;
  if (const auto hash = rest.find('#'); hash != std::string_view::npos) {
    parts.fragment = percentDecode(rest.substr(hash + 1));
    rest = rest.substr(0, hash);
  }
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    parts.query = percentDecode(rest.substr(q + 1));
    rest = rest.substr(0, q);
  }
  if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || colon < slash) {
      parts.scheme = std::string(rest.substr(0, colon));
      rest = rest.substr(colon + 1);
    }
  }
  if (rest.substr(0, 2) == "//") {
    rest = rest.substr(2);
    const auto end = rest.find('/');
    std::string_view authority = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
      parts.user_info = percentDecode(authority.substr(0, at));
      authority = authority.substr(at + 1);
      const auto c = parts.user_info.find(':');
      parts.username = parts.user_info.substr(0, c);
      if (c != std::string::npos) parts.password = parts.user_info.substr(c + 1);
    }
    std::string_view host = authority;
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
      const auto close = authority.find(']');
      host = authority.substr(0, close + 1);
      if (close + 1 < authority.size() && authority[close + 1] == ':') {
        port = authority.substr(close + 2);
      }
    } else if (const auto c = authority.rfind(':'); c != std::string_view::npos) {
      host = authority.substr(0, c);
      port = authority.substr(c + 1);
    }
    parts.domain = std::string(host);
    if (!port.empty()) {
      const auto number = core::parsePort(port);
      if (!number) return std::nullopt;
      parts.port = *number;
    }
  }
  parts.path = percentDecode(rest);
  const auto last_slash = parts.path.rfind('/');
  const std::string_view segment = last_slash == std::string::npos
                                       ? std::string_view(parts.path)
                                       : std::string_view(parts.path).substr(last_slash + 1);
  if (const auto dot = segment.rfind('.'); dot != std::string_view::npos) {
    parts.extension = std::string(segment.substr(dot + 1));
  }
  return parts;
}

}  // namespace mdec::ecs
