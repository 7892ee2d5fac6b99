// Fake-quant overrides installed on UNet layers: input activation through an ActQuantizer,
// then the layer with fake-quantized weights. Attention's q, k, v and softmax output get
// their own activation quantizers.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "engine/model/graph_module.h"
#include "engine/model/layers.h"
#include "engine/quant/act_quantizer.h"
#include "engine/quant/adaround.h"
#include "engine/quant/uniform_quant.h"
#include "engine/quant/vq/additive_quantizer.h"

namespace qdm {

class QuantLayer : public LayerOverride {
 public:
  // Exactly one of conv / linear is set. act_bits 0 keeps the input in fp32; weight_bits is
  // the grid the recipe puts the weights on.
  QuantLayer(std::string name, Conv2dLayerImpl* conv, LinearLayerImpl* linear, int act_bits, int steps,
             std::shared_ptr<StepContext> step, int weight_bits);
  at::Tensor forward(const at::Tensor& input) override;

  // Quantizes the layer's fp32 weight with `params` (kept for packing); the fp32 weight stays
  // in the layer and fake_weight is used in forward.
  void set_weight_quant(const QuantParams& params);
  at::Tensor fp_weight() const;
  // Learned rounding: forward uses the soft weight until finish_adaround() makes it hard.
  void begin_adaround();
  void finish_adaround();
  at::Tensor bias() const;
  // Puts `runtime` (an integer layer built from this one) in this layer's place and frees the
  // fp32 and grid weights it no longer needs.
  void replace_with(std::shared_ptr<LayerOverride> runtime);

  std::string name;
  Conv2dLayerImpl* conv;
  LinearLayerImpl* linear;
  bool quant_input;  // whether `act` is used at all
  int weight_bits;
  int64_t macs_per_image = 0;  // multiply-adds of one image's call, from the last input seen
  ActQuantizer act;
  QuantParams weight_params;  // undefined scale: fp32 weights
  at::Tensor fake_weight;  // on the quantization grid; the artifact packs its codes
  std::shared_ptr<AdaRound> adaround;
  std::shared_ptr<StepContext> step;
  // Recipe vq: the weights as additive-quantization codes on integer codebooks (their decode is
  // fake_weight; weight_params is then the 8-bit grid that decode lies on). Null: scalar.
  std::shared_ptr<const vq::AqCodes> vq;
  // When set, called with every input as the layer sees it (after its activation quantizer),
  // e.g. to gather X^T X.
  std::function<void(const at::Tensor&)> input_tap;
};

class QuantAttentionCore : public AttentionCoreOverride {
 public:
  QuantAttentionCore(std::string name, int act_bits, int steps, std::shared_ptr<StepContext> step);
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) override;

  std::string name;
  ActQuantizer q, k, v, probs;  // probs: softmax output, unsigned on [0, 1]
  int64_t tokens = 0, channels = 0;  // of the last call (budgets)
  std::shared_ptr<StepContext> step;
  void set_mode(ActQuantizer::Mode mode);
};

}  // namespace qdm
