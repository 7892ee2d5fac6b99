// Construction helpers shared by the UNet block kinds (down, mid, up).
#pragma once

#include <torch/nn/modules/container/modulelist.h>

#include <optional>

#include "engine/model/attention_block.h"
#include "engine/model/resnet_block.h"
#include "engine/model/time_context.h"
#include "format/unet_config.h"

namespace qdm {

ResnetBlock2D make_resnet(const UNetConfig& cfg, int in_ch, int out_ch, double output_scale = 1.0);
AttentionBlock make_attention(const UNetConfig& cfg, int ch, std::optional<int> groups,
                              double rescale = 1.0);
// Runs resnet i of `list` with its temporal feature from `time`.
at::Tensor run_resnet(torch::nn::ModuleList& list, size_t i, const at::Tensor& x, TimeContext& time);

}  // namespace qdm
