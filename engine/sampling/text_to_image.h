// Images from prompts with a text-to-image pipeline (LibTorch modules): each distinct prompt is
// tokenized and encoded once per request, and the sampling pipeline (pipeline.h) runs
// unchanged: an image's "label" is the index of its prompt's text states, and the negative (or
// empty) prompt is the null class that classifier-free guidance mixes against. The latents are
// decoded by the VAE after the last step.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/model/pipeline_folder.h"
#include "engine/sampling/pipeline.h"

namespace qdm {

struct PromptRequest {
  std::vector<std::string> prompts;  // one for every image, or one per image
  std::string negative_prompt;       // "" : the unconditional (empty) prompt
  double guidance_scale = 7.5;       // 1: the prompt alone (no unconditional branch)
  int height = 0, width = 0;         // pixels, multiples of the VAE's factor times 2^(levels - 1); 0: the default
  SampleRequest base;                // num_images, seeds, batch size, sampler (class fields unused)
};

struct PromptImages {
  at::Tensor images;                // (N, C, H, W) in [-1, 1]
  std::vector<bool> truncated;      // per prompt given: longer than the tokenizer's limit
  std::vector<int> prompt_of_image;  // index into request.prompts
};

// The padded token ids of each prompt: (K, max_length) int64; `truncated` (when given) gets one
// flag per prompt.
at::Tensor prompt_token_ids(const ClipTokenizer& tokenizer, const std::vector<std::string>& prompts,
                            std::vector<bool>* truncated = nullptr);
// The text states of each prompt: (K, L, D).
at::Tensor encode_prompts(TextToImagePipeline& pipe, const std::vector<std::string>& prompts, std::vector<bool>* truncated = nullptr);

// Throws std::invalid_argument naming what to fix (prompt count, size, guidance).
PromptImages sample_from_prompts(TextToImagePipeline& pipe, const PromptRequest& request,
                                 const std::function<bool(const SampleProgress&)>& on_progress = nullptr);

}  // namespace qdm
