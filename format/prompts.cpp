#include "format/prompts.h"

#include <map>
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

PromptTable prompt_table(const std::vector<std::string>& prompts, int num_images, bool guided, const std::string& negative_prompt) {
  const std::vector<std::string> given = prompts.empty() ? std::vector<std::string>{""} : prompts;
  PromptTable t;
  std::map<std::string, int> index;
  for (const auto& p : given) {
    const auto [it, added] = index.emplace(p, static_cast<int>(t.entries.size()));
    if (added) t.entries.push_back(p);
    t.prompt_entry.push_back(it->second);
  }
  for (int i = 0; i < num_images; ++i) t.image_entry.push_back(t.prompt_entry[prompt_of_image(given, i)]);
  if (guided) {
    t.null_entry = static_cast<int>(t.entries.size());
    t.entries.push_back(negative_prompt);
  }
  return t;
}

}  // namespace qdm
