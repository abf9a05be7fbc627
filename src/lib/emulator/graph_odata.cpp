#include "mdecollect/emulator/graph_odata.h"

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "mdecollect/core/base64.h"
#include "mdecollect/core/json_writer.h"
#include "mdecollect/emulator/graph_json.h"
#include "odata_lexer.h"

namespace mdec::emulator {
namespace {

using odata_lexer::echo;
using odata_lexer::isBlank;
using odata_lexer::isDigit;
using odata_lexer::Token;
using odata_lexer::TokenKind;
using odata_lexer::trim;

constexpr std::size_t kMaxDepth = 32;    // nested parentheses in a $filter
constexpr std::size_t kMaxNodes = 1000;  // comparisons and joins in a $filter

Error invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

Error invalidFilter(std::string_view detail) {
  return invalid("Invalid filter clause: " + std::string(detail));
}

struct FieldInfo {
  std::string_view name;
  GraphField field;
  bool time;
  bool nullable;
  std::optional<GraphEnum> members;  // enum fields: the literal must be a member
};

constexpr FieldInfo kFields[] = {
    {"lastUpdateDateTime", GraphField::kLastUpdateDateTime, true, false, std::nullopt},
    {"createdDateTime", GraphField::kCreatedDateTime, true, false, std::nullopt},
    {"status", GraphField::kStatus, false, false, GraphEnum::kStatus},
    {"severity", GraphField::kSeverity, false, false, GraphEnum::kSeverity},
    {"serviceSource", GraphField::kServiceSource, false, false, GraphEnum::kServiceSource},
    {"classification", GraphField::kClassification, false, true, GraphEnum::kClassification},
    {"determination", GraphField::kDetermination, false, true, GraphEnum::kDetermination},
    {"assignedTo", GraphField::kAssignedTo, false, true, std::nullopt},
};

// Properties of microsoft.graph.security.alert that Graph does not filter on.
constexpr std::string_view kOtherProperties[] = {
    "id",
    "providerAlertId",
    "incidentId",
    "detectionSource",
    "detectorId",
    "tenantId",
    "title",
    "description",
    "recommendedActions",
    "category",
    "alertWebUrl",
    "incidentWebUrl",
    "actorDisplayName",
    "threatDisplayName",
    "threatFamilyName",
    "mitreTechniques",
    "resolvedDateTime",
    "firstActivityDateTime",
    "lastActivityDateTime",
    "comments",
    "evidence",
    "systemTags",
    "productName",
    "investigationState",
    "alertPolicyId",
    "additionalData",
    "customDetails",
};

// Properties of microsoft.graph.security.incident that Graph does not filter on.
constexpr std::string_view kOtherIncidentProperties[] = {
    "id",          "tenantId",       "displayName",
    "description", "incidentWebUrl", "redirectIncidentId",
    "customTags",  "systemTags",     "comments",
    "alerts",      "tags",
};

std::optional<FieldInfo> fieldNamed(std::string_view name, GraphEntity entity) {
  for (const FieldInfo& f : kFields) {
    if (f.name != name) continue;
    if (entity == GraphEntity::kAlerts) return f;
    // An incident has no serviceSource, and its own status and determination members.
    if (f.field == GraphField::kServiceSource) return std::nullopt;
    FieldInfo incident = f;
    if (f.field == GraphField::kStatus) incident.members = GraphEnum::kIncidentStatus;
    if (f.field == GraphField::kDetermination) incident.members = GraphEnum::kIncidentDetermination;
    return incident;
  }
  return std::nullopt;
}

std::optional<TimeField> orderFieldNamed(std::string_view name) {
  if (name == "lastUpdateDateTime") return TimeField::kLastUpdateTime;
  if (name == "createdDateTime") return TimeField::kAlertCreationTime;
  return std::nullopt;
}

Error unknownProperty(std::string_view name, GraphEntity entity = GraphEntity::kAlerts) {
  const bool incidents = entity == GraphEntity::kIncidents;
  auto known = [name](const auto& list) {
    for (std::string_view p : list) {
      if (p == name) return true;
    }
    return false;
  };
  if (incidents ? known(kOtherIncidentProperties) : known(kOtherProperties)) {
    return invalid("Invalid filter clause: the property '" + std::string(name) +
                   "' is not supported in $filter.");
  }
  return invalid("Could not find a property named '" + echo(name) + "' on type 'microsoft.graph." +
                 (incidents ? "security.incident'." : "security.alert'."));
}

// ---------------------------------------------------------------------------------------
// $filter

Result<std::vector<Token>> tokenize(std::string_view f) {
  std::vector<Token> tokens;
  std::size_t pos = 0;
  for (;;) {
    Token t;
    if (!odata_lexer::nextToken(f, pos, t)) {
      return invalid("Invalid filter clause: unterminated string literal at position " +
                     std::to_string(t.pos) + " in '" + echo(f) + "'.");
    }
    if (t.kind == TokenKind::kEnd) return tokens;
    tokens.push_back(std::move(t));
  }
}

class FilterParser {
 public:
  FilterParser(std::string_view filter, std::vector<Token> tokens, GraphEntity entity)
      : filter_(filter), tokens_(std::move(tokens)), entity_(entity) {}

