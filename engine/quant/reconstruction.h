// Reconstruction-based PTQ on the model's own calibration data:
//  - reconstruct_blocks: BRECQ/Q-Diffusion block reconstruction. For each ResnetBlock2D and
//    attention block in model order, the input comes from the already-quantized prefix and
//    the target is the fp32 block output; AdaRound is learned for the block's weights
//    (loss = ||out - target||^2 summed over channels + lambda * rounding regulariser), then,
//    optionally, activation step sizes by LSQ with the same loss.
//  - reconstruct_temporal_block: TFMQ-DM's TIAR. The Temporal Information Block (the time
//    embedding and every resnet's time_emb_proj) is reconstructed alone over the schedule's
//    timesteps with loss sum_i ||g_i(h(t)) - g^_i(h^(t))||^2.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/model/unet_2d.h"
#include "engine/quant/quant_model.h"
#include "format/quantize_options.h"

namespace qdm {

// UNet inputs of one sampling step.
struct ReconGroup {
  int step = 0;  // index in the schedule (selects per-step activation tables)
  int t = 0;     // training timestep
  at::Tensor x;  // (n, C, H, W)
  at::Tensor labels;  // (n) class labels of a conditional model; undefined otherwise
};


// Returns false to cancel; `loss` is the latest reconstruction loss.
using ReconProgress = std::function<bool(const std::string& block, int index, int total, double loss)>;

// Names of the layers of the Temporal Information Block among `q`'s quantized layers.
std::vector<std::string> temporal_block_layers(const QuantizedUNet& q);

// Both throw QuantizeCancelled (recipe.h) when progress returns false.
void reconstruct_blocks(QuantizedUNet& q, UNet2DModel fp, const std::vector<ReconGroup>& data,
                        const ReconOptions& options, const ReconProgress& progress = nullptr);
void reconstruct_temporal_block(QuantizedUNet& q, UNet2DModel fp, const std::vector<int>& timesteps,
                                const ReconOptions& options, const ReconProgress& progress = nullptr);

}  // namespace qdm
