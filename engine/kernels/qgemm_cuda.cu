// W4A8 GEMM in CUDA: u8 activations x 4-bit weight codes (kRows layout: per 64-wide K block,
// 32 bytes, byte j = w'[j] | w'[j + 32] << 4) -> exact s32.
//
// One thread block computes a 16 x 16 tile of the output. Per 64-wide K block it stages the
// tile's activations (16 x 64 bytes) and packed weights (16 x 32 bytes) in shared memory;
// each thread then forms 16 dot products of 4 bytes with __dp4a (both operands unsigned:
// activations are u8, weight codes 0..15).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "engine/kernels/qgemm_cuda.h"

namespace qdm {
namespace {

constexpr int kTile = 16;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

__global__ void w4a8_kernel(const uint8_t* __restrict__ a, const uint8_t* __restrict__ w, int m, int n, int k_padded,
                            int32_t* __restrict__ acc) {
  __shared__ uint32_t a_tile[kTile][kKBlock / 4];      // 16 rows x 64 bytes
  __shared__ uint32_t w_tile[kTile][kKBlock / 4];      // 16 channels x 64 unpacked codes
  const int tx = threadIdx.x, ty = threadIdx.y;        // tx: output channel, ty: row
  const int row = blockIdx.y * kTile + ty, col = blockIdx.x * kTile + tx;
  const int tid = ty * kTile + tx;                     // 0..255
  const size_t w_row_bytes = static_cast<size_t>(k_padded) / 2;
  uint32_t sum = 0;
  for (int kb = 0; kb < k_padded; kb += kKBlock) {
    // Activations: 16 rows x 16 words; one word per thread.
    {
      const int r = tid / 16, word = tid % 16, gr = blockIdx.y * kTile + r;
      a_tile[r][word] = gr < m ? *reinterpret_cast<const uint32_t*>(a + static_cast<size_t>(gr) * k_padded + kb + 4 * word) : 0u;
    }
    // Weights: 16 channels x 32 packed bytes -> 64 codes; each thread unpacks 2 bytes.
    {
      const int c = tid / 16, pair = tid % 16, gc = blockIdx.x * kTile + c;
      uint8_t b0 = 0, b1 = 0;
      if (gc < n) {
        const uint8_t* src = w + static_cast<size_t>(gc) * w_row_bytes + kb / 2 + 2 * pair;
        b0 = src[0];
        b1 = src[1];
      }
      uint8_t* lo = reinterpret_cast<uint8_t*>(&w_tile[c][0]);
      lo[2 * pair] = b0 & 15;
      lo[2 * pair + 1] = b1 & 15;
      lo[32 + 2 * pair] = b0 >> 4;
      lo[32 + 2 * pair + 1] = b1 >> 4;
    }
    __syncthreads();
#pragma unroll
    for (int word = 0; word < kKBlock / 4; ++word) sum = __dp4a(a_tile[ty][word], w_tile[tx][word], sum);
    __syncthreads();
  }
  if (row < m && col < n) acc[static_cast<size_t>(row) * n + col] = static_cast<int32_t>(sum);
}

}  // namespace

bool cuda_device_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

void qgemm_s32_cuda(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  if (w.layout != WeightLayout::kRows || w.bits > 4)
    throw std::invalid_argument("qgemm_s32_cuda: weights must be 4-bit in the kRows layout");
  const size_t a_bytes = static_cast<size_t>(m) * w.k_padded, acc_bytes = static_cast<size_t>(m) * w.n * sizeof(int32_t);
  uint8_t *da = nullptr, *dw = nullptr;
  int32_t* dacc = nullptr;
  check(cudaMalloc(&da, a_bytes), "malloc");
  check(cudaMalloc(&dw, w.data.size()), "malloc");
  check(cudaMalloc(&dacc, acc_bytes), "malloc");
  check(cudaMemcpy(da, a, a_bytes, cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(dw, w.data.data(), w.data.size(), cudaMemcpyHostToDevice), "copy");
  const dim3 block(kTile, kTile), grid((w.n + kTile - 1) / kTile, (m + kTile - 1) / kTile);
  w4a8_kernel<<<grid, block>>>(da, dw, m, w.n, w.k_padded, dacc);
  check(cudaGetLastError(), "launch");
  check(cudaMemcpy(acc, dacc, acc_bytes, cudaMemcpyDeviceToHost), "copy back");
  cudaFree(da);
  cudaFree(dw);
  cudaFree(dacc);
}

}  // namespace qdm
