#include "engine/sampling/noise.h"

#include <cmath>

namespace qdm {

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57, kBump0 = 0x9E3779B9, kBump1 = 0xBB67AE85;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0], p1 = static_cast<uint64_t>(kMul1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1), static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1],
         static_cast<uint32_t>(p0)};
    k[0] += kBump0;
    k[1] += kBump1;
  }
  return c;
}

void gaussian_noise(uint64_t seed, uint32_t draw, float* out, int64_t count) {
  const std::array<uint32_t, 2> key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  constexpr double kTwoPi = 6.283185307179586476925286766559, kWord = 4294967296.0;
  for (int64_t block = 0; 4 * block < count; ++block) {
    const auto r = philox4x32_10({static_cast<uint32_t>(block), static_cast<uint32_t>(static_cast<uint64_t>(block) >> 32), draw, 0},
                                 key);
    double z[4];
    for (int pair = 0; pair < 2; ++pair) {
      const double u1 = (static_cast<double>(r[2 * pair]) + 1.0) / kWord;  // (0, 1]: log is finite
      const double u2 = static_cast<double>(r[2 * pair + 1]) / kWord;      // [0, 1)
      const double radius = std::sqrt(-2.0 * std::log(u1)), angle = kTwoPi * u2;
      z[2 * pair] = radius * std::cos(angle);
      z[2 * pair + 1] = radius * std::sin(angle);
    }
    for (int i = 0; i < 4 && 4 * block + i < count; ++i) out[4 * block + i] = static_cast<float>(z[i]);
  }
}

}  // namespace qdm
