#include "engine/runtime/plan/execution_plan.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>

#include "engine/model/down_block.h"
#include "engine/model/mid_block.h"
#include "engine/model/resample.h"
#include "engine/model/resnet_block.h"
#include "engine/model/up_block.h"
#include "engine/quant/quant_model.h"
#include "engine/kernels/qconv.h"
#include "engine/kernels/upsample_fold.h"

namespace qdm {

using plan::CodesTarget;
using plan::Epilogue;
using plan::Table;
using plan::Value;

namespace {

std::vector<float> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kFloat).contiguous().cpu();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

// Walks the UNet as its forward() does and emits the plan's ops.
class PlanBuilder {
 public:
  PlanBuilder(ExecutionPlan& p, const QuantizedUNet& q) : p_(p), q_(q), cfg_(q.unet->config()) {
    for (const auto& l : q.layers) layers_[l->name] = l.get();
    for (const auto& a : q.attention) attention_[a->name] = a.get();
  }

  void build() {
    UNet2DModelImpl& unet = *q_.unet.ptr();
    const int size = cfg_.sample_size;
    p_.in_channels_ = cfg_.in_channels;
    p_.out_channels_ = cfg_.out_channels;
    p_.input_ = value(cfg_.in_channels, size, size);
    time_features();
    plan_concatenations();
    Value h = conv("conv_in", unet.conv_in.get(), p_.input_, skip_slot(cfg_.block_out_channels[0], size, size), {}, false);
    std::vector<Value> skips{h};
    for (size_t b = 0; b < unet.down_blocks->size(); ++b) {
      auto* block = unet.down_blocks[b]->as<DownBlockImpl>();
      const std::string name = "down_blocks." + std::to_string(b);
      for (size_t i = 0; i < block->resnets->size(); ++i) {
        auto* r = block->resnets[i]->as<ResnetBlock2DImpl>();
        const Value slot = skip_slot(static_cast<int>(r->conv2->out_channels), h.h, h.w);
        h = resnet(name + ".resnets." + std::to_string(i), r, h, block->attentions ? Value{} : slot);
        if (block->attentions)
          h = attention(name + ".attentions." + std::to_string(i), block->attentions[i]->as<AttentionBlockImpl>(), h, slot);
        skips.push_back(h);
      }
      if (block->downsamplers) {
        auto* down = block->downsamplers[0]->as<Downsample2DImpl>();
        h = conv(name + ".downsamplers.0.conv", down->conv.get(), h, skip_slot(h.c, h.h / 2, h.w / 2), {}, false);
        skips.push_back(h);
      }
    }
    size_t k = 0;  // up-path resnets so far
    if (unet.mid_block) {  // (without one, the last down output is a skip and reaches up resnet 0 by a copy)
      auto* mid = unet.mid_block.get();
      h = resnet("mid_block.resnets.0", mid->resnets[0]->as<ResnetBlock2DImpl>(), h);
      if (mid->attentions) h = attention("mid_block.attentions.0", mid->attentions[0]->as<AttentionBlockImpl>(), h);
      auto* last = mid->resnets[1]->as<ResnetBlock2DImpl>();
      h = resnet("mid_block.resnets.1", last, h, h_slot(0, value_shape(static_cast<int>(last->conv2->out_channels), h.h, h.w)));
    }
    for (size_t b = 0; b < unet.up_blocks->size(); ++b) {
      auto* block = unet.up_blocks[b]->as<UpBlockImpl>();
      const std::string name = "up_blocks." + std::to_string(b);
      for (size_t i = 0; i < block->resnets->size(); ++i, ++k) {
        const Value skip = skips.back();
        skips.pop_back();
        // cat(h, skip) along channels: two slices of one buffer, written there by their producers
        const Value cat = k < cats_.size() ? cats_[k] : value(h.c + skip.c, h.h, h.w);
        if (!same(h, slice(cat, 0, h.c))) emit(plan::copy_op(h, slice(cat, 0, h.c)), name + " concat");
        if (!same(skip, slice(cat, h.c, skip.c))) emit(plan::copy_op(skip, slice(cat, h.c, skip.c)), name + " concat");
        // The output that feeds the next up resnet goes straight into its concatenation.
        const bool upsampled = i + 1 == block->resnets->size() && block->upsamplers;
        auto* r = block->resnets[i]->as<ResnetBlock2DImpl>();
        const Value next = upsampled ? Value{} : h_slot(k + 1, value_shape(static_cast<int>(r->conv2->out_channels), cat.h, cat.w));
        h = resnet(name + ".resnets." + std::to_string(i), r, cat, block->attentions ? Value{} : next);
        if (block->attentions)
          h = attention(name + ".attentions." + std::to_string(i), block->attentions[i]->as<AttentionBlockImpl>(), h, next);
      }
      if (block->upsamplers) {
        auto* up = block->upsamplers[0]->as<Upsample2DImpl>();
        const Value next = h_slot(k, value_shape(h.c, h.h * 2, h.w * 2));
        h = conv(name + ".upsamplers.0.conv", up->conv.get(), h, next.buffer >= 0 ? next : value(h.c, h.h * 2, h.w * 2), {}, true);
      }
    }
    // conv_norm_out + SiLU + conv_out
    const Value out = value(cfg_.out_channels, size, size);
    norm_then_conv("conv_norm_out", unet.conv_norm_out.get(), true, h, "conv_out", unet.conv_out.get(), out, {});
    p_.output_ = out;
  }

