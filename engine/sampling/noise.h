// The Gaussian noise of sampling, counter-based: Philox4x32-10 (Salmon et al., SC'11; the
// generator of cuRAND, JAX and LibTorch's CUDA backend) keyed by the image's seed, its counter
// the draw (0: the starting noise, then one per step that adds noise) and the position in the
// image, each pair of uniforms made two normals by Box-Muller (in double). Value j of draw d of
// seed S is a function of (S, d, j) alone, so an image's noise is the same whatever batch,
// path (the execution plan or LibTorch) or device computes it. Torch-free.
#pragma once

#include <array>
#include <cstdint>

namespace qdm {

// The 10-round Philox4x32 block: 4 words of counter, 2 of key -> 4 random words.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// count standard normal values: value j of draw `draw` of the image seeded `seed`.
void gaussian_noise(uint64_t seed, uint32_t draw, float* out, int64_t count);

}  // namespace qdm
