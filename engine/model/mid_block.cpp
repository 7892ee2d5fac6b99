#include "engine/model/mid_block.h"

#include "engine/model/block_parts.h"

namespace qdm {

MidBlockImpl::MidBlockImpl(const UNetConfig& cfg, int ch) {
  const double scale = cfg.mid_block_scale_factor;
  resnets = register_module("resnets", torch::nn::ModuleList());
  resnets->push_back(make_resnet(cfg, ch, ch, scale));
  if (cfg.add_attention) {
    // diffusers: attn_norm_num_groups, else norm_num_groups for the "default" time shift and
    // no norm at all for "scale_shift".
    std::optional<int> groups = cfg.attn_norm_num_groups;
    if (!groups && cfg.resnet_time_scale_shift == "default") groups = cfg.norm_num_groups;
    attentions = register_module("attentions", torch::nn::ModuleList());
    attentions->push_back(make_attention(cfg, ch, groups, scale));
  }
  resnets->push_back(make_resnet(cfg, ch, ch, scale));
}

at::Tensor MidBlockImpl::forward(const at::Tensor& x, TimeContext& time) {
  at::Tensor h = run_resnet(resnets, 0, x, time);
  if (attentions) h = attentions[0]->as<AttentionBlock>()->forward(h);
  return run_resnet(resnets, 1, h, time);
}

}  // namespace qdm
