#include "mdecollect/emulator/odata.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mdec::emulator {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

core::Instant at(std::string_view text) {
  auto t = core::parseIsoDateTime(text);
  EXPECT_TRUE(t) << text;
  return t.value_or(core::Instant{});
}

QueryParams filterOnly(std::string filter) {
  QueryParams p;
  p.filter = std::move(filter);
  return p;
}

Result<AlertQuery> parseFilter(std::string filter) {
  return parseAlertQuery(filterOnly(std::move(filter)));
}

// The error message of a query that must fail (and fails with kInvalidArgument).
std::string errorOf(const QueryParams& params) {
  auto r = parseAlertQuery(params);
  EXPECT_FALSE(r) << "accepted unexpectedly";
  if (r) return "";
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  return r.error().message();
}

std::string filterError(std::string filter) { return errorOf(filterOnly(std::move(filter))); }

bool sameCondition(const TimeCondition& c, TimeField f, CompareOp op, std::string_view when) {
  return c.field == f && c.op == op && c.value == at(when);
}

// ---------------------------------------------------------------------------------------
// Defaults

TEST(ODataQuery, NoOptionsGiveTheDefaults) {
  auto q = parseAlertQuery(QueryParams{});
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->times.empty());
  EXPECT_FALSE(q->status);
  EXPECT_FALSE(q->severity);
  EXPECT_FALSE(q->order_by);
  EXPECT_FALSE(q->descending);
  EXPECT_EQ(q->top, 10000u);
  EXPECT_EQ(q->skip, 0u);
  EXPECT_FALSE(q->expand_evidence);
}

// ---------------------------------------------------------------------------------------
// $filter: accepted forms

TEST(ODataFilter, AcceptsEachTimeOperatorOnBothFields) {
  struct Case {
    const char* op;
    CompareOp expected;
  };
  for (const Case& c : {Case{"gt", CompareOp::kGt}, Case{"ge", CompareOp::kGe},
                        Case{"lt", CompareOp::kLt}, Case{"le", CompareOp::kLe}}) {
    for (auto [name, field] : {std::pair{"lastUpdateTime", TimeField::kLastUpdateTime},
                               std::pair{"alertCreationTime", TimeField::kAlertCreationTime}}) {
      const std::string filter = std::string(name) + " " + c.op + " 2026-11-03T15:35:00Z";
      auto q = parseFilter(filter);
      ASSERT_TRUE(q) << filter << ": " << q.error().message();
      ASSERT_EQ(q->times.size(), 1u) << filter;
      EXPECT_TRUE(sameCondition(q->times[0], field, c.expected, "2026-11-03T15:35:00Z")) << filter;
    }
  }
}

TEST(ODataFilter, AcceptsTheApiDateTimeShapes) {
  for (const char* when :
       {"2026-11-03T15:35:00Z", "2026-11-03T15:35:00.1234567Z", "2026-11-03T15:35:00.1Z",
        "2026-11-03T15:35:00.123456789Z", "2026-11-03T15:35Z", "2026-11-03T17:35:00+02:00",
        "2026-11-03T10:05:00-05:30", "2024-02-29T00:00:00Z"}) {
    auto q = parseFilter(std::string("lastUpdateTime ge ") + when);
    ASSERT_TRUE(q) << when << ": " << q.error().message();
    ASSERT_EQ(q->times.size(), 1u);
    EXPECT_EQ(q->times[0].value, at(when)) << when;
  }
}

TEST(ODataFilter, KeepsSevenFractionDigits) {
  auto q = parseFilter("lastUpdateTime gt 2021-01-26T20:33:57.7220239Z");
  ASSERT_TRUE(q);
  ASSERT_EQ(q->times.size(), 1u);
  EXPECT_EQ(q->times[0].value.seconds, 1611693237);
  EXPECT_EQ(q->times[0].value.nanos, 722023900);
}

TEST(ODataFilter, OffsetsAreConvertedToUtc) {
  auto q = parseFilter("lastUpdateTime ge 2026-11-03T17:35:00+02:00");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->times[0].value, at("2026-11-03T15:35:00Z"));
}

TEST(ODataFilter, AcceptsASingleQuotedDateTime) {
  auto q = parseFilter("alertCreationTime lt '2026-11-03T15:35:00.5Z'");
  ASSERT_TRUE(q) << q.error().message();
  ASSERT_EQ(q->times.size(), 1u);
  EXPECT_TRUE(sameCondition(q->times[0], TimeField::kAlertCreationTime, CompareOp::kLt,
                            "2026-11-03T15:35:00.5Z"));
}

TEST(ODataFilter, AcceptsStatusAndSeverityKeepingTheValueAsGiven) {
  auto q = parseFilter("status eq 'New'");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->status, "New");
  EXPECT_FALSE(q->severity);

  q = parseFilter("severity eq 'High'");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->severity, "High");
  EXPECT_FALSE(q->status);

  // Not checked against the enum, not case-folded: kept as given.
  q = parseFilter("status eq 'inprogress' and severity eq 'Some Value'");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->status, "inprogress");
  EXPECT_EQ(q->severity, "Some Value");
}

