// A model described once: a graph of named nodes (layers and operations) over values, with the
// parameters each node declares under diffusers' names, and the blocks (resnets, attention
// blocks) that group them. One description per architecture (unet_2d.h, ...) is lowered three
// ways: the tensors a config implies (uploads are validated against them, torch-free), the
// LibTorch modules that train, calibrate and simulate (engine/model/graph_module.h), and the
// execution plan's fused kernels (engine/runtime/plan). Torch-free.
//
// Values are per image: an image (C, H, W) — NCHW in LibTorch, channels-last rows in a plan —,
// a sequence (L, C) or a vector (C). Token ids are a sequence of one integer channel ((N, L) in
// LibTorch). A sequence of H*W rows and a channels-last image are the
// same bytes, so ToSequence / ToImage cost nothing in a plan.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace qdm::graph {

enum class Layout { kImage, kSequence, kVector, kScalar };

// What a graph takes per image.
enum class Input {
  kSample,          // the noisy image (kImage)
  kTimestep,        // the training timestep (kScalar, float)
  kClassLabel,      // an integer class label (kScalar)
  kClassEmbedding,  // a class embedding given directly (kVector; class_embed_type "identity")
  kTokenIds,        // a text encoder's input_ids (kSequence of one integer channel)
  kTextStates,      // encoder_hidden_states a denoiser attends to (kSequence)
  kLatent,          // a VAE decoder's latent (kImage)
};

enum class Op {
  kInput,             // attrs.input
  kConv2d,            // params weight (Cout, Cin, k, k), bias; attrs kernel, stride, padding
  kPadBottomRight,    // zeros on the right and bottom (attrs padding): Downsample2D with padding 0
  kLinear,            // params weight (out, in), bias (when attrs.bias); over the channels of a vector or a sequence
  kGroupNorm,         // params weight, bias (when attrs.affine); attrs groups, eps
  kSiLU,
  kAdd,               // a + b: the same layout and shape, or an image plus a vector per channel
  kAffine,            // (x * alpha + beta) / divisor, each step only where it changes x
  kScaleShift,        // image h, vector f of 2C: h * (1 + f[:C]) + f[C:] (resnet_time_scale_shift)
  kConcat,            // channels of two images
  kUpsample2x,        // nearest neighbour
  kToSequence,        // image (C, H, W) -> sequence (H W, C)
  kToImage,           // sequence (H W, C), image -> image (C, H, W) of the second input's size
  kAttention,         // sequences q, k, v: softmax(q k^T / sqrt(d)) v per head; attrs heads
  kTimestepProj,      // timestep -> vector: diffusers' get_timestep_embedding; attrs dim, flip, shift
  kFourierProj,       // timestep -> vector: param weight (a buffer): [sin, cos](2 pi log(t) w)
  kEmbedding,         // integer -> vector: row of param weight (rows, dim)
  kDivideByTimestep,  // image / t (fourier UNets' output)
  kLayerNorm,         // params weight, bias; over the channels of a sequence; attrs eps
  kGELU,              // exact (erf)
  kQuickGELU,         // x * sigmoid(1.702 x) (CLIP)
  kGEGLU,             // sequence of 2C -> C: a * gelu(g) for [a, g] = x (diffusers' GEGLU after its proj)
  kPositionEmbedding, // sequence x + rows [0, L) of param weight (positions, C)
  kSliceChannels,     // channels [attrs.offset, attrs.offset + out channels) of an image
};
const char* op_name(Op op);

struct Attrs {
  Input input = Input::kSample;
  int kernel = 1, stride = 1, padding = 0;
  int groups = 1;
  bool affine = true;
  double eps = 1e-5;
  double alpha = 1, beta = 0, divisor = 1;
  int heads = 1;
  bool causal = false;  // attention: position i attends to positions <= i
  bool bias = true;     // linear
  int offset = 0;       // slice_channels
  int dim = 0;
  bool flip = false;
  double shift = 0;
  int height = 0, width = 0;
};

struct TensorDecl {
  std::string name;
  std::vector<int64_t> shape;
  bool buffer = false;  // a fixed tensor (e.g. Fourier frequencies), never trained
  int64_t numel() const;
};

struct ValueInfo {
  Layout layout = Layout::kImage;
  int c = 0, h = 1, w = 1;  // images: C, H, W; sequences: C, 1, L; vectors: C, 1, 1; scalars: 1, 1, 1
  int producer = -1;        // node
  std::string name;         // the node's output name, or a role ("temb")
  int64_t size() const { return static_cast<int64_t>(c) * h * w; }  // floats per image
  int length() const { return w; }                                  // sequences
};

