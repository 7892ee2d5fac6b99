// Sampling images from a model: chunks of a request into batches, seeds image i with seed + i
// (or seeds[i]), reports progress and honours cancellation. Torch-free: tensor_sampling.h adapts
// LibTorch noise predictors to it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
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
  int batch_size = 64;  // images per model call
  SamplerOptions sampler;
  // Class-conditional models: one label per image (empty: unconditional models only), the
  // label that means "no class", and the classifier-free guidance scale (1: none).
  std::vector<int> class_labels;
  std::optional<int> null_class;
  double guidance_scale = 1.0;
  // Text-to-image pipelines (ServedModel): one prompt for every image, or one per image (""
  // samples unconditionally), the negative prompt guidance steers away from ("": the empty
  // prompt), and the image size in pixels (0: the model's default). The served model turns them
  // into class_labels (rows of its text-state table) and null_class.
  std::vector<std::string> prompts;
  std::string negative_prompt;
  int height = 0, width = 0;
  // A quantized model's eps bias, subtracted from its unconditional predictions (set by the
  // loaded model from the artifact; null: none).
  std::shared_ptr<const EpsBias> eps_bias;

  // The seed of image i.
  uint64_t image_seed(int i) const { return seeds.empty() ? seed + static_cast<uint64_t>(i) : seeds.at(static_cast<size_t>(i)); }
};

struct SampleProgress {
  int images_done;    // finished images before the current batch
  int batch_images;   // images in the current batch
  int step, steps;    // step within the current batch
  int total_images;
};

// num_images images of image_size floats (C, H, W each) in [-1, 1]. `on_progress` returns false
// to cancel (SamplingCancelled is thrown).
std::vector<float> generate_images(const NoiseSchedule& schedule, const ModelFn& model, int64_t image_size,
                                   const SampleRequest& request,
                                   const std::function<bool(const SampleProgress&)>& on_progress = nullptr);

}  // namespace qdm