TEST(ODataFilter, StringValuesUnescapeDoubledQuotesAndMayBeEmpty) {
  auto q = parseFilter("status eq 'it''s'");
  ASSERT_TRUE(q) << q.error().message();
  EXPECT_EQ(q->status, "it's");

  q = parseFilter("severity eq ''");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->severity, "");

  q = parseFilter("status eq 'a and b or (c)'");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->status, "a and b or (c)");
}

TEST(ODataFilter, AcceptsAWindowOnOneField) {
  auto q = parseFilter(
      "lastUpdateTime ge 2026-11-03T15:00:00Z and lastUpdateTime lt "
      "2026-11-03T16:00:00Z");
  ASSERT_TRUE(q) << q.error().message();
  ASSERT_EQ(q->times.size(), 2u);
  EXPECT_TRUE(sameCondition(q->times[0], TimeField::kLastUpdateTime, CompareOp::kGe,
                            "2026-11-03T15:00:00Z"));
  EXPECT_TRUE(sameCondition(q->times[1], TimeField::kLastUpdateTime, CompareOp::kLt,
                            "2026-11-03T16:00:00Z"));
}

TEST(ODataFilter, AcceptsEveryKindOfTermTogether) {
  auto q = parseFilter(
      "lastUpdateTime gt 2026-11-03T15:00:00Z and lastUpdateTime le 2026-11-03T16:00:00Z and "
      "alertCreationTime ge 2026-11-01T00:00:00Z and status eq 'Resolved' and "
      "alertCreationTime lt '2026-11-04T00:00:00Z' and severity eq 'Low'");
  ASSERT_TRUE(q) << q.error().message();
  ASSERT_EQ(q->times.size(), 4u);
  EXPECT_TRUE(sameCondition(q->times[0], TimeField::kLastUpdateTime, CompareOp::kGt,
                            "2026-11-03T15:00:00Z"));
  EXPECT_TRUE(sameCondition(q->times[1], TimeField::kLastUpdateTime, CompareOp::kLe,
                            "2026-11-03T16:00:00Z"));
  EXPECT_TRUE(sameCondition(q->times[2], TimeField::kAlertCreationTime, CompareOp::kGe,
                            "2026-11-01T00:00:00Z"));
  EXPECT_TRUE(sameCondition(q->times[3], TimeField::kAlertCreationTime, CompareOp::kLt,
                            "2026-11-04T00:00:00Z"));
  EXPECT_EQ(q->status, "Resolved");
  EXPECT_EQ(q->severity, "Low");
}

TEST(ODataFilter, ToleratesExtraSpacesAndTabs) {
  auto q = parseFilter("   lastUpdateTime   ge\t2026-11-03T15:00:00Z    and  status  eq  'New'  ");
  ASSERT_TRUE(q) << q.error().message();
  ASSERT_EQ(q->times.size(), 1u);
  EXPECT_EQ(q->status, "New");
}

TEST(ODataFilter, ManyTermsAreFine) {
  std::string filter = "lastUpdateTime ge 2026-11-03T15:00:00Z";
  for (int i = 0; i < 50; ++i) filter += " and lastUpdateTime lt 2026-11-03T16:00:00Z";
  auto q = parseFilter(filter);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->times.size(), 51u);
}

// ---------------------------------------------------------------------------------------
// $filter: rejected forms

TEST(ODataFilter, RejectsAnEmptyFilter) {
  for (const char* empty : {"", " ", "  \t "}) {
    EXPECT_EQ(filterError(empty),
              "The query specified in the URI is not valid. The value for OData query "
              "'$filter' cannot be empty.")
        << "'" << empty << "'";
  }
}

TEST(ODataFilter, RejectsOr) {
  EXPECT_THAT(filterError("status eq 'New' or status eq 'InProgress'"),
              StartsWith("Invalid filter clause: the operator 'or' is not supported"));
}

TEST(ODataFilter, RejectsNeAndOtherOperators) {
  EXPECT_THAT(filterError("status ne 'New'"),
              StartsWith("Invalid filter clause: the operator 'ne' cannot be used on 'status'"));
  EXPECT_THAT(filterError("lastUpdateTime ne 2026-11-03T15:00:00Z"),
              HasSubstr("the operator 'ne' cannot be used on 'lastUpdateTime'"));
  for (const char* bad :
       {"lastUpdateTime >= 2026-11-03T15:00:00Z", "lastUpdateTime GE 2026-11-03T15:00:00Z",
        "lastUpdateTime Gt 2026-11-03T15:00:00Z", "lastUpdateTime foo 2026-11-03T15:00:00Z",
        "lastUpdateTime 2026-11-03T15:00:00Z", "status = 'New'", "status EQ 'New'"}) {
    EXPECT_THAT(filterError(bad), StartsWith("Invalid filter clause: unknown operator")) << bad;
  }
}

