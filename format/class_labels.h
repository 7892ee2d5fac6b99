// Class labels as users give them: indices or names from the model's config (case-insensitive),
// one for every image, one per image, or "all" for an even spread over the classes. Torch-free:
// the scheduler, the worker and the command line check requests with the same rules.
#pragma once

#include <string>
#include <vector>

#include "format/unet_config.h"

namespace qdm {

// Resolves `specs` for `num_images` images: empty -> empty (unconditional, or the null class
// on a conditional model); one spec -> every image; "all" -> image i gets class i mod K; else
// one spec per image. Throws std::invalid_argument naming the valid labels.
std::vector<int> parse_class_labels(const UNetConfig& config, const std::vector<std::string>& specs, int num_images);

// Throws std::invalid_argument unless every label is one this model accepts and `guidance`
// is finite, in [0, 100], and 1 unless the model has a null class.
void check_class_labels(const UNetConfig& config, const std::vector<int>& labels, double guidance);

// "sneaker" for a named label, "null" for the null class, else the number.
std::string class_label_name(const UNetConfig& config, int label);
// "0 t-shirt/top, 1 trouser, ..." (or "0..K-1"): what a message lists as valid.
std::string valid_class_labels(const UNetConfig& config);

}  // namespace qdm
