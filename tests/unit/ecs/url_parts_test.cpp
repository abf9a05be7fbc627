#include "ecs/url_parts.h"

#include <gtest/gtest.h>

namespace mdec::ecs {
namespace {

TEST(UrlParts, EveryPartOfAFullUrl) {
  auto p = parseUrlParts("https://ann:s3cret@evil.example.com:8443/a/b/payload.ps1?x=1&y=2#frag");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->scheme, "https");
  EXPECT_EQ(p->domain, "evil.example.com");
  EXPECT_EQ(p->port, 8443);
  EXPECT_EQ(p->path, "/a/b/payload.ps1");
  EXPECT_EQ(p->extension, "ps1");
  EXPECT_EQ(p->query, "x=1&y=2");
  EXPECT_EQ(p->fragment, "frag");
  EXPECT_EQ(p->user_info, "ann:s3cret");
  EXPECT_EQ(p->username, "ann");
  EXPECT_EQ(p->password, "s3cret");
}

TEST(UrlParts, PortOnlyWhenWritten) {
  auto p = parseUrlParts("http://example.com/index.html");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->port);
  EXPECT_EQ(p->extension, "html");
  EXPECT_TRUE(p->user_info.empty());
  EXPECT_FALSE(p->password);
}

TEST(UrlParts, ExtensionComesFromTheLastSegmentOnly) {
  EXPECT_EQ(parseUrlParts("http://h/a.dir/file")->extension, "");
  EXPECT_EQ(parseUrlParts("http://h/a/archive.tar.gz")->extension, "gz");
  EXPECT_EQ(parseUrlParts("http://h.example.com")->extension, "");
  EXPECT_EQ(parseUrlParts("http://h/a.b/")->extension, "");
}

TEST(UrlParts, UserWithoutPassword) {
  auto p = parseUrlParts("ftp://bob@files.example.org/x");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->user_info, "bob");
  EXPECT_EQ(p->username, "bob");
  EXPECT_FALSE(p->password);
}

TEST(UrlParts, Ipv6LiteralKeepsItsBrackets) {
  auto p = parseUrlParts("http://[2001:db8::1]:8080/p");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->domain, "[2001:db8::1]");
  EXPECT_EQ(p->port, 8080);
  EXPECT_EQ(p->path, "/p");
}

TEST(UrlParts, PercentEncodingIsDecodedLikeJavaUri) {
  auto p = parseUrlParts("http://h/a%20b/caf%C3%A9.txt?q=%41#%42");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->path, "/a b/café.txt");
  EXPECT_EQ(p->query, "q=A");
  EXPECT_EQ(p->fragment, "B");
  // Not UTF-8 once decoded: kept as written.
  EXPECT_EQ(parseUrlParts("http://h/%FF")->path, "/%FF");
}

TEST(UrlParts, RelativeReferencesParseWithAPathOnly) {
  auto p = parseUrlParts("evil.example.com/a.ps1");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->scheme, "");
  EXPECT_EQ(p->domain, "");
  EXPECT_EQ(p->path, "evil.example.com/a.ps1");
  EXPECT_EQ(p->extension, "ps1");
}

TEST(UrlParts, NotAUrl) {
  EXPECT_FALSE(parseUrlParts(""));
  EXPECT_FALSE(parseUrlParts("http://exa mple.com/"));
  EXPECT_FALSE(parseUrlParts("http://h:99999/"));
  EXPECT_FALSE(parseUrlParts("a b c"));
  EXPECT_FALSE(parseUrlParts("http://[::1/"));
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(isValidUtf8("plain"));
  EXPECT_TRUE(isValidUtf8("Σωκράτης 山田 😀"));
  EXPECT_FALSE(isValidUtf8("\xC3"));
  EXPECT_FALSE(isValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(isValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(isValidUtf8("\xF4\x90\x80\x80"));  // beyond U+10FFFF
  EXPECT_FALSE(isValidUtf8("\xFF"));
}

}  // namespace
}  // namespace mdec::ecs
