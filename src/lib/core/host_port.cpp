#include "mdecollect/core/host_port.h"

namespace mdec::core {

Result<int> parsePort(std::string_view text) {
  if (text.empty()) return Error(ErrorCode::kInvalidArgument, "no port");
  int port = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') {
      return Error(ErrorCode::kInvalidArgument,
                   "port '" + std::string(text) + "' is not a number from 0 to 65535");
    }
    port = port * 10 + (c - '0');
    if (port > 65535) {
      return Error(ErrorCode::kInvalidArgument, "port " + std::string(text) + " is over 65535");
    }
  }
  return port;
}

Result<HostPort> parseHostPort(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument, "no ']' after the IPv6 address");
    }
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return Error(ErrorCode::kInvalidArgument, "no ':port' after ']' (expected [host]:port)");
    }
    port = rest.substr(1);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument, "no port (expected host:port)");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument, "an IPv6 address goes in brackets: [" +
                                                    std::string(host) + "]:" + std::string(port));
    }
  }
  if (host.empty()) return Error(ErrorCode::kInvalidArgument, "no host (expected host:port)");
  auto number = parsePort(port);
  if (!number) return number.error();
  return HostPort{std::string(host), *number};
}

std::string formatHostPort(std::string_view host, int port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string out;
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

}  // namespace mdec::core
