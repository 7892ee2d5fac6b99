#include "format/class_labels.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

#include "format/echo.h"

namespace qdm {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

[[noreturn]] void not_conditional(const UNetConfig& config) {
  if (config.text_conditioned())
    throw std::invalid_argument("this text-to-image model takes prompts, not class labels");
  throw std::invalid_argument("this model is not class-conditional: send no class labels and guidance 1");
}

int parse_one(const UNetConfig& config, const std::string& spec) {
  const std::string key = lower(spec);
  for (size_t i = 0; i < config.class_names.size(); ++i)
    if (lower(config.class_names[i]) == key) return static_cast<int>(i);
  if (key == "null" && config.null_class) return *config.null_class;
  if (!spec.empty() && spec.size() <= 9 && std::all_of(spec.begin(), spec.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    const int label = std::stoi(spec);
    if (label < config.label_count()) return label;
  }
  throw std::invalid_argument("unknown class label " + echo(spec) + "; valid: " + valid_class_labels(config));
}

}  // namespace

std::string class_label_name(const UNetConfig& config, int label) {
  if (label >= 0 && label < static_cast<int>(config.class_names.size())) return config.class_names[static_cast<size_t>(label)];
  if (config.null_class && label == *config.null_class) return "null";
  return std::to_string(label);
}

std::string valid_class_labels(const UNetConfig& config) {
  const std::vector<int> labels = config.user_labels();
  if (labels.empty()) return "none (the model takes no integer labels)";
  std::string out;
  if (config.class_names.empty()) {
    out = std::to_string(labels.front()) + ".." + std::to_string(labels.back());
  } else {
    for (int l : labels) out += (out.empty() ? "" : ", ") + std::to_string(l) + " " + class_label_name(config, l);
  }
  if (config.null_class) out += " (or null / " + std::to_string(*config.null_class) + " for no class)";
  return out;
}

std::vector<int> parse_class_labels(const UNetConfig& config, const std::vector<std::string>& specs, int num_images) {
  if (specs.empty()) return {};
  if (config.label_count() == 0) {
    if (!config.conditional()) not_conditional(config);
    throw std::invalid_argument("this model's class embeddings are vectors (\"identity\"); it takes no class labels");
  }
  std::vector<int> out;
  if (specs.size() == 1 && lower(specs[0]) == "all") {
    const std::vector<int> labels = config.user_labels();
    for (int i = 0; i < num_images; ++i) out.push_back(labels[static_cast<size_t>(i) % labels.size()]);
    return out;
  }
  if (specs.size() != 1 && static_cast<int>(specs.size()) != num_images)
    throw std::invalid_argument("give one class label for every image, one per image (" + std::to_string(num_images) +
                                "), or all; got " + std::to_string(specs.size()));
  for (int i = 0; i < num_images; ++i) out.push_back(parse_one(config, specs.size() == 1 ? specs[0] : specs[static_cast<size_t>(i)]));
  return out;
}

void check_class_labels(const UNetConfig& config, const std::vector<int>& labels, double guidance) {
  if (!std::isfinite(guidance) || guidance < 0 || guidance > 100)
    throw std::invalid_argument("guidance_scale must be a finite number in [0, 100] (1: no guidance)");
  if (!config.conditional()) {  // a text model's guidance mixes against its negative prompt
    if (!labels.empty() || (guidance != 1.0 && !config.text_conditioned())) not_conditional(config);
    return;
  }
  if (labels.empty() && !config.null_class)
    throw std::invalid_argument("this class-conditional model has no null class: give a class label per image; valid: " +
                                valid_class_labels(config));
  if (guidance != 1.0 && !config.null_class)
    throw std::invalid_argument("this model has no null class, so guidance must be 1");
  for (int l : labels)
    if (l < 0 || l >= config.label_count())
      throw std::invalid_argument("class label " + std::to_string(l) + " is out of range; valid: " + valid_class_labels(config));
}

}  // namespace qdm
