#include "engine/model/unet_2d.h"

#include <stdexcept>

#include "engine/model/down_block.h"
#include "engine/model/resnet_block.h"
#include "engine/model/time_context.h"
#include "engine/model/up_block.h"

namespace qdm {

UNet2DModelImpl::UNet2DModelImpl(const UNetConfig& cfg) : config_(cfg) {
  cfg.validate();
  const auto& boc = cfg.block_out_channels;
  const int temb_dim = cfg.time_embed_dim();
  int time_in = boc[0];
  if (cfg.time_embedding_type == "fourier") {
    fourier_proj = register_module("time_proj", GaussianFourierProjection(boc[0], 16.0));
    time_in = 2 * boc[0];
  } else if (cfg.time_embedding_type == "learned") {
    learned_proj = register_module("time_proj", torch::nn::Embedding(*cfg.num_train_timesteps, boc[0]));
  }
  conv_in = register_module("conv_in", Conv2dLayer(cfg.in_channels, boc[0], 3, 1, 1));
  time_embedding = register_module("time_embedding", TimestepEmbedding(time_in, temb_dim));
  if (cfg.class_embed_type == "timestep") {
    class_timestep = register_module("class_embedding", TimestepEmbedding(time_in, temb_dim));
  } else if (!cfg.class_embed_type && cfg.num_class_embeds) {
    class_table = register_module("class_embedding", torch::nn::Embedding(*cfg.num_class_embeds, temb_dim));
  }

  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int out_ch = boc[0];
  for (size_t i = 0; i < boc.size(); ++i) {
    const int in_ch = out_ch;
    out_ch = boc[i];
    const bool last = i + 1 == boc.size();
    down_blocks->push_back(DownBlock(cfg, in_ch, out_ch, cfg.down_block_types[i] == "AttnDownBlock2D", !last));
  }
  if (cfg.has_mid_block) mid_block = register_module("mid_block", MidBlock(cfg, boc.back()));

  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  std::vector<int> rev(boc.rbegin(), boc.rend());
  out_ch = rev[0];
  for (size_t i = 0; i < rev.size(); ++i) {
    const int prev_out = out_ch;
    out_ch = rev[i];
    const int in_ch = rev[std::min(i + 1, rev.size() - 1)];
    const bool last = i + 1 == rev.size();
    up_blocks->push_back(UpBlock(cfg, in_ch, prev_out, out_ch, cfg.up_block_types[i] == "AttnUpBlock2D", !last));
  }
  const int groups_out = cfg.norm_num_groups;
  conv_norm_out = register_module(
      "conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups_out, boc[0]).eps(cfg.norm_eps)));
  conv_out = register_module("conv_out", Conv2dLayer(boc[0], cfg.out_channels, 3, 1, 1));
}

at::Tensor UNet2DModelImpl::broadcast_timesteps(const at::Tensor& timesteps, int64_t batch) const {
  at::Tensor t = timesteps.reshape({-1});
  if (t.numel() == 1) return t.expand({batch});
  if (t.numel() != batch)
    throw std::invalid_argument("UNet2DModel: " + std::to_string(t.numel()) + " timesteps for a batch of " +
                                std::to_string(batch));
  return t;
}

at::Tensor UNet2DModelImpl::time_proj(const at::Tensor& t) {
  const auto& cfg = config_;
  if (cfg.time_embedding_type == "positional")
    return sinusoidal_embedding(t, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift);
  if (cfg.time_embedding_type == "fourier") return fourier_proj->forward(t);
  return learned_proj->forward(t.to(at::kLong));
}

at::Tensor UNet2DModelImpl::class_embed(const at::Tensor& labels, int64_t batch) {
  const auto& cfg = config_;
  if (!cfg.conditional()) {
    if (labels.defined()) throw std::invalid_argument("UNet2DModel: this model is not class-conditional; pass no class labels");
    return {};
  }
  if (!labels.defined()) throw std::invalid_argument("UNet2DModel: this class-conditional model needs class labels");
  if (cfg.class_embed_type == "identity") {
    if (labels.dim() != 2 || labels.size(0) != batch || labels.size(1) != cfg.time_embed_dim())
      throw std::invalid_argument("UNet2DModel: \"identity\" class embeddings must be (N, " +
                                  std::to_string(cfg.time_embed_dim()) + ")");
    return labels.to(at::kFloat);
  }
  const at::Tensor l = labels.reshape({-1});
  if (l.numel() != batch)
    throw std::invalid_argument("UNet2DModel: " + std::to_string(l.numel()) + " class labels for a batch of " +
                                std::to_string(batch));
  if (class_timestep) return class_timestep->forward(time_proj(l.to(at::kFloat)));
  const int64_t lo = l.min().item<int64_t>(), hi = l.max().item<int64_t>();
  if (lo < 0 || hi >= *cfg.num_class_embeds)
    throw std::invalid_argument("UNet2DModel: class labels must be in [0, " + std::to_string(*cfg.num_class_embeds) + ")");
  return class_table->forward(l.to(at::kLong));
}

at::Tensor UNet2DModelImpl::time_embed(const at::Tensor& timesteps, const at::Tensor& class_labels) {
  at::Tensor emb = time_embedding->forward(time_proj(timesteps));
  const at::Tensor c = class_embed(class_labels, emb.size(0));
  return c.defined() ? emb + c : emb;
}

std::vector<std::pair<std::string, ResnetBlock2DImpl*>> UNet2DModelImpl::resnets_in_order() {
  std::vector<std::pair<std::string, ResnetBlock2DImpl*>> out;
  for (const auto& item : named_modules("", false))
    if (auto* r = item.value()->as<ResnetBlock2DImpl>()) out.emplace_back(item.key(), r);
  // named_modules is depth-first in registration order: down_blocks, mid_block, up_blocks.
  return out;
}

std::vector<at::Tensor> UNet2DModelImpl::temporal_features(const at::Tensor& timesteps, const at::Tensor& class_labels) {
  at::Tensor t = timesteps.reshape({-1});
  if (class_labels.defined() && t.numel() == 1) t = t.expand({class_labels.size(0)});
  at::Tensor temb = time_embed(t, class_labels);
  std::vector<at::Tensor> features;
  for (auto& [name, resnet] : resnets_in_order()) features.push_back(resnet->temporal_feature(temb));
  return features;
}

at::Tensor UNet2DModelImpl::forward(const at::Tensor& sample, const at::Tensor& timesteps,
                                    const at::Tensor& class_labels) {
  TimeContext time;
  time.temb = time_embed(broadcast_timesteps(timesteps, sample.size(0)), class_labels);
  return run(sample, timesteps, time);
}

at::Tensor UNet2DModelImpl::forward_with_features(const at::Tensor& sample, const at::Tensor& timesteps,
                                                  const std::vector<at::Tensor>& features) {
  TimeContext time;
  time.features = &features;
  return run(sample, timesteps, time);
}

at::Tensor UNet2DModelImpl::run(const at::Tensor& sample, const at::Tensor& timesteps, TimeContext& time) {
  const auto& cfg = config_;
  if (sample.dim() != 4 || sample.size(1) != cfg.in_channels)
    throw std::invalid_argument("UNet2DModel: sample must be (N, " + std::to_string(cfg.in_channels) +
                                ", H, W), got " + c10::str(sample.sizes()));
  const int64_t factor = int64_t{1} << (cfg.block_out_channels.size() - 1);
  if (sample.size(2) % factor != 0 || sample.size(3) % factor != 0)
    throw std::invalid_argument("UNet2DModel: height and width must be multiples of " + std::to_string(factor));
  at::Tensor x = cfg.center_input_sample ? sample * 2.0 - 1.0 : sample;
  x = conv_in->forward(x);
  std::vector<at::Tensor> skips{x};
  for (auto& block : *down_blocks) x = block->as<DownBlock>()->forward(x, time, skips);
  if (mid_block) x = mid_block->forward(x, time);
  for (auto& block : *up_blocks) x = block->as<UpBlock>()->forward(x, time, skips);
  x = conv_out->forward(at::silu(conv_norm_out->forward(x)));
  if (cfg.time_embedding_type == "fourier")
    x = x / broadcast_timesteps(timesteps, x.size(0)).to(at::kFloat).reshape({-1, 1, 1, 1});
  return x;
}

int64_t UNet2DModelImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace qdm
