#include "mdecollect/core/result.h"

#include <gtest/gtest.h>

namespace mdec {
namespace {

Result<int> half(int v) {
  if (v % 2 != 0) return Error(ErrorCode::kInvalidArgument, "odd");
  return v / 2;
}

TEST(Result, CarriesAValueOrAnError) {
  auto ok = half(4);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 2);
  auto bad = half(3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "odd");
}

TEST(Error, ContextPrefixesTheMessage) {
  Error e(ErrorCode::kParse, "bad token");
  e.withContext("page 3");
  EXPECT_EQ(e.message(), "page 3: bad token");
}

TEST(Error, RetryableIsDecidedByCodeAndStatus) {
  EXPECT_TRUE(Error(ErrorCode::kNetwork, "x").retryable());
  EXPECT_TRUE(Error(ErrorCode::kThrottled, "x").retryable());
  EXPECT_TRUE(Error(ErrorCode::kHttp, "x").withHttpStatus(503).retryable());
  EXPECT_TRUE(Error(ErrorCode::kHttp, "x").withHttpStatus(429).retryable());
  EXPECT_FALSE(Error(ErrorCode::kHttp, "x").withHttpStatus(400).retryable());
  EXPECT_FALSE(Error(ErrorCode::kAuth, "x").retryable());
  EXPECT_FALSE(Error(ErrorCode::kInvalidArgument, "x").retryable());
}

}  // namespace
}  // namespace mdec
