// Recipes rtn, qdiffusion, tfmq and tfmq+cache: one pipeline of the shared stages (recipe.h),
// each stage switched by the recipe's row (format/recipes.h): weight ranges (min-max or L2.4
// search), the cached temporal features, activation ranges (one for all steps, or FSC's per
// step), TIAR, block reconstruction.
#pragma once

#include "engine/quant/recipe.h"

namespace qdm {

QuantizeResult quantize_scalar(const DiffusionModel& model, const RecipeOptions& options, const RecipeEnvironment& env,
                               const QuantizeCallback& progress);

}  // namespace qdm
