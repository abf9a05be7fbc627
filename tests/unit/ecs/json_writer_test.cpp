#include "ecs/json_writer.h"

#include <gtest/gtest.h>

#include <limits>

namespace mdec::ecs {
namespace {

TEST(JsonWriter, EscapesWhatJsonRequires) {
  std::string out;
  appendString(out, "a\"b\\c\nd\te\r\b\f\x01 é");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\te\\r\\b\\f\\u0001 é\"");
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
}  // namespace mdec::ecs
