// Gaussian noise for a batch where image i draws only from its own generator seeded with
// seed + i, so an image does not depend on the batch it was generated in. The generators are
// the CPU's on every device, so a seed gives the same starting noise on a GPU worker.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace qdm {

class SeededNoise {
 public:
  // One generator per image: seeds[i] for image i.
  explicit SeededNoise(std::vector<uint64_t> seeds);
  static SeededNoise consecutive(uint64_t seed, int count);

  // (N, C, H, W) with row i drawn from generator i, on device().
  at::Tensor next(int64_t channels, int64_t height, int64_t width);
  void set_device(c10::Device device) { device_ = device; }
  const std::vector<uint64_t>& seeds() const { return seeds_; }

 private:
  std::vector<uint64_t> seeds_;
  std::vector<at::Generator> generators_;
  c10::Device device_ = c10::kCPU;
};

}  // namespace qdm
