#include "mdecollect/emulator/odata.h"

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "mdecollect/core/json_writer.h"
#include "odata_lexer.h"

namespace mdec::emulator {
namespace {

using odata_lexer::echo;
using odata_lexer::isBlank;
using odata_lexer::isDigit;
using odata_lexer::Token;
using odata_lexer::TokenKind;
using odata_lexer::trim;

// ---------------------------------------------------------------------------------------
// Messages in the style of the real API (ASP.NET Web API OData wraps ODataLib's messages
// in "The query specified in the URI is not valid. ...").

constexpr std::size_t kMaxTop = 10000;
constexpr std::string_view kInvalidQuery = "The query specified in the URI is not valid. ";

// The properties of the API's Alert entity (api-facts.md), for telling an unknown name
// ("Could not find a property") from a known one the emulator does not filter on.
constexpr std::array<std::string_view, 29> kAlertProperties = {
    "id",
    "incidentId",
    "investigationId",
    "assignedTo",
    "severity",
    "status",
    "classification",
    "determination",
    "investigationState",
    "detectionSource",
    "detectorId",
    "category",
    "threatFamilyName",
    "threatName",
    "title",
    "description",
    "alertCreationTime",
    "firstEventTime",
    "lastEventTime",
    "lastUpdateTime",
    "resolvedTime",
    "machineId",
    "computerDnsName",
    "rbacGroupName",
    "aadTenantId",
    "mitreTechniques",
    "relatedUser",
    "comments",
    "evidence",
};

bool isAlertProperty(std::string_view name) {
  for (std::string_view p : kAlertProperties) {
    if (p == name) return true;
  }
  return false;
}

Error invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

Error invalidQuery(std::string_view detail) {
  std::string m(kInvalidQuery);
  m.append(detail);
  return invalid(std::move(m));
}

Error invalidFilter(std::string_view detail) {
  std::string m = "Invalid filter clause: ";
  m.append(detail);
  return invalid(std::move(m));
}

Error invalidOrderBy(std::string_view detail) {
  std::string m = "Invalid order by clause: ";
  m.append(detail);
  return invalid(std::move(m));
}

Error unknownProperty(std::string_view name) {
  return invalidQuery("Could not find a property named '" + echo(name) + "' on type 'Alert'.");
}

Error emptyOption(std::string_view option) {
  return invalidQuery("The value for OData query '" + std::string(option) + "' cannot be empty.");
}

Error notUsableIn(std::string_view property, std::string_view option) {
  return invalidQuery("The property '" + std::string(property) + "' cannot be used in the " +
                      std::string(option) + " query option.");
}

std::optional<TimeField> timeFieldNamed(std::string_view name) {
  if (name == "lastUpdateTime") return TimeField::kLastUpdateTime;
  if (name == "alertCreationTime") return TimeField::kAlertCreationTime;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// Date-times: OData v4's dateTimeOffsetValue, checked for a real calendar date by
// core::parseIsoDateTime:  yyyy-MM-ddTHH:mm[:ss[.fraction]](Z | ±HH:mm)

bool digitsAt(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return false;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (!isDigit(s[i])) return false;
  }
  return true;
}

bool hasODataDateTimeShape(std::string_view s) {
  // yyyy-MM-ddTHH:mm
  if (!digitsAt(s, 0, 4) || s.size() < 16 || s[4] != '-' || !digitsAt(s, 5, 2) || s[7] != '-' ||
      !digitsAt(s, 8, 2) || s[10] != 'T' || !digitsAt(s, 11, 2) || s[13] != ':' ||
      !digitsAt(s, 14, 2)) {
    return false;
  }
  std::size_t pos = 16;
  if (pos < s.size() && s[pos] == ':') {
    if (!digitsAt(s, pos + 1, 2)) return false;
    pos += 3;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      const std::size_t start = pos;
      while (pos < s.size() && isDigit(s[pos])) ++pos;
      if (pos == start) return false;
    }
  }
  std::string_view zone = s.substr(pos);
  if (zone == "Z") return true;
  return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digitsAt(zone, 1, 2) &&
         zone[3] == ':' && digitsAt(zone, 4, 2);
}

// ---------------------------------------------------------------------------------------
// $filter: a tokenizer and a recursive-descent parser for  term ( and term )*

class FilterParser {
 public:
  explicit FilterParser(std::string_view filter) : filter_(filter) {}

