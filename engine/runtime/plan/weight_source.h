// Where an execution plan's weights come from, torch-free: an fp32 model folder, a quantized
// artifact file, or a quantized model in memory (a recipe's result) each implement it. The plan
// lowering (execution_plan.cpp) asks for what each node of the model's description needs, by
// the node's name.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qdm::plan {

// An activation table: one (scale, zero point) entry, or one per sampling step.
struct ActTable {
  std::vector<float> scale, zero;
  int bits = 8;
};

// A conv or linear layer's weights as stored: n output channels of k inputs each, K in the
// layer's own order ((c, ky, kx) for a conv) unless said otherwise.
struct LayerSource {
  enum class Kind {
    kF32,    // fp32 weights (n, k)
    kCodes,  // unsigned codes (n, k) with a scale and zero point per output channel, `bits` wide
    kVq,     // additive-quantization codes (recipe vq): K already in the kernels' (ky, kx, c) order
  };
  Kind kind = Kind::kF32;
  int n = 0, k = 0;
  std::vector<float> f32;
  std::vector<uint8_t> codes;
  int bits = 8;
  std::vector<float> scale, zero;  // kCodes: per output channel; kVq: scale per output channel
  // kVq: codes (n, k / group, codebooks), integer codebooks (codebooks, 2^vq_bits, group).
  std::vector<uint8_t> vq_codes;
  std::vector<int8_t> vq_codewords;
  int vq_codebooks = 0, vq_bits = 0, vq_group = 8;
  std::vector<float> bias;
  // Set when the layer's input is quantized: an integer layer with this table.
  std::optional<ActTable> act;
};

// A cached temporal feature (tfmq+cache): `rows` rows per step (1, or one per class label) of
// `channels` values, every step in order; F16 bits when held at F16, else fp32.
struct FeatureCache {
  int rows = 1, channels = 0;
  std::vector<uint16_t> f16;
  std::vector<float> f32;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // Whether this is a quantized model (activation tables, attention tables) or an fp32 one.
  virtual bool quantized() const = 0;
  // Empty when every layer can be served as the plan runs it; otherwise why not (e.g. fp32
  // activations of a weight-only quantized model, activations over 8 bits).
  virtual std::string unsupported() const { return ""; }
  // Whether a quantized model's attention cores without tables run in fp32 (a quantized text
  // encoder or VAE decoder); otherwise every core of a quantized model has its tables.
  virtual bool fp32_attention() const { return !quantized(); }
  // A conv or linear layer of the description, by node name, with its n and k.
  virtual LayerSource layer(const std::string& name, int n, int k) const = 0;
  // Any other tensor of the description as fp32 (norms, biases, embedding tables), by name.
  virtual std::vector<float> tensor(const std::string& name) const = 0;
  // The attention node's q, k, v and softmax-output tables; none for an unquantized core.
  virtual std::optional<std::vector<ActTable>> attention(const std::string& name) const = 0;
  // The cached temporal feature of the model's i-th temporal feature (graph order), if any.
  virtual std::optional<FeatureCache> temporal_cache(size_t i) const = 0;
};

}  // namespace qdm::plan
