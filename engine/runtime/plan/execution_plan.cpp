#include "engine/runtime/plan/execution_plan.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>

#include "engine/kernels/qconv.h"
#include "engine/kernels/upsample_fold.h"

namespace qdm {

using graph::Layout;
using graph::Op;
using plan::CodesTarget;
using plan::Epilogue;
using plan::LayerSource;
using plan::Table;
using plan::Value;

// Lowers a model's description node by node: storage for every value (concatenations' inputs
// as slices of the concatenation, sequences and images as views of one buffer), fusions by
// pattern (a group norm and SiLU, or an upsample, into the convolution that reads them; the
// temporal feature, the residual and its scale into the producing layer's epilogue), and the
// weights from the WeightSource.
class PlanBuilder {
 public:
  PlanBuilder(ExecutionPlan& p, const graph::Graph& g, const plan::WeightSource& w)
      : p_(p), g_(g), w_(w), store_(g.values.size()), lowered_(g.nodes.size(), 0) {}

  void build() {
    int image = g_.input(graph::Input::kSample);
    if (image < 0) image = g_.input(graph::Input::kLatent);
    if (image >= 0) {
      p_.in_channels_ = info(image).c;
      p_.input_ = storage(image);
    } else {  // a text encoder
      p_.token_length_ = static_cast<int>(info(g_.input(graph::Input::kTokenIds)).length());
    }
    p_.takes_text_ = g_.input(graph::Input::kTextStates) >= 0;
    plan_concatenations();
    const std::vector<int> features = g_.temporal_features();
    if (!features.empty() && w_.temporal_cache(0)) {  // tfmq+cache: the features from the cache, per step
      for (size_t i = 0; i < features.size(); ++i) feature_cache(i, features[i]);
      for (size_t n = 0; n < g_.nodes.size(); ++n)
        if (g_.temporal(g_.nodes[n].output)) lowered_[n] = kDone;
    }
    for (size_t n = 0; n < g_.nodes.size(); ++n)
      if (lowered_[n] == kPending) lower(static_cast<int>(n));
    p_.output_ = storage(g_.output);
    p_.out_channels_ = info(g_.output).c;
    p_.output_rows_ = info(g_.output).layout == Layout::kSequence;

  }

 private:
  const graph::ValueInfo& info(int v) const { return g_.values.at(static_cast<size_t>(v)); }
  const graph::Node& node(int n) const { return g_.nodes.at(static_cast<size_t>(n)); }
  int producer_index(int v) const { return info(v).producer; }
  // The only node reading v, or -1.
  int only_consumer(int v) const {
    const auto c = g_.consumers(v);
    return c.size() == 1 ? c[0] : -1;
  }

  // ---- storage ----
  Value alloc(int c, int h, int w) {
    p_.buffer_floats_.push_back(static_cast<int64_t>(h) * w * c);
    return {static_cast<int>(p_.buffer_floats_.size()) - 1, 0, c, c, h, w};
  }
  static Value slice(Value v, int offset, int c) {
    v.offset += offset;
    v.c = c;
    return v;
  }
  static Value rows(const Value& v) { return {v.buffer, v.offset, v.c, v.ld, 1, static_cast<int>(v.pixels())}; }
  // Where value v lives: assigned ahead (a slice, a view), else a new buffer of its shape.
  Value storage(int v) {
    Value& s = store_.at(static_cast<size_t>(v));
    if (s.buffer < 0) {
      const auto& i = info(v);
      s = alloc(i.c, i.h, i.w);
    }
    return s;
  }
  // Lowers v's producer now if it has not run yet (an epilogue's operand made later in node
  // order); true when v is then computed (false while its producer is itself being lowered).
  bool ensure(int v) {
    const size_t n = static_cast<size_t>(producer_index(v));
    if (lowered_[n] == kPending) lower(static_cast<int>(n));
    return lowered_[n] == kDone;
  }

