// Recipes "vq" and "vq+cache" (VQDM): TFMQ-DM's temporal handling (vq: the temporal information
// block at scalar weight bits, reconstructed apart first (TIAR); vq+cache: the fp32 temporal
// features of every step and class cached instead) and per-step activation tables, with the
// weights of every other layer where it pays as additive
// vector quantization, fitted layer by layer, block by block in model order, each block's
// X^T X gathered from the calibration trajectories through the model with the earlier blocks
// already quantized. The other layers keep scalar weights: MSE ranges, then AdaRound block by
// block as tfmq reconstructs them (the vq layers fixed). See VqOptions.
#pragma once

#include "engine/quant/recipe.h"

namespace qdm {

// Bytes of one layer's weights with additive quantization (codes, int8 codebooks, fp32 row
// scales) and with scalar codes of `bits` (packed codes, fp32 scale and zero point per row).
int64_t vq_layer_bytes(int64_t rows, int64_t cols, const VqOptions& o);
int64_t scalar_layer_bytes(int64_t rows, int64_t cols, int bits);

QuantizeResult quantize_vq(const DiffusionModel& model, const RecipeOptions& options, const QuantizeCallback& progress);

}  // namespace qdm
