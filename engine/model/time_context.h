// What the blocks of one UNet call need to know about the timestep: the time embedding and,
// optionally, the temporal features of every ResnetBlock2D precomputed in model order
// (TFMQ-DM's cached Temporal Information Block). Blocks ask for their resnets' features here.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace qdm {

class ResnetBlock2DImpl;

struct TimeContext {
  at::Tensor temb;                                    // (N, time_embed_dim); undefined when cached
  const std::vector<at::Tensor>* features = nullptr;  // one (N, C) per resnet, model order
  size_t next = 0;

  // The temporal feature of the next resnet in model order.
  at::Tensor feature_for(ResnetBlock2DImpl& resnet);
};

}  // namespace qdm