 private:
  // Concatenations without copies: the input cat(h, skip) of every up-path resnet is one buffer,
  // allocated before the walk (the skips' channels and sizes from the down path, the resnet's
  // input channels); the op producing a skip (down path) and the op producing h (up path) write
  // straight into its two column slices. Where a shape does not line up the walk falls back to
  // copies.
  void plan_concatenations() {
    UNet2DModelImpl& unet = *q_.unet.ptr();
    struct Skip {
      int c, h, w;
    };
    std::vector<Skip> skips;
    int size = cfg_.sample_size;
    skips.push_back({static_cast<int>(unet.conv_in->out_channels), size, size});
    for (size_t b = 0; b < unet.down_blocks->size(); ++b) {
      auto* block = unet.down_blocks[b]->as<DownBlockImpl>();
      for (size_t i = 0; i < block->resnets->size(); ++i)
        skips.push_back({static_cast<int>(block->resnets[i]->as<ResnetBlock2DImpl>()->conv2->out_channels), size, size});
      if (block->downsamplers) {
        size /= 2;
        skips.push_back({skips.back().c, size, size});
      }
    }
    std::vector<int> inputs;  // up resnets' input channels, in up order
    for (size_t b = 0; b < unet.up_blocks->size(); ++b) {
      auto* block = unet.up_blocks[b]->as<UpBlockImpl>();
      for (size_t i = 0; i < block->resnets->size(); ++i)
        inputs.push_back(static_cast<int>(block->resnets[i]->as<ResnetBlock2DImpl>()->conv1->in_channels));
    }
    if (inputs.size() != skips.size()) return;
    for (size_t k = 0; k < inputs.size(); ++k) {
      const Skip& s = skips[skips.size() - 1 - k];
      if (inputs[k] <= s.c) return;
    }
    for (size_t k = 0; k < inputs.size(); ++k) {
      const Skip& s = skips[skips.size() - 1 - k];
      cats_.push_back(value(inputs[k], s.h, s.w));
      skip_c_.push_back(s.c);
    }
  }
  // Where the next skip (push order) is written: its slice of the concatenation that reads it.
  Value skip_slot(int c, int h, int w) {
    const size_t s = next_skip_++;
    if (s >= cats_.size()) return value(c, h, w);
    const size_t k = cats_.size() - 1 - s;  // the up resnet consuming it
    if (skip_c_[k] != c || cats_[k].h != h || cats_[k].w != w) return value(c, h, w);
    return slice(cats_[k], cats_[k].c - c, c);
  }
  // Where the h of up resnet k is written (the shape it will have), or none (buffer -1).
  Value h_slot(size_t k, Value shape) const {
    if (k >= cats_.size()) return {};
    const Value& cat = cats_[k];
    if (cat.c - skip_c_[k] != shape.c || cat.h != shape.h || cat.w != shape.w) return {};
    return slice(cat, 0, shape.c);
  }
  static Value value_shape(int c, int h, int w) { return {-1, 0, c, c, h, w}; }
  static bool same(const Value& a, const Value& b) {
    return a.buffer == b.buffer && a.offset == b.offset && a.c == b.c && a.ld == b.ld && a.h == b.h && a.w == b.w;
  }