  mdec::Status parse(GraphFilter& out) {
    auto root = parseOr(0);
    if (!root) return root.error();
    if (at_ != tokens_.size()) {
      const Token& t = tokens_[at_];
      return invalidFilter("syntax error at position " + std::to_string(t.pos) + " in '" +
                           echo(filter_) + "': expected 'and', 'or' or the end, found '" +
                           echo(t.text) + "'.");
    }
    out.nodes = std::move(nodes_);
    out.root = *root;
    return okStatus();
  }

 private:
  bool atWord(std::string_view word) const {
    return at_ < tokens_.size() && tokens_[at_].kind == TokenKind::kIdent &&
           tokens_[at_].text == word;
  }

  Result<std::size_t> add(GraphFilterNode node) {
    if (nodes_.size() >= kMaxNodes) return invalidFilter("the filter is too complex.");
    nodes_.push_back(std::move(node));
    return nodes_.size() - 1;
  }

  // Joins the terms that `next` parses with `word` into one node of `kind`.
  template <typename Next>
  Result<std::size_t> parseJoin(std::size_t depth, std::string_view word,
                                GraphFilterNode::Kind kind, Next next) {
    auto first = next(depth);
    if (!first) return first;
    if (!atWord(word)) return first;
    GraphFilterNode join;
    join.kind = kind;
    join.children.push_back(*first);
    while (atWord(word)) {
      ++at_;
      auto more = next(depth);
      if (!more) return more;
      join.children.push_back(*more);
    }
    return add(std::move(join));
  }

  Result<std::size_t> parseOr(std::size_t depth) {
    return parseJoin(depth, "or", GraphFilterNode::Kind::kOr,
                     [this](std::size_t d) { return parseAnd(d); });
  }

  Result<std::size_t> parseAnd(std::size_t depth) {
    return parseJoin(depth, "and", GraphFilterNode::Kind::kAnd,
                     [this](std::size_t d) { return parsePrimary(d); });
  }

  Error unexpectedEnd(std::string_view expected) const {
    return invalidFilter("the filter ends where " + std::string(expected) + " was expected, in '" +
                         echo(filter_) + "'.");
  }

  Result<std::size_t> parsePrimary(std::size_t depth) {
    if (at_ == tokens_.size()) return unexpectedEnd("a property name");
    const Token& t = tokens_[at_];
    if (t.kind == TokenKind::kOpen) {
      if (depth + 1 > kMaxDepth) return invalidFilter("the filter nests too deeply.");
      ++at_;
      auto inner = parseOr(depth + 1);
      if (!inner) return inner;
      if (at_ == tokens_.size()) return unexpectedEnd("')'");
      if (tokens_[at_].kind != TokenKind::kClose) {
        return invalidFilter("syntax error at position " + std::to_string(tokens_[at_].pos) +
                             ": expected ')', found '" + echo(tokens_[at_].text) + "'.");
      }
      ++at_;
      return inner;
    }
    if (t.kind != TokenKind::kIdent || t.text == "and" || t.text == "or") {
      return invalidFilter("syntax error at position " + std::to_string(t.pos) +
                           ": expected a property name, found '" + echo(t.text) + "'.");
    }
    if (t.text == "not") return invalidFilter("the operator 'not' is not supported.");
    if (at_ + 1 < tokens_.size() && tokens_[at_ + 1].kind == TokenKind::kOpen) {
      return invalidFilter("the function '" + echo(t.text) + "' is not supported.");
    }
    const std::optional<FieldInfo> info = fieldNamed(t.text, entity_);
    if (!info) return unknownProperty(t.text, entity_);
    ++at_;
    return parseComparison(*info);
  }

