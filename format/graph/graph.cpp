#include "format/graph/graph.h"

#include <stdexcept>

namespace qdm::graph {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::logic_error("model graph: " + what); }

ValueInfo image(int c, int h, int w) { return {Layout::kImage, c, h, w}; }
ValueInfo vector(int c) { return {Layout::kVector, c, 1, 1}; }

}  // namespace

const char* op_name(Op op) {
  switch (op) {
    case Op::kInput: return "input";
    case Op::kConv2d: return "conv2d";
    case Op::kPadBottomRight: return "pad_bottom_right";
    case Op::kLinear: return "linear";
    case Op::kGroupNorm: return "group_norm";
    case Op::kSiLU: return "silu";
    case Op::kAdd: return "add";
    case Op::kAffine: return "affine";
    case Op::kScaleShift: return "scale_shift";
    case Op::kConcat: return "concat";
    case Op::kUpsample2x: return "upsample2x";
    case Op::kToSequence: return "to_sequence";
    case Op::kToImage: return "to_image";
    case Op::kAttention: return "attention";
    case Op::kTimestepProj: return "timestep_proj";
    case Op::kFourierProj: return "fourier_proj";
    case Op::kEmbedding: return "embedding";
    case Op::kDivideByTimestep: return "divide_by_timestep";
    case Op::kLayerNorm: return "layer_norm";
    case Op::kGELU: return "gelu";
    case Op::kQuickGELU: return "quick_gelu";
    case Op::kGEGLU: return "geglu";
    case Op::kPositionEmbedding: return "position_embedding";
    case Op::kSliceChannels: return "slice_channels";
  }
  return "?";
}

int64_t TensorDecl::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int Graph::input(Input kind) const {
  for (const Node& n : nodes)
    if (n.op == Op::kInput && n.attrs.input == kind) return n.output;
  return -1;
}

std::vector<int> Graph::consumers(int value) const {
  std::vector<int> out;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (int in : nodes[i].inputs)
      if (in == value) {
        out.push_back(static_cast<int>(i));
        break;
      }
  return out;
}

int Graph::find_tensor(const std::string& name) const {
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].name == name) return static_cast<int>(i);
  return -1;
}

int Graph::find_node(const std::string& name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].name == name) return static_cast<int>(i);
  return -1;
}

int Graph::find_value(const std::string& name) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == name) return static_cast<int>(i);
  return -1;
}

const Block* Graph::find_block(const std::string& name) const {
  for (const Block& b : blocks)
    if (b.name == name) return &b;
  return nullptr;
}

bool Graph::temporal(int value) const {
  if (temporal_.size() != values.size()) temporal_.assign(values.size(), -1);
  int8_t& memo = temporal_[static_cast<size_t>(value)];
  if (memo >= 0) return memo == 1;
  const Node& n = producer(value);
  bool t;
  if (n.op == Op::kInput) {
    t = n.attrs.input == Input::kTimestep || n.attrs.input == Input::kClassLabel || n.attrs.input == Input::kClassEmbedding;
    // Text states are not temporal (they do not depend on t), but invariant across steps: the
    // plan computes what depends on them alone once per request.
  } else {
    t = true;
    for (int in : n.inputs) t = t && temporal(in);
  }
  memo = t ? 1 : 0;
  return t;
}

std::vector<int> Graph::temporal_features() const {
  std::vector<int> out;
  for (const Node& n : nodes) {
    if (n.op == Op::kInput || temporal(n.output)) continue;
    for (int in : n.inputs)
      if (temporal(in) && producer(in).op != Op::kInput) {
        bool seen = false;
        for (int v : out) seen = seen || v == in;
        if (!seen) out.push_back(in);
      }
  }
  // In the order their producers run.
  std::vector<int> ordered;
  for (const Node& n : nodes)
    for (int v : out)
      if (n.output == v) ordered.push_back(v);
  return ordered;
}

std::vector<int> Graph::layers() const {
  std::vector<int> out;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].op == Op::kConv2d || nodes[i].op == Op::kLinear) out.push_back(static_cast<int>(i));
  return out;
}

