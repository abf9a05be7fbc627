// Whole files read and written in one call, and a file in its own temp dir: what tests
// used to write again in each file.
#pragma once

#include <fstream>
#include <ios>
#include <sstream>
#include <string>

#include "support/temp_dir.h"

namespace mdec::testing {

// Everything in `path`, byte for byte ("" when it cannot be read).
inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `content` to `path`, replacing what was there (or after it, with `append`).
inline void writeFile(const std::string& path, const std::string& content, bool append = false) {
  std::ofstream out(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  out << content;
}

// A file named `name` holding `content`, in a fresh TempDir removed with it.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& content,
           const std::string& prefix = "mdec-test")
      : dir_(prefix), path_(dir_.sub(name)) {
    writeFile(path_, content);
  }
  const std::string& path() const { return path_; }

 private:
  TempDir dir_;
  std::string path_;
};

}  // namespace mdec::testing
