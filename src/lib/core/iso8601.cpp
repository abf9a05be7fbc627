#include "mdecollect/core/iso8601.h"

#include <array>

namespace mdec::core {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

namespace {

struct Civil {
  std::int64_t y;
  unsigned m;
  unsigned d;
};

Civil civilFromDays(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2 ? 1 : 0), m, d};
}

bool isLeap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned daysInMonth(std::int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30,
                                                     31, 31, 30, 31, 30, 31};
  return m == 2 && isLeap(y) ? 29 : kDays[m - 1];
}

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool done() const { return i_ == s_.size(); }
  char peek() const { return done() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  // Exactly n ASCII digits.
  bool digits(int n, unsigned& out) {
    unsigned v = 0;
    for (int k = 0; k < n; ++k) {
      const char c = peek();
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<unsigned>(c - '0');
      ++i_;
    }
    out = v;
    return true;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

bool parseOffset(Cursor& c, std::int64_t& offset_seconds) {
  if (c.eat('Z')) {
    offset_seconds = 0;
    return true;
  }
  int sign = 0;
  if (c.eat('+')) {
    sign = 1;
  } else if (c.eat('-')) {
    sign = -1;
  } else {
    return false;
  }
  unsigned hh = 0;
  unsigned mm = 0;
  if (!c.digits(2, hh) || hh > 18) return false;
  if (c.eat(':')) {
    if (!c.digits(2, mm)) return false;
  } else if (!c.done()) {
    if (!c.digits(2, mm)) return false;
  }
  if (mm > 59) return false;
  offset_seconds = sign * static_cast<std::int64_t>(hh * 3600 + mm * 60);
  return true;
}

}  // namespace

std::optional<Instant> parseIsoDateTime(std::string_view text) {
  Cursor c(text);
  unsigned year = 0;
  unsigned month = 1;
  unsigned day = 1;
  unsigned hour = 0;
  unsigned minute = 0;
  unsigned second = 0;
  std::int32_t nanos = 0;
  std::int64_t offset = 0;
  if (!c.digits(4, year)) return std::nullopt;
  if (c.eat('-')) {
    if (!c.digits(2, month) || month < 1 || month > 12) return std::nullopt;
    if (c.eat('-')) {
      if (!c.digits(2, day) || day < 1 || day > daysInMonth(year, month)) return std::nullopt;
      if (c.eat('T')) {
        if (!c.digits(2, hour) || hour > 23) return std::nullopt;
        if (c.eat(':')) {
          if (!c.digits(2, minute) || minute > 59) return std::nullopt;
          if (c.eat(':')) {
            if (!c.digits(2, second) || second > 59) return std::nullopt;
            if (c.eat('.')) {
              int n = 0;
              std::int32_t frac = 0;
              while (c.peek() >= '0' && c.peek() <= '9') {
                if (n == 9) return std::nullopt;
                frac = frac * 10 + (c.peek() - '0');
                c.eat(c.peek());
                ++n;
              }
              if (n == 0) return std::nullopt;
              for (int k = n; k < 9; ++k) frac *= 10;
              nanos = frac;
            }
          }
        }
        if (!c.done() && !parseOffset(c, offset)) return std::nullopt;
      }
    }
  }
  if (!c.done()) return std::nullopt;
  const std::int64_t days = daysFromCivil(year, month, day);
  Instant out;
  out.seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset;
  out.nanos = nanos;
  return out;
}

std::optional<std::int64_t> nanosBetween(const Instant& a, const Instant& b) {
  // Years are 0000..9999, so the difference in seconds cannot overflow; the product can.
  std::int64_t ns = 0;
  if (__builtin_mul_overflow(b.seconds - a.seconds, std::int64_t{1'000'000'000}, &ns)) {
    return std::nullopt;
  }
  if (__builtin_add_overflow(ns, std::int64_t{b.nanos - a.nanos}, &ns)) return std::nullopt;
  return ns;
}

namespace {

// Appends `v` (>= 0) as exactly `width` digits (the lowest ones).
void appendDigits(std::string& out, std::int64_t v, int width) {
  std::array<char, 20> buf{};
  for (int k = width - 1; k >= 0; --k) {
    buf[static_cast<std::size_t>(k)] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out.append(buf.data(), static_cast<std::size_t>(width));
}

struct DayAndTime {
  std::int64_t days;           // since 1970-01-01
  std::int64_t second_of_day;  // 0..86399
};

DayAndTime split(std::int64_t seconds) {
  std::int64_t days = seconds / 86400;
  std::int64_t rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  return {days, rem};
}

void appendDate(std::string& out, const Civil& civil, std::string_view separator) {
  appendDigits(out, civil.y, 4);
  out.append(separator);
  appendDigits(out, civil.m, 2);
  out.append(separator);
  appendDigits(out, civil.d, 2);
}

void appendTime(std::string& out, std::int64_t second_of_day) {
  appendDigits(out, second_of_day / 3600, 2);
  out.push_back(':');
  appendDigits(out, second_of_day / 60 % 60, 2);
  out.push_back(':');
  appendDigits(out, second_of_day % 60, 2);
}

}  // namespace

std::string formatRfc3339(const Instant& instant, int frac_digits) {
  const DayAndTime t = split(instant.seconds);
  std::string out;
  out.reserve(32);
  appendDate(out, civilFromDays(t.days), "-");
  out.push_back('T');
  appendTime(out, t.second_of_day);
  if (frac_digits > 0) {
    if (frac_digits > 9) frac_digits = 9;
    std::int64_t frac = instant.nanos;
    for (int k = frac_digits; k < 9; ++k) frac /= 10;
    out.push_back('.');
    appendDigits(out, frac, frac_digits);
  }
  out.push_back('Z');
  return out;
}

std::string formatDate(const Instant& instant, std::string_view separator) {
  std::string out;
  appendDate(out, civilFromDays(split(instant.seconds).days), separator);
  return out;
}

std::string formatHttpDate(std::int64_t unix_seconds) {
  static constexpr std::array<std::string_view, 7> kDays = {
      "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};  // from 1970-01-01
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const DayAndTime t = split(unix_seconds);
  const Civil civil = civilFromDays(t.days);
  std::string out;
  out.reserve(29);
  out.append(kDays[static_cast<std::size_t>((t.days % 7 + 7) % 7)]);
  out.append(", ");
  appendDigits(out, civil.d, 2);
  out.push_back(' ');
  out.append(kMonths[civil.m - 1]);
  out.push_back(' ');
  appendDigits(out, civil.y, 4);
  out.push_back(' ');
  appendTime(out, t.second_of_day);
  out.append(" GMT");
  return out;
}

Instant toInstant(std::chrono::system_clock::time_point tp) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch());
  std::int64_t s = ns.count() / 1'000'000'000;
  std::int64_t n = ns.count() % 1'000'000'000;
  if (n < 0) {
    n += 1'000'000'000;
    --s;
  }
  return Instant{s, static_cast<std::int32_t>(n)};
}

}  // namespace mdec::core
