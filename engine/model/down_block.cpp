#include "engine/model/down_block.h"

#include "engine/model/block_parts.h"
#include "engine/model/resample.h"

namespace qdm {

DownBlockImpl::DownBlockImpl(const UNetConfig& cfg, int in_ch, int out_ch, bool has_attention,
                             bool add_downsample) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (has_attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int i = 0; i < cfg.layers_per_block; ++i) {
    resnets->push_back(make_resnet(cfg, i == 0 ? in_ch : out_ch, out_ch));
    if (has_attention) attentions->push_back(make_attention(cfg, out_ch, cfg.norm_num_groups));
  }
  if (add_downsample) {
    downsamplers = register_module("downsamplers", torch::nn::ModuleList());
    downsamplers->push_back(Downsample2D(out_ch, cfg.downsample_padding));
  }
}

at::Tensor DownBlockImpl::forward(const at::Tensor& x, TimeContext& time, std::vector<at::Tensor>& skips) {
  at::Tensor h = x;
  for (size_t i = 0; i < resnets->size(); ++i) {
    h = run_resnet(resnets, i, h, time);
    if (attentions) h = attentions[i]->as<AttentionBlock>()->forward(h);
    skips.push_back(h);
  }
  if (downsamplers) {
    h = downsamplers[0]->as<Downsample2D>()->forward(h);
    skips.push_back(h);
  }
  return h;
}

}  // namespace qdm
