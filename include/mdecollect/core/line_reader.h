// Reads newline-delimited lines from a file descriptor with a bounded buffer that grows
// only to the longest line. Each line handed out is followed by `padding` readable
// bytes (for simdjson), and knows its byte offset in the stream.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "mdecollect/core/result.h"

namespace mdec::core {

class LineReader {
 public:
  // Does not own `fd`.
  explicit LineReader(int fd, std::size_t padding = 64, std::size_t chunk = 1 << 20);

  // The next line without its '\n' (a final line without one counts too); nullopt at the
  // end. The view is valid until the next call.
  Result<std::optional<std::string_view>> next();

  // Byte offset of the line `next` returned last.
  std::int64_t lineOffset() const { return line_offset_; }
  std::uint64_t linesRead() const { return lines_; }

 private:
  bool fill();  // false at end of input; sets error_ on failure

  int fd_;
  std::size_t padding_;
  std::size_t chunk_;
  std::vector<char> buf_;
  std::size_t begin_ = 0;      // first unread byte
  std::size_t end_ = 0;        // one past the last byte read
  std::size_t scanned_ = 0;    // bytes after begin_ known to hold no '\n'
  std::int64_t consumed_ = 0;  // stream offset of buf_[0]
  std::int64_t line_offset_ = 0;
  std::uint64_t lines_ = 0;
  bool eof_ = false;
  std::optional<Error> error_;
};

}  // namespace mdec::core
