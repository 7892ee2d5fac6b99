// SHA-256 (FIPS 180-4) in portable C++: the digest of builds without OpenSSL (an engine-only
// build on a machine whose only packages are a compiler, CMake, CUDA and LibTorch, as
// bench/gpu_check.sh makes). Builds with OpenSSL use its EVP digest instead (sha256.cpp);
// tests check both against the standard's vectors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace qdm {

class Sha256Portable {
 public:
  Sha256Portable();
  void update(const void* data, size_t size);
  std::array<uint8_t, 32> finish();  // the object is spent afterwards

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace qdm
