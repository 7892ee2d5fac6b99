#include "format/graph/autoencoder_kl.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "format/safetensors.h"

namespace qdm::graph {
namespace {

constexpr double kEps = 1e-6;

class VaeDescription {
 public:
  explicit VaeDescription(const AutoencoderKLConfig& c) : c_(c), b_("AutoencoderKL") {}

  // The encoder's moments (mean, log-variance), after quant_conv.
  int encoder(int height, int width) {
    const auto& boc = c_.block_out_channels;
    int x = b_.input(Input::kSample, Layout::kImage, c_.in_channels, height, width);
    x = b_.conv("encoder.conv_in", x, boc[0], 3);
    for (size_t i = 0; i < boc.size(); ++i) {
      const std::string p = "encoder.down_blocks." + std::to_string(i);
      for (int j = 0; j < c_.layers_per_block; ++j) x = resnet(p + ".resnets." + std::to_string(j), x, boc[i]);
      if (i + 1 < boc.size()) x = b_.conv(p + ".downsamplers.0.conv", b_.pad_bottom_right(x, 1), boc[i], 3, 2, 0);
    }
    x = mid_block("encoder.mid_block", x);
    x = b_.group_norm("encoder.conv_norm_out", x, c_.norm_num_groups, kEps);
    x = b_.conv("encoder.conv_out", b_.silu(x), 2 * c_.latent_channels, 3);
    if (c_.use_quant_conv) x = b_.conv("quant_conv", x, 2 * c_.latent_channels, 1, 1, 0);
    return x;
  }
  Graph finish_encoder_mean(int moments) { return b_.finish(b_.slice_channels(moments, 0, c_.latent_channels)); }
  Graph finish(int x) { return b_.finish(x); }

  int decoder(int height, int width) {
    const auto& boc = c_.block_out_channels;
    int x = b_.input(Input::kLatent, Layout::kImage, c_.latent_channels, height, width);
    if (c_.use_post_quant_conv) x = b_.conv("post_quant_conv", x, c_.latent_channels, 1, 1, 0);
    x = b_.conv("decoder.conv_in", x, boc.back(), 3);
    x = mid_block("decoder.mid_block", x);
    for (size_t i = 0; i < boc.size(); ++i) {
      const int ch = boc[boc.size() - 1 - i];
      const std::string p = "decoder.up_blocks." + std::to_string(i);
      for (int j = 0; j < c_.layers_per_block + 1; ++j) x = resnet(p + ".resnets." + std::to_string(j), x, ch);
      if (i + 1 < boc.size()) x = b_.conv(p + ".upsamplers.0.conv", b_.upsample2x(x), ch, 3);
    }
    x = b_.group_norm("decoder.conv_norm_out", x, c_.norm_num_groups, kEps);
    return b_.conv("decoder.conv_out", b_.silu(x), c_.out_channels, 3);
  }
  void name_value(int v, const std::string& name) { b_.name_value(v, name); }

 private:
  // ResnetBlock2D with temb_channels None.
  int resnet(const std::string& name, int x, int out_ch) {
    b_.begin_block(name, "resnet", x);
    const int in_ch = b_.value(x).c;
    int h = b_.group_norm(name + ".norm1", x, c_.norm_num_groups, kEps);
    h = b_.conv(name + ".conv1", b_.silu(h), out_ch, 3);
    h = b_.group_norm(name + ".norm2", h, c_.norm_num_groups, kEps);
    h = b_.conv(name + ".conv2", b_.silu(h), out_ch, 3);
    const int skip = in_ch != out_ch ? b_.conv(name + ".conv_shortcut", x, out_ch, 1, 1, 0) : x;
    const int out = b_.add(skip, h);
    b_.end_block(out);
    return out;
  }
  // UNetMidBlock2D: resnet, one attention head over the whole width (attention_head_dim is the
  // last block's width), resnet.
  int mid_block(const std::string& p, int x) {
    const int ch = c_.block_out_channels.back();
    x = resnet(p + ".resnets.0", x, ch);
    if (c_.mid_block_add_attention) {
      const std::string name = p + ".attentions.0";
      b_.begin_block(name, "attention", x);
      const int seq = b_.to_sequence(b_.group_norm(name + ".group_norm", x, c_.norm_num_groups, kEps));
      const int q = b_.linear(name + ".to_q", seq, ch), k = b_.linear(name + ".to_k", seq, ch), v = b_.linear(name + ".to_v", seq, ch);
      const int o = b_.linear(name + ".to_out.0", b_.attention(name, q, k, v, 1), ch);
      const int out = b_.add(b_.to_image(o, x), x);
      b_.end_block(out);
      x = out;
    }
    return resnet(p + ".resnets.1", x, ch);
  }

  const AutoencoderKLConfig& c_;
  Builder b_;
};

void check_size(int h, int w, int multiple) {
  if (h <= 0 || w <= 0 || h % multiple != 0 || w % multiple != 0)
    throw std::invalid_argument("AutoencoderKL: height and width must be positive multiples of " + std::to_string(multiple));
}

// An image size (0: the config's sample_size), checked against the VAE's factor.
std::pair<int, int> image_size(const AutoencoderKLConfig& config, int height, int width) {
  config.validate();
  const int h = height > 0 ? height : config.sample_size, w = width > 0 ? width : config.sample_size;
  check_size(h, w, config.factor());
  return {h, w};
}

}  // namespace

Graph describe_vae_encoder(const AutoencoderKLConfig& config, int height, int width) {
  const auto [h, w] = image_size(config, height, width);
  VaeDescription d(config);
  return d.finish_encoder_mean(d.encoder(h, w));
}

Graph describe_vae_decoder(const AutoencoderKLConfig& config, int height, int width) {
  config.validate();
  const int h = height > 0 ? height : config.sample_size / config.factor(),
            w = width > 0 ? width : config.sample_size / config.factor();
  check_size(h, w, 1);
  VaeDescription d(config);
  return d.finish(d.decoder(h, w));
}

Graph describe_autoencoder_kl(const AutoencoderKLConfig& config, int height, int width) {
  const auto [h, w] = image_size(config, height, width);
  VaeDescription d(config);
  d.name_value(d.encoder(h, w), "moments");
  return d.finish(d.decoder(h / config.factor(), w / config.factor()));
}

bool vae_encoder_tensor(const std::string& name) { return name.rfind("encoder.", 0) == 0 || name.rfind("quant_conv.", 0) == 0; }

bool stores_vae_encoder(const SafeTensors& weights) {
  const auto& stored = weights.tensors();
  return std::any_of(stored.begin(), stored.end(), [](const TensorInfo& t) { return vae_encoder_tensor(t.name); });
}

Graph describe_stored_vae(const AutoencoderKLConfig& config, bool with_encoder) {
  return with_encoder ? describe_autoencoder_kl(config) : describe_vae_decoder(config);
}

}  // namespace qdm::graph