  // Concatenations without copies: both inputs of a concatenation are slices of its buffer,
  // written there by their producers, where each is a layer's output read by no other
  // concatenation; otherwise the concatenation copies.
  void plan_concatenations() {
    for (const graph::Node& n : g_.nodes) {
      if (n.op != Op::kConcat) continue;
      const int a = n.inputs[0], b = n.inputs[1];
      if (!writable(a) || !writable(b) || store_[static_cast<size_t>(a)].buffer >= 0 || store_[static_cast<size_t>(b)].buffer >= 0)
        continue;
      const Value cat = storage(n.output);
      store_[static_cast<size_t>(a)] = slice(cat, 0, info(a).c);
      store_[static_cast<size_t>(b)] = slice(cat, info(a).c, info(b).c);
    }
  }
  // Whether v is written by an op that can write into a slice (a layer, or an epilogue's result).
  bool writable(int v) const {
    const Op op = node(producer_index(v)).op;
    int concats = 0;
    for (int c : g_.consumers(v)) concats += node(c).op == Op::kConcat;
    return concats == 1 && (op == Op::kConv2d || op == Op::kAdd || op == Op::kAffine);
  }

  // ---- weights ----
  const Table* table(const plan::ActTable& a) {
    auto t = std::make_unique<Table>();
    t->scale = a.scale;
    t->zero = a.zero;
    t->bits = a.bits;
    p_.tables_.push_back(std::move(t));
    return p_.tables_.back().get();
  }
  std::vector<float> counted(std::vector<float> v) {
    p_.count(resident::kFp32Tensors, v.size() * 4);
    return v;
  }
  std::vector<float> tensor(const std::string& name) { return counted(w_.tensor(name)); }
  // (k*k*C or C, N) with K in (ky, kx, c) order: fp32, or codes with per-output zero and scale.
  plan::F32Weights f32_weights(const LayerSource& l, int kernel) {
    plan::F32Weights out;
    const int n = l.n, k = l.k, c = k / (kernel * kernel);
    auto to_kn = [&](auto& dst, const auto& src) {  // (n, c, ky, kx) -> (ky, kx, c, n)
      dst.resize(static_cast<size_t>(n) * k);
      for (int o = 0; o < n; ++o)
        for (int ch = 0; ch < c; ++ch)
          for (int t = 0; t < kernel * kernel; ++t)
            dst[(static_cast<size_t>(t) * c + ch) * n + o] = src[static_cast<size_t>(o) * k + ch * kernel * kernel + t];
    };
    if (l.kind == LayerSource::Kind::kCodes) {
      to_kn(out.codes, l.codes);
      out.zero = l.zero;
      out.scale = l.scale;
    } else if (l.kind == LayerSource::Kind::kF32) {
      to_kn(out.values, l.f32);
    } else {
      throw std::invalid_argument("execution plan: layer with fp32 input and vq weights");
    }
    p_.count(l.kind == LayerSource::Kind::kCodes ? resident::kIntWeights : resident::kFp32Weights, out.bytes());
    return out;
  }
  PackedWeights pack(const LayerSource& l, int kernel, bool lanes) {
    if (l.kind != LayerSource::Kind::kCodes) throw std::invalid_argument("execution plan: integer layer without codes");
    std::vector<uint8_t> codes = l.codes;
    if (kernel > 1) {  // K in (ky, kx, c) order, as the patches
      const int c = l.k / (kernel * kernel), kk = kernel * kernel;
      for (int o = 0; o < l.n; ++o)
        for (int ch = 0; ch < c; ++ch)
          for (int t = 0; t < kk; ++t)
            codes[static_cast<size_t>(o) * l.k + static_cast<size_t>(t) * c + ch] = l.codes[static_cast<size_t>(o) * l.k + ch * kk + t];
    }
    PackedWeights p = pack_weights(codes.data(), l.n, l.k, l.bits, l.scale.data(), l.zero.data(),
                                   lanes ? WeightLayout::kRows : layout_for(p_.isa_));
    p_.count(resident::kIntWeights, p.bytes());
    return p;
  }
  std::shared_ptr<const VqWeights> vq_weights(const LayerSource& l, bool lanes) {
    auto w = std::make_shared<VqWeights>(make_vq_weights(l.n, l.k, l.vq_codebooks, l.vq_bits, l.vq_group, l.vq_codes,
                                                         l.vq_codewords, l.scale, lanes ? WeightLayout::kRows : layout_for(p_.isa_)));
    p_.count(resident::kVqWeights, w->bytes());
    return w;
  }
  CodesTarget codes(int h, int w, int c, int pad, const plan::ActTable& act) {
    PaddedShape s{h, w, c, pad};
    p_.codes_bytes_.push_back(s.bytes());
    return {static_cast<int>(p_.codes_bytes_.size()) - 1, s, table(act)};
  }

