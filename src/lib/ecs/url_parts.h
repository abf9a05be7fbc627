// Splits a URL the way Elasticsearch's uri_parts processor (java.net.URI) does, for the
// url.* fields. Validity is decided by uriparser (RFC 3986 URI-reference).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mdec::ecs {

struct UrlParts {
  std::string scheme;
  std::string domain;                   // host; an IPv6 literal keeps its brackets (ECS says so)
  std::optional<int> port;              // only when written in the URL
  std::string path;                     // percent-decoded
  std::string query;                    // without '?', percent-decoded
  std::string fragment;                 // without '#', percent-decoded
  std::string extension;                // after the last '.' of the last path segment
  std::string user_info;                // percent-decoded
  std::string username;                 // user_info before the first ':' (all of it without ':')
  std::optional<std::string> password;  // after the first ':' when there is one
};

// nullopt when `url` is not a URI reference.
std::optional<UrlParts> parseUrlParts(std::string_view url);

bool isValidUtf8(std::string_view s);

}  // namespace mdec::ecs
