#include "format/graph/unet_2d.h"

#include <optional>
#include <stdexcept>
#include <vector>

namespace qdm::graph {
namespace {

class UNetDescription {
 public:
  UNetDescription(const UNetConfig& c, int height, int width) : c_(c), b_("UNet2DModel"), height_(height), width_(width) {}

  Graph build() {
    const auto& boc = c_.block_out_channels;
    // Nodes in diffusers' module registration order (time_proj, conv_in, time_embedding,
    // class_embedding, down_blocks, ...), which is also an order a forward pass can run them
    // in: LibTorch initialises the parameters in this order.
    int x = b_.input(Input::kSample, Layout::kImage, c_.in_channels, height_, width_);
    const int t = b_.input(Input::kTimestep, Layout::kScalar, 1);
    const int proj = time_proj(t);
    if (c_.center_input_sample) x = b_.affine(x, 2.0, -1.0);
    x = b_.conv("conv_in", x, boc[0], 3);
    time_embedding(proj);
    std::vector<int> skips{x};
    for (size_t i = 0; i < boc.size(); ++i) {
      const int out_ch = boc[i];
      const std::string p = "down_blocks." + std::to_string(i);
      const bool attn = c_.down_block_types[i] == "AttnDownBlock2D";
      for (int j = 0; j < c_.layers_per_block; ++j) {
        x = resnet(p + ".resnets." + std::to_string(j), x, out_ch);
        if (attn) x = attention(p + ".attentions." + std::to_string(j), x, c_.norm_num_groups);
        skips.push_back(x);
      }
      if (i + 1 < boc.size()) {
        const std::string name = p + ".downsamplers.0.conv";
        if (c_.downsample_padding == 0) x = b_.conv(name, b_.pad_bottom_right(x, 1), out_ch, 3, 2, 0);
        else x = b_.conv(name, x, out_ch, 3, 2, c_.downsample_padding);
        skips.push_back(x);
      }
    }
    if (c_.has_mid_block) {
      const double scale = c_.mid_block_scale_factor;
      x = resnet("mid_block.resnets.0", x, boc.back(), scale);
      if (c_.add_attention) {
        // diffusers: attn_norm_num_groups, else norm_num_groups for the "default" time shift and
        // no norm at all for "scale_shift".
        std::optional<int> groups = c_.attn_norm_num_groups;
        if (!groups && c_.resnet_time_scale_shift == "default") groups = c_.norm_num_groups;
        x = attention("mid_block.attentions.0", x, groups, scale);
      }
      x = resnet("mid_block.resnets.1", x, boc.back(), scale);
    }
    const std::vector<int> rev(boc.rbegin(), boc.rend());
    for (size_t i = 0; i < rev.size(); ++i) {
      const std::string p = "up_blocks." + std::to_string(i);
      const bool attn = c_.up_block_types[i] == "AttnUpBlock2D";
      for (int j = 0; j < c_.layers_per_block + 1; ++j) {
        x = b_.concat(x, skips.back());
        skips.pop_back();
        x = resnet(p + ".resnets." + std::to_string(j), x, rev[i]);
        if (attn) x = attention(p + ".attentions." + std::to_string(j), x, c_.norm_num_groups);
      }
      if (i + 1 < rev.size()) x = b_.conv(p + ".upsamplers.0.conv", b_.upsample2x(x), rev[i], 3);
    }
    x = b_.group_norm("conv_norm_out", x, c_.norm_num_groups, c_.norm_eps);
    x = b_.conv("conv_out", b_.silu(x), c_.out_channels, 3);
    if (c_.time_embedding_type == "fourier") x = b_.divide_by_timestep(x, t);
    return b_.finish(x);
  }

