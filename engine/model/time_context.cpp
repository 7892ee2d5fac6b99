#include "engine/model/time_context.h"

#include "engine/model/resnet_block.h"

namespace qdm {

at::Tensor TimeContext::feature_for(ResnetBlock2DImpl& resnet) {
  const size_t i = next++;
  if (features) return features->at(i);
  return resnet.temporal_feature(temb);
}

}  // namespace qdm
