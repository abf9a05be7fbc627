#include "mdecollect/state/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace mdec::state {

namespace {
std::string lockPath(const std::string& state_dir) { return state_dir + "/run.lock"; }
}  // namespace

Result<std::optional<RunLock>> RunLock::tryAcquire(const std::string& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  const std::string path = lockPath(state_dir);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Error(ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return std::optional<RunLock>();
    return Error(ErrorCode::kIo, "cannot lock " + path + ": " + std::strerror(err));
  }
  // The holder's pid, for the message another process prints.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return std::optional<RunLock>(RunLock(fd));
}

long RunLock::holder(const std::string& state_dir) {
  std::ifstream in(lockPath(state_dir));
  long pid = 0;
  if (in >> pid) return pid;
  return 0;
}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace mdec::state