int64_t Graph::parameter_count() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel();
  return n;
}

void Graph::validate() const {
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    if (n.output < 0 || n.output >= static_cast<int>(values.size()) || values[static_cast<size_t>(n.output)].producer != static_cast<int>(i))
      bad("node " + n.name + " has a bad output");
    for (int in : n.inputs)
      if (in < 0 || values[static_cast<size_t>(in)].producer >= static_cast<int>(i)) bad("node " + n.name + " reads a value made later");
    for (int p : n.params)
      if (p < 0 || p >= static_cast<int>(tensors.size())) bad("node " + n.name + " has a bad parameter");
  }
  if (output < 0 || output >= static_cast<int>(values.size())) bad("no output");
}

// ---- Builder --------------------------------------------------------------------------------

Builder::Builder(std::string architecture) { g_.architecture = std::move(architecture); }

int Builder::emit(Op op, const std::string& name, std::vector<int> inputs, const Attrs& attrs, ValueInfo out,
                  std::vector<TensorDecl> params) {
  Node n;
  n.op = op;
  n.name = name;
  n.inputs = std::move(inputs);
  n.attrs = attrs;
  for (auto& p : params) {
    const int existing = g_.find_tensor(p.name);
    if (existing >= 0) {  // shared with an earlier node
      if (g_.tensors[static_cast<size_t>(existing)].shape != p.shape) bad("tensor " + p.name + " declared twice, with two shapes");
      n.params.push_back(existing);
      continue;
    }
    n.params.push_back(static_cast<int>(g_.tensors.size()));
    g_.tensors.push_back(std::move(p));
  }
  n.block = open_blocks_.empty() ? -1 : open_blocks_.back();
  const int node = static_cast<int>(g_.nodes.size());
  out.producer = node;
  if (out.name.empty()) out.name = name;
  n.output = static_cast<int>(g_.values.size());
  g_.values.push_back(out);
  g_.nodes.push_back(std::move(n));
  return g_.nodes.back().output;
}

int Builder::input(Input kind, Layout layout, int c, int h, int w) {
  Attrs a;
  a.input = kind;
  static const char* names[] = {"sample", "timestep", "class_label", "class_embedding", "input_ids", "encoder_hidden_states", "latent"};
  return emit(Op::kInput, names[static_cast<int>(kind)], {}, a, {layout, c, h, w});
}

int Builder::conv(const std::string& name, int x, int out_channels, int kernel, int stride, int padding) {
  const ValueInfo& in = value(x);
  if (in.layout != Layout::kImage) bad(name + ": conv of a non-image");
  Attrs a;
  a.kernel = kernel;
  a.stride = stride;
  a.padding = padding < 0 ? kernel / 2 : padding;
  const int ho = (in.h + 2 * a.padding - kernel) / stride + 1, wo = (in.w + 2 * a.padding - kernel) / stride + 1;
  return emit(Op::kConv2d, name, {x}, a, image(out_channels, ho, wo),
              {{name + ".weight", {out_channels, in.c, kernel, kernel}}, {name + ".bias", {out_channels}}});
}

int Builder::pad_bottom_right(int x, int amount) {
  const ValueInfo& in = value(x);
  Attrs a;
  a.padding = amount;
  return emit(Op::kPadBottomRight, value(x).name + ".pad", {x}, a, image(in.c, in.h + amount, in.w + amount));
}

int Builder::linear(const std::string& name, int x, int out_features, bool bias) {
  ValueInfo out = value(x);
  if (out.layout == Layout::kImage || out.layout == Layout::kScalar) bad(name + ": linear of an image or scalar");
  const int in_features = out.c;
  out.c = out_features;
  out.name.clear();
  Attrs a;
  a.bias = bias;
  std::vector<TensorDecl> params{{name + ".weight", {out_features, in_features}}};
  if (bias) params.push_back({name + ".bias", {out_features}});
  return emit(Op::kLinear, name, {x}, a, out, std::move(params));
}

