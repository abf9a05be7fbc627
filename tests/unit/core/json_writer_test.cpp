#include "mdecollect/core/json_writer.h"

#include <gtest/gtest.h>

#include <limits>

namespace mdec::core {
namespace {

TEST(JsonWriter, EscapesWhatJsonRequires) {
  std::string out;
  appendString(out, "a\"b\\c\nd\te\r\b\f\x01 é");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\te\\r\\b\\f\\u0001 é\"");
}

TEST(JsonWriter, EscapesAtEveryPositionOfAWord) {
  // The fast path looks at 8 bytes at a time: put each special byte at every offset.
  for (char special : {'"', '\\', '\n', '\x1f', '\x00'}) {
    for (std::size_t len = 1; len <= 24; ++len) {
      for (std::size_t at = 0; at < len; ++at) {
        std::string in(len, 'a');
        in[at] = special;
        std::string expected_inner;
        for (char c : in) {
          if (c == '"')
            expected_inner += "\\\"";
          else if (c == '\\')
            expected_inner += "\\\\";
          else if (c == '\n')
            expected_inner += "\\n";
          else if (c == '\x1f')
            expected_inner += "\\u001f";
          else if (c == '\x00')
            expected_inner += "\\u0000";
          else
            expected_inner += c;
        }
        std::string out;
        appendEscaped(out, in);
        ASSERT_EQ(out, expected_inner) << "len " << len << " at " << at;
      }
    }
  }
  // Bytes >= 0x80 (UTF-8) and DEL are never escaped.
  std::string out;
  appendEscaped(out,
                "\x7f\xc3\xa9\xe5\xb1\xb1\xf0\x9f\x98\x80"
                "abcdefgh");
  EXPECT_EQ(out,
            "\x7f\xc3\xa9\xe5\xb1\xb1\xf0\x9f\x98\x80"
            "abcdefgh");
}

TEST(JsonWriter, LossyEscapingReplacesOnlyBytesThatAreNotUtf8) {
  std::string out;
  appendEscapedLossy(out, "ok \"é\" \xff end \xc3 \xed\xa0\x80 \xf0\x9f\x98\x80");
  EXPECT_EQ(out,
            "ok \\\"é\\\" \xEF\xBF\xBD end \xEF\xBF\xBD "
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xf0\x9f\x98\x80");
  EXPECT_EQ(utf8SequenceLength("\xc0\xaf"), 0u);          // overlong
  EXPECT_EQ(utf8SequenceLength("\xf4\x90\x80\x80"), 0u);  // beyond U+10FFFF
  EXPECT_EQ(utf8SequenceLength("\xe5\xb1\xb1"), 3u);
}

TEST(JsonWriter, Numbers) {
  std::string out;
  appendInt(out, -42);
  out.push_back(' ');
  appendUint(out, std::numeric_limits<std::uint64_t>::max());
  out.push_back(' ');
  appendDouble(out, 0.1);
  out.push_back(' ');
  appendDouble(out, std::numeric_limits<double>::infinity());
  EXPECT_EQ(out, "-42 18446744073709551615 0.1 null");
}

TEST(JsonWriter, ObjectWriterPlacesCommas) {
  std::string out;
  ObjectWriter o(out);
  EXPECT_TRUE(o.empty());
  o.string("a", "x");
  o.integer("b", 2);
  o.raw("c", "[1]");
  EXPECT_FALSE(o.empty());
  o.close();
  EXPECT_EQ(out, R"({"a":"x","b":2,"c":[1]})");
}

}  // namespace
}  // namespace mdec::core
