// Reading a whole file that must be small (a configuration, a secret, a certificate, a token
// a platform writes): never more than `limit` bytes are held, whatever the file holds.
#pragma once

#include <cstddef>
#include <string>

#include "mdecollect/core/result.h"

namespace mdec::core {

// The file's bytes. Errors: kNotFound (no such file), kTooLarge ("larger than N bytes"),
// kIo (the system's reason); the message never quotes the content.
Result<std::string> readSmallFile(const std::string& path, std::size_t limit);

}  // namespace mdec::core