int Builder::layer_norm(const std::string& name, int x, double eps) {
  ValueInfo out = value(x);
  if (out.layout != Layout::kSequence && out.layout != Layout::kVector) bad(name + ": layer norm of an image or scalar");
  out.name.clear();
  Attrs a;
  a.eps = eps;
  return emit(Op::kLayerNorm, name, {x}, a, out, {{name + ".weight", {out.c}}, {name + ".bias", {out.c}}});
}

int Builder::gelu(int x) {
  ValueInfo out = value(x);
  out.name = value(x).name + ".gelu";
  return emit(Op::kGELU, out.name, {x}, {}, out);
}

int Builder::quick_gelu(int x) {
  ValueInfo out = value(x);
  out.name = value(x).name + ".quick_gelu";
  return emit(Op::kQuickGELU, out.name, {x}, {}, out);
}

int Builder::geglu(int x) {
  ValueInfo out = value(x);
  if (out.c % 2 != 0) bad("geglu of " + out.name + ": an odd channel count");
  out.c /= 2;
  out.name = value(x).name + ".geglu";
  return emit(Op::kGEGLU, out.name, {x}, {}, out);
}

int Builder::position_embedding(const std::string& name, int x, int positions) {
  ValueInfo out = value(x);
  if (out.layout != Layout::kSequence || out.length() > positions) bad(name + ": a sequence longer than the position table");
  out.name = name;
  return emit(Op::kPositionEmbedding, name, {x}, {}, out, {{name + ".weight", {positions, out.c}}});
}

int Builder::slice_channels(int x, int offset, int count) {
  const ValueInfo& in = value(x);
  if (in.layout != Layout::kImage || offset < 0 || offset + count > in.c) bad("slice_channels: out of " + in.name + "'s channels");
  Attrs a;
  a.offset = offset;
  return emit(Op::kSliceChannels, in.name + ".slice", {x}, a, image(count, in.h, in.w));
}

int Builder::group_norm(const std::string& name, int x, int groups, double eps, bool affine) {
  ValueInfo out = value(x);
  out.name.clear();
  if (out.c % groups != 0) bad(name + ": " + std::to_string(out.c) + " channels in " + std::to_string(groups) + " groups");
  Attrs a;
  a.groups = groups;
  a.eps = eps;
  a.affine = affine;
  std::vector<TensorDecl> params;
  if (affine) params = {{name + ".weight", {out.c}}, {name + ".bias", {out.c}}};
  return emit(Op::kGroupNorm, name, {x}, a, out, std::move(params));
}

int Builder::silu(int x) {
  ValueInfo out = value(x);
  out.name = value(x).name + ".silu";
  return emit(Op::kSiLU, out.name, {x}, {}, out);
}

int Builder::add(int a, int b) {
  const ValueInfo &va = value(a), &vb = value(b);
  const bool broadcast = va.layout == Layout::kImage && vb.layout == Layout::kVector && va.c == vb.c;
  if (!broadcast && (va.layout != vb.layout || va.c != vb.c || va.h != vb.h || va.w != vb.w))
    bad("add of " + va.name + " and " + vb.name + ": shapes differ");
  ValueInfo out = va;
  out.name = va.name + "+" + vb.name;
  return emit(Op::kAdd, out.name, {a, b}, {}, out);
}

int Builder::affine(int x, double alpha, double beta, double divisor) {
  ValueInfo out = value(x);
  out.name = value(x).name + ".affine";
  Attrs a;
  a.alpha = alpha;
  a.beta = beta;
  a.divisor = divisor;
  return emit(Op::kAffine, out.name, {x}, a, out);
}

int Builder::scale_shift(int h, int f) {
  ValueInfo out = value(h);
  if (value(f).c != 2 * out.c) bad("scale_shift: the feature must have twice the image's channels");
  out.name = value(h).name + ".scale_shift";
  return emit(Op::kScaleShift, out.name, {h, f}, {}, out);
}