  mdec::Status parse(AlertQuery& query) {
    for (;;) {
      if (auto st = parseTerm(query); !st) return st;
      auto next = nextToken();
      if (!next) return next.error();
      const Token& t = *next;
      if (t.kind == TokenKind::kEnd) return okStatus();
      if (t.kind == TokenKind::kIdent && t.text == "and") continue;
      if (t.kind == TokenKind::kIdent && t.text == "or") {
        return invalidFilter("the operator 'or' is not supported; join conditions with 'and'.");
      }
      if (t.kind == TokenKind::kOpen || t.kind == TokenKind::kClose) {
        return parenthesesUnsupported();
      }
      return invalidFilter("expected 'and' or the end of the filter at position " +
                           std::to_string(t.pos) + ", found '" + echo(t.text) + "'.");
    }
  }

 private:
  mdec::Status parseTerm(AlertQuery& query) {
    auto first = nextToken();
    if (!first) return first.error();
    const Token field = std::move(*first);
    switch (field.kind) {
      case TokenKind::kEnd:
        return unexpectedEnd("a property name");
      case TokenKind::kOpen:
      case TokenKind::kClose:
        return parenthesesUnsupported();
      case TokenKind::kIdent:
        break;
      default:
        return invalidFilter("expected a property name at position " + std::to_string(field.pos) +
                             ", found '" + echo(field.text) + "'.");
    }
    if (field.text == "not") return invalidFilter("the operator 'not' is not supported.");
    if (field.text == "and" || field.text == "or") {
      return invalidFilter("expected a property name at position " + std::to_string(field.pos) +
                           ", found '" + std::string(field.text) + "'.");
    }
    if (peekChar() == '(') {
      return invalidFilter("the function '" + echo(field.text) + "' is not supported.");
    }

    const std::optional<TimeField> time_field = timeFieldNamed(field.text);
    const bool string_field = field.text == "status" || field.text == "severity";
    if (!time_field && !string_field) {
      if (isAlertProperty(field.text)) return notUsableIn(field.text, "$filter");
      return unknownProperty(field.text);
    }

    auto op_token = nextToken();
    if (!op_token) return op_token.error();
    const Token op = std::move(*op_token);
    if (op.kind == TokenKind::kEnd) return unexpectedEnd("an operator");
    if (op.kind != TokenKind::kIdent) return unknownOperator(op);

    if (time_field) {
      std::optional<CompareOp> cmp;
      if (op.text == "gt") cmp = CompareOp::kGt;
      if (op.text == "ge") cmp = CompareOp::kGe;
      if (op.text == "lt") cmp = CompareOp::kLt;
      if (op.text == "le") cmp = CompareOp::kLe;
      if (!cmp) {
        if (!isKnownOperator(op.text)) return unknownOperator(op);
        return invalidFilter("the operator '" + std::string(op.text) + "' cannot be used on '" +
                             std::string(field.text) + "'; use gt, ge, lt or le.");
      }
      auto value = parseTimeValue(field.text, op.text);
      if (!value) return value.error();
      query.times.push_back(TimeCondition{*time_field, *cmp, *value});
      return okStatus();
    }

    if (op.text != "eq") {
      if (!isKnownOperator(op.text)) return unknownOperator(op);
      return invalidFilter("the operator '" + std::string(op.text) + "' cannot be used on '" +
                           std::string(field.text) + "'; use eq.");
    }
    auto value_token = nextToken();
    if (!value_token) return value_token.error();
    Token value = std::move(*value_token);
    if (value.kind == TokenKind::kEnd) return unexpectedEnd("a quoted string");
    if (value.kind != TokenKind::kString) {
      return invalidFilter("expected a string in single quotes after '" + std::string(field.text) +
                           " eq' at position " + std::to_string(value.pos) + ", found '" +
                           echo(value.text) + "'.");
    }
    std::optional<std::string>& slot = field.text == "status" ? query.status : query.severity;
    if (slot) {
      return invalidFilter("'" + std::string(field.text) + "' may appear only once.");
    }
    slot = std::move(value.value);
    return okStatus();
  }

