// "host:port" as a listen address is written: `127.0.0.1:5066`, `localhost:0`,
// `[::1]:5066`. One parser for every place that reads one (http.listen, the emulator's
// listen and --listen, the fake Elasticsearch's --listen) and one writer.
#pragma once

#include <string>
#include <string_view>

#include "mdecollect/core/result.h"

namespace mdec::core {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 literal: "::1"
  int port = 0;      // 0..65535 (0: any free port)
};

// `host:port` or `[ipv6]:port`; the port is decimal digits, at most 65535. An IPv6
// address must be in brackets (`::1:80` is refused: which colon ends the host?). Errors
// (kInvalidArgument) say what is wrong without repeating `text`, so that callers can name
// where it came from: "no port (expected host:port)", "port 70000 is over 65535", ...
Result<HostPort> parseHostPort(std::string_view text);

// A port alone: decimal digits, at most 65535.
Result<int> parsePort(std::string_view text);

// `host:port`, with a host that holds a ':' (IPv6) in brackets: "[::1]:5066".
std::string formatHostPort(std::string_view host, int port);

}  // namespace mdec::core
