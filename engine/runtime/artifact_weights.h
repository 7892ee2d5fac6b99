// A packed artifact read straight into an execution plan, torch-free: its codes, scales,
// activation and attention tables, feature caches and fp32 tensors as the plan asks for them by
// the description's names. The whole file is validated against its description when opened
// (every tensor the config implies present with its dtype and shape, codes within their bits,
// nothing else), so a bad artifact is refused at load, naming the tensor at fault.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "engine/runtime/plan/weight_source.h"
#include "format/artifact_metadata.h"
#include "format/graph/graph.h"
#include "format/safetensors.h"

namespace qdm {

class ArtifactWeights final : public plan::WeightSource {
 public:
  // `graph`: the description of info.config. Throws ArtifactError naming what is wrong.
  ArtifactWeights(std::shared_ptr<const SafeTensors> file, ArtifactInfo info, const graph::Graph& graph);

  bool quantized() const override { return true; }
  std::string unsupported() const override;
  // A weight-only artifact (W4A32) has no attention tables: its cores run in fp32, as its layers
  // do on their integer weights.
  bool fp32_attention() const override { return !attention_quantized_; }
  plan::LayerSource layer(const std::string& name, int n, int k) const override;
  std::vector<float> tensor(const std::string& name) const override;
  std::optional<std::vector<plan::ActTable>> attention(const std::string& name) const override;
  std::optional<plan::FeatureCache> temporal_cache(size_t i) const override;

  const ArtifactInfo& info() const { return info_; }
  // Whether some activation table has one entry per step (only its own schedule samples).
  bool per_step_tables() const { return per_step_; }

 private:
  const ArtifactLayer* listed(const std::string& layer) const;
  const TensorInfo& get(const std::string& name) const;
  plan::ActTable act_table(const std::string& prefix, int bits) const;
  void validate(const graph::Graph& graph);

  std::shared_ptr<const SafeTensors> file_;
  ArtifactInfo info_;
  bool per_step_ = false;
  bool attention_quantized_ = false;
  std::map<std::string, int> kernel_area_;  // listed layers: kernel height x width (1: linear)
};

}  // namespace qdm