  Result<core::Instant> parseTimeValue(std::string_view field, std::string_view op) {
    auto token = nextToken();
    if (!token) return token.error();
    const Token& t = *token;
    std::string_view literal;
    switch (t.kind) {
      case TokenKind::kLiteral:
        literal = t.text;
        break;
      case TokenKind::kString:
        literal = t.value;
        break;
      case TokenKind::kEnd:
        return unexpectedEnd("a date-time");
      case TokenKind::kIdent:
        if (peekChar() == '\'') {
          return invalidFilter("typed literals such as " + echo(t.text) +
                               "'...' are not supported; write the date-time unquoted.");
        }
        [[fallthrough]];
      default:
        return invalidFilter("expected a date-time after '" + std::string(field) + " " +
                             std::string(op) + "' at position " + std::to_string(t.pos) +
                             ", found '" + echo(t.text) + "'.");
    }
    auto instant = parseODataDateTime(literal);
    if (!instant) {
      return invalidQuery("Unrecognized 'Edm.DateTimeOffset' literal '" + echo(t.text) + "' at '" +
                          std::to_string(t.pos) + "' in '" + echo(filter_) + "'.");
    }
    return *instant;
  }

  static bool isKnownOperator(std::string_view op) {
    for (std::string_view known : {"eq", "ne", "gt", "ge", "lt", "le", "has", "in"}) {
      if (op == known) return true;
    }
    return false;
  }

  Error unknownOperator(const Token& op) const {
    return invalidFilter("unknown operator '" + echo(op.text) + "' at position " +
                         std::to_string(op.pos) + "; expected eq, gt, ge, lt or le.");
  }

  Error unexpectedEnd(std::string_view expected) const {
    return invalidFilter("the filter ends where " + std::string(expected) + " was expected, in '" +
                         echo(filter_) + "'.");
  }

  static Error parenthesesUnsupported() {
    return invalidFilter("parentheses are not supported; join conditions with 'and'.");
  }

  void skipBlanks() {
    while (pos_ < filter_.size() && isBlank(filter_[pos_])) ++pos_;
  }

  // The next character that is not blank, or '\0' at the end.
  char peekChar() {
    skipBlanks();
    return pos_ < filter_.size() ? filter_[pos_] : '\0';
  }

  Result<Token> nextToken() {
    Token t;
    if (!odata_lexer::nextToken(filter_, pos_, t)) {
      return invalidQuery("There is an unterminated string literal at position " +
                          std::to_string(t.pos) + " in '" + echo(filter_) + "'.");
    }
    return t;
  }