int Builder::concat(int a, int b) {
  const ValueInfo &va = value(a), &vb = value(b);
  if (va.layout != Layout::kImage || vb.layout != Layout::kImage || va.h != vb.h || va.w != vb.w)
    bad("concat of " + va.name + " and " + vb.name + ": not images of one size");
  return emit(Op::kConcat, va.name + "|" + vb.name, {a, b}, {}, image(va.c + vb.c, va.h, va.w));
}

int Builder::upsample2x(int x) {
  const ValueInfo& in = value(x);
  return emit(Op::kUpsample2x, in.name + ".upsample", {x}, {}, image(in.c, 2 * in.h, 2 * in.w));
}

int Builder::to_sequence(int x) {
  const ValueInfo& in = value(x);
  return emit(Op::kToSequence, in.name + ".seq", {x}, {}, {Layout::kSequence, in.c, 1, in.h * in.w});
}

int Builder::to_image(int x, int like) {
  const ValueInfo &in = value(x), &ref = value(like);
  if (in.layout != Layout::kSequence || ref.layout != Layout::kImage || in.w != ref.h * ref.w)
    bad("to_image: " + in.name + " is not a sequence of " + ref.name + "'s pixels");
  Attrs a;
  a.height = ref.h;
  a.width = ref.w;
  return emit(Op::kToImage, in.name + ".image", {x, like}, a, image(in.c, ref.h, ref.w));
}

int Builder::attention(const std::string& name, int q, int k, int v, int heads, bool causal) {
  ValueInfo out = value(q);
  if (out.c % heads != 0) bad(name + ": " + std::to_string(out.c) + " channels in " + std::to_string(heads) + " heads");
  if (value(k).c != out.c || value(v).c != out.c || value(k).length() != value(v).length())
    bad(name + ": q, k and v disagree in channels, or k and v in length");
  Attrs a;
  a.heads = heads;
  a.causal = causal;
  out.name.clear();
  return emit(Op::kAttention, name, {q, k, v}, a, out);
}

int Builder::timestep_proj(int t, int dim, bool flip, double shift) {
  Attrs a;
  a.dim = dim;
  a.flip = flip;
  a.shift = shift;
  return emit(Op::kTimestepProj, "time_proj", {t}, a, vector(dim));
}

int Builder::fourier_proj(const std::string& name, int t, int size) {
  Attrs a;
  a.dim = 2 * size;
  return emit(Op::kFourierProj, name, {t}, a, vector(2 * size), {{name + ".weight", {size}, true}});
}

int Builder::embedding(const std::string& name, int index, int rows, int dim) {
  Attrs a;
  a.dim = dim;
  const ValueInfo& in = value(index);
  const ValueInfo out = in.layout == Layout::kSequence ? ValueInfo{Layout::kSequence, dim, 1, in.w} : vector(dim);
  return emit(Op::kEmbedding, name, {index}, a, out, {{name + ".weight", {rows, dim}}});
}

int Builder::divide_by_timestep(int x, int t) {
  ValueInfo out = value(x);
  out.name = value(x).name + "/t";
  return emit(Op::kDivideByTimestep, out.name, {x, t}, {}, out);
}

void Builder::begin_block(const std::string& name, const std::string& kind, int input) {
  Block b;
  b.name = name;
  b.kind = kind;
  b.input = input;
  b.first_node = static_cast<int>(g_.nodes.size());
  open_blocks_.push_back(static_cast<int>(g_.blocks.size()));
  g_.blocks.push_back(b);
}

void Builder::end_block(int output) {
  if (open_blocks_.empty()) bad("end_block without begin_block");
  Block& b = g_.blocks[static_cast<size_t>(open_blocks_.back())];
  b.output = output;
  b.last_node = static_cast<int>(g_.nodes.size()) - 1;
  open_blocks_.pop_back();
}

void Builder::name_value(int v, const std::string& name) { g_.values.at(static_cast<size_t>(v)).name = name; }

Graph Builder::finish(int output) {
  if (!open_blocks_.empty()) bad("unclosed block " + g_.blocks[static_cast<size_t>(open_blocks_.back())].name);
  g_.output = output;
  g_.validate();
  return std::move(g_);
}

}  // namespace qdm::graph
