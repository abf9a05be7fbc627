#include "mdecollect/core/host_port.h"

#include <gtest/gtest.h>

namespace mdec::core {
namespace {

TEST(HostPort, ParsesNamesAddressesAndBracketedIpv6) {
  auto r = parseHostPort("127.0.0.1:5066");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 5066);

  r = parseHostPort("localhost:0");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->host, "localhost");
  EXPECT_EQ(r->port, 0);

  r = parseHostPort("[::1]:65535");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->host, "::1");
  EXPECT_EQ(r->port, 65535);

  r = parseHostPort("[fe80::1%eth0]:80");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->host, "fe80::1%eth0");
}

void expectRefused(std::string_view text, std::string_view why) {
  const auto r = parseHostPort(text);
  ASSERT_FALSE(r) << text;
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find(why), std::string::npos)
      << text << ": " << r.error().message();
}

TEST(HostPort, SaysWhatIsWrong) {
  expectRefused("", "no port");
  expectRefused("localhost", "no port");
  expectRefused("localhost:", "no port");
  expectRefused(":5066", "no host");
  expectRefused("[]:5066", "no host");
  expectRefused("host:65536", "over 65535");
  expectRefused("host:99999999999999999999", "over 65535");
  expectRefused("host:-1", "not a number");
  expectRefused("host:+80", "not a number");
  expectRefused("host: 80", "not a number");
  expectRefused("host:80x", "not a number");
  expectRefused("::1:5066", "in brackets");
  expectRefused("[::1:5066", "no ']'");
  expectRefused("[::1]5066", "no ':port'");
  expectRefused("[::1]", "no ':port'");
}

TEST(HostPort, PortAlone) {
  EXPECT_EQ(*parsePort("0"), 0);
  EXPECT_EQ(*parsePort("00080"), 80);
  EXPECT_EQ(*parsePort("65535"), 65535);
  EXPECT_FALSE(parsePort(""));
  EXPECT_FALSE(parsePort("65536"));
  EXPECT_FALSE(parsePort("8o"));
}

TEST(HostPort, FormatsWithBracketsForIpv6AndReadsBack) {
  EXPECT_EQ(formatHostPort("127.0.0.1", 5066), "127.0.0.1:5066");
  EXPECT_EQ(formatHostPort("::1", 0), "[::1]:0");
  for (const char* host : {"localhost", "10.1.2.3", "::1", "fe80::2"}) {
    const auto back = parseHostPort(formatHostPort(host, 8080));
    ASSERT_TRUE(back) << host;
    EXPECT_EQ(back->host, host);
    EXPECT_EQ(back->port, 8080);
  }
}

}  // namespace
}  // namespace mdec::core
