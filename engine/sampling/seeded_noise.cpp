#include "engine/sampling/seeded_noise.h"

#include <ATen/CPUGeneratorImpl.h>

namespace qdm {

SeededNoise::SeededNoise(std::vector<uint64_t> seeds) : seeds_(std::move(seeds)) {
  for (uint64_t s : seeds_) generators_.push_back(at::detail::createCPUGenerator(s));
}

SeededNoise SeededNoise::consecutive(uint64_t seed, int count) {
  std::vector<uint64_t> seeds;
  for (int i = 0; i < count; ++i) seeds.push_back(seed + static_cast<uint64_t>(i));
  return SeededNoise(std::move(seeds));
}

at::Tensor SeededNoise::next(int64_t c, int64_t h, int64_t w) {
  std::vector<at::Tensor> rows;
  rows.reserve(generators_.size());
  for (auto& gen : generators_) rows.push_back(at::randn({1, c, h, w}, gen));
  const at::Tensor noise = at::cat(rows, 0);
  return device_.is_cpu() ? noise : noise.to(device_);
}

}  // namespace qdm
