#include "mdecollect/core/small_file.h"

#include <array>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>

namespace mdec::core {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

std::string errnoText(int err) { return std::generic_category().message(err); }

}  // namespace

Result<std::string> readSmallFile(const std::string& path, std::size_t limit) {
  errno = 0;
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    const int err = errno;
    return Error(err == ENOENT || err == ENOTDIR ? ErrorCode::kNotFound : ErrorCode::kIo,
                 errnoText(err));
  }
  std::string content;
  std::array<char, 8192> buffer{};
  while (true) {
    const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
    content.append(buffer.data(), n);
    if (content.size() > limit) {
      return Error(ErrorCode::kTooLarge, "larger than " + std::to_string(limit) + " bytes");
    }
    if (n < buffer.size()) break;
  }
  if (std::ferror(file.get()) != 0) {
    const int err = errno != 0 ? errno : EIO;
    return Error(ErrorCode::kIo, errnoText(err));
  }
  return content;
}

}  // namespace mdec::core
