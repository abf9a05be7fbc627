// What the emulator's two OData dialects (the Defender API's /api/alerts and Graph's
// alerts_v2) share: the character classes, quoting a piece of the request in an error
// message, and the $filter tokenizer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mdec::emulator::odata_lexer {

inline constexpr std::size_t kMaxEcho = 200;  // longest piece of the request echoed back

// `text` cut to kMaxEcho bytes for quoting in a message.
inline std::string echo(std::string_view text) {
  if (text.size() <= kMaxEcho) return std::string(text);
  return std::string(text.substr(0, kMaxEcho)) + "...";
}

inline bool isBlank(char c) { return c == ' ' || c == '\t'; }
inline bool isDigit(char c) { return c >= '0' && c <= '9'; }
inline bool isIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
inline bool isIdentChar(char c) { return isIdentStart(c) || isDigit(c) || c == '/' || c == '.'; }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && isBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && isBlank(s.back())) s.remove_suffix(1);
  return s;
}

enum class TokenKind { kEnd, kIdent, kLiteral, kString, kOpen, kClose, kOther };

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string_view text;  // as written (strings with their quotes)
  std::size_t pos = 0;    // 0-based offset in the filter
  std::string value;      // kString: the contents with '' turned into '
};

// Reads the token at `pos` (after blanks) into `t` and moves `pos` past it; kEnd at the end.
// False for a string literal without its closing quote (t.pos says where it began).
inline bool nextToken(std::string_view f, std::size_t& pos, Token& t) {
  while (pos < f.size() && isBlank(f[pos])) ++pos;
  t = Token{};
  t.pos = pos;
  if (pos == f.size()) return true;
  const char c = f[pos];
  std::size_t end = pos + 1;
  if (isIdentStart(c)) {
    t.kind = TokenKind::kIdent;
    while (end < f.size() && isIdentChar(f[end])) ++end;
  } else if (isDigit(c) || c == '-' || c == '+') {
    t.kind = TokenKind::kLiteral;
    while (end < f.size() && !isBlank(f[end]) && f[end] != '(' && f[end] != ')' && f[end] != ',' &&
           f[end] != '\'') {
      ++end;
    }
  } else if (c == '\'') {
    t.kind = TokenKind::kString;
    for (;;) {
      if (end == f.size()) return false;
      if (f[end] == '\'') {
        if (end + 1 < f.size() && f[end + 1] == '\'') {
          t.value.push_back('\'');
          end += 2;
          continue;
        }
        ++end;
        break;
      }
      t.value.push_back(f[end]);
      ++end;
    }
  } else if (c == '(') {
    t.kind = TokenKind::kOpen;
  } else if (c == ')') {
    t.kind = TokenKind::kClose;
  } else {
    t.kind = TokenKind::kOther;
  }
  t.text = f.substr(pos, end - pos);
  pos = end;
  return true;
}

}  // namespace mdec::emulator::odata_lexer
