#include "format/prompts.h"

#include <stdexcept>

namespace qdm {

void check_prompts(const UNetConfig& config, const std::vector<std::string>& prompts, const std::string& negative_prompt,
                   int num_images, int height, int width) {
  if (!config.text_conditioned()) {
    if (!prompts.empty() || !negative_prompt.empty())
      throw std::invalid_argument("this model has no text encoder, so it takes no prompts; sample a text-to-image pipeline, "
                                  "or give class labels to a class-conditional model");
    if (height != 0 || width != 0)
      throw std::invalid_argument("height and width apply to text-to-image pipelines; this model samples at its own size");
    return;
  }
  if (prompts.size() > 1 && static_cast<int>(prompts.size()) != num_images)
    throw std::invalid_argument("give one prompt for every image or one per image (" + std::to_string(num_images) + "), not " +
                                std::to_string(prompts.size()));
  for (const auto& p : prompts)
    if (p.size() > kMaxPromptBytes)
      throw std::invalid_argument("a prompt is longer than " + std::to_string(kMaxPromptBytes) + " bytes; shorten it");
  if (negative_prompt.size() > kMaxPromptBytes)
    throw std::invalid_argument("the negative prompt is longer than " + std::to_string(kMaxPromptBytes) + " bytes; shorten it");
  if (height < 0 || width < 0 || height > kMaxImageSide || width > kMaxImageSide)
    throw std::invalid_argument("height and width must be 0 (the model's size) or positive up to " + std::to_string(kMaxImageSide));
}

}  // namespace qdm
