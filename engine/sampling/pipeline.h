// Sampling images from a loaded model: chunks of a request into batches, seeds image i with
// seed + i, reports progress and honours cancellation.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "engine/sampling/eps_bias.h"
#include "engine/sampling/guidance.h"
#include "engine/sampling/samplers.h"

namespace qdm {

struct SampleRequest {
  int num_images = 1;
  uint64_t seed = 0;
  // When set, image i uses seeds[i] (and num_images = seeds.size()): how a server batches
  // several requests into one call while each image keeps its own seed.
  std::vector<uint64_t> seeds;
  int batch_size = 64;  // images per UNet call
  SamplerOptions sampler;
  c10::Device device = c10::kCPU;  // where the model runs; the images come back on the CPU
  // Class-conditional models: one label per image (empty: unconditional models only), the
  // label that means "no class", and the classifier-free guidance scale (1: none).
  std::vector<int> class_labels;
  std::optional<int> null_class;
  double guidance_scale = 1.0;
  // A quantized model's eps bias, subtracted from its unconditional predictions (set by
  // LoadedModel from the artifact; null: none).
  std::shared_ptr<const EpsBias> eps_bias;
};

struct SampleProgress {
  int images_done;    // finished images before the current batch
  int batch_images;   // images in the current batch
  int step, steps;    // step within the current batch
  int total_images;
};


// Returns (num_images, C, S, S) in [-1, 1]. `on_progress` returns false to cancel
// (SamplingCancelled is thrown).
at::Tensor sample_images(const NoiseSchedule& schedule, const ModelDenoiser& denoise, int64_t channels,
                         int64_t size, const SampleRequest& request,
                         const std::function<bool(const SampleProgress&)>& on_progress = nullptr);

}  // namespace qdm