  void emit(std::unique_ptr<plan::Op> op, const std::string& name) {
    op->name = name;
    p_.ops_.push_back(std::move(op));
  }

  // ---- fusions ----
  // A group norm whose output (through a SiLU) only a convolution reads: the convolution lowers it.
  bool norm_fused(const graph::Node& n) const {
    int c = only_consumer(n.output);
    if (c < 0) return false;
    if (node(c).op == Op::kSiLU) c = only_consumer(node(c).output);
    return c >= 0 && node(c).op == Op::kConv2d;
  }
  bool silu_fused(const graph::Node& n) const {
    const graph::Node& in = node(producer_index(n.inputs[0]));
    return in.op == Op::kGroupNorm && only_consumer(in.output) >= 0 && norm_fused(in);
  }
  bool upsample_fused(const graph::Node& n) const {
    const int c = only_consumer(n.output);
    return c >= 0 && node(c).op == Op::kConv2d;
  }

  // Follows a layer's output v through a temporal feature or residual Add (and the residual's
  // scale) into the epilogue; v becomes the last value the layer's op writes.
  // The other operand must be computed before the layer runs: an Add whose other operand is
  // the layer being lowered further up (a resnet's shortcut conv, lowered for conv2's
  // epilogue) is left to that layer.
  void fuse_epilogue(int& v, Epilogue& e) {
    const int c = only_consumer(v);
    if (c < 0 || node(c).op != Op::kAdd || lowered_[static_cast<size_t>(c)] != kPending) return;
    const graph::Node& add = node(c);
    const int other = add.inputs[0] == v ? add.inputs[1] : add.inputs[0];
    const auto &vi = info(v), &oi = info(other);
    const bool feature = vi.layout == Layout::kImage && oi.layout == Layout::kVector;
    const bool residual = oi.layout == vi.layout && oi.c == vi.c && oi.h == vi.h && oi.w == vi.w;
    if ((!feature && !residual) || !ensure(other)) return;
    if (feature) {
      e.feature = storage(other);
    } else {
      e.residual = storage(other);
      if (vi.layout == Layout::kSequence) e.residual = rows(e.residual);
    }
    lowered_[static_cast<size_t>(c)] = kDone;
    v = add.output;
    if (e.residual.buffer < 0) return;
    const int s = only_consumer(v);
    if (s >= 0 && node(s).op == Op::kAffine && node(s).attrs.alpha == 1.0 && node(s).attrs.beta == 0.0) {
      e.factor = static_cast<float>(node(s).attrs.divisor);
      lowered_[static_cast<size_t>(s)] = kDone;
      v = node(s).output;
    }
  }

  // ---- nodes ----
  enum State : char { kPending, kActive, kDone };
  void lower(int index) {
    lowered_[static_cast<size_t>(index)] = kActive;
    for (int in : node(index).inputs) ensure(in);  // a node lowered early (an epilogue's operand) needs its inputs first
    lower_node(node(index));
    lowered_[static_cast<size_t>(index)] = kDone;
  }

