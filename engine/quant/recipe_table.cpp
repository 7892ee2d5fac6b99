#include "engine/quant/recipe_table.h"

#include <iterator>
#include <stdexcept>
#include <vector>

#include "engine/quant/scalar_recipe.h"
#include "engine/quant/tmpq/tmpq_recipe.h"
#include "engine/quant/vq/vq_recipe.h"

namespace qdm {
namespace {

QuantizeResult run_vq(const DiffusionModel& model, const RecipeOptions& o, const RecipeEnvironment&, const QuantizeCallback& progress) {
  return quantize_vq(model, o, progress);
}

// X^T X through the model block by block and each layer's codes: about 110k image-steps at M = 2
// (36 layers) and M = 3 (13 layers), B = 8, 32 trajectories on the shipped model. (Its stages,
// "vq inputs: <block>" and "vq: <layer>", count as finished before this.)
void vq_stages(const RecipeOptions& r, const StageCostFn& add) {
  add("vq", 35.0 * r.calib_samples * r.sampler.steps * (1 << r.vq.codebook_bits) / 256.0);
}

// Every candidate samples its images over its steps on the integer plan, about 0.4 fp32
// image-steps per image-step.
void tmpq_stages(const RecipeOptions& r, const StageCostFn& add) {
  const auto& s = r.search;
  add("kernel latency", 30.0 * s.weight_bits.size());
  add("search", 0.4 * s.generations * s.population * s.steps * s.fitness_images + 0.4 * s.final_candidates * s.steps * s.final_images);
}

// The engine's columns, by the names of format/recipes.h's rows.
struct EngineColumns {
  const char* name;
  RecipeFn quantize;
  void (*own_stages)(const RecipeOptions&, const StageCostFn&);
};
constexpr EngineColumns kColumns[] = {
    {"rtn", quantize_scalar, nullptr},       {"qdiffusion", quantize_scalar, nullptr}, {"tfmq", quantize_scalar, nullptr},
    {"tfmq+cache", quantize_scalar, nullptr}, {"tmpq", quantize_tmpq, tmpq_stages},    {"vq", run_vq, vq_stages},
    {"vq+cache", run_vq, vq_stages},
};

std::vector<RecipeRow> rows() {
  std::vector<RecipeRow> out;
  for (const RecipeInfo& info : recipes()) {
    const EngineColumns* c = nullptr;
    for (const EngineColumns& e : kColumns)
      if (std::string(e.name) == info.name) c = &e;
    if (!c) throw std::logic_error(std::string("recipe ") + info.name + " has no engine columns");
    out.push_back({&info, c->quantize, c->own_stages});
  }
  if (out.size() != std::size(kColumns)) throw std::logic_error("engine columns for a recipe format/recipes.h lacks");
  return out;
}

}  // namespace

const RecipeRow& recipe_row(const std::string& name) {
  static const std::vector<RecipeRow> table = rows();
  const RecipeInfo& info = recipe_info(name);  // throws for an unknown name
  for (const RecipeRow& row : table)
    if (row.info == &info) return row;
  throw std::logic_error("recipe " + name + " has no engine row");
}

}  // namespace qdm