  Value value(int c, int h, int w) {
    p_.buffer_floats_.push_back(static_cast<int64_t>(h) * w * c);
    return {static_cast<int>(p_.buffer_floats_.size()) - 1, 0, c, c, h, w};
  }
  static Value slice(Value v, int offset, int c) {
    v.offset += offset;
    v.c = c;
    return v;
  }
  CodesTarget codes(int h, int w, int c, int pad, const QuantLayer& layer) {
    PaddedShape s{h, w, c, pad};
    p_.codes_bytes_.push_back(s.bytes());
    return {static_cast<int>(p_.codes_bytes_.size()) - 1, s, table(layer.act)};
  }
  const Table* table(const ActQuantizer& a) {
    auto t = std::make_unique<Table>();
    t->scale = a.scale;
    t->zero = a.zero_point;
    t->bits = a.bits;
    p_.tables_.push_back(std::move(t));
    return p_.tables_.back().get();
  }
  void emit(std::unique_ptr<plan::Op> op, const std::string& name) {
    op->name = name;
    p_.ops_.push_back(std::move(op));
  }
  const QuantLayer* layer(const std::string& name) const {
    auto it = layers_.find(name);
    return it == layers_.end() ? nullptr : it->second;
  }
  bool integer(const std::string& name) const {
    const QuantLayer* l = layer(name);
    return l && l->quant_input;
  }
  // The weights of a layer with an fp32 input as (k*k*C_in or C_in, C_out): the codes of a
  // quantized layer (kept layers at keep_bits, keep_fp_input layers at their bits), else fp32.
  plan::F32Weights f32_weights(const std::string& name, const at::Tensor& fp) {
    plan::F32Weights out;
    const QuantLayer* l = layer(name);
    auto to_kn = [](const at::Tensor& w) {  // (N, C, k, k) or (N, C) -> (K, N), K in (ky, kx, c) order
      return w.dim() == 4 ? w.permute({2, 3, 1, 0}).reshape({-1, w.size(0)}) : w.t();
    };
    if (l && l->fake_weight.defined()) {
      const at::Tensor codes = quantize_codes(l->fake_weight.detach(), l->weight_params);  // same shape as w
      const at::Tensor kn = to_kn(codes).contiguous();
      out.codes.assign(kn.data_ptr<uint8_t>(), kn.data_ptr<uint8_t>() + kn.numel());
      out.zero = to_vector(l->weight_params.zero_point.reshape({-1}).expand({l->fake_weight.size(0)}));
      out.scale = to_vector(l->weight_params.scale.reshape({-1}).expand({l->fake_weight.size(0)}));
    } else {
      out.values = to_vector(to_kn(fp));
    }
    p_.weight_bytes_ += out.bytes();
    return out;
  }
  PackedWeights pack(const QuantLayer& l, bool conv, bool lanes) {
    const at::Tensor w = l.fake_weight.defined() ? l.fake_weight : fake_quant(l.fp_weight().detach(), l.weight_params);
    const int64_t n = w.size(0), k = w.numel() / n;
    at::Tensor codes = quantize_codes(w.reshape({n, k}), l.weight_params);
    if (conv) {  // K in (ky, kx, c) order, as the patches
      const int64_t kk = l.conv->kernel, ch = k / (kk * kk);
      codes = codes.reshape({n, ch, kk, kk}).permute({0, 2, 3, 1}).reshape({n, k});
    }
    codes = codes.contiguous();
    const at::Tensor scale = l.weight_params.scale.to(at::kFloat).contiguous();
    const at::Tensor zero = l.weight_params.zero_point.to(at::kFloat).contiguous();
    PackedWeights p = pack_weights(codes.data_ptr<uint8_t>(), static_cast<int>(n), static_cast<int>(k), l.weight_params.bits,
                                   scale.data_ptr<float>(), zero.data_ptr<float>(),
                                   lanes ? WeightLayout::kRows : layout_for(p_.isa_));
    p_.weight_bytes_ += p.bytes();
    return p;
  }
  // Additive-quantization codes as the kernels decode them (K in (ky, kx, c) order already).
  std::shared_ptr<const VqWeights> vq_weights(const QuantLayer& l, bool lanes) {
    const vq::AqCodes& q = *l.vq;
    const at::Tensor codes = q.codes.to(at::kByte).contiguous();
    const at::Tensor words = q.codebooks.round().to(at::kChar).contiguous();
    const at::Tensor scale = q.scales.to(at::kFloat).contiguous();
    auto w = std::make_shared<VqWeights>(make_vq_weights(
        static_cast<int>(q.codes.size(0)), static_cast<int>(q.codes.size(1) * q.group), static_cast<int>(q.codes.size(2)),
        vq::codebook_bits(q), q.group,
        std::vector<uint8_t>(codes.data_ptr<uint8_t>(), codes.data_ptr<uint8_t>() + codes.numel()),
        std::vector<int8_t>(words.data_ptr<int8_t>(), words.data_ptr<int8_t>() + words.numel()), to_vector(scale),
        lanes ? WeightLayout::kRows : layout_for(p_.isa_)));
    p_.weight_bytes_ += w->bytes();
    return w;
  }
  // Whether an upsampled integer convolution may run as four phases (upsample_fold.h; the
  // weights must also fit int8 folded). QDM_PLAN_FOLD=0 turns it off (benchmarks, tests).
  bool fold_upsample(const QuantLayer& l, const Conv2dLayerImpl& c, int channels, const Epilogue& e) const {
    const char* env = std::getenv("QDM_PLAN_FOLD");
    return !(env && std::string(env) == "0") && !l.vq && c.kernel == 3 && c.stride == 1 && c.padding == 1 &&
           qconv_available(p_.isa_, channels) && e.residual.buffer < 0 && e.feature.buffer < 0;
  }
  // `packed`: the layer's weights already packed for `lanes` (else packed here).
  std::unique_ptr<plan::Op> conv_op(const QuantLayer& l, Conv2dLayerImpl* c, const CodesTarget& target, bool lanes, Value out,
                                    Epilogue e, std::optional<PackedWeights> packed = std::nullopt) {
    if (l.vq) return plan::vq_conv_op(target, c->kernel, c->stride, vq_weights(l, lanes), bias_of(c->bias), p_.isa_, lanes, out, e);
    return plan::int_conv_op(target, c->kernel, c->stride, packed ? std::move(*packed) : pack(l, true, lanes), bias_of(c->bias),
                             p_.isa_, lanes, out, e);
  }
  std::vector<float> bias_of(const at::Tensor& b) {
    p_.weight_bytes_ += static_cast<size_t>(b.numel()) * 4;
    return to_vector(b);
  }

