#include "mdecollect/core/percent_decoding.h"

#include <gtest/gtest.h>

namespace mdec::core {
namespace {

TEST(PercentDecoding, DecodesEscapesOfEitherCase) {
  EXPECT_EQ(percentDecode("p%40ss%2fw%2Frd"), "p@ss/w/rd");
  EXPECT_EQ(percentDecode("%41"), "A");
  EXPECT_EQ(percentDecode("%00x"), std::string("\0x", 2));
  EXPECT_EQ(percentDecode("%C3%A9"), "\xC3\xA9");
  EXPECT_EQ(percentDecode("%ff"), "\xff");  // bytes, not checked to be UTF-8
}

TEST(PercentDecoding, KeepsWhatIsNotAnEscape) {
  EXPECT_EQ(percentDecode(""), "");
  EXPECT_EQ(percentDecode("plain"), "plain");
  EXPECT_EQ(percentDecode("a+b"), "a+b");
  EXPECT_EQ(percentDecode("100%"), "100%");
  EXPECT_EQ(percentDecode("%4"), "%4");
  EXPECT_EQ(percentDecode("%zz%4g"), "%zz%4g");
  EXPECT_EQ(percentDecode("%%41"), "%A");
}

}  // namespace
}  // namespace mdec::core