TEST(ODataFilter, RejectsEqOnATime) {
  EXPECT_EQ(filterError("lastUpdateTime eq 2026-11-03T15:00:00Z"),
            "Invalid filter clause: the operator 'eq' cannot be used on 'lastUpdateTime'; use "
            "gt, ge, lt or le.");
  EXPECT_THAT(filterError("alertCreationTime eq '2026-11-03T15:00:00Z'"),
              HasSubstr("'eq' cannot be used on 'alertCreationTime'"));
}

TEST(ODataFilter, RejectsTimeOperatorsOnStrings) {
  for (const char* op : {"gt", "ge", "lt", "le"}) {
    EXPECT_EQ(filterError(std::string("status ") + op + " 'New'"),
              std::string("Invalid filter clause: the operator '") + op +
                  "' cannot be used on 'status'; use eq.");
    EXPECT_THAT(filterError(std::string("severity ") + op + " 'High'"),
                HasSubstr("cannot be used on 'severity'"));
  }
}

TEST(ODataFilter, RejectsParentheses) {
  for (const char* bad : {"(status eq 'New')", "status eq 'New' and (severity eq 'High')",
                          "status eq 'New' )", "lastUpdateTime ge 2026-11-03T15:00:00Z)"}) {
    EXPECT_THAT(filterError(bad), StartsWith("Invalid filter clause: parentheses")) << bad;
  }
}

TEST(ODataFilter, RejectsNotAndFunctions) {
  EXPECT_THAT(filterError("not status eq 'New'"), HasSubstr("'not' is not supported"));
  EXPECT_THAT(filterError("contains(title,'x')"), HasSubstr("function 'contains'"));
  EXPECT_THAT(filterError("startswith (title, 'x')"), HasSubstr("function 'startswith'"));
}

TEST(ODataFilter, RejectsUnknownPropertiesLikeTheRealApi) {
  EXPECT_EQ(filterError("foo eq 'bar'"),
            "The query specified in the URI is not valid. Could not find a property named "
            "'foo' on type 'Alert'.");
  // Field names are case-sensitive.
  EXPECT_THAT(filterError("LastUpdateTime ge 2026-11-03T15:00:00Z"),
              HasSubstr("Could not find a property named 'LastUpdateTime' on type 'Alert'."));
  EXPECT_THAT(filterError("Status eq 'New'"), HasSubstr("property named 'Status'"));
  EXPECT_THAT(filterError("vendorInformation/provider eq 'x'"),
              HasSubstr("property named 'vendorInformation/provider'"));
}

TEST(ODataFilter, RejectsAlertPropertiesTheEmulatorDoesNotFilterOn) {
  for (const char* field : {"id", "category", "incidentId", "investigationId", "assignedTo",
                            "detectionSource", "lastEventTime", "title"}) {
    EXPECT_EQ(filterError(std::string(field) + " eq 'x'"),
              std::string("The query specified in the URI is not valid. The property '") + field +
                  "' cannot be used in the $filter query option.")
        << field;
  }
}

TEST(ODataFilter, RejectsBadDateTimes) {
  for (const char* bad :
       {"2026-13-03T15:35:00Z", "2026-02-29T00:00:00Z", "2026-11-03T24:00:00Z",
        "2026-11-03T15:60:00Z", "2026-11-03T15:35:00", "2026-11-03", "2026-11-03T15Z",
        "2026-11-03T15:35:00.Z", "2026-11-03T15:35:00.1234567890Z", "2026-11-03T15:35:00+0200",
        "2026-11-03T15:35:00+02", "2026-11-03t15:35:00z", "1762184100", "-2026-11-03T15:35:00Z",
        "2026-11-03T15:35:00Zjunk", "2026-11-03T15:35:00ZZ"}) {
    const std::string filter = std::string("lastUpdateTime ge ") + bad;
    EXPECT_THAT(filterError(filter),
                StartsWith("The query specified in the URI is not valid. Unrecognized "
                           "'Edm.DateTimeOffset' literal '" +
                           std::string(bad) + "' at '18' in '" + filter + "'."))
        << bad;
  }
  EXPECT_THAT(filterError("lastUpdateTime ge 'not a date'"),
              HasSubstr("Unrecognized 'Edm.DateTimeOffset' literal ''not a date''"));
  EXPECT_THAT(filterError("lastUpdateTime ge ''"), HasSubstr("Unrecognized"));
  // A blank ends the literal; the error names the part before it.
  EXPECT_THAT(filterError("lastUpdateTime ge 2026-11-03 15:35:00Z"),
              HasSubstr("Unrecognized 'Edm.DateTimeOffset' literal '2026-11-03' at '18'"));
}

TEST(ODataFilter, RejectsTypedDateTimeLiterals) {
  EXPECT_THAT(filterError("lastUpdateTime ge datetime'2026-11-03T15:35:00Z'"),
              HasSubstr("typed literals such as datetime'...' are not supported"));
  EXPECT_THAT(filterError("lastUpdateTime ge datetimeoffset'2026-11-03T15:35:00Z'"),
              HasSubstr("typed literals"));
}

