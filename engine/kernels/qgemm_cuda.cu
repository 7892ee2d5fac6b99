// Integer GEMM in CUDA: u8 activations x unsigned weight codes (qgemm_cuda.h) -> exact s32.
//
// One thread block computes a 16 x 16 tile of the output (grid x: rows, which may number
// millions for a batch of large images; grid y: output channels). Per 64-wide K block it stages the
// tile's activations (16 x 64 bytes) and weight codes (16 x 64, unpacked from nibbles for
// <= 4 bits) in shared memory (qgemm_cuda_tiles.h: the weight rows padded against bank
// conflicts); each thread then forms 16 dot products of 4 bytes with __dp4a (both operands
// unsigned). The int32 sums stay exact for K <= kMaxK. Launches go on the caller's stream
// (LibTorch's current one); QDM_CUDA_SYNC=1 waits for each and checks it (first runs, bisection).
#include <cuda_runtime.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "engine/kernels/qgemm_cuda.h"
#include "engine/kernels/qgemm_cuda_tiles.h"

namespace qdm {
namespace {

using cuda_tiles::kTile;
using cuda_tiles::kWords;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

template <bool kNibbles>
__global__ void qgemm_u8_kernel(const uint8_t* __restrict__ a, const uint8_t* __restrict__ w, int m, int n,
                                int k_padded, int32_t* __restrict__ acc) {
  static_assert(kWords == kKBlock / 4, "a tile row is one K block");
  __shared__ uint32_t a_tile[kTile * kWords];                   // 16 rows x 64 bytes
  __shared__ uint32_t w_tile[kTile * cuda_tiles::kWRowWords];   // 16 channels x 64 codes, rows padded
  const int tx = threadIdx.x, ty = threadIdx.y;        // tx: output channel, ty: row
  const int row = blockIdx.x * kTile + ty, col = blockIdx.y * kTile + tx;
  const int tid = ty * kTile + tx;                     // 0..255
  const size_t w_row_bytes = kNibbles ? static_cast<size_t>(k_padded) / 2 : static_cast<size_t>(k_padded);
  uint32_t sum = 0;
  for (int kb = 0; kb < k_padded; kb += kKBlock) {
    // Activations: 16 rows x 16 words; one word per thread.
    {
      const int r = tid / 16, word = tid % 16, gr = blockIdx.x * kTile + r;
      a_tile[cuda_tiles::a_word(r, word)] = gr < m ? *reinterpret_cast<const uint32_t*>(a + static_cast<size_t>(gr) * k_padded + kb + 4 * word) : 0u;
    }
    const int c = tid / 16, part = tid % 16, gc = blockIdx.y * kTile + c;
    if (kNibbles) {
      // 16 channels x 32 packed bytes -> 64 codes; each thread unpacks 2 bytes.
      uint8_t b0 = 0, b1 = 0;
      if (gc < n) {
        const uint8_t* src = w + static_cast<size_t>(gc) * w_row_bytes + kb / 2 + 2 * part;
        b0 = src[0];
        b1 = src[1];
      }
      uint8_t* codes = reinterpret_cast<uint8_t*>(&w_tile[cuda_tiles::w_word(c, 0)]);
      codes[2 * part] = b0 & 15;
      codes[2 * part + 1] = b1 & 15;
      codes[32 + 2 * part] = b0 >> 4;
      codes[32 + 2 * part + 1] = b1 >> 4;
    } else {
      // 16 channels x 64 bytes; one word per thread.
      w_tile[cuda_tiles::w_word(c, part)] = gc < n ? *reinterpret_cast<const uint32_t*>(w + static_cast<size_t>(gc) * w_row_bytes + kb + 4 * part) : 0u;
    }
    __syncthreads();
#pragma unroll
    for (int word = 0; word < kWords; ++word)
      sum = __dp4a(a_tile[cuda_tiles::a_word(ty, word)], w_tile[cuda_tiles::w_word(tx, word)], sum);
    __syncthreads();
  }
  if (row < m && col < n) acc[static_cast<size_t>(row) * n + col] = static_cast<int32_t>(sum);
}

// QDM_CUDA_SYNC=1: wait for every launch and check it, so an error names the launch that made it.
bool sync_each_launch() {
  static const bool on = [] {
    const char* env = std::getenv("QDM_CUDA_SYNC");
    return env && std::string(env) == "1";
  }();
  return on;
}

size_t weight_bytes(int n, int k_padded, int bits) {
  return static_cast<size_t>(n) * (bits <= 4 ? k_padded / 2 : k_padded);
}

}  // namespace

bool cuda_device_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

void qgemm_u8_cuda_device(const uint8_t* a, int m, const uint8_t* w, int n, int k_padded, int bits, int32_t* acc,
                          CUstream_st* stream) {
  if (k_padded % kKBlock != 0 || k_padded > kMaxK) throw std::invalid_argument("qgemm_u8_cuda: bad padded K");
  if (bits < 1 || bits > 8) throw std::invalid_argument("qgemm_u8_cuda: bits must be 1..8");
  if (m == 0 || n == 0) return;
  if ((n + kTile - 1) / kTile > 65535) throw std::invalid_argument("qgemm_u8_cuda: too many output channels");
  const dim3 block(kTile, kTile), grid((m + kTile - 1) / kTile, (n + kTile - 1) / kTile);
  if (bits <= 4) qgemm_u8_kernel<true><<<grid, block, 0, stream>>>(a, w, m, n, k_padded, acc);
  else qgemm_u8_kernel<false><<<grid, block, 0, stream>>>(a, w, m, n, k_padded, acc);
  check(cudaGetLastError(), "launch");
  if (sync_each_launch()) check(cudaStreamSynchronize(stream), "qgemm_u8 kernel (QDM_CUDA_SYNC=1)");
}

void qgemm_u8_cuda(const uint8_t* a, int m, const uint8_t* w, int n, int k_padded, int bits, int32_t* acc) {
  const size_t a_bytes = static_cast<size_t>(m) * k_padded, w_bytes = weight_bytes(n, k_padded, bits);
  const size_t acc_bytes = static_cast<size_t>(m) * n * sizeof(int32_t);
  uint8_t *da = nullptr, *dw = nullptr;
  int32_t* dacc = nullptr;
  try {
    check(cudaMalloc(&da, a_bytes), "malloc");
    check(cudaMalloc(&dw, w_bytes), "malloc");
    check(cudaMalloc(&dacc, acc_bytes), "malloc");
    check(cudaMemcpy(da, a, a_bytes, cudaMemcpyHostToDevice), "copy");
    check(cudaMemcpy(dw, w, w_bytes, cudaMemcpyHostToDevice), "copy");
    qgemm_u8_cuda_device(da, m, dw, n, k_padded, bits, dacc, nullptr);
    check(cudaMemcpy(acc, dacc, acc_bytes, cudaMemcpyDeviceToHost), "copy back");
  } catch (...) {
    cudaFree(da);
    cudaFree(dw);
    cudaFree(dacc);
    throw;
  }
  cudaFree(da);
  cudaFree(dw);
  cudaFree(dacc);
}

void qgemm_s32_cuda(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  if (w.layout != WeightLayout::kRows || w.bits > 4)
    throw std::invalid_argument("qgemm_s32_cuda: weights must be 4-bit in the kRows layout");
  qgemm_u8_cuda(a, m, w.data.data(), w.n, w.k_padded, w.bits, acc);
}

}  // namespace qdm
