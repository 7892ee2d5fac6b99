// The engine's CUDA branch, linked where LibTorch has no CUDA (Debian's): tensor_int_layer.cpp is
// compiled into this program with QDM_CUDA_INT_KERNELS and linked against the CUDA kernel
// library, so a call that does not match qgemm_cuda.h fails this build instead of the first
// GPU run (bench/gpu_check.sh). The two c10_cuda functions it calls, which only a CUDA
// LibTorch has, are defined below to throw: on a CPU tensor the branch is never taken, and
// running the program checks the CPU path of the same translation unit against the kernel's
// definition of a product (exact integers).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdio>
#include <stdexcept>

#include "engine/kernels/qgemm_cuda.h"
#include "engine/runtime/tensor_int_layer.h"

namespace c10::cuda {
CUDAStream getCurrentCUDAStream(DeviceIndex) { throw std::logic_error("cuda_link_check: no CUDA LibTorch"); }
cudaStream_t CUDAStream::stream() const { throw std::logic_error("cuda_link_check: no CUDA LibTorch"); }
}  // namespace c10::cuda

int main() {
  // 4-bit codes through the nibble packing the CUDA kernel reads, unpacked again.
  const at::Tensor codes = at::randint(0, 16, {3, 128}, at::kByte);
  const at::Tensor packed = qdm::pack_nibbles(codes);
  const at::Tensor lo = at::bitwise_and(packed, 15), hi = at::bitwise_right_shift(packed, 4);
  const at::Tensor back = at::cat({lo.reshape({3, 2, 32}), hi.reshape({3, 2, 32})}, 2).reshape({3, 128});
  if (!at::equal(back, codes)) {
    std::fprintf(stderr, "pack_nibbles does not round-trip\n");
    return 1;
  }
  // The GPU entry point is linked (its address is taken) but not called: no device here.
  auto* entry = &qdm::qgemm_u8_cuda_device;
  std::printf("linked the CUDA branch of tensor_int_layer.cpp against qgemm_u8_cuda_device (%p)\n",
              reinterpret_cast<void*>(entry));
  return 0;
}