  void lower_node(const graph::Node& n) {
    switch (n.op) {
      case Op::kInput:
        // The sample is copied in by run(); t, labels and tokens are read from the context; the
        // text states are gathered by their first reader that is not a text projection.
        return;
      case Op::kLayerNorm:
        return emit(plan::layer_norm_op(storage(n.inputs[0]), tensor(n.name + ".weight"), tensor(n.name + ".bias"), n.attrs.eps,
                                        storage(n.output)),
                    n.name);
      case Op::kGELU:
      case Op::kQuickGELU:
        return emit(plan::gelu_op(storage(n.inputs[0]), n.op == Op::kQuickGELU, storage(n.output)), n.name);
      case Op::kGEGLU:
        return emit(plan::geglu_op(storage(n.inputs[0]), storage(n.output)), n.name);
      case Op::kTimestepProj:
        return emit(plan::timestep_proj_op(n.attrs.dim, n.attrs.flip, n.attrs.shift, index(n), storage(n.output)), n.name);
      case Op::kFourierProj:
        return emit(plan::fourier_proj_op(tensor(n.name + ".weight"), index(n), storage(n.output)), n.name);
      case Op::kEmbedding:
        if (node(producer_index(n.inputs[0])).attrs.input == graph::Input::kTokenIds)
          return emit(plan::token_embedding_op(tensor(n.name + ".weight"), info(n.output).c, storage(n.output)), n.name);
        return emit(plan::embedding_op(tensor(n.name + ".weight"), info(n.output).c, index(n), storage(n.output)), n.name);
      case Op::kScaleShift:
        return emit(plan::scale_shift_op(storage(n.inputs[0]), storage(n.inputs[1]), storage(n.output)), n.name);
      case Op::kDivideByTimestep:
        return emit(plan::divide_by_timestep_op(storage(n.inputs[0]), storage(n.output)), n.name);
      case Op::kPadBottomRight:
        return emit(plan::pad_bottom_right_op(storage(n.inputs[0]), storage(n.output)), n.name);
      case Op::kConv2d:
        return conv(n);
      case Op::kLinear:
        return linear(n);
      case Op::kGroupNorm:
        if (norm_fused(n)) return;  // the convolution reading it lowers it
        return emit(plan::group_norm_op(storage(n.inputs[0]), n.attrs.groups, n.attrs.eps, norm_params(n, ".weight"),
                                        norm_params(n, ".bias"), false, storage(n.output), {}, p_.isa_),
                    n.name);
      case Op::kSiLU:
        if (silu_fused(n)) return;
        return emit(plan::silu_op(storage(n.inputs[0]), storage(n.output)), n.name);
      case Op::kUpsample2x:
        if (upsample_fused(n)) return;
        return emit(plan::upsample_op(storage(n.inputs[0]), storage(n.output)), n.name);
      case Op::kAdd:  // one no layer's epilogue took
        return emit(plan::add_op(storage(n.inputs[0]), storage(n.inputs[1]), storage(n.output)), n.name);
      case Op::kAffine:
        return emit(plan::affine_op(storage(n.inputs[0]), static_cast<float>(n.attrs.alpha), static_cast<float>(n.attrs.beta),
                                    static_cast<float>(n.attrs.divisor), storage(n.output)),
                    n.name);
      case Op::kConcat: {
        const Value cat = storage(n.output);
        int offset = 0;
        for (int in : n.inputs) {
          const Value want = slice(cat, offset, info(in).c), have = storage(in);
          if (have.buffer != want.buffer || have.offset != want.offset) emit(plan::copy_op(have, want), n.name + " concat");
          offset += info(in).c;
        }
        return;
      }
      case Op::kToSequence:
        store_[static_cast<size_t>(n.output)] = rows(storage(n.inputs[0]));
        return;
      case Op::kToImage: {
        Value v = storage(n.inputs[0]);
        v.h = n.attrs.height;
        v.w = n.attrs.width;
        store_[static_cast<size_t>(n.output)] = v;
        return;
      }
      case Op::kAttention:
        return attention(n);
      case Op::kPositionEmbedding:
        return emit(plan::position_embedding_op(tensor(n.name + ".weight"), storage(n.inputs[0]), storage(n.output)), n.name);
      case Op::kSliceChannels:
        store_[static_cast<size_t>(n.output)] = slice(storage(n.inputs[0]), n.attrs.offset, info(n.output).c);
        return;
      default:
        throw std::invalid_argument(std::string("execution plan: no lowering of ") + graph::op_name(n.op) + " (" + n.name + ")");
    }
  }

  std::vector<float> norm_params(const graph::Node& n, const char* suffix) {
    return n.attrs.affine ? tensor(n.name + suffix) : std::vector<float>{};
  }

  // What an index op (projection, embedding) reads: the timestep or the class label.
  plan::Index index(const graph::Node& n) const {
    return node(producer_index(n.inputs[0])).attrs.input == graph::Input::kClassLabel ? plan::Index::kClassLabel
                                                                                      : plan::Index::kTimestep;
  }