TEST(ODataFilter, RejectsAMissingOrWrongValue) {
  EXPECT_THAT(filterError("lastUpdateTime ge"), HasSubstr("a date-time was expected"));
  EXPECT_THAT(filterError("lastUpdateTime"), HasSubstr("an operator was expected"));
  EXPECT_THAT(filterError("status eq"), HasSubstr("a quoted string was expected"));
  EXPECT_THAT(filterError("lastUpdateTime ge now"),
              HasSubstr("expected a date-time after 'lastUpdateTime ge' at position 18"));
  EXPECT_THAT(filterError("lastUpdateTime ge (2026-11-03T15:35:00Z)"),
              HasSubstr("expected a date-time"));
  EXPECT_THAT(filterError("status eq New"),
              HasSubstr("expected a string in single quotes after 'status eq' at position 10, "
                        "found 'New'"));
  EXPECT_THAT(filterError("severity eq 3"), HasSubstr("expected a string in single quotes"));
  EXPECT_THAT(filterError("status eq \"New\""), HasSubstr("expected a string in single quotes"));
}

TEST(ODataFilter, RejectsUnterminatedStrings) {
  EXPECT_EQ(filterError("status eq 'New"),
            "The query specified in the URI is not valid. There is an unterminated string "
            "literal at position 10 in 'status eq 'New'.");
  EXPECT_THAT(filterError("lastUpdateTime ge '2026-11-03T15:35:00Z"),
              HasSubstr("unterminated string literal"));
}

TEST(ODataFilter, RejectsDanglingAndMissingAnd) {
  for (const char* bad :
       {"lastUpdateTime ge 2026-11-03T15:00:00Z and", "lastUpdateTime ge 2026-11-03T15:00:00Z and ",
        "and lastUpdateTime ge 2026-11-03T15:00:00Z",
        "status eq 'New' and and severity eq 'Low'"}) {
    EXPECT_THAT(filterError(bad), StartsWith("Invalid filter clause")) << bad;
  }
  EXPECT_THAT(filterError("lastUpdateTime ge 2026-11-03T15:00:00Z and"),
              HasSubstr("a property name was expected"));
  EXPECT_THAT(filterError("status eq 'New' severity eq 'Low'"),
              HasSubstr("expected 'and' or the end of the filter at position 16, found "
                        "'severity'"));
  EXPECT_THAT(filterError("status eq 'New' AND severity eq 'Low'"), HasSubstr("found 'AND'"));
  EXPECT_THAT(filterError("status eq 'New' && severity eq 'Low'"), HasSubstr("found '&'"));
  EXPECT_THAT(filterError("status eq 'New','x'"), HasSubstr("found ','"));
}

TEST(ODataFilter, RejectsSomethingOtherThanAPropertyFirst) {
  EXPECT_THAT(filterError("'New' eq status"), HasSubstr("expected a property name"));
  EXPECT_THAT(filterError("2026-11-03T15:00:00Z lt lastUpdateTime"),
              HasSubstr("expected a property name at position 0"));
}

TEST(ODataFilter, RejectsTheSameStringFieldTwice) {
  EXPECT_EQ(filterError("status eq 'New' and status eq 'Resolved'"),
            "Invalid filter clause: 'status' may appear only once.");
  EXPECT_THAT(filterError("severity eq 'Low' and severity eq 'Low'"),
              HasSubstr("'severity' may appear only once"));
}

TEST(ODataFilter, LongInputIsCutInMessages) {
  const std::string name(5000, 'x');
  const std::string message = filterError(name + " eq 'y'");
  EXPECT_LT(message.size(), 400u);
  EXPECT_THAT(message, HasSubstr("..."));
}

TEST(ODataFilter, OddBytesAreErrorsNotCrashes) {
  const std::string with_nul("status eq 'New'\0and", 19);
  EXPECT_FALSE(parseFilter(with_nul));
  EXPECT_FALSE(parseFilter("status eq 'New' \xff\xfe"));
  EXPECT_FALSE(parseFilter("\xc3\xa9t\xc3\xa9 eq 'x'"));
  EXPECT_FALSE(parseFilter("'"));
  EXPECT_FALSE(parseFilter("-"));
  EXPECT_FALSE(parseFilter(")"));
}

// ---------------------------------------------------------------------------------------
// $orderby

TEST(ODataOrderBy, AcceptsBothTimeFieldsWithAndWithoutDirection) {
  struct Case {
    const char* text;
    TimeField field;
    bool descending;
  };
  for (const Case& c :
       {Case{"lastUpdateTime", TimeField::kLastUpdateTime, false},
        Case{"lastUpdateTime asc", TimeField::kLastUpdateTime, false},
        Case{"lastUpdateTime desc", TimeField::kLastUpdateTime, true},
        Case{"alertCreationTime", TimeField::kAlertCreationTime, false},
        Case{"alertCreationTime asc", TimeField::kAlertCreationTime, false},
        Case{"alertCreationTime desc", TimeField::kAlertCreationTime, true},
        Case{"  alertCreationTime \t desc  ", TimeField::kAlertCreationTime, true}}) {
    QueryParams p;
    p.orderby = c.text;
    auto q = parseAlertQuery(p);
    ASSERT_TRUE(q) << c.text << ": " << q.error().message();
    EXPECT_EQ(q->order_by, c.field) << c.text;
    EXPECT_EQ(q->descending, c.descending) << c.text;
  }
}

