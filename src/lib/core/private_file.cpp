#include "mdecollect/core/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mdec::core {
namespace {

Error openError(const std::string& what, const std::string& path, int err) {
  return Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
               what + " " + path + ": " + std::strerror(err));
}

std::string octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode));
  return text;
}

}  // namespace

Result<PrivateFile> openPrivateFile(const std::string& path, int flags, mode_t mode) {
  mode &= 0777;
  const bool create = (flags & O_CREAT) != 0;
  const bool exclusive = (flags & O_EXCL) != 0;
  const int base = (flags & ~(O_CREAT | O_EXCL)) | O_CLOEXEC | O_NOCTTY;
  PrivateFile file;
  // O_EXCL first tells a file this call created from one that was there. The file can go
  // between the two opens (deleted by hand): then it is created again, a bounded number of
  // times.
  for (int attempt = 0; attempt < 3 && !file.fd.valid(); ++attempt) {
    if (create) {
      file.fd = UniqueFd(::open(path.c_str(), base | O_CREAT | O_EXCL, mode));
      if (file.fd.valid()) {
        file.created = true;
        break;
      }
      if (errno != EEXIST || exclusive) return openError("create", path, errno);
    }
    file.fd = UniqueFd(::open(path.c_str(), base));
    if (!file.fd.valid() && !(create && errno == ENOENT)) return openError("open", path, errno);
  }
  if (!file.fd.valid()) return openError("open", path, ENOENT);

  struct stat st {};
  if (::fstat(file.fd.get(), &st) != 0) return openError("stat", path, errno);
  if (!S_ISREG(st.st_mode)) return file;
  const mode_t current = st.st_mode & 07777;
  // A new file gets `mode` exactly (the umask may have removed bits from it); an existing
  // one keeps only the bits `mode` allows.
  const mode_t wanted = file.created ? mode : (current & mode);
  if (current != wanted && ::fchmod(file.fd.get(), wanted) != 0) {
    return openError("chmod " + octal(wanted), path, errno);
  }
  return file;
}

Status restrictPermissions(const std::string& path, mode_t mode) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return okStatus();
    return openError("stat", path, errno);
  }
  if (!S_ISREG(st.st_mode)) return okStatus();
  const mode_t current = st.st_mode & 07777;
  const mode_t wanted = current & mode & 0777;
  if (current != wanted && ::chmod(path.c_str(), wanted) != 0) {
    return openError("chmod " + octal(wanted), path, errno);
  }
  return okStatus();
}

}  // namespace mdec::core
