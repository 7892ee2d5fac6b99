#include "format/graph/unet_2d.h"

#include <optional>
#include <stdexcept>
#include <vector>

namespace qdm::graph {
namespace {

class UNetDescription {
 public:
  UNetDescription(const UNetConfig& c, int height, int width, int text_length)
      : c_(c), b_(c.class_name), height_(height), width_(width), text_length_(text_length) {}

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
    if (c_.text_conditioned())
      text_ = b_.input(Input::kTextStates, Layout::kSequence, *c_.cross_attention_dim, 1, text_length_);
    std::vector<int> skips{x};
    for (size_t i = 0; i < boc.size(); ++i) {
      const int out_ch = boc[i];
      const std::string p = "down_blocks." + std::to_string(i);
      const bool attn = c_.down_block_types[i] == "AttnDownBlock2D", cross = c_.down_block_types[i] == "CrossAttnDownBlock2D";
      for (int j = 0; j < c_.layers_per_block; ++j) {
        x = resnet(p + ".resnets." + std::to_string(j), x, out_ch);
        if (attn) x = attention(p + ".attentions." + std::to_string(j), x, c_.norm_num_groups);
        if (cross) x = transformer(p + ".attentions." + std::to_string(j), x, c_.heads_per_block[i], c_.transformer_layers_per_block[i]);
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
      if (c_.mid_cross_attention) {
        x = transformer("mid_block.attentions.0", x, c_.heads_per_block.back(), c_.transformer_layers_per_block.back());
      } else if (c_.add_attention) {
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
      const bool attn = c_.up_block_types[i] == "AttnUpBlock2D", cross = c_.up_block_types[i] == "CrossAttnUpBlock2D";
      const size_t mirrored = rev.size() - 1 - i;  // the down block of the same level
      for (int j = 0; j < c_.layers_per_block + 1; ++j) {
        x = b_.concat(x, skips.back());
        skips.pop_back();
        x = resnet(p + ".resnets." + std::to_string(j), x, rev[i]);
        if (attn) x = attention(p + ".attentions." + std::to_string(j), x, c_.norm_num_groups);
        if (cross)
          x = transformer(p + ".attentions." + std::to_string(j), x, c_.heads_per_block[mirrored],
                          c_.transformer_layers_per_block[mirrored]);
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

  // diffusers Transformer2DModel (continuous input): GroupNorm (eps 1e-6), proj_in (a 1x1 conv,
  // or a linear layer with use_linear_projection), BasicTransformerBlocks (LayerNorm -> self-
  // attention, LayerNorm -> cross-attention on the text states, LayerNorm -> GEGLU feed-forward,
  // each with a residual; q/k/v without bias), proj_out, plus the block's input.
  int transformer(const std::string& name, int x, int heads, int layers) {
    b_.begin_block(name, "transformer", x);
    const ValueInfo in = b_.value(x);
    const int dim = in.c;
    int h = b_.group_norm(name + ".norm", x, c_.norm_num_groups, 1e-6);
    if (c_.use_linear_projection) h = b_.linear(name + ".proj_in", b_.to_sequence(h), dim);
    else h = b_.to_sequence(b_.conv(name + ".proj_in", h, dim, 1, 1, 0));
    for (int l = 0; l < layers; ++l) {
      const std::string t = name + ".transformer_blocks." + std::to_string(l);
      int n = b_.layer_norm(t + ".norm1", h, 1e-5);
      int q = b_.linear(t + ".attn1.to_q", n, dim, false), k = b_.linear(t + ".attn1.to_k", n, dim, false),
          v = b_.linear(t + ".attn1.to_v", n, dim, false);
      h = b_.add(h, b_.linear(t + ".attn1.to_out.0", b_.attention(t + ".attn1", q, k, v, heads), dim));
      n = b_.layer_norm(t + ".norm2", h, 1e-5);
      q = b_.linear(t + ".attn2.to_q", n, dim, false);
      k = b_.linear(t + ".attn2.to_k", text_, dim, false);
      v = b_.linear(t + ".attn2.to_v", text_, dim, false);
      h = b_.add(h, b_.linear(t + ".attn2.to_out.0", b_.attention(t + ".attn2", q, k, v, heads), dim));
      n = b_.layer_norm(t + ".norm3", h, 1e-5);
      const int ff = b_.geglu(b_.linear(t + ".ff.net.0.proj", n, 8 * dim));
      h = b_.add(h, b_.linear(t + ".ff.net.2", ff, dim));
    }
    int out;
    if (c_.use_linear_projection) out = b_.to_image(b_.linear(name + ".proj_out", h, dim), x);
    else out = b_.conv(name + ".proj_out", b_.to_image(h, x), dim, 1, 1, 0);
    out = b_.add(out, x);
    b_.end_block(out);
    return out;
  }

  const UNetConfig& c_;
  Builder b_;
  int height_, width_, text_length_;
  int temb_act_ = -1;
  int text_ = -1;
};

}  // namespace

Graph describe_unet_2d(const UNetConfig& config, int height, int width, int text_length) {
  config.validate();
  const int h = height > 0 ? height : config.sample_size, w = width > 0 ? width : config.sample_size;
  const int multiple = config.size_multiple();
  if (h % multiple != 0 || w % multiple != 0)
    throw std::invalid_argument(config.class_name + ": height and width must be multiples of " + std::to_string(multiple));
  if (config.text_conditioned() && text_length <= 0) throw std::invalid_argument("UNet2DConditionModel: the text length must be positive");
  return UNetDescription(config, h, w, text_length).build();
}

bool is_temporal_layer(const std::string& name) {
  return name.rfind("time_embedding.", 0) == 0 || name.rfind("class_embedding.", 0) == 0 ||
         name.find(".time_emb_proj") != std::string::npos;
}

}  // namespace qdm::graph