  Result<std::size_t> parseComparison(const FieldInfo& info) {
    if (at_ == tokens_.size()) return unexpectedEnd("an operator");
    const Token& op_token = tokens_[at_];
    std::optional<GraphOp> op;
    if (op_token.kind == TokenKind::kIdent) {
      if (op_token.text == "eq") op = GraphOp::kEq;
      if (op_token.text == "ne") op = GraphOp::kNe;
      if (op_token.text == "gt") op = GraphOp::kGt;
      if (op_token.text == "ge") op = GraphOp::kGe;
      if (op_token.text == "lt") op = GraphOp::kLt;
      if (op_token.text == "le") op = GraphOp::kLe;
    }
    if (!op) {
      return invalidFilter("unknown operator '" + echo(op_token.text) + "' at position " +
                           std::to_string(op_token.pos) + "; expected eq, ne, gt, ge, lt or le.");
    }
    ++at_;
    if (at_ == tokens_.size()) return unexpectedEnd("a value");
    const Token& v = tokens_[at_];
    ++at_;
    GraphFilterNode node;
    node.kind = GraphFilterNode::Kind::kCompare;
    node.field = info.field;
    node.op = *op;
    if (info.time) {
      if (v.kind == TokenKind::kString) {
        return invalid(
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.DateTimeOffset' and 'Edm.String' for operator kind '" +
            std::string(tokens_[at_ - 2].text) + "'.");
      }
      const auto instant =
          v.kind == TokenKind::kLiteral ? parseODataDateTime(v.text) : std::nullopt;
      if (!instant) {
        return invalid("Unrecognized 'Edm.DateTimeOffset' literal '" + echo(v.text) + "' at '" +
                       std::to_string(v.pos) + "' in '" + echo(filter_) + "'.");
      }
      node.time = *instant;
      return add(std::move(node));
    }
    if (*op != GraphOp::kEq && *op != GraphOp::kNe) {
      return invalidFilter("the operator '" + std::string(op_token.text) + "' cannot be used on '" +
                           std::string(info.name) + "'; use eq or ne.");
    }
    if (v.kind == TokenKind::kIdent && v.text == "null") {
      if (!info.nullable) {
        return invalidFilter("'" + std::string(info.name) + "' is never null.");
      }
      node.is_null = true;
      return add(std::move(node));
    }
    if (v.kind != TokenKind::kString) {
      return invalidFilter("expected a string in single quotes after '" + std::string(info.name) +
                           " " + std::string(op_token.text) + "' at position " +
                           std::to_string(v.pos) + ", found '" + echo(v.text) + "'.");
    }
    if (info.members && !isGraphEnumMember(*info.members, v.value)) {
      return invalid("The string '" + echo(v.value) +
                     "' is not a valid enumeration type constant for '" + std::string(info.name) +
                     "'.");
    }
    node.text = v.value;
    return add(std::move(node));
  }

