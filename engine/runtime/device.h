// Where a worker or the CLI runs its models: "cpu", "cuda", "cuda:N" or "auto" (the first
// CUDA device when this build's LibTorch has CUDA and a GPU is visible, else the CPU).
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace qdm {

// Throws std::invalid_argument saying what to change for an unknown name, a CUDA device in a
// build whose LibTorch has no CUDA (Debian's is CPU-only), or a device index that is not there.
c10::Device parse_device(const std::string& name);
// What this build and machine can run on: "cpu", or "cpu, cuda:0, cuda:1".
std::string available_devices();

// Whether integer kernels for CUDA devices were built in (LibTorch with CUDA and nvcc found).
bool cuda_int_kernels_built();

}  // namespace qdm