  std::string_view filter_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------
// The other options

mdec::Status parseOrderBy(std::string_view text, AlertQuery& query) {
  text = trim(text);
  if (text.empty()) return emptyOption("$orderby");
  if (text.find(',') != std::string_view::npos) {
    return invalidOrderBy("ordering by more than one property is not supported, in '" + echo(text) +
                          "'.");
  }
  std::size_t space = 0;
  while (space < text.size() && !isBlank(text[space])) ++space;
  const std::string_view name = text.substr(0, space);
  const std::string_view rest = trim(text.substr(space));

  const std::optional<TimeField> field = timeFieldNamed(name);
  if (!field) {
    if (isAlertProperty(name)) return notUsableIn(name, "$orderby");
    return unknownProperty(name);
  }
  bool descending = false;
  if (rest == "desc") {
    descending = true;
  } else if (!rest.empty() && rest != "asc") {
    return invalidOrderBy("expected 'asc' or 'desc' after '" + std::string(name) + "', found '" +
                          echo(rest) + "'.");
  }
  query.order_by = field;
  query.descending = descending;
  return okStatus();
}

// A count as .NET's long.TryParse reads it: blanks around, an optional sign, digits.
// nullopt when it is not one or does not fit in 64 bits.
std::optional<std::int64_t> parseCount(std::string_view text) {
  text = trim(text);
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty()) return std::nullopt;
  for (char c : text) {
    if (!isDigit(c)) return std::nullopt;
  }
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return negative ? -value : value;
}

Result<std::size_t> parseCountOption(std::string_view option, std::string_view text) {
  if (trim(text).empty()) return emptyOption(option);
  std::optional<std::int64_t> value = parseCount(text);
  if (!value || *value < 0) {
    return invalidQuery("Invalid value '" + echo(text) + "' for " + std::string(option) +
                        " query option found. The " + std::string(option) +
                        " query option requires a non-negative integer value.");
  }
  return static_cast<std::size_t>(*value);
}

mdec::Status parseExpand(std::string_view text, AlertQuery& query) {
  text = trim(text);
  if (text.empty()) return emptyOption("$expand");
  if (text == "evidence") {
    query.expand_evidence = true;
    return okStatus();
  }
  if (isAlertProperty(text)) {
    return invalidQuery("Property '" + std::string(text) +
                        "' on type 'Alert' is not a navigation property or complex property. "
                        "Only navigation properties can be expanded.");
  }
  return unknownProperty(text);
}

}  // namespace

std::optional<core::Instant> parseODataDateTime(std::string_view s) {
  if (!hasODataDateTimeShape(s)) return std::nullopt;
  return core::parseIsoDateTime(s);
}

Result<AlertQuery> parseAlertQuery(const QueryParams& params) {
  AlertQuery query;
  if (params.filter) {
    if (trim(*params.filter).empty()) return emptyOption("$filter");
    FilterParser parser(*params.filter);
    if (auto st = parser.parse(query); !st) return st.error();
  }
  if (params.orderby) {
    if (auto st = parseOrderBy(*params.orderby, query); !st) return st.error();
  }
  if (params.top) {
    auto top = parseCountOption("$top", *params.top);
    if (!top) return top.error();
    if (*top > kMaxTop) {
      return invalidQuery("The limit of '" + std::to_string(kMaxTop) +
                          "' for Top query has been exceeded. The value from the incoming "
                          "request is '" +
                          std::to_string(*top) + "'.");
    }
    query.top = *top;
  }
  if (params.skip) {
    auto skip = parseCountOption("$skip", *params.skip);
    if (!skip) return skip.error();
    query.skip = *skip;
  }
  if (params.expand) {
    if (auto st = parseExpand(*params.expand, query); !st) return st.error();
  }
  return query;
}

bool matchesTimes(const AlertQuery& query, const core::Instant& last_update_time,
                  const core::Instant& alert_creation_time) {
  for (const TimeCondition& c : query.times) {
    const core::Instant& t =
        c.field == TimeField::kLastUpdateTime ? last_update_time : alert_creation_time;
    bool holds = false;
    switch (c.op) {
      case CompareOp::kGt:
        holds = t > c.value;
        break;
      case CompareOp::kGe:
        holds = t >= c.value;
        break;
      case CompareOp::kLt:
        holds = t < c.value;
        break;
      case CompareOp::kLe:
        holds = t <= c.value;
        break;
    }
    if (!holds) return false;
  }
  return true;
}

std::string formatODataError(std::string_view code, std::string_view message,
                             std::string_view target) {
  std::string out;
  out.reserve(48 + code.size() + message.size() + target.size());
  out.append(R"({"error":{"code":)");
  core::appendStringLossy(out, code);
  out.append(R"(,"message":)");
  core::appendStringLossy(out, message);
  out.append(R"(,"target":)");
  core::appendStringLossy(out, target);
  out.append("}}");
  return out;
}

}  // namespace mdec::emulator
