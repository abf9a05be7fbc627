#include "mdecollect/core/line_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace mdec::core {
namespace {

// Feeds `data` through a pipe from another thread and collects what the reader returns.
struct Collected {
  std::vector<std::string> lines;
  std::vector<std::int64_t> offsets;
};

Collected readAll(const std::string& data, std::size_t chunk) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  std::thread writer([&] {
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t n =
          ::write(fds[1], data.data() + off, std::min<std::size_t>(7, data.size() - off));
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(fds[1]);
  });
  Collected out;
  LineReader reader(fds[0], 64, chunk);
  for (int guard = 0; guard < 100000; ++guard) {
    auto line = reader.next();
    EXPECT_TRUE(line.has_value());
    if (!line || !line->has_value()) break;
    // The padding after the line must be readable (ASan would catch a bad read).
    volatile char sink = 0;
    for (std::size_t i = 0; i < 64; ++i)
      sink = static_cast<char>(sink ^ (*line)->data()[(*line)->size() + i]);
    out.lines.emplace_back(**line);
    out.offsets.push_back(reader.lineOffset());
  }
  writer.join();
  ::close(fds[0]);
  return out;
}

TEST(LineReader, SplitsLinesAndKnowsTheirOffsets) {
  auto got = readAll("a\nbb\n\nccc", 16);
  ASSERT_EQ(got.lines.size(), 4u);
  EXPECT_EQ(got.lines[0], "a");
  EXPECT_EQ(got.lines[1], "bb");
  EXPECT_EQ(got.lines[2], "");
  EXPECT_EQ(got.lines[3], "ccc");
  EXPECT_EQ(got.offsets, (std::vector<std::int64_t>{0, 2, 5, 6}));
}

TEST(LineReader, LinesLongerThanTheChunkGrowTheBuffer) {
  std::string big(100000, 'x');
  auto got = readAll("short\n" + big + "\nend\n", 1024);
  ASSERT_EQ(got.lines.size(), 3u);
  EXPECT_EQ(got.lines[1], big);
  EXPECT_EQ(got.offsets[2], static_cast<std::int64_t>(6 + big.size() + 1));
}

TEST(LineReader, EmptyInputHasNoLines) {
  auto got = readAll("", 16);
  EXPECT_TRUE(got.lines.empty());
}

TEST(LineReader, ReportsReadErrors) {
  LineReader reader(-1);
  auto line = reader.next();
  ASSERT_FALSE(line.has_value());
  EXPECT_EQ(line.error().code(), ErrorCode::kIo);
}

}  // namespace
}  // namespace mdec::core
