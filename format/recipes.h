// The quantization recipes this build has: one row per recipe with its name, what it does, its
// option section, its fine-tuning default and which stages of the shared pipeline it runs. The
// engine (engine/quant/recipe_table.h adds each row's function and stage costs), the scheduler's
// request checks, the protocol conversion and the command line read these rows; recipe names are
// compared here only. Methods and published numbers: ../shared/methods.md.
#pragma once

#include <string>
#include <vector>

namespace qdm {

// A recipe's own option section of RecipeOptions (and of the protocol's QuantizeOptions).
enum class RecipeSection {
  kNone,
  kSearch,  // SearchOptions "search": the sampler's steps are the searched schedule, candidates from base_steps
  kVq,      // VqOptions "vq"
};

struct RecipeInfo {
  const char* name;
  const char* summary;
  RecipeSection section = RecipeSection::kNone;
  // Fine-tuning against the fp32 model by default (FinetuneOptions::iters), Adam steps: VQDM's
  // method includes it; the others are the published algorithms without it (0).
  int finetune_iters = 0;
  // The stages of the shared scalar pipeline (engine/quant/recipe.cpp) it runs:
  bool min_max_weights = false;  // min-max weight ranges instead of the L2.4 search (rtn)
  bool per_step_tables = false;  // activation tables per sampling step (FSC): the artifact samples only its schedule
  bool temporal = false;         // TFMQ-DM: the temporal information block reconstructed apart (TIAR) and frozen
  bool feature_cache = false;    // the fp32 temporal features of every step (and class) replace the TIB (tmpq: its own)
  bool reconstruction = false;   // block reconstruction (BRECQ with AdaRound, LSQ step sizes unless per-step tables)
  bool searches_schedule() const { return section == RecipeSection::kSearch; }
};

const std::vector<RecipeInfo>& recipes();
const RecipeInfo* find_recipe(const std::string& name);  // nullptr when unknown
// The row of a known recipe; throws std::invalid_argument naming the recipes for another name.
const RecipeInfo& recipe_info(const std::string& name);
std::vector<std::string> recipe_names();
std::string recipe_list();  // "rtn, qdiffusion, tfmq or tfmq+cache"

}  // namespace qdm