  // A convolution on an fp32 value: integer (quantize its input, optionally upsampled, into a
  // padded image) or fp32 (upsampled first when asked).
  Value conv(const std::string& name, Conv2dLayerImpl* c, Value in, Value out, Epilogue e, bool upsample) {
    if (integer(name)) {
      const QuantLayer& l = *layer(name);
      const bool lanes = qconv_preferred(p_.isa_, in.c);
      std::optional<PackedWeights> packed;
      if (upsample && fold_upsample(l, *c, in.c, e)) {  // four 2x2 phases on the low-resolution codes
        packed = pack(l, true, true);
        if (upsample_fold_fits(*packed, in.c)) {
          const CodesTarget target = codes(in.h, in.w, in.c, c->padding, l);
          emit(plan::quantize_op(in, false, target), name + " input");
          emit(plan::upsampled_conv_op(target, std::move(*packed), bias_of(c->bias), p_.isa_, out), name);
          return out;
        }
        if (!lanes) {  // packed for the lane kernel, which this layer will not use: the GEMM's layout
          p_.weight_bytes_ -= packed->bytes();
          packed.reset();
        }
      }
      const int h = upsample ? in.h * 2 : in.h, w = upsample ? in.w * 2 : in.w;
      const CodesTarget target = codes(h, w, in.c, c->padding, l);
      emit(plan::quantize_op(in, upsample, target), name + " input");
      emit(conv_op(l, c, target, lanes, out, e, std::move(packed)), name);
      return out;
    }
    if (upsample) {
      const Value up = value(in.c, in.h * 2, in.w * 2);
      emit(plan::upsample_op(in, up), name + " upsample");
      in = up;
    }
    emit(plan::f32_conv_op(in, c->kernel, c->stride, c->padding, f32_weights(name, c->weight), bias_of(c->bias), out, e),
         name);
    return out;
  }

