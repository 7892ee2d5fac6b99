// SHA-256 digests, lower-case hex: OpenSSL's EVP digest where the build has it, else the
// portable implementation (sha256_portable.h).
#pragma once

#include <cstddef>
#include <string>

namespace qdm {

std::string sha256_hex(const void* data, size_t size);
std::string sha256_file(const std::string& path);  // throws std::runtime_error if unreadable
// Which implementation this build uses: "openssl" or "portable".
const char* sha256_backend();

}  // namespace qdm
