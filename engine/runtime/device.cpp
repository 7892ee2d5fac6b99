#include "engine/runtime/device.h"

#include <ATen/Context.h>

#include <stdexcept>

namespace qdm {

c10::Device parse_device(const std::string& name) {
  if (name == "auto") return at::hasCUDA() && at::getNumGPUs() > 0 ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name.rfind("cuda", 0) != 0)
    throw std::invalid_argument("unknown device '" + name + "'; use cpu, cuda, cuda:N or auto");
  c10::Device device(c10::kCUDA);
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw std::invalid_argument("unknown device '" + name + "'; use cpu, cuda, cuda:N or auto");
  }
  if (!at::hasCUDA())
    throw std::invalid_argument("device '" + name +
                                "': this build's LibTorch has no CUDA support (Debian's libtorch is CPU-only); "
                                "use --device cpu, or the worker-cuda image built against a CUDA LibTorch");
  const size_t gpus = at::getNumGPUs();
  const int index = device.has_index() ? device.index() : 0;
  if (index >= static_cast<int>(gpus))
    throw std::invalid_argument("device '" + name + "': " + std::to_string(gpus) +
                                " CUDA device(s) visible (check the node's GPU and NVIDIA_VISIBLE_DEVICES)");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

std::string available_devices() {
  std::string out = "cpu";
  const size_t gpus = at::hasCUDA() ? at::getNumGPUs() : 0;
  for (size_t i = 0; i < gpus; ++i) out += ", cuda:" + std::to_string(i);
  return out;
}

bool cuda_int_kernels_built() {
#ifdef QDM_CUDA_INT_KERNELS
  return true;
#else
  return false;
#endif
}

}  // namespace qdm