  // GroupNorm (+ SiLU) feeding a convolution: fused into its quantized input when integer.
  void norm_then_conv(const std::string& norm_name, torch::nn::GroupNormImpl* norm, bool silu, Value in,
                      const std::string& conv_name, Conv2dLayerImpl* c, Value out, Epilogue e) {
    const auto& o = norm->options;
    std::vector<float> gamma = o.affine() ? bias_of(norm->weight) : std::vector<float>{};
    std::vector<float> beta = o.affine() ? bias_of(norm->bias) : std::vector<float>{};
    if (integer(conv_name)) {
      const QuantLayer& l = *layer(conv_name);
      const CodesTarget target = codes(in.h, in.w, in.c, c->padding, l);
      emit(plan::group_norm_op(in, static_cast<int>(o.num_groups()), o.eps(), std::move(gamma), std::move(beta), silu, {},
                               target),
           norm_name);
      emit(conv_op(l, c, target, qconv_preferred(p_.isa_, in.c), out, e), conv_name);
      return;
    }
    const Value g = value(in.c, in.h, in.w);
    emit(plan::group_norm_op(in, static_cast<int>(o.num_groups()), o.eps(), std::move(gamma), std::move(beta), silu, g, {}),
         norm_name);
    emit(plan::f32_conv_op(g, c->kernel, c->stride, c->padding, f32_weights(conv_name, c->weight), bias_of(c->bias), out, e),
         conv_name);
  }

  Value linear(const std::string& name, LinearLayerImpl* l, Value in, Value out, Epilogue e) {
    if (integer(name)) {
      const QuantLayer& q = *layer(name);
      if (q.vq)
        emit(plan::vq_linear_op(in, table(q.act), vq_weights(q, false), bias_of(l->bias), p_.isa_, out, e), name);
      else
        emit(plan::int_linear_op(in, table(q.act), pack(q, false, false), bias_of(l->bias), p_.isa_, out, e), name);
    } else {
      emit(plan::f32_conv_op(in, 1, 1, 0, f32_weights(name, l->weight), bias_of(l->bias), out, e), name);
    }
    return out;
  }

