#include "mdecollect/core/line_reader.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace mdec::core {

LineReader::LineReader(int fd, std::size_t padding, std::size_t chunk)
    : fd_(fd), padding_(padding), chunk_(chunk), buf_(chunk + padding) {}

bool LineReader::fill() {
  if (eof_) return false;
  // Make room: drop consumed bytes, then grow when a line is longer than the buffer.
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    consumed_ += static_cast<std::int64_t>(begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() - padding_ - end_ < chunk_ / 2) {
    buf_.resize((buf_.size() - padding_) * 2 + padding_);
  }
  for (;;) {
    const ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - padding_ - end_);
    if (n > 0) {
      end_ += static_cast<std::size_t>(n);
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    error_ = Error(ErrorCode::kIo, std::string("read failed: ") + std::strerror(errno));
    return false;
  }
}

Result<std::optional<std::string_view>> LineReader::next() {
  for (;;) {
    const std::size_t from = begin_ + scanned_;
    const void* nl = from < end_ ? std::memchr(buf_.data() + from, '\n', end_ - from) : nullptr;
    if (nl != nullptr) {
      const auto pos = static_cast<std::size_t>(static_cast<const char*>(nl) - buf_.data());
      std::string_view line(buf_.data() + begin_, pos - begin_);
      line_offset_ = consumed_ + static_cast<std::int64_t>(begin_);
      begin_ = pos + 1;
      scanned_ = 0;
      ++lines_;
      return std::optional<std::string_view>(line);
    }
    scanned_ = end_ - begin_;
    if (!fill()) {
      if (error_) return *error_;
      if (end_ == begin_) return std::optional<std::string_view>();
      // The last line has no newline.
      std::string_view line(buf_.data() + begin_, end_ - begin_);
      line_offset_ = consumed_ + static_cast<std::int64_t>(begin_);
      begin_ = end_;
      scanned_ = 0;
      ++lines_;
      return std::optional<std::string_view>(line);
    }
  }
}

}  // namespace mdec::core
