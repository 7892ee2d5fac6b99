// Recipe "tmpq" (TMPQ-DM): the quantizer bank, the kernels' latency table, the evolutionary search,
// and the working model assembled with the best candidate (its schedule, per-layer bits, the
// exact temporal features of its steps).
#pragma once

#include "engine/quant/recipe.h"

namespace qdm {

QuantizeResult quantize_tmpq(const DiffusionModel& model, const RecipeOptions& options, const RecipeEnvironment& env,
                             const QuantizeCallback& progress);

}  // namespace qdm
