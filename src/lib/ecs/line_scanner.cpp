#include "ecs/line_scanner.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mdec::ecs {
namespace {

constexpr std::size_t kMaxDepth = 1024;

inline bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

class Scanner {
 public:
  Scanner(std::string_view s, ScanResult& out) : s_(s), out_(out) {}

  void run() {
    skipSpace();
    if (i_ == s_.size()) {
      out_.kind = ScanResult::Kind::kBlank;
      return;
    }
    out_.value.begin = i_;
    const char first = s_[i_];
    if (!scanValue()) return;
    out_.value.end = i_;
    skipSpace();
    if (i_ != s_.size()) {
      fail("unexpected text after the JSON value");
      return;
    }
    if (first != '{') {
      out_.kind = ScanResult::Kind::kOther;
    } else if (saw_value_key_) {
      out_.kind = value_is_array_ ? ScanResult::Kind::kPage : ScanResult::Kind::kBadPage;
    } else {
      out_.kind = ScanResult::Kind::kObject;
    }
  }

 private:
  void skipSpace() {
    while (i_ < s_.size() && isSpace(s_[i_])) ++i_;
  }

  bool fail(const char* why) {
    if (out_.kind != ScanResult::Kind::kInvalid) {
      out_.kind = ScanResult::Kind::kInvalid;
      out_.message = why;
      out_.error_offset = i_;
    }
    return false;
  }

  // At an opening quote; leaves i_ after the closing one.
  bool scanString() {
    std::size_t pos = i_ + 1;
    const std::size_t n = s_.size();
    for (;;) {
      pos = findQuoteOrBackslash(pos);
      if (pos >= n) {
        i_ = n;
        return fail("unterminated string");
      }
      if (s_[pos] == '"') {
        i_ = pos + 1;
        return true;
      }
      pos += 2;  // a backslash escapes the next byte
    }
  }

  // Position of the next '"' or '\\' at or after `pos`, or s_.size().
  std::size_t findQuoteOrBackslash(std::size_t pos) const {
    const char* const data = s_.data();
    const std::size_t n = s_.size();
#if defined(__SSE2__)
    while (pos + 16 <= n) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + pos));
      const int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
      if (mask != 0)
        return pos + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
      pos += 16;
    }
#endif
    while (pos < n && data[pos] != '"' && data[pos] != '\\') ++pos;
    return pos;
  }

  bool scanLiteral(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return fail("invalid literal");
    i_ += word.size();
    return true;
  }

  bool scanNumber() {
    const std::size_t start = i_;
    if (s_[i_] == '-') ++i_;
    std::size_t digits = 0;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c >= '0' && c <= '9') {
        ++digits;
      } else if (c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-') {
        break;
      }
      ++i_;
    }
    if (digits == 0 || i_ == start) return fail("invalid number");
    return true;
  }

  // Scans one value of any kind, iteratively (containers keep an explicit stack).
  bool scanValue() {
    // stack_ holds '{' or '['; keys of depth-1 objects are checked for "value".
    stack_.clear();
    for (;;) {
      skipSpace();
      if (i_ == s_.size()) return fail("unexpected end of line");
      const std::size_t depth = stack_.size();
      const bool element_of_value = in_value_array_ && depth == 2;
      if (element_of_value) element_begin_ = i_;
      const char c = s_[i_];
      bool ok = true;
      bool opened = false;
      switch (c) {
        case '{':
        case '[':
          if (stack_.size() == kMaxDepth) return fail("nesting too deep");
          stack_.push_back(c);
          ++i_;
          opened = true;
          if (depth == 1 && c == '[' && pending_value_key_) {
            value_is_array_ = true;
            in_value_array_ = true;
          }
          break;
        case '"':
          ok = scanString();
          break;
        case 't':
          ok = scanLiteral("true");
          break;
        case 'f':
          ok = scanLiteral("false");
          break;
        case 'n':
          ok = scanLiteral("null");
          break;
        default:
          if (c == '-' || (c >= '0' && c <= '9')) {
            ok = scanNumber();
          } else {
            return fail("unexpected character");
          }
      }
      if (!ok) return false;
      if (depth == 1) pending_value_key_ = false;
      if (opened) {
        // Empty container, or its first key/element.
        skipSpace();
        if (i_ == s_.size()) return fail("unexpected end of line");
        const char close = c == '{' ? '}' : ']';
        if (s_[i_] == close) {
          ++i_;
          stack_.pop_back();
          if (stack_.size() == 1 && in_value_array_ && c == '[') in_value_array_ = false;
          if (element_of_value) out_.elements.push_back({element_begin_, i_});
          if (!afterValue()) return false;
          if (stack_.empty()) return true;
          continue;
        }
        if (c == '{' && !scanKey()) return false;
        continue;
      }
      if (element_of_value) out_.elements.push_back({element_begin_, i_});
      if (!afterValue()) return false;
      if (stack_.empty()) return true;
    }
  }

  // After a complete value inside containers: consume ',' or closers until the next value
  // is due (returns with stack_ non-empty) or the top-level value is complete.
  bool afterValue() {
    for (;;) {
      if (stack_.empty()) return true;
      skipSpace();
      if (i_ == s_.size()) return fail("unexpected end of line");
      const char top = stack_.back();
      const char c = s_[i_];
      if (c == ',') {
        ++i_;
        if (top == '{') return scanKey();
        return true;
      }
      if ((top == '{' && c == '}') || (top == '[' && c == ']')) {
        ++i_;
        stack_.pop_back();
        if (top == '[' && stack_.size() == 1 && in_value_array_) in_value_array_ = false;
        // A closed container is itself a value: an element of the "value" array?
        if (in_value_array_ && stack_.size() == 2) out_.elements.push_back({element_begin_, i_});
        continue;
      }
      return fail(top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }

  // At a key's opening quote (after skipping space); consumes `"key" :`.
  bool scanKey() {
    skipSpace();
    if (i_ == s_.size()) return fail("unexpected end of line");
    if (s_[i_] != '"') return fail("expected a key");
    const std::size_t key_begin = i_;
    if (!scanString()) return false;
    if (stack_.size() == 1) {
      const std::string_view key = s_.substr(key_begin + 1, i_ - key_begin - 2);
      if (key == "value") {
        saw_value_key_ = true;
        pending_value_key_ = true;
      }
    }
    skipSpace();
    if (i_ == s_.size() || s_[i_] != ':') return fail("expected ':'");
    ++i_;
    return true;
  }

  std::string_view s_;
  ScanResult& out_;
  std::size_t i_ = 0;
  std::string stack_;
  bool saw_value_key_ = false;
  bool pending_value_key_ = false;
  bool value_is_array_ = false;
  bool in_value_array_ = false;
  std::size_t element_begin_ = 0;
};

}  // namespace

void scanLine(std::string_view line, ScanResult& out) {
  out.kind = ScanResult::Kind::kBlank;
  out.value = {};
  out.elements.clear();
  out.message.clear();
  out.error_offset = 0;
  Scanner(line, out).run();
}

}  // namespace mdec::ecs
