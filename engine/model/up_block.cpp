#include "engine/model/up_block.h"

#include "engine/model/block_parts.h"
#include "engine/model/resample.h"

namespace qdm {

UpBlockImpl::UpBlockImpl(const UNetConfig& cfg, int in_ch, int prev_out_ch, int out_ch,
                         bool has_attention, bool add_upsample) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (has_attention) attentions = register_module("attentions", torch::nn::ModuleList());
  const int layers = cfg.layers_per_block + 1;
  for (int i = 0; i < layers; ++i) {
    const int skip_ch = i == layers - 1 ? in_ch : out_ch;
    const int resnet_in = i == 0 ? prev_out_ch : out_ch;
    resnets->push_back(make_resnet(cfg, resnet_in + skip_ch, out_ch));
    if (has_attention) attentions->push_back(make_attention(cfg, out_ch, cfg.norm_num_groups));
  }
  if (add_upsample) {
    upsamplers = register_module("upsamplers", torch::nn::ModuleList());
    upsamplers->push_back(Upsample2D(out_ch));
  }
}

at::Tensor UpBlockImpl::forward(const at::Tensor& x, TimeContext& time, std::vector<at::Tensor>& skips) {
  at::Tensor h = x;
  for (size_t i = 0; i < resnets->size(); ++i) {
    h = at::cat({h, skips.back()}, 1);
    skips.pop_back();
    h = run_resnet(resnets, i, h, time);
    if (attentions) h = attentions[i]->as<AttentionBlock>()->forward(h);
  }
  if (upsamplers) h = upsamplers[0]->as<Upsample2D>()->forward(h);
  return h;
}

}  // namespace qdm