  // `out`: where the block's output goes (buffer -1: a new value).
  Value resnet(const std::string& name, ResnetBlock2DImpl* r, Value x, Value out = {}) {
    const int cout = r->conv1->out_channels;
    const Value h1 = value(cout, x.h, x.w);
    Epilogue add_feature;
    add_feature.feature = features_.at(next_feature_++);
    norm_then_conv(name + ".norm1", r->norm1.get(), true, x, name + ".conv1", r->conv1.get(), h1, add_feature);
    Value skip = x;
    if (r->conv_shortcut) skip = conv(name + ".conv_shortcut", r->conv_shortcut.get(), x, value(cout, x.h, x.w), {}, false);
    if (out.buffer < 0) out = value(cout, x.h, x.w);
    Epilogue residual;
    residual.residual = skip;
    residual.factor = static_cast<float>(r->output_scale_factor);
    norm_then_conv(name + ".norm2", r->norm2.get(), true, h1, name + ".conv2", r->conv2.get(), out, residual);
    return out;
  }

  Value attention(const std::string& name, AttentionBlockImpl* a, Value x, Value dest = {}) {
    const Value rows{x.buffer, x.offset, x.c, x.ld, 1, static_cast<int>(x.pixels())};  // (L, C) per image
    Value g = rows;
    if (a->group_norm) {
      g = value(x.c, 1, static_cast<int>(x.pixels()));
      const auto& o = a->group_norm->options;
      emit(plan::group_norm_op(rows, static_cast<int>(o.num_groups()), o.eps(), bias_of(a->group_norm->weight),
                               bias_of(a->group_norm->bias), false, g, {}),
           name + ".group_norm");
    }
    const Value q = linear(name + ".to_q", a->to_q.get(), g, value(x.c, 1, g.w), {});
    const Value k = linear(name + ".to_k", a->to_k.get(), g, value(x.c, 1, g.w), {});
    const Value v = linear(name + ".to_v", a->to_v.get(), g, value(x.c, 1, g.w), {});
    const QuantAttentionCore* core = attention_.at(name);
    const Value o = value(x.c, 1, g.w);
    emit(plan::attention_op(q, k, v, a->heads, table(core->q), table(core->k), table(core->v), table(core->probs), p_.isa_, o),
         name + " core");
    // (L, C) rows of the output: a new value, or `dest` seen as rows
    const Value out = dest.buffer < 0 ? value(x.c, 1, g.w) : Value{dest.buffer, dest.offset, x.c, dest.ld, 1, g.w};
    Epilogue residual;
    residual.residual = rows;
    residual.factor = static_cast<float>(a->rescale_output_factor);
    linear(name + ".to_out.0", a->to_out[0]->as<LinearLayerImpl>(), o, out, residual);
    return {out.buffer, out.offset, x.c, out.ld, x.h, x.w};
  }

