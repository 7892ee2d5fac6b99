// The engine's columns of the recipe table: for each row of format/recipes.h (name, summary,
// option section, fine-tuning default, shared stages), the function that runs the recipe and the
// costs of the stages only it runs (image-steps, for the job's progress and ETA). A new recipe is
// a row here and there and a file composing the stages of recipe.h; tests check that every
// registered name has a row.
#pragma once

#include <functional>
#include <string>

#include "engine/quant/recipe.h"

namespace qdm {

using RecipeFn = QuantizeResult (*)(const DiffusionModel& model, const RecipeOptions& options, const RecipeEnvironment& env,
                                    const QuantizeCallback& progress);
using StageCostFn = std::function<void(const std::string& stage, double image_steps)>;

struct RecipeRow {
  const RecipeInfo* info = nullptr;
  RecipeFn quantize = nullptr;
  // Adds the stages only this recipe runs, with their costs; null: none.
  void (*own_stages)(const RecipeOptions& options, const StageCostFn& add) = nullptr;
};

// The row of `name`; throws std::invalid_argument naming the recipes for an unknown one.
const RecipeRow& recipe_row(const std::string& name);

}  // namespace qdm