struct Node {
  Op op = Op::kInput;
  std::string name;          // the module it stands for; parameters are name + ".weight" / ".bias"
  std::vector<int> inputs;   // values
  int output = -1;
  Attrs attrs;
  std::vector<int> params;   // tensors
  int block = -1;            // the innermost block it belongs to
};

// A named group of nodes (a diffusers module with a block-level role): its main input and
// output, for block reconstruction taps and per-block quantization.
struct Block {
  std::string name;   // "down_blocks.0.resnets.1"
  std::string kind;   // "resnet", "attention"
  int input = -1, output = -1;
  int first_node = -1, last_node = -1;  // its nodes are [first_node, last_node] in node order
};

class Graph {
 public:
  std::string architecture;  // "UNet2DModel"
  std::vector<ValueInfo> values;
  std::vector<Node> nodes;  // a topological order (the order a forward pass runs them)
  std::vector<TensorDecl> tensors;  // in declaration (registration) order
  std::vector<Block> blocks;
  int output = -1;

  // The input value of `kind`, or -1 when the graph takes none.
  int input(Input kind) const;
  const Node& producer(int value) const { return nodes.at(static_cast<size_t>(values.at(static_cast<size_t>(value)).producer)); }
  std::vector<int> consumers(int value) const;  // nodes, in order
  const TensorDecl& tensor(int index) const { return tensors.at(static_cast<size_t>(index)); }
  int find_tensor(const std::string& name) const;  // -1 when absent
  int find_node(const std::string& name) const;    // the first node of that name, or -1
  int find_value(const std::string& name) const;   // by ValueInfo::name, or -1
  const Block* find_block(const std::string& name) const;

  // Whether value v depends only on the timestep and class inputs (TFMQ-DM's Temporal
  // Information Block computes exactly these).
  bool temporal(int value) const;
  // The temporal values that non-temporal nodes consume (the resnets' time_emb_proj outputs of a
  // UNet), in node order: TFMQ-DM's cached features.
  std::vector<int> temporal_features() const;
  // The conv and linear nodes (the layers quantization acts on), in order.
  std::vector<int> layers() const;

  int64_t parameter_count() const;  // every tensor, buffers included
  void validate() const;            // consistency of indices and shapes; throws std::logic_error

 private:
  mutable std::vector<int8_t> temporal_;  // per value: -1 unknown, 0 no, 1 yes
};

// Emits nodes in order, declaring their parameters and inferring value shapes. Descriptions
// use it; blocks nest by begin_block / end_block.
class Builder {
 public:
  explicit Builder(std::string architecture);
  int input(Input kind, Layout layout, int c, int h = 1, int w = 1);
  int conv(const std::string& name, int x, int out_channels, int kernel, int stride = 1, int padding = -1);
  int pad_bottom_right(int x, int amount);
  int linear(const std::string& name, int x, int out_features, bool bias = true);
  int layer_norm(const std::string& name, int x, double eps);
  int gelu(int x);
  int quick_gelu(int x);
  int geglu(int x);
  int position_embedding(const std::string& name, int x, int positions);
  int slice_channels(int x, int offset, int count);
  int group_norm(const std::string& name, int x, int groups, double eps, bool affine = true);
  int silu(int x);
  int add(int a, int b);
  int affine(int x, double alpha, double beta, double divisor = 1);
  int scale_shift(int h, int f);
  int concat(int a, int b);
  int upsample2x(int x);
  int to_sequence(int x);
  int to_image(int x, int like);  // the sequence x as an image of like's size
  int attention(const std::string& name, int q, int k, int v, int heads, bool causal = false);
  int timestep_proj(int t, int dim, bool flip, double shift);
  // A name whose tensor exists already shares it (class_embed_type "timestep" projects the
  // label with the time projection's own Fourier weights or table).
  int fourier_proj(const std::string& name, int t, int size);
  // index: a scalar (-> vector) or a sequence of ids (-> sequence of rows).
  int embedding(const std::string& name, int index, int rows, int dim);
  int divide_by_timestep(int x, int t);

  void begin_block(const std::string& name, const std::string& kind, int input);
  void end_block(int output);
  void name_value(int value, const std::string& name);
  Graph finish(int output);

  const ValueInfo& value(int v) const { return g_.values.at(static_cast<size_t>(v)); }

 private:
  int emit(Op op, const std::string& name, std::vector<int> inputs, const Attrs& attrs, ValueInfo out,
           std::vector<TensorDecl> params = {});
  Graph g_;
  std::vector<int> open_blocks_;
};

}  // namespace qdm::graph
