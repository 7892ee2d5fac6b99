// The W4A8 integer GEMM on an NVIDIA GPU (built with -DQDM_CUDA=ON when nvcc is found):
// the same contract as qgemm_s32 for 4-bit weights in the kRows layout, so the CPU scalar
// reference is its oracle (tests/qgemm_cuda_test.cpp, run where a GPU is present).
#pragma once

#include <cstdint>

#include "engine/kernels/qgemm.h"

namespace qdm {

// True when the CUDA runtime sees at least one device.
bool cuda_device_available();

// acc (m, n) = a (m, k_padded) . w'^T, exact int32, on the default device (inputs are copied
// in and the result out; for a resident model keep DeviceWeights). w: kRows, bits <= 4.
void qgemm_s32_cuda(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc);

}  // namespace qdm