  void conv(const graph::Node& n) {
    const auto& a = n.attrs;
    // What feeds it: a group norm (+ SiLU), an upsample, or a value.
    int src = n.inputs[0];
    const graph::Node* norm = nullptr;
    bool silu = false, upsample = false;
    const graph::Node& in = node(producer_index(src));
    if (in.op == Op::kSiLU && silu_fused(in)) {
      norm = &node(producer_index(in.inputs[0]));
      silu = true;
    } else if (in.op == Op::kGroupNorm && norm_fused(in)) {
      norm = &in;
    } else if (in.op == Op::kUpsample2x && upsample_fused(in)) {
      upsample = true;
      src = in.inputs[0];
    }
    if (norm) src = norm->inputs[0];
    const Value x = storage(src);
    int out_v = n.output;
    Epilogue e;
    fuse_epilogue(out_v, e);
    const Value out = storage(out_v);
    const int cout = info(n.output).c, k = x.c * a.kernel * a.kernel;
    const LayerSource l = w_.layer(n.name, cout, k);
    std::vector<float> bias = counted(l.bias.empty() ? std::vector<float>(static_cast<size_t>(l.n), 0.0f) : l.bias);
    if (l.act) {
      const bool lanes = qconv_preferred(p_.isa_, x.c);
      if (norm) {
        const CodesTarget target = codes(x.h, x.w, x.c, a.padding, *l.act);
        emit(plan::group_norm_op(x, norm->attrs.groups, norm->attrs.eps, norm_params(*norm, ".weight"), norm_params(*norm, ".bias"),
                                 silu, {}, target, p_.isa_),
             norm->name);
        emit(int_conv(l, a, target, lanes, std::move(bias), out, e), n.name);
        return;
      }
      std::optional<PackedWeights> packed;
      if (upsample && fold_upsample(l, a, x.c, e)) {  // four 2x2 phases on the low-resolution codes
        packed = pack(l, a.kernel, true);
        if (upsample_fold_fits(*packed, x.c)) {
          const CodesTarget target = codes(x.h, x.w, x.c, a.padding, *l.act);
          emit(plan::quantize_op(x, false, target), n.name + " input");
          emit(plan::upsampled_conv_op(target, std::move(*packed), std::move(bias), p_.isa_, out), n.name);
          return;
        }
        if (!lanes) {  // packed for the lane kernel, which this layer will not use: the GEMM's layout
          p_.uncount(resident::kIntWeights, packed->bytes());
          packed.reset();
        }
      }
      const int h = upsample ? x.h * 2 : x.h, w = upsample ? x.w * 2 : x.w;
      const CodesTarget target = codes(h, w, x.c, a.padding, *l.act);
      emit(plan::quantize_op(x, upsample, target), n.name + " input");
      emit(int_conv(l, a, target, lanes, std::move(bias), out, e, std::move(packed)), n.name);
      return;
    }
    Value input = x;
    if (norm) {
      input = alloc(x.c, x.h, x.w);
      emit(plan::group_norm_op(x, norm->attrs.groups, norm->attrs.eps, norm_params(*norm, ".weight"), norm_params(*norm, ".bias"),
                               silu, input, {}, p_.isa_),
           norm->name);
    } else if (upsample) {
      input = alloc(x.c, x.h * 2, x.w * 2);
      emit(plan::upsample_op(x, input), n.name + " upsample");
    }
    emit(plan::f32_conv_op(input, a.kernel, a.stride, a.padding, f32_weights(l, a.kernel), std::move(bias), out, e,
                           p_.pool_->threads()),
         n.name);
  }