  // The temporal feature of every resnet, per image: from the artifact's cache, or the time
  // embedding computed each step (sinusoid, linear_1, SiLU, linear_2, + class embedding, SiLU,
  // each time_emb_proj).
  void time_features() {
    auto resnets = q_.unet.ptr()->resnets_in_order();
    if (q_.has_temporal_cache()) {
      for (size_t r = 0; r < resnets.size(); ++r) {
        const int64_t rows = q_.temporal_cache.front()[r].size(0), c = q_.temporal_cache.front()[r].size(1);
        std::vector<at::Tensor> steps;
        for (const auto& step : q_.temporal_cache) steps.push_back(step[r]);
        const at::Tensor all = at::cat(steps, 0).cpu().contiguous();
        const Value f = value(static_cast<int>(c), 1, 1);
        std::unique_ptr<plan::Op> op;
        if (QuantizedUNet::holds_f16_values(all)) {  // a cache made at F16 precision is kept so
          const at::Tensor h = all.to(at::kHalf);
          const at::Half* p = h.data_ptr<at::Half>();
          std::vector<uint16_t> cache(static_cast<size_t>(h.numel()));
          for (size_t i = 0; i < cache.size(); ++i) cache[i] = p[i].x;
          p_.weight_bytes_ += cache.size() * 2;
          op = plan::feature_cache_f16_op(std::move(cache), static_cast<int>(rows), f);
        } else {
          std::vector<float> cache = to_vector(all);
          p_.weight_bytes_ += cache.size() * 4;
          op = plan::feature_cache_op(std::move(cache), static_cast<int>(rows), f);
        }
        emit(std::move(op), resnets[r].first + " feature");
        features_.push_back(f);
      }
      return;
    }
    auto& te = *q_.unet.ptr()->time_embedding;
    const int proj = cfg_.block_out_channels[0], temb = cfg_.time_embed_dim();
    const Value t0 = value(proj, 1, 1);
    emit(plan::timestep_proj_op(proj, cfg_.flip_sin_to_cos, cfg_.freq_shift, t0), "time_proj");
    const Value t1 = linear("time_embedding.linear_1", te.linear_1.get(), t0, value(temb, 1, 1), {});
    const Value s1 = value(temb, 1, 1);
    emit(plan::silu_op(t1, s1), "time_embedding.act");
    const Value emb = linear("time_embedding.linear_2", te.linear_2.get(), s1, value(temb, 1, 1), {});
    if (q_.unet->class_table) {
      std::vector<float> table = to_vector(q_.unet->class_table->weight);
      p_.weight_bytes_ += table.size() * 4;
      emit(plan::class_embed_op(std::move(table), temb, emb), "class_embedding");
    }
    const Value e = value(temb, 1, 1);
    emit(plan::silu_op(emb, e), "temporal act");
    for (auto& [name, r] : resnets) {
      const int c = r->time_emb_proj->out_features;
      features_.push_back(linear(name + ".time_emb_proj", r->time_emb_proj.get(), e, value(c, 1, 1), {}));
    }
  }

  ExecutionPlan& p_;
  const QuantizedUNet& q_;
  const UNetConfig& cfg_;
  std::map<std::string, const QuantLayer*> layers_;
  std::map<std::string, const QuantAttentionCore*> attention_;
  std::vector<Value> features_;
  size_t next_feature_ = 0;
  std::vector<Value> cats_;  // per up-path resnet: its input cat(h, skip)
  std::vector<int> skip_c_;  // the skip's channels in each
  size_t next_skip_ = 0;
};

std::string ExecutionPlan::unsupported(const QuantizedUNet& q) {
  const UNetConfig& c = q.unet->config();
  if (c.time_embedding_type != "positional") return "time_embedding_type " + c.time_embedding_type;
  if (c.resnet_time_scale_shift != "default") return "resnet_time_scale_shift " + c.resnet_time_scale_shift;
  if (c.class_embed_type) return "class_embed_type " + *c.class_embed_type;
  if (c.downsample_padding != 1) return "downsample_padding 0";
  if (q.spec.act_bits == 0) return "fp32 activations (W" + std::to_string(q.spec.weight_bits) + "A32)";
  if (q.attention.size() != 0 && !q.spec.quantize_attention) return "attention not quantized";
  for (const auto& item : q.unet.ptr()->named_modules("", false))
    if (auto* a = item.value()->as<AttentionBlockImpl>())
      if (!std::dynamic_pointer_cast<QuantAttentionCore>(a->core_override_)) return "attention " + item.key() + " not quantized";
  for (const auto& l : q.layers)
    if (l->quant_input && l->act.bits > 8) return "activations over 8 bits";
  return "";
}

ExecutionPlan::ExecutionPlan(const QuantizedUNet& model, QGemmIsa isa, int threads)
    : isa_(isa), pool_(std::make_unique<ThreadPool>(threads)) {
  const std::string why = unsupported(model);
  if (!why.empty()) throw std::invalid_argument("the execution plan does not support " + why);
  at::NoGradGuard no_grad;
  PlanBuilder(*this, model).build();
  op_seconds_.assign(ops_.size(), 0.0);
}

ExecutionPlan::~ExecutionPlan() = default;

void ExecutionPlan::reserve(int n) {
  if (n <= capacity_) return;
  buffers_.resize(buffer_floats_.size());
  codes_.resize(codes_bytes_.size());
  for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].resize(static_cast<size_t>(buffer_floats_[i]) * n);
  for (size_t i = 0; i < codes_.size(); ++i) codes_[i].resize(codes_bytes_[i] * static_cast<size_t>(n));
  capacity_ = n;
}