std::string orderByError(std::string text) {
  QueryParams p;
  p.orderby = std::move(text);
  return errorOf(p);
}

TEST(ODataOrderBy, RejectsEverythingElse) {
  EXPECT_EQ(orderByError(""),
            "The query specified in the URI is not valid. The value for OData query '$orderby' "
            "cannot be empty.");
  EXPECT_THAT(orderByError("   "), HasSubstr("cannot be empty"));
  EXPECT_EQ(orderByError("status"),
            "The query specified in the URI is not valid. The property 'status' cannot be "
            "used in the $orderby query option.");
  EXPECT_EQ(orderByError("foo desc"),
            "The query specified in the URI is not valid. Could not find a property named "
            "'foo' on type 'Alert'.");
  EXPECT_THAT(orderByError("LastUpdateTime"), HasSubstr("property named 'LastUpdateTime'"));
  EXPECT_EQ(orderByError("lastUpdateTime DESC"),
            "Invalid order by clause: expected 'asc' or 'desc' after 'lastUpdateTime', found "
            "'DESC'.");
  EXPECT_THAT(orderByError("lastUpdateTime descending"), HasSubstr("found 'descending'"));
  EXPECT_THAT(orderByError("lastUpdateTime desc asc"), HasSubstr("found 'desc asc'"));
  EXPECT_THAT(orderByError("lastUpdateTime desc, alertCreationTime"),
              StartsWith("Invalid order by clause: ordering by more than one property"));
  EXPECT_THAT(orderByError("lastUpdateTime,alertCreationTime"),
              HasSubstr("more than one property"));
}

// ---------------------------------------------------------------------------------------
// $top and $skip

Result<AlertQuery> withTop(std::string top) {
  QueryParams p;
  p.top = std::move(top);
  return parseAlertQuery(p);
}

Result<AlertQuery> withSkip(std::string skip) {
  QueryParams p;
  p.skip = std::move(skip);
  return parseAlertQuery(p);
}

TEST(ODataTop, AcceptsZeroToTenThousand) {
  for (auto [text, expected] :
       {std::pair{"0", 0u}, std::pair{"1", 1u}, std::pair{"500", 500u}, std::pair{"9999", 9999u},
        std::pair{"10000", 10000u}, std::pair{"010", 10u}, std::pair{" 7 ", 7u}}) {
    auto q = withTop(text);
    ASSERT_TRUE(q) << text << ": " << q.error().message();
    EXPECT_EQ(q->top, expected) << text;
  }
}

TEST(ODataTop, RejectsMoreThanTenThousandWithTheRealMessage) {
  auto q = withTop("20000");
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(q.error().message(),
            "The query specified in the URI is not valid. The limit of '10000' for Top query has "
            "been exceeded. The value from the incoming request is '20000'.");
  EXPECT_THAT(withTop("10001").error().message(), HasSubstr("request is '10001'"));
  EXPECT_THAT(withTop("9223372036854775807").error().message(),
              HasSubstr("The limit of '10000' for Top query has been exceeded"));
}

TEST(ODataTop, RejectsNegativeAndNonNumericValues) {
  for (const char* bad :
       {"-1", "abc", "1.5", "1e3", "0x10", "10 0", "+", "-", "5a", "99999999999999999999999"}) {
    auto q = withTop(bad);
    ASSERT_FALSE(q) << bad;
    EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(q.error().message(),
              std::string("The query specified in the URI is not valid. Invalid value '") + bad +
                  "' for $top query option found. The $top query option requires a "
                  "non-negative integer value.")
        << bad;
  }
  EXPECT_THAT(withTop("").error().message(),
              HasSubstr("The value for OData query '$top' cannot be empty."));
}

TEST(ODataSkip, AcceptsNonNegativeIntegers) {
  for (auto [text, expected] :
       {std::pair{"0", std::size_t{0}}, std::pair{"1", std::size_t{1}},
        std::pair{"20000", std::size_t{20000}},
        std::pair{"9223372036854775807", std::size_t{9223372036854775807u}}}) {
    auto q = withSkip(text);
    ASSERT_TRUE(q) << text << ": " << q.error().message();
    EXPECT_EQ(q->skip, expected) << text;
  }
}

TEST(ODataSkip, RejectsNegativeAndNonNumericValues) {
  for (const char* bad : {"-1", "x", "1.0", "", "18446744073709551616"}) {
    auto q = withSkip(bad);
    ASSERT_FALSE(q) << bad;
    EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(q.error().message(), HasSubstr("$skip")) << bad;
  }
  EXPECT_THAT(withSkip("-5").error().message(),
              HasSubstr("Invalid value '-5' for $skip query option found. The $skip query option "
                        "requires a non-negative integer value."));
}

// ---------------------------------------------------------------------------------------
// $expand

Result<AlertQuery> withExpand(std::string expand) {
  QueryParams p;
  p.expand = std::move(expand);
  return parseAlertQuery(p);
}