  // Whether an upsampled integer convolution may run as four phases (upsample_fold.h; the
  // weights must also fit int8 folded). QDM_PLAN_FOLD=0 turns it off (benchmarks, tests).
  bool fold_upsample(const LayerSource& l, const graph::Attrs& a, int channels, const Epilogue& e) const {
    const char* env = std::getenv("QDM_PLAN_FOLD");
    return !(env && std::string(env) == "0") && l.kind == LayerSource::Kind::kCodes && a.kernel == 3 && a.stride == 1 &&
           a.padding == 1 && qconv_available(p_.isa_, channels) && e.residual.buffer < 0 && e.feature.buffer < 0;
  }
  std::unique_ptr<plan::Op> int_conv(const LayerSource& l, const graph::Attrs& a, const CodesTarget& target, bool lanes,
                                     std::vector<float> bias, Value out, Epilogue e,
                                     std::optional<PackedWeights> packed = std::nullopt) {
    if (l.kind == LayerSource::Kind::kVq)
      return plan::vq_conv_op(target, a.kernel, a.stride, vq_weights(l, lanes), std::move(bias), p_.isa_, lanes, out, e);
    return plan::int_conv_op(target, a.kernel, a.stride, packed ? std::move(*packed) : pack(l, a.kernel, lanes), std::move(bias),
                             p_.isa_, lanes, out, e);
  }

  void linear(const graph::Node& n) {
    const Value in = storage(n.inputs[0]);
    int out_v = n.output;
    Epilogue e;
    // Attention's output projection: sequence -> image -> + residual: the projection writes the
    // block's output rows.
    if (const int c = only_consumer(out_v); c >= 0 && node(c).op == Op::kToImage) {
      int img = node(c).output;
      Epilogue r;
      fuse_epilogue(img, r);
      if (r.residual.buffer >= 0) {
        lowered_[static_cast<size_t>(c)] = kDone;
        r.residual = rows(r.residual);
        e = r;
        out_v = img;
      }
    } else {
      fuse_epilogue(out_v, e);
    }
    const Value out = info(out_v).layout == Layout::kImage ? rows(storage(out_v)) : storage(out_v);
    const LayerSource l = w_.layer(n.name, info(n.output).c, in.c);
    std::vector<float> bias = counted(l.bias);
    const graph::Node& src = node(producer_index(n.inputs[0]));
    if (src.op == Op::kInput && src.attrs.input == graph::Input::kTextStates) {
      if (!l.act && l.kind == LayerSource::Kind::kF32 && e.residual.buffer < 0 && e.feature.buffer < 0)
        return emit(plan::text_projection_op(f32_weights(l, 1), std::move(bias), out), n.name);
      if (!text_states_copied_) emit(plan::text_states_op(in), src.name);
      text_states_copied_ = true;
    }
    if (l.act) {
      if (l.kind == LayerSource::Kind::kVq)
        emit(plan::vq_linear_op(in, table(*l.act), vq_weights(l, false), std::move(bias), p_.isa_, out, e), n.name);
      else
        emit(plan::int_linear_op(in, table(*l.act), pack(l, 1, false), std::move(bias), p_.isa_, out, e), n.name);
      return;
    }
    emit(plan::f32_conv_op(in, 1, 1, 0, f32_weights(l, 1), std::move(bias), out, e, p_.pool_->threads()), n.name);
  }

  void attention(const graph::Node& n) {
    const Value q = storage(n.inputs[0]), k = storage(n.inputs[1]), v = storage(n.inputs[2]), out = storage(n.output);
    const auto tables = w_.attention(n.name);
    if (!tables) return emit(plan::attention_f32_op(q, k, v, n.attrs.heads, n.attrs.causal, p_.isa_, out), n.name + " core");
    const auto& t = *tables;
    emit(plan::attention_op(q, k, v, n.attrs.heads, table(t.at(0)), table(t.at(1)), table(t.at(2)), table(t.at(3)), p_.isa_, out),
         n.name + " core");
  }

  void feature_cache(size_t i, int v) {
    const plan::FeatureCache cache = *w_.temporal_cache(i);
    const Value f = storage(v);
    std::unique_ptr<plan::Op> op;
    if (!cache.f16.empty()) {  // a cache made at F16 precision is kept so
      p_.count(resident::kFeatureCache, cache.f16.size() * 2);
      op = plan::feature_cache_f16_op(cache.f16, cache.rows, f);
    } else {
      p_.count(resident::kFeatureCache, cache.f32.size() * 4);
      op = plan::feature_cache_op(cache.f32, cache.rows, f);
    }
    emit(std::move(op), node(producer_index(v)).name + " feature");
  }

