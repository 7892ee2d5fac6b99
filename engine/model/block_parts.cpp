#include "engine/model/block_parts.h"

namespace qdm {

ResnetBlock2D make_resnet(const UNetConfig& cfg, int in_ch, int out_ch, double output_scale) {
  return ResnetBlock2D(in_ch, out_ch, cfg.time_embed_dim(), cfg.norm_num_groups, cfg.norm_eps,
                       cfg.resnet_time_scale_shift == "scale_shift", output_scale);
}

AttentionBlock make_attention(const UNetConfig& cfg, int ch, std::optional<int> groups,
                              double rescale) {
  return AttentionBlock(ch, cfg.head_dim_for(ch), groups, cfg.norm_eps, rescale);
}

at::Tensor run_resnet(torch::nn::ModuleList& list, size_t i, const at::Tensor& x, TimeContext& time) {
  auto resnet = list[i]->as<ResnetBlock2D>();
  return resnet->forward_with_feature(x, time.feature_for(*resnet));
}

}  // namespace qdm