 private:
  // t (or a class label) -> the projection time_proj gives it.
  int time_proj(int t) {
    const int dim = c_.block_out_channels[0];
    if (c_.time_embedding_type == "fourier") return b_.fourier_proj("time_proj", t, dim);
    if (c_.time_embedding_type == "learned") return b_.embedding("time_proj", t, *c_.num_train_timesteps, dim);
    return b_.timestep_proj(t, dim, c_.flip_sin_to_cos, c_.freq_shift);
  }
  int timestep_embedding(const std::string& name, int x) {
    const int dim = c_.time_embed_dim();
    return b_.linear(name + ".linear_2", b_.silu(b_.linear(name + ".linear_1", x, dim)), dim);
  }
  void time_embedding(int proj) {
    int emb = timestep_embedding("time_embedding", proj);
    if (c_.conditional()) {
      int class_emb;
      if (c_.class_embed_type == "identity") {
        class_emb = b_.input(Input::kClassEmbedding, Layout::kVector, c_.time_embed_dim());
      } else {
        const int label = b_.input(Input::kClassLabel, Layout::kScalar, 1);
        class_emb = c_.class_embed_type == "timestep" ? timestep_embedding("class_embedding", time_proj(label))
                                                      : b_.embedding("class_embedding", label, *c_.num_class_embeds, c_.time_embed_dim());
      }
      emb = b_.add(emb, class_emb);
    }
    b_.name_value(emb, "temb");
    temb_act_ = b_.silu(emb);  // every resnet's time_emb_proj reads SiLU(temb)
  }

  // diffusers ResnetBlock2D.
  int resnet(const std::string& name, int x, int out_ch, double output_scale = 1.0) {
    b_.begin_block(name, "resnet", x);
    const bool scale_shift = c_.resnet_time_scale_shift == "scale_shift";
    const int in_ch = b_.value(x).c;
    int h = b_.group_norm(name + ".norm1", x, c_.norm_num_groups, c_.norm_eps);
    h = b_.conv(name + ".conv1", b_.silu(h), out_ch, 3);
    const int feature = b_.linear(name + ".time_emb_proj", temb_act_, scale_shift ? 2 * out_ch : out_ch);
    if (scale_shift) h = b_.scale_shift(b_.group_norm(name + ".norm2", h, c_.norm_num_groups, c_.norm_eps), feature);
    else h = b_.group_norm(name + ".norm2", b_.add(h, feature), c_.norm_num_groups, c_.norm_eps);
    h = b_.conv(name + ".conv2", b_.silu(h), out_ch, 3);
    const int skip = in_ch != out_ch ? b_.conv(name + ".conv_shortcut", x, out_ch, 1, 1, 0) : x;
    int out = b_.add(skip, h);
    if (output_scale != 1.0) out = b_.affine(out, 1.0, 0.0, output_scale);
    b_.end_block(out);
    return out;
  }

  // diffusers Attention with residual_connection (AttnDownBlock2D, AttnUpBlock2D, UNetMidBlock2D).
  int attention(const std::string& name, int x, std::optional<int> groups, double rescale = 1.0) {
    b_.begin_block(name, "attention", x);
    const ValueInfo in = b_.value(x);
    const int heads = in.c / c_.head_dim_for(in.c);
    const int normed = groups ? b_.group_norm(name + ".group_norm", x, *groups, c_.norm_eps) : x;
    const int seq = b_.to_sequence(normed);
    const int q = b_.linear(name + ".to_q", seq, in.c), k = b_.linear(name + ".to_k", seq, in.c),
              v = b_.linear(name + ".to_v", seq, in.c);
    const int o = b_.linear(name + ".to_out.0", b_.attention(name, q, k, v, heads), in.c);
    int out = b_.add(b_.to_image(o, x), x);
    if (rescale != 1.0) out = b_.affine(out, 1.0, 0.0, rescale);
    b_.end_block(out);
    return out;
  }

  const UNetConfig& c_;
  Builder b_;
  int height_, width_;
  int temb_act_ = -1;
};

}  // namespace

Graph describe_unet_2d(const UNetConfig& config, int height, int width) {
  config.validate();
  const int h = height > 0 ? height : config.sample_size, w = width > 0 ? width : config.sample_size;
  const int factor = 1 << (config.block_out_channels.size() - 1);
  if (h % factor != 0 || w % factor != 0)
    throw std::invalid_argument("UNet2DModel: height and width must be multiples of " + std::to_string(factor));
  return UNetDescription(config, h, w).build();
}

bool is_temporal_layer(const std::string& name) {
  return name.rfind("time_embedding.", 0) == 0 || name.rfind("class_embedding.", 0) == 0 ||
         name.find(".time_emb_proj") != std::string::npos;
}

}  // namespace qdm::graph
