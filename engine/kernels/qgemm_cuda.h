// The integer GEMM on an NVIDIA GPU (built with -DQDM_CUDA=ON when nvcc is found): u8
// activations times unsigned weight codes, exact s32, by __dp4a. The CPU scalar reference is
// its oracle (tests/qgemm_cuda_test.cpp, run where a GPU is present).
//
// Weight codes w are unsigned (0 .. 2^bits - 1), a row of K per output channel, K padded to
// kKBlock with zeros:
//   bits <= 4  per 64-wide K block 32 bytes, byte j = w[j] | w[j + 32] << 4 (qgemm.h's kRows
//              layout: for <= 4 bits its codes carry no offset, so PackedWeights match)
//   bits 5..8  one byte per code
#pragma once

#include <cstdint>

#include "engine/kernels/qgemm.h"

struct CUstream_st;  // cudaStream_t is CUstream_st* (cuda_runtime_api.h)

namespace qdm {

// True when the CUDA runtime sees at least one device.
bool cuda_device_available();

// acc (m, n) = a (m, k_padded) . w^T with every pointer in device memory of the current
// device, launched on `stream` (the caller's: LibTorch's current stream; null: the legacy
// default stream) and not waited for, unless QDM_CUDA_SYNC=1 (then waited for and checked).
void qgemm_u8_cuda_device(const uint8_t* a, int m, const uint8_t* w, int n, int k_padded, int bits, int32_t* acc,
                          CUstream_st* stream);

// The same from host memory: copies in, runs, copies the result back (tests).
void qgemm_u8_cuda(const uint8_t* a, int m, const uint8_t* w, int n, int k_padded, int bits, int32_t* acc);

// qgemm_s32's contract for 4-bit weights in the kRows layout, from host memory.
void qgemm_s32_cuda(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc);

}  // namespace qdm
