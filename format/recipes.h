// The quantization recipes this build has, by name, with what each does: the one list the
// engine, the scheduler's request checks and the command line use. The algorithms live in
// engine/quant/recipes/ (one file each); methods and published numbers in ../shared/methods.md.
#pragma once

#include <string>
#include <vector>

namespace qdm {

struct RecipeInfo {
  const char* name;
  const char* summary;
  bool per_step_tables;  // activation tables per sampling step: the artifact samples only its schedule
  // Fine-tuning against the fp32 model by default (FinetuneOptions::iters), Adam steps: VQDM's
  // method includes it; the others are the published algorithms without it (0).
  int finetune_iters = 0;
};

const std::vector<RecipeInfo>& recipes();
const RecipeInfo* find_recipe(const std::string& name);  // nullptr when unknown
std::vector<std::string> recipe_names();
std::string recipe_list();  // "rtn, qdiffusion, tfmq or tfmq+cache"

}  // namespace qdm