namespace {

// Images per pass through the ops: a large batch runs in chunks, whose buffers are all the
// plan allocates. Measured at batch 64 on 2 cores: chunks of 16 as fast as the whole batch with
// 242 instead of 448 MiB peak; chunks of 8 slower (per-op overhead). QDM_PLAN_CHUNK overrides it.
int chunk_images() {
  static const int chunk = [] {
    const char* env = std::getenv("QDM_PLAN_CHUNK");
    const int v = env ? std::atoi(env) : 0;
    return v > 0 ? v : 16;
  }();
  return chunk;
}

}  // namespace

void ExecutionPlan::run(const float* x, int n, int t, int step, const int64_t* labels, float* eps) {
  const int chunk = std::min(n, chunk_images());
  reserve(chunk);
  for (int i0 = 0; i0 < n; i0 += chunk) {
    const int m = std::min(chunk, n - i0);
    run_chunk(x + static_cast<int64_t>(i0) * in_channels_ * input_.pixels(), m, t, step, labels ? labels + i0 : nullptr,
              eps + static_cast<int64_t>(i0) * out_channels_ * output_.pixels());
  }
}

void ExecutionPlan::run_chunk(const float* x, int n, int t, int step, const int64_t* labels, float* eps) {
  plan::Context ctx;
  ctx.n = n;
  ctx.step = step;
  ctx.t = t;
  ctx.labels = labels;
  ctx.pool = pool_.get();
  for (auto& b : buffers_) ctx.buffers.push_back(b.data());
  for (auto& c : codes_) ctx.codes.push_back(c.data());
  // NCHW in -> channels-last rows
  const int64_t pix = input_.pixels();
  for (int i = 0; i < n; ++i) {
    float* dst = ctx.at(input_, i);
    const float* src = x + static_cast<int64_t>(i) * in_channels_ * pix;
    for (int c = 0; c < in_channels_; ++c)
      for (int64_t p = 0; p < pix; ++p) dst[p * input_.ld + c] = src[c * pix + p];
  }
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (!profiling_) {
      ops_[i]->run(ctx);
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    ops_[i]->run(ctx);
    op_seconds_[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  for (int i = 0; i < n; ++i) {
    const float* src = ctx.at(output_, i);
    float* dst = eps + static_cast<int64_t>(i) * out_channels_ * pix;
    for (int c = 0; c < out_channels_; ++c)
      for (int64_t p = 0; p < pix; ++p) dst[c * pix + p] = src[p * output_.ld + c];
  }
}

void ExecutionPlan::set_profiling(bool on) {
  profiling_ = on;
  std::fill(op_seconds_.begin(), op_seconds_.end(), 0.0);
}

std::vector<std::pair<std::string, double>> ExecutionPlan::profile_ops() const {
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 0; i < ops_.size(); ++i) out.emplace_back(ops_[i]->name + " [" + ops_[i]->kind() + "]", op_seconds_[i]);
  return out;
}

std::vector<std::pair<std::string, double>> ExecutionPlan::profile() const {
  std::map<std::string, double> by_kind;
  for (size_t i = 0; i < ops_.size(); ++i) by_kind[ops_[i]->kind()] += op_seconds_[i];
  return {by_kind.begin(), by_kind.end()};
}

}  // namespace qdm
