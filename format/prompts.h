// Prompts as users give them to a text-to-image pipeline: one for every image or one per image,
// an empty prompt sampling unconditionally, a negative prompt for guidance to steer away from.
// Torch-free: the scheduler, the worker and the command line check requests with the same rules.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "format/unet_config.h"

namespace qdm {

// Longest prompt accepted, in bytes (the tokenizer keeps its first model_max_length tokens;
// this only bounds the work and the PNG text).
inline constexpr size_t kMaxPromptBytes = 2000;
// Largest image side a request may ask for, in pixels.
inline constexpr int kMaxImageSide = 4096;

// Throws std::invalid_argument saying what to change: prompts (or a negative prompt, or a size)
// for a model without a text encoder; a prompt count other than 1 or num_images; a prompt over
// kMaxPromptBytes; a negative height or width or one over kMaxImageSide. `config` is the UNet's.
void check_prompts(const UNetConfig& config, const std::vector<std::string>& prompts, const std::string& negative_prompt,
                   int num_images, int height, int width);

// The index of image i's prompt in `prompts` (one for all, or one per image).
inline size_t prompt_of_image(const std::vector<std::string>& prompts, int i) {
  return prompts.size() == 1 ? 0 : static_cast<size_t>(i);
}

// What a request's text states are encoded from: its distinct prompts, then, when guided, the
// negative prompt (the null entry guidance mixes against); which entry each given prompt and each
// image reads. No prompts: the empty prompt for every image.
struct PromptTable {
  std::vector<std::string> entries;
  std::vector<int> prompt_entry;  // per given prompt
  std::vector<int> image_entry;   // per image
  std::optional<int> null_entry;
};
PromptTable prompt_table(const std::vector<std::string>& prompts, int num_images, bool guided, const std::string& negative_prompt);

}  // namespace qdm