  ExecutionPlan& p_;
  const graph::Graph& g_;
  const plan::WeightSource& w_;
  std::vector<Value> store_;
  std::vector<char> lowered_;
  bool text_states_copied_ = false;
};

std::string ExecutionPlan::unsupported(const graph::Graph& g, const plan::WeightSource& w) {
  for (const graph::Node& n : g.nodes) {
    switch (n.op) {
      case Op::kInput:
        if (n.attrs.input == graph::Input::kClassEmbedding) return "class_embed_type identity (embeddings as input)";
        break;
      case Op::kAttention:
        if (n.attrs.causal && w.attention(n.name)) return "quantized causal attention (" + n.name + ")";
        if (!w.fp32_attention() && !w.attention(n.name)) return "attention " + n.name + " not quantized";
        break;
      default:
        break;
    }
  }
  return w.unsupported();
}

ExecutionPlan::ExecutionPlan(const graph::Graph& graph, const plan::WeightSource& weights, QGemmIsa isa, int threads)
    : isa_(isa), pool_(std::make_unique<ThreadPool>(threads)) {
  const std::string why = unsupported(graph, weights);
  if (!why.empty()) throw std::invalid_argument("the execution plan does not support " + why);
  PlanBuilder(*this, graph, weights).build();
  op_seconds_.assign(ops_.size(), 0.0);
}

ExecutionPlan::~ExecutionPlan() = default;

void ExecutionPlan::count(const char* what, size_t bytes) {
  weight_bytes_ += bytes;
  resident_.add(what, bytes);
}

void ExecutionPlan::uncount(const char* what, size_t bytes) {
  weight_bytes_ -= bytes;
  resident_.remove(what, bytes);
}

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
  if (token_length_ > 0) throw std::invalid_argument("execution plan: a text encoder takes token ids (run_tokens)");
  run_chunks(x, nullptr, n, t, step, labels, eps);
}

void ExecutionPlan::run_tokens(const int64_t* ids, int n, float* out) {
  if (token_length_ <= 0) throw std::invalid_argument("execution plan: only a text encoder takes token ids");
  run_chunks(nullptr, ids, n, 0, 0, nullptr, out);
}

void ExecutionPlan::run_chunks(const float* x, const int64_t* tokens, int n, int t, int step, const int64_t* labels, float* out) {
  const int chunk = std::min(n, chunk_images());
  reserve(chunk);
  const int64_t in_size = static_cast<int64_t>(in_channels_) * input_.pixels();
  const int64_t out_size = static_cast<int64_t>(out_channels_) * output_.pixels();
  for (int i0 = 0; i0 < n; i0 += chunk) {
    const int m = std::min(chunk, n - i0);
    run_chunk(x ? x + i0 * in_size : nullptr, tokens ? tokens + static_cast<int64_t>(i0) * token_length_ : nullptr, m, t, step,
              labels ? labels + i0 : nullptr, out + i0 * out_size);
  }
}

void ExecutionPlan::run_chunk(const float* x, const int64_t* tokens, int n, int t, int step, const int64_t* labels, float* eps) {
  plan::Context ctx;
  ctx.n = n;
  ctx.step = step;
  ctx.t = t;
  ctx.labels = labels;
  ctx.tokens = tokens;
  ctx.text = text_;
  ctx.text_entries = text_entries_;
  ctx.text_generation = text_generation_;
  ctx.pool = pool_.get();
  for (auto& b : buffers_) ctx.buffers.push_back(b.data());
  for (auto& c : codes_) ctx.codes.push_back(c.data());
  // NCHW in -> channels-last rows
  const int64_t pix = input_.pixels();
  for (int i = 0; x && i < n; ++i) {
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
  // channels-last rows -> NCHW, or (L, D) rows as they are for a sequence
  const int64_t out_pix = output_.pixels();
  for (int i = 0; i < n; ++i) {
    const float* src = ctx.at(output_, i);
    float* dst = eps + static_cast<int64_t>(i) * out_channels_ * out_pix;
    if (output_rows_) {
      for (int64_t p = 0; p < out_pix; ++p) std::memcpy(dst + p * out_channels_, src + p * output_.ld, sizeof(float) * out_channels_);
      continue;
    }
    for (int c = 0; c < out_channels_; ++c)
      for (int64_t p = 0; p < out_pix; ++p) dst[c * out_pix + p] = src[p * output_.ld + c];
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
