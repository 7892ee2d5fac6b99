// LibTorch noise predictors on the torch-free sampling pipeline (samplers.h, pipeline.h): a
// model that takes and returns tensors (the fp32 UNet, the fake-quant simulation, a CUDA
// device's model, an analytic model in tests) wrapped as a float-buffer one, and the pipeline's
// results as tensors. One sampler implementation serves the execution plan and LibTorch, so
// image i of seed S is the same on either.
#pragma once

#include <ATen/ATen.h>

#include <functional>

#include "engine/sampling/pipeline.h"

namespace qdm {

// x (N, C, H, W), t, step -> eps (N, C, H, W).
using Denoiser = std::function<at::Tensor(const at::Tensor& x, int t, int step)>;
// The same with per-image labels (N) int64, undefined for an unconditional model.
using ModelDenoiser = std::function<at::Tensor(const at::Tensor& x, int t, int step, const at::Tensor& labels)>;

// `model`, which runs on `device`, as a ModelFn over images of (channels, height, width).
ModelFn model_fn(ModelDenoiser model, int64_t channels, int64_t height, int64_t width, c10::Device device = c10::kCPU);
DenoiseFn denoise_fn(Denoiser denoise, int64_t channels, int64_t height, int64_t width);

// run_sampler (samplers.h) for one image per seed -> (seeds.size(), C, H, W) on the CPU.
at::Tensor run_sampler(const NoiseSchedule& schedule, const SamplerOptions& options, const Denoiser& denoise,
                       const std::vector<uint64_t>& seeds, int64_t channels, int64_t height, int64_t width,
                       const StepCallback& on_step = nullptr);

// generate_images (pipeline.h) -> (num_images, C, size, size) in [-1, 1] on the CPU.
at::Tensor sample_images(const NoiseSchedule& schedule, const ModelDenoiser& model, int64_t channels, int64_t size,
                         const SampleRequest& request, const std::function<bool(const SampleProgress&)>& on_progress = nullptr,
                         c10::Device device = c10::kCPU);
// n images of (C, H, W) floats as a tensor (copied).
at::Tensor image_tensor(const std::vector<float>& images, int64_t channels, int64_t height, int64_t width);

// An eps bias's maps as a (steps, C, H, W) tensor, and one from such a tensor (converted to float).
at::Tensor eps_bias_maps(const EpsBias& bias, int64_t channels, int64_t height, int64_t width);
EpsBias make_eps_bias(std::vector<int> timesteps, const at::Tensor& maps);

}  // namespace qdm