TEST(ODataExpand, AcceptsEvidence) {
  auto q = withExpand("evidence");
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->expand_evidence);
  q = withExpand(" evidence ");
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->expand_evidence);
}

TEST(ODataExpand, RejectsEverythingElse) {
  EXPECT_THAT(withExpand("Evidence").error().message(),
              HasSubstr("Could not find a property named 'Evidence' on type 'Alert'."));
  EXPECT_THAT(withExpand("foo").error().message(), HasSubstr("property named 'foo'"));
  EXPECT_THAT(withExpand("comments").error().message(),
              HasSubstr("Property 'comments' on type 'Alert' is not a navigation property"));
  EXPECT_THAT(withExpand("evidence,comments").error().message(), HasSubstr("'evidence,comments'"));
  EXPECT_THAT(withExpand("").error().message(), HasSubstr("'$expand' cannot be empty"));
  EXPECT_EQ(withExpand("x").error().code(), ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------
// All options at once; the first bad option is reported

TEST(ODataQuery, ParsesAllOptionsTogether) {
  QueryParams p;
  p.filter = "lastUpdateTime ge 2026-11-03T15:00:00Z and status eq 'New'";
  p.orderby = "lastUpdateTime desc";
  p.top = "100";
  p.skip = "200";
  p.expand = "evidence";
  auto q = parseAlertQuery(p);
  ASSERT_TRUE(q) << q.error().message();
  EXPECT_EQ(q->times.size(), 1u);
  EXPECT_EQ(q->status, "New");
  EXPECT_EQ(q->order_by, TimeField::kLastUpdateTime);
  EXPECT_TRUE(q->descending);
  EXPECT_EQ(q->top, 100u);
  EXPECT_EQ(q->skip, 200u);
  EXPECT_TRUE(q->expand_evidence);
}

TEST(ODataQuery, AnyBadOptionFailsTheWholeQuery) {
  QueryParams good;
  good.filter = "lastUpdateTime ge 2026-11-03T15:00:00Z";
  good.orderby = "lastUpdateTime";
  good.top = "10";
  good.skip = "0";
  good.expand = "evidence";
  ASSERT_TRUE(parseAlertQuery(good));

  QueryParams p = good;
  p.filter = "id eq 'x'";
  EXPECT_THAT(errorOf(p), HasSubstr("$filter"));
  p = good;
  p.orderby = "id";
  EXPECT_THAT(errorOf(p), HasSubstr("$orderby"));
  p = good;
  p.top = "10001";
  EXPECT_THAT(errorOf(p), HasSubstr("Top query"));
  p = good;
  p.skip = "-1";
  EXPECT_THAT(errorOf(p), HasSubstr("$skip"));
  p = good;
  p.expand = "nothing";
  EXPECT_THAT(errorOf(p), HasSubstr("'nothing'"));
}

// ---------------------------------------------------------------------------------------
// matchesTimes

AlertQuery queryOf(const std::string& filter) {
  auto q = parseFilter(filter);
  EXPECT_TRUE(q) << filter << ": " << (q ? "" : q.error().message());
  return q ? *q : AlertQuery{};
}

const core::Instant kAnyTime = {1'700'000'000, 0};

TEST(ODataMatchesTimes, NoConditionsMatchEverything) {
  EXPECT_TRUE(matchesTimes(AlertQuery{}, kAnyTime, kAnyTime));
  EXPECT_TRUE(matchesTimes(queryOf("status eq 'New'"), kAnyTime, kAnyTime));
}

TEST(ODataMatchesTimes, GtExcludesTheBoundaryAndGeIncludesIt) {
  const core::Instant t = at("2026-11-03T15:35:00.1234567Z");
  const core::Instant before = {t.seconds, t.nanos - 100};
  const core::Instant after = {t.seconds, t.nanos + 100};
  const AlertQuery gt = queryOf("lastUpdateTime gt 2026-11-03T15:35:00.1234567Z");
  const AlertQuery ge = queryOf("lastUpdateTime ge 2026-11-03T15:35:00.1234567Z");
  EXPECT_FALSE(matchesTimes(gt, before, kAnyTime));
  EXPECT_FALSE(matchesTimes(gt, t, kAnyTime));
  EXPECT_TRUE(matchesTimes(gt, after, kAnyTime));
  EXPECT_FALSE(matchesTimes(ge, before, kAnyTime));
  EXPECT_TRUE(matchesTimes(ge, t, kAnyTime));
  EXPECT_TRUE(matchesTimes(ge, after, kAnyTime));
}

TEST(ODataMatchesTimes, LtExcludesTheBoundaryAndLeIncludesIt) {
  const core::Instant t = at("2026-11-03T15:35:00Z");
  const core::Instant before = {t.seconds - 1, 999'999'900};
  const core::Instant after = {t.seconds, 100};
  const AlertQuery lt = queryOf("alertCreationTime lt 2026-11-03T15:35:00Z");
  const AlertQuery le = queryOf("alertCreationTime le 2026-11-03T15:35:00Z");
  EXPECT_TRUE(matchesTimes(lt, kAnyTime, before));
  EXPECT_FALSE(matchesTimes(lt, kAnyTime, t));
  EXPECT_FALSE(matchesTimes(lt, kAnyTime, after));
  EXPECT_TRUE(matchesTimes(le, kAnyTime, before));
  EXPECT_TRUE(matchesTimes(le, kAnyTime, t));
  EXPECT_FALSE(matchesTimes(le, kAnyTime, after));
}

TEST(ODataMatchesTimes, EachConditionLooksAtItsOwnField) {
  const AlertQuery q = queryOf("lastUpdateTime ge 2026-11-03T15:00:00Z");
  const core::Instant early = at("2026-11-01T00:00:00Z");
  const core::Instant late = at("2026-11-05T00:00:00Z");
  EXPECT_TRUE(matchesTimes(q, late, early));
  EXPECT_FALSE(matchesTimes(q, early, late));

  const AlertQuery c = queryOf("alertCreationTime ge 2026-11-03T15:00:00Z");
  EXPECT_FALSE(matchesTimes(c, late, early));
  EXPECT_TRUE(matchesTimes(c, early, late));
}

TEST(ODataMatchesTimes, AHalfOpenWindow) {
  const AlertQuery w =
      queryOf("lastUpdateTime ge 2026-11-03T15:00:00Z and lastUpdateTime lt 2026-11-03T16:00:00Z");
  EXPECT_FALSE(matchesTimes(w, at("2026-11-03T14:59:59.9999999Z"), kAnyTime));
  EXPECT_TRUE(matchesTimes(w, at("2026-11-03T15:00:00Z"), kAnyTime));
  EXPECT_TRUE(matchesTimes(w, at("2026-11-03T15:30:00Z"), kAnyTime));
  EXPECT_TRUE(matchesTimes(w, at("2026-11-03T15:59:59.9999999Z"), kAnyTime));
  EXPECT_FALSE(matchesTimes(w, at("2026-11-03T16:00:00Z"), kAnyTime));
}

TEST(ODataMatchesTimes, AnOpenWindowAndAClosedOne) {
  const AlertQuery open =
      queryOf("lastUpdateTime gt 2026-11-03T15:00:00Z and lastUpdateTime lt 2026-11-03T16:00:00Z");
  EXPECT_FALSE(matchesTimes(open, at("2026-11-03T15:00:00Z"), kAnyTime));
  EXPECT_FALSE(matchesTimes(open, at("2026-11-03T16:00:00Z"), kAnyTime));
  const AlertQuery closed =
      queryOf("lastUpdateTime ge 2026-11-03T15:00:00Z and lastUpdateTime le 2026-11-03T16:00:00Z");
  EXPECT_TRUE(matchesTimes(closed, at("2026-11-03T15:00:00Z"), kAnyTime));
  EXPECT_TRUE(matchesTimes(closed, at("2026-11-03T16:00:00Z"), kAnyTime));
}

TEST(ODataMatchesTimes, AnEmptyWindowMatchesNothing) {
  const AlertQuery empty =
      queryOf("lastUpdateTime ge 2026-11-03T16:00:00Z and lastUpdateTime lt 2026-11-03T15:00:00Z");
  for (const char* when : {"2026-11-03T14:00:00Z", "2026-11-03T15:00:00Z", "2026-11-03T15:30:00Z",
                           "2026-11-03T16:00:00Z", "2026-11-03T17:00:00Z"}) {
    EXPECT_FALSE(matchesTimes(empty, at(when), kAnyTime)) << when;
  }
}

TEST(ODataMatchesTimes, ConditionsOnBothFieldsMustAllHold) {
  const AlertQuery q = queryOf(
      "lastUpdateTime ge 2026-11-03T15:00:00Z and lastUpdateTime lt 2026-11-03T16:00:00Z and "
      "alertCreationTime gt 2026-11-01T00:00:00Z and alertCreationTime le 2026-11-02T00:00:00Z");
  const core::Instant in_update = at("2026-11-03T15:10:00Z");
  const core::Instant in_created = at("2026-11-01T12:00:00Z");
  EXPECT_TRUE(matchesTimes(q, in_update, in_created));
  EXPECT_TRUE(matchesTimes(q, in_update, at("2026-11-02T00:00:00Z")));
  EXPECT_FALSE(matchesTimes(q, in_update, at("2026-11-01T00:00:00Z")));
  EXPECT_FALSE(matchesTimes(q, at("2026-11-03T16:00:00Z"), in_created));
  EXPECT_FALSE(matchesTimes(q, at("2026-11-03T14:00:00Z"), at("2026-11-03T00:00:00Z")));
}

TEST(ODataMatchesTimes, OffsetsCompareAsInstants) {
  const AlertQuery q = queryOf("lastUpdateTime ge 2026-11-03T17:00:00+02:00");
  EXPECT_TRUE(matchesTimes(q, at("2026-11-03T15:00:00Z"), kAnyTime));
  EXPECT_FALSE(matchesTimes(q, at("2026-11-03T14:59:59Z"), kAnyTime));
}

TEST(ODataMatchesTimes, HandBuiltConditions) {
  AlertQuery q;
  q.times.push_back({TimeField::kAlertCreationTime, CompareOp::kGe, {100, 5}});
  q.times.push_back({TimeField::kAlertCreationTime, CompareOp::kLe, {100, 5}});
  EXPECT_TRUE(matchesTimes(q, kAnyTime, {100, 5}));
  EXPECT_FALSE(matchesTimes(q, kAnyTime, {100, 4}));
  EXPECT_FALSE(matchesTimes(q, kAnyTime, {100, 6}));
  EXPECT_FALSE(matchesTimes(q, kAnyTime, {99, 5}));
}

// ---------------------------------------------------------------------------------------
// formatODataError

struct ParsedError {
  std::string code;
  std::string message;
  std::string target;
  std::vector<std::string> outer_keys;
  std::vector<std::string> inner_keys;
};

std::optional<ParsedError> parseEnvelope(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json).get(doc) != simdjson::SUCCESS) return std::nullopt;
  simdjson::dom::object outer;
  if (doc.get_object().get(outer) != simdjson::SUCCESS) return std::nullopt;
  ParsedError out;
  for (auto field : outer) out.outer_keys.emplace_back(field.key);
  simdjson::dom::object inner;
  if (outer["error"].get_object().get(inner) != simdjson::SUCCESS) return std::nullopt;
  for (auto field : inner) out.inner_keys.emplace_back(field.key);
  std::string_view s;
  if (inner["code"].get_string().get(s) != simdjson::SUCCESS) return std::nullopt;
  out.code = s;
  if (inner["message"].get_string().get(s) != simdjson::SUCCESS) return std::nullopt;
  out.message = s;
  if (inner["target"].get_string().get(s) != simdjson::SUCCESS) return std::nullopt;
  out.target = s;
  return out;
}

TEST(ODataErrorEnvelope, HasTheRealShape) {
  const std::string json =
      formatODataError("ODataError", "The query specified in the URI is not valid.",
                       "|8c1b5d8a-6d0b-4a3c-9d1e-0a4b7c2f9e11.");
  EXPECT_EQ(json,
            R"({"error":{"code":"ODataError","message":"The query specified in the URI is not )"
            R"(valid.","target":"|8c1b5d8a-6d0b-4a3c-9d1e-0a4b7c2f9e11."}})");
  auto e = parseEnvelope(json);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->outer_keys, std::vector<std::string>{"error"});
  EXPECT_EQ(e->inner_keys, (std::vector<std::string>{"code", "message", "target"}));
  EXPECT_EQ(e->code, "ODataError");
  EXPECT_EQ(e->message, "The query specified in the URI is not valid.");
  EXPECT_EQ(e->target, "|8c1b5d8a-6d0b-4a3c-9d1e-0a4b7c2f9e11.");
}