  std::string_view filter_;
  std::vector<Token> tokens_;
  GraphEntity entity_;
  std::size_t at_ = 0;
  std::vector<GraphFilterNode> nodes_;
};

bool evaluate(const GraphFilter& f, std::size_t index, const GraphFilterFields& x) {
  const GraphFilterNode& n = f.nodes[index];
  switch (n.kind) {
    case GraphFilterNode::Kind::kAnd:
      for (std::size_t c : n.children) {
        if (!evaluate(f, c, x)) return false;
      }
      return true;
    case GraphFilterNode::Kind::kOr:
      for (std::size_t c : n.children) {
        if (evaluate(f, c, x)) return true;
      }
      return false;
    case GraphFilterNode::Kind::kCompare:
      break;
  }
  if (n.field == GraphField::kLastUpdateDateTime || n.field == GraphField::kCreatedDateTime) {
    const core::Instant& t =
        n.field == GraphField::kLastUpdateDateTime ? x.last_update_date_time : x.created_date_time;
    switch (n.op) {
      case GraphOp::kEq:
        return t == n.time;
      case GraphOp::kNe:
        return t != n.time;
      case GraphOp::kGt:
        return t > n.time;
      case GraphOp::kGe:
        return t >= n.time;
      case GraphOp::kLt:
        return t < n.time;
      case GraphOp::kLe:
        return t <= n.time;
    }
    return false;
  }
  std::optional<std::string_view> value;
  switch (n.field) {
    case GraphField::kStatus:
      value = x.status;
      break;
    case GraphField::kSeverity:
      value = x.severity;
      break;
    case GraphField::kServiceSource:
      value = x.service_source;
      break;
    case GraphField::kClassification:
      value = x.classification;
      break;
    case GraphField::kDetermination:
      value = x.determination;
      break;
    case GraphField::kAssignedTo:
      value = x.assigned_to;
      break;
    default:
      break;
  }
  const bool equal = n.is_null ? !value.has_value() : (value && *value == n.text);
  return n.op == GraphOp::kEq ? equal : !equal;
}

// ---------------------------------------------------------------------------------------
// The other options

std::optional<std::int64_t> parseInteger(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  bool negative = false;
  if (text.front() == '+' || text.front() == '-') {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty()) return std::nullopt;
  for (char c : text) {
    if (!isDigit(c)) return std::nullopt;
  }
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return negative ? -v : v;
}

mdec::Status parseOrderBy(std::string_view text, GraphQuery& q) {
  text = trim(text);
  if (text.empty()) return invalid("The value of the $orderby query option cannot be empty.");
  if (text.find(',') != std::string_view::npos) {
    return invalid(
        "Invalid order by clause: ordering by more than one property is not "
        "supported, in '" +
        echo(text) + "'.");
  }
  std::size_t space = 0;
  while (space < text.size() && !isBlank(text[space])) ++space;
  const std::string_view name = text.substr(0, space);
  const std::string_view rest = trim(text.substr(space));
  const auto field = orderFieldNamed(name);
  if (!field) {
    if (fieldNamed(name, q.entity)) {
      return invalid("Invalid order by clause: the property '" + std::string(name) +
                     "' cannot be used in $orderby.");
    }
    return unknownProperty(name, q.entity);
  }
  if (rest == "desc") {
    q.descending = true;
  } else if (!rest.empty() && rest != "asc") {
    return invalid("Invalid order by clause: expected 'asc' or 'desc' after '" + std::string(name) +
                   "', found '" + echo(rest) + "'.");
  }
  q.order_by = field;
  return okStatus();
}

mdec::Status parseFilter(std::string_view text, GraphQuery& q) {
  if (trim(text).empty()) return invalid("The value of the $filter query option cannot be empty.");
  auto tokens = tokenize(text);
  if (!tokens) return tokens.error();
  FilterParser parser(text, std::move(*tokens), q.entity);
  return parser.parse(q.filter);
}

// ---------------------------------------------------------------------------------------
// $skiptoken: MAC (8 bytes) then the payload XOR a keystream, in base64url.
//   payload: version 1, varint offset, varint top, flags (1 count, 2 filter, 4 orderby,
//            8 $expand=alerts, 16 incidents),
//            [varint length, filter], [varint length, orderby]

constexpr unsigned char kTokenVersion = 1;

std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t mac(std::string_view payload, std::uint64_t key) {
  std::uint64_t h = 1469598103934665603ULL ^ mix(key);
  for (char c : payload) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return mix(h ^ key);
}

void crypt(std::string& bytes, std::size_t from, std::uint64_t key, std::uint64_t tag) {
  std::uint64_t state = mix(key ^ tag);
  for (std::size_t i = from; i < bytes.size(); ++i) {
    if ((i - from) % 8 == 0) state = mix(state);
    bytes[i] = static_cast<char>(static_cast<unsigned char>(bytes[i]) ^
                                 static_cast<unsigned char>(state >> (8 * ((i - from) % 8))));
  }
}

void putVarint(std::uint64_t v, std::string& out) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

std::optional<std::uint64_t> getVarint(std::string_view& in) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return std::nullopt;
    const auto b = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  return std::nullopt;
}

Error badSkipToken() {
  return invalid(
      "The $skiptoken is not valid. Follow @odata.nextLink exactly as the service "
      "returned it.");
}

struct DecodedToken {
  std::size_t offset = 0;
  std::size_t top = kGraphDefaultTop;
  bool count = false;
  bool expand_alerts = false;
  std::optional<std::string> filter;
  std::optional<std::string> orderby;
};

std::size_t maxTop(GraphEntity entity) {
  return entity == GraphEntity::kIncidents ? kGraphIncidentsMaxTop : kGraphMaxTop;
}

Result<DecodedToken> decodeSkipToken(std::string_view token, std::uint64_t key,
                                     GraphEntity entity) {
  auto raw = core::base64UrlDecode(token);
  if (!raw || raw->size() < 9) return badSkipToken();
  std::uint64_t tag = 0;
  for (int i = 0; i < 8; ++i) {
    tag |=
        static_cast<std::uint64_t>(static_cast<unsigned char>((*raw)[static_cast<std::size_t>(i)]))
        << (8 * i);
  }
  std::string bytes = *raw;
  crypt(bytes, 8, key, tag);
  std::string_view payload = std::string_view(bytes).substr(8);
  if (mac(payload, key) != tag) return badSkipToken();
  if (payload.empty() || static_cast<unsigned char>(payload.front()) != kTokenVersion) {
    return badSkipToken();
  }
  payload.remove_prefix(1);
  DecodedToken d;
  const auto offset = getVarint(payload);
  const auto top = getVarint(payload);
  if (!offset || !top || payload.empty() || *top > maxTop(entity)) return badSkipToken();
  d.offset = static_cast<std::size_t>(*offset);
  d.top = static_cast<std::size_t>(*top);
  const auto flags = static_cast<unsigned char>(payload.front());
  payload.remove_prefix(1);
  d.count = (flags & 1) != 0;
  d.expand_alerts = (flags & 8) != 0;
  // A token made for the other collection is not valid here.
  if (((flags & 16) != 0) != (entity == GraphEntity::kIncidents)) return badSkipToken();
  if (d.expand_alerts && entity != GraphEntity::kIncidents) return badSkipToken();
  auto text = [&payload]() -> std::optional<std::string> {
    const auto n = getVarint(payload);
    if (!n || *n > payload.size()) return std::nullopt;
    std::string s(payload.substr(0, static_cast<std::size_t>(*n)));
    payload.remove_prefix(static_cast<std::size_t>(*n));
    return s;
  };
  if (flags & 2) {
    d.filter = text();
    if (!d.filter) return badSkipToken();
  }
  if (flags & 4) {
    d.orderby = text();
    if (!d.orderby) return badSkipToken();
  }
  if (!payload.empty()) return badSkipToken();
  return d;
}

}  // namespace

