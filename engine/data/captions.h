// Captions for Fashion-MNIST labels, for the text-to-image model: varied templates, each class
// named in the singular and plural with common synonyms ("a photo of a sneaker", "running
// shoes", "an ankle boot on white"). The held-out templates are never used in training: prompt
// agreement is measured on them.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace qdm {

enum class CaptionSet { kTraining, kHeldOut };

struct ClassNouns {
  std::vector<std::string> singular, plural;  // aligned: plural[i] is singular[i]'s plural
};

// Nouns for label 0..9 (Fashion-MNIST's order).
const ClassNouns& class_nouns(int label, CaptionSet set = CaptionSet::kTraining);
// Templates with {s} (a singular noun, after "a"/"an" chosen by the noun) or {p} (a plural).
const std::vector<std::string>& caption_templates(CaptionSet set);

// One caption for `label`, drawn uniformly over templates and nouns of the set.
std::string make_caption(int label, std::mt19937_64& rng, CaptionSet set = CaptionSet::kTraining);
// n prompts for evaluation: image i asks for class i % 10 in a phrasing drawn from the set with
// seed + i; labels[i] is the class asked for.
void evaluation_prompts(int n, CaptionSet set, uint64_t seed, std::vector<std::string>& prompts, std::vector<int64_t>& labels);

// Every caption of the training set for the label (the tokenizer's vocabulary is learned from them).
std::vector<std::string> all_captions(int label, CaptionSet set = CaptionSet::kTraining);

}  // namespace qdm