TEST(ODataErrorEnvelope, EscapesQuotesBackslashesAndControls) {
  const std::string message = "bad 'x' \"quoted\" back\\slash\nnew line\ttab\r\x01\x1f end";
  const std::string json = formatODataError("BadRequest", message, "t\"1");
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_NE(json.find("\\u0001"), std::string::npos);
  auto e = parseEnvelope(json);
  ASSERT_TRUE(e) << json;
  EXPECT_EQ(e->code, "BadRequest");
  EXPECT_EQ(e->message, message);
  EXPECT_EQ(e->target, "t\"1");
}

TEST(ODataErrorEnvelope, KeepsValidUtf8AndReplacesInvalidBytes) {
  const std::string valid = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  auto e = parseEnvelope(formatODataError("ODataError", valid, ""));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message, valid);
  EXPECT_EQ(e->target, "");

  const std::string replacement = "\xef\xbf\xbd";
  struct Case {
    std::string in;
    std::string out;
  };
  for (const Case& c : {
           Case{"a\xff"
                "b",
                "a" + replacement + "b"},
           Case{"\xc3", replacement},                                      // truncated
           Case{"\xc0\xaf", replacement + replacement},                    // overlong '/'
           Case{"\xe0\x80\xaf", replacement + replacement + replacement},  // overlong
           Case{"\xed\xa0\x80", replacement + replacement + replacement},  // surrogate
           Case{"\xf4\x90\x80\x80", replacement + replacement + replacement + replacement},
           Case{"x\x80y\"", "x" + replacement + "y\""},
       }) {
    const std::string json = formatODataError("ODataError", c.in, c.in);
    auto parsed = parseEnvelope(json);
    ASSERT_TRUE(parsed) << json;
    EXPECT_EQ(parsed->message, c.out);
    EXPECT_EQ(parsed->target, c.out);
  }
}

TEST(ODataErrorEnvelope, CarriesParserMessagesIntact) {
  auto q = parseFilter("lastUpdateTime ge '2026-11-03T15:35:00Z\"\\");
  ASSERT_FALSE(q);
  auto e = parseEnvelope(formatODataError("ODataError", q.error().message(), "abc"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message, q.error().message());
  EXPECT_THAT(e->message, HasSubstr("unterminated string literal"));
}

}  // namespace
}  // namespace mdec::emulator