std::string makeGraphSkipToken(const GraphQuery& query, std::size_t offset,
                               std::uint64_t token_key) {
  std::string payload;
  payload.push_back(static_cast<char>(kTokenVersion));
  putVarint(offset, payload);
  putVarint(query.top, payload);
  unsigned char flags = query.count ? 1 : 0;
  if (query.filter_text) flags |= 2;
  if (query.orderby_text) flags |= 4;
  if (query.expand_alerts) flags |= 8;
  if (query.entity == GraphEntity::kIncidents) flags |= 16;
  payload.push_back(static_cast<char>(flags));
  if (query.filter_text) {
    putVarint(query.filter_text->size(), payload);
    payload += *query.filter_text;
  }
  if (query.orderby_text) {
    putVarint(query.orderby_text->size(), payload);
    payload += *query.orderby_text;
  }
  const std::uint64_t tag = mac(payload, token_key);
  std::string bytes;
  bytes.reserve(8 + payload.size());
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((tag >> (8 * i)) & 0xff));
  bytes += payload;
  crypt(bytes, 8, token_key, tag);
  return core::base64UrlEncode(bytes);
}

Result<GraphQuery> parseGraphQuery(const GraphQueryParams& params, std::uint64_t token_key,
                                   GraphEntity entity) {
  GraphQuery q;
  q.entity = entity;
  const bool incidents = entity == GraphEntity::kIncidents;
  if (incidents) q.top = kGraphIncidentsDefaultTop;
  if (params.skiptoken) {
    if (params.filter || params.orderby || params.top || params.skip || params.count ||
        params.expand) {
      return invalid(
          "$skiptoken cannot be combined with other query options: follow "
          "@odata.nextLink exactly as the service returned it.");
    }
    auto decoded = decodeSkipToken(trim(*params.skiptoken), token_key, entity);
    if (!decoded) return decoded.error();
    if (decoded->filter) {
      if (auto s = parseFilter(*decoded->filter, q); !s) return badSkipToken();
      q.filter_text = decoded->filter;
    }
    if (decoded->orderby) {
      if (auto s = parseOrderBy(*decoded->orderby, q); !s) return badSkipToken();
      q.orderby_text = decoded->orderby;
    }
    q.top = decoded->top;
    q.count = decoded->count;
    q.expand_alerts = decoded->expand_alerts;
    q.skip = decoded->offset;
    return q;
  }
  if (params.filter) {
    if (auto s = parseFilter(*params.filter, q); !s) return s.error();
    q.filter_text = *params.filter;
  }
  if (params.orderby) {
    if (auto s = parseOrderBy(*params.orderby, q); !s) return s.error();
    q.orderby_text = *params.orderby;
  }
  if (params.top) {
    const auto top = parseInteger(*params.top);
    if (!top || *top < 0) {
      return invalid("Invalid value '" + echo(*params.top) +
                     "' for $top query option found. The $top query option requires a "
                     "non-negative integer value.");
    }
    // Incidents refuse a larger page (incidents.md §1, a real 400 body).
    if (incidents && *top > static_cast<std::int64_t>(kGraphIncidentsMaxTop)) {
      return invalid("The limit of '" + std::to_string(kGraphIncidentsMaxTop) +
                     "' for Top query has been exceeded. The value from the incoming request is '" +
                     std::to_string(*top) + "'.");
    }
    // Alerts: larger pages are not refused: Graph clamps them to its largest page.
    q.top = *top > static_cast<std::int64_t>(kGraphMaxTop) ? kGraphMaxTop
                                                           : static_cast<std::size_t>(*top);
  }
  if (params.skip) {
    const auto skip = parseInteger(*params.skip);
    if (!skip || *skip < 0) {
      return invalid("Invalid value '" + echo(*params.skip) +
                     "' for $skip query option found. The $skip query option requires a "
                     "non-negative integer value.");
    }
    if (*skip > static_cast<std::int64_t>(kGraphMaxSkip)) {
      return invalid("The value of $skip (" + std::to_string(*skip) + ") exceeds the maximum of " +
                     std::to_string(kGraphMaxSkip) +
                     ". Use @odata.nextLink to page through larger result sets.");
    }
    q.skip = static_cast<std::size_t>(*skip);
  }
  if (params.expand) {
    const std::string_view e = trim(*params.expand);
    if (!incidents || e != "alerts") {
      return invalid("Could not find a property named '" + echo(e) + "' on type 'microsoft.graph." +
                     (incidents ? "security.incident'." : "security.alert'."));
    }
    q.expand_alerts = true;
  }
  if (params.count) {
    const std::string_view c = trim(*params.count);
    if (c == "true") {
      q.count = true;
    } else if (c != "false") {
      return invalid("Invalid value '" + echo(*params.count) +
                     "' for $count query option found. Valid values are 'true' and 'false'.");
    }
  }
  return q;
}

bool matchesGraphFilter(const GraphFilter& filter, const GraphFilterFields& fields) {
  if (filter.nodes.empty()) return true;
  return evaluate(filter, filter.root, fields);
}

std::string formatGraphError(std::string_view code, std::string_view message, std::string_view date,
                             std::string_view request_id, std::string_view client_request_id) {
  std::string out;
  out.reserve(160 + message.size());
  out += "{\"error\":{\"code\":\"";
  core::appendEscapedLossy(out, code);
  out += "\",\"message\":\"";
  core::appendEscapedLossy(out, message);
  out += "\",\"innerError\":{\"date\":\"";
  core::appendEscapedLossy(out, date);
  out += "\",\"request-id\":\"";
  core::appendEscapedLossy(out, request_id);
  out += "\",\"client-request-id\":\"";
  core::appendEscapedLossy(out, client_request_id);
  out += "\"}}}";
  return out;
}

}  // namespace mdec::emulator
