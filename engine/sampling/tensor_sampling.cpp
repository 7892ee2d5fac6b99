#include "engine/sampling/tensor_sampling.h"

#include <ATen/core/grad_mode.h>

#include <cstring>

namespace qdm {

ModelFn model_fn(ModelDenoiser model, int64_t channels, int64_t height, int64_t width, c10::Device device) {
  return [model = std::move(model), channels, height, width, device](const float* x, int n, int t, int step,
                                                                     const int64_t* labels, float* eps) {
    at::NoGradGuard no_grad;
    at::Tensor xt = at::from_blob(const_cast<float*>(x), {n, channels, height, width}, at::kFloat);
    at::Tensor lt = labels ? at::from_blob(const_cast<int64_t*>(labels), {n}, at::kLong) : at::Tensor();
    if (!device.is_cpu()) {
      xt = xt.to(device);
      if (lt.defined()) lt = lt.to(device);
    }
    const at::Tensor e = model(xt, t, step, lt).to(at::kCPU, at::kFloat).contiguous();
    std::memcpy(eps, e.data_ptr<float>(), sizeof(float) * static_cast<size_t>(e.numel()));
  };
}

DenoiseFn denoise_fn(Denoiser denoise, int64_t channels, int64_t height, int64_t width) {
  return [denoise = std::move(denoise), channels, height, width](const float* x, int n, int t, int step, float* eps) {
    at::NoGradGuard no_grad;
    const at::Tensor xt = at::from_blob(const_cast<float*>(x), {n, channels, height, width}, at::kFloat);
    const at::Tensor e = denoise(xt, t, step).to(at::kCPU, at::kFloat).contiguous();
    std::memcpy(eps, e.data_ptr<float>(), sizeof(float) * static_cast<size_t>(e.numel()));
  };
}

at::Tensor image_tensor(const std::vector<float>& images, int64_t channels, int64_t height, int64_t width) {
  const int64_t n = static_cast<int64_t>(images.size()) / (channels * height * width);
  return at::from_blob(const_cast<float*>(images.data()), {n, channels, height, width}, at::kFloat).clone();
}

at::Tensor run_sampler(const NoiseSchedule& schedule, const SamplerOptions& options, const Denoiser& denoise,
                       const std::vector<uint64_t>& seeds, int64_t channels, int64_t height, int64_t width,
                       const StepCallback& on_step) {
  const int64_t size = channels * height * width;
  std::vector<float> x(seeds.size() * static_cast<size_t>(size));
  run_sampler(schedule, options, denoise_fn(denoise, channels, height, width), seeds, size, x.data(), on_step);
  return image_tensor(x, channels, height, width);
}

at::Tensor sample_images(const NoiseSchedule& schedule, const ModelDenoiser& model, int64_t channels, int64_t size,
                         const SampleRequest& request, const std::function<bool(const SampleProgress&)>& on_progress,
                         c10::Device device) {
  const std::vector<float> images =
      generate_images(schedule, model_fn(model, channels, size, size, device), channels * size * size, request, on_progress);
  return image_tensor(images, channels, size, size);
}

at::Tensor eps_bias_maps(const EpsBias& bias, int64_t channels, int64_t height, int64_t width) {
  bias.check(channels, height, width);
  return image_tensor(bias.maps, channels, height, width);
}

EpsBias make_eps_bias(std::vector<int> timesteps, const at::Tensor& maps) {
  EpsBias b;
  b.timesteps = std::move(timesteps);
  const at::Tensor m = maps.to(at::kFloat).contiguous().cpu();
  b.map_size = m.dim() > 0 && m.size(0) > 0 ? m.numel() / m.size(0) : 0;
  b.maps.assign(m.data_ptr<float>(), m.data_ptr<float>() + m.numel());
  return b;
}

}  // namespace qdm
