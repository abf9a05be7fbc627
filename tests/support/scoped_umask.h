// Sets the process umask for a scope and puts the previous one back: tests of file modes
// run with umask 0, where a file created "by hand" with 0644 really comes out 0644.
#pragma once

#include <sys/stat.h>

namespace mdec::testing {

class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : previous_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(previous_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t previous_;
};

// The permission bits of `path` (-1 when it cannot be stat'ed).
inline int permissionsOf(const char* path) {
  struct stat st {};
  if (::stat(path, &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

}  // namespace mdec::testing
