// A pipeline component quantized beside its UNet (format/quantized_component.h) read straight
// into an execution plan, torch-free: its quantized layers' codes and activation tables from the
// artifact's embedded quantized/<component>.safetensors, everything else (embeddings, norms,
// biases, layers left fp32) from the component's fp32 weights, which need not hold the quantized
// layers' weights; attention cores run in fp32. The
// quantized file is validated against the component's description when opened (every listed
// layer a conv or linear node, its tensors with their shapes, codes within their bits, scales
// positive, nothing else), so a bad artifact is refused at load, naming the tensor at fault.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "engine/runtime/plan/weight_source.h"
#include "format/graph/graph.h"
#include "format/quantized_component.h"
#include "format/safetensors.h"

namespace qdm {

class ComponentWeights final : public plan::WeightSource {
 public:
  // `fp32`: the component's own weights (kept alive by the caller while this is used).
  // Throws ArtifactError naming the component and what is wrong.
  ComponentWeights(std::shared_ptr<const SafeTensors> quantized, const plan::WeightSource& fp32, const graph::Graph& description);

  bool quantized() const override { return true; }
  bool fp32_attention() const override { return true; }
  plan::LayerSource layer(const std::string& name, int n, int k) const override;
  std::vector<float> tensor(const std::string& name) const override { return fp32_.tensor(name); }
  std::optional<std::vector<plan::ActTable>> attention(const std::string&) const override { return std::nullopt; }
  std::optional<plan::FeatureCache> temporal_cache(size_t) const override { return std::nullopt; }

  const QuantizedComponentInfo& info() const { return info_; }

 private:
  std::shared_ptr<const SafeTensors> file_;
  const plan::WeightSource& fp32_;
  QuantizedComponentInfo info_;
  struct Layer {
    QuantizedComponentLayer info;
    int64_t rows = 0, k = 0;
    std::string bias;  // its bias tensor's name; empty when the layer has none
  };
  std::map<std::string, Layer> layers_;
};

}  // namespace qdm
