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
  core::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    return Error(ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) return std::optional<RunLock>();
    return Error(ErrorCode::kIo, "cannot lock " + path + ": " + std::strerror(err));
  }
  // The holder's pid, for the message another process prints.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) == 0) {
    (void)!::pwrite(fd.get(), pid.data(), pid.size(), 0);
  }
  return std::optional<RunLock>(RunLock(std::move(fd)));
}

long RunLock::holder(const std::string& state_dir) {
  std::ifstream in(lockPath(state_dir));
  long pid = 0;
  if (in >> pid) return pid;
  return 0;
}

}  // namespace mdec::state
