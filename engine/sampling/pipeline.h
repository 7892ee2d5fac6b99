// Sampling images from a loaded model: chunks of a request into batches, seeds image i with
// seed + i, reports progress and honours cancellation.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

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
};

struct SampleProgress {
  int images_done;    // finished images before the current batch
  int batch_images;   // images in the current batch
  int step, steps;    // step within the current batch
  int total_images;
};

// Noise predictor for a batch: x (N, C, H, W), t, step index -> eps.
using BatchDenoiser = Denoiser;

// Returns (num_images, C, S, S) in [-1, 1]. `on_progress` returns false to cancel
// (SamplingCancelled is thrown).
at::Tensor sample_images(const NoiseSchedule& schedule, const BatchDenoiser& denoise, int64_t channels,
                         int64_t size, const SampleRequest& request,
                         const std::function<bool(const SampleProgress&)>& on_progress = nullptr);

}  // namespace qdm
