// Appends compact JSON to a std::string. No validation of structure: the caller writes
// keys and values in a valid order; commas are the caller's too (see ObjectWriter).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mdec::core {

// The bytes a JSON string cannot hold as they are: control characters, '"' and '\\'.
inline constexpr std::array<bool, 256> kJsonNeedsEscape = [] {
  std::array<bool, 256> t{};
  for (std::size_t c = 0; c < 0x20; ++c) t[c] = true;
  t['"'] = true;
  t['\\'] = true;
  return t;
}();

// Appends `s` (valid UTF-8) as JSON string contents, without the quotes.
void appendEscaped(std::string& out, std::string_view s);
// Like appendEscaped for text that may not be valid UTF-8 (a line that is not JSON, raw
// request bytes): each byte that does not start a valid UTF-8 sequence becomes U+FFFD, so
// the output stays valid JSON.
void appendEscapedLossy(std::string& out, std::string_view s);
// Length of the valid UTF-8 sequence at the start of `s` (no overlong forms, surrogates or
// code points above U+10FFFF), or 0 when there is none.
std::size_t utf8SequenceLength(std::string_view s);
// Appends `"s"`.
inline void appendString(std::string& out, std::string_view s) {
  out.push_back('"');
  appendEscaped(out, s);
  out.push_back('"');
}
// Appends `"s"` for text that may not be valid UTF-8 (see appendEscapedLossy).
inline void appendStringLossy(std::string& out, std::string_view s) {
  out.push_back('"');
  appendEscapedLossy(out, s);
  out.push_back('"');
}
void appendInt(std::string& out, std::int64_t v);
void appendUint(std::string& out, std::uint64_t v);
// Shortest text that reads back as the same double; non-finite values become null.
void appendDouble(std::string& out, double v);

// Writes members of one JSON object, handling the commas.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_.push_back('{'); }
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;

  // Writes `"key":` (key must not need escaping) and returns the buffer for the value.
  std::string& key(std::string_view k) {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_.push_back('"');
    out_.append(k);
    out_.append("\":", 2);
    return out_;
  }
  void string(std::string_view k, std::string_view v) { appendString(key(k), v); }
  void raw(std::string_view k, std::string_view json) { key(k).append(json); }
  void integer(std::string_view k, std::int64_t v) { appendInt(key(k), v); }
  bool empty() const { return first_; }
  void close() { out_.push_back('}'); }

 private:
  std::string& out_;
  bool first_ = true;
};

}  // namespace mdec::core
