// SHA-256 digests (OpenSSL), lower-case hex.
#pragma once

#include <cstddef>
#include <string>

namespace qdm {

std::string sha256_hex(const void* data, size_t size);
std::string sha256_file(const std::string& path);  // throws std::runtime_error if unreadable

}  // namespace qdm
