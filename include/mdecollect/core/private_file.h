// Files only the collector's user may read. What the collector writes holds alert bodies
// (the output files, state.db's outbox, the dead letters) or its pacing: none of it is for
// other local users, whatever umask the process was started with (systemd's unit sets
// UMask=0077, a shell usually 0022).
#pragma once

#include <sys/types.h>

#include <string>

#include "mdecollect/core/result.h"
#include "mdecollect/core/unique_fd.h"

namespace mdec::core {

inline constexpr mode_t kPrivateFileMode = 0600;

struct PrivateFile {
  UniqueFd fd;
  bool created = false;  // this call created the file (a caller may need to fsync the directory)
};

// Opens `path` with `flags` (an access mode such as O_WRONLY or O_RDWR, and any of O_APPEND,
// O_CREAT, O_EXCL, O_TRUNC, ...; O_CLOEXEC and O_NOCTTY are always added):
//   - with O_CREAT, a missing file is created with exactly `mode` (permission bits only),
//     the umask notwithstanding;
//   - an existing regular file whose mode allows more than `mode` (an older install's 0644)
//     is tightened: the bits `mode` lacks are removed (never added), so an upgrade fixes
//     the files it opens;
//   - something that is not a regular file (/dev/stderr, a pipe) is opened as it is.
// Errors: kNotFound when the file does not exist and O_CREAT is not given; kIo otherwise
// (also when the mode cannot be changed: a file of another user that we can write to),
// the message naming the path and the system's reason.
Result<PrivateFile> openPrivateFile(const std::string& path, int flags,
                                    mode_t mode = kPrivateFileMode);

// Removes the bits `mode` lacks from the permissions of the existing regular file `path`,
// by its path: no descriptor is opened, for files another library holds open with POSIX
// locks (SQLite's database and -shm), which closing any descriptor of the file in this
// process would release. A missing file, or one that is not a regular file, is left alone.
// Errors: kIo, naming the path.
Status restrictPermissions(const std::string& path, mode_t mode = kPrivateFileMode);

}  // namespace mdec::core
