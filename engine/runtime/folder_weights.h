// A diffusers model folder's weights read straight into an execution plan, torch-free: F32,
// F16 or BF16 tensors widened to fp32, under today's names or the pre-0.14 attention names. A
// UNet folder, or any pipeline component (text encoder, VAE) checked against its description.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "engine/runtime/plan/weight_source.h"
#include "format/graph/graph.h"
#include "format/safetensors.h"
#include "format/unet_config.h"

namespace qdm {

class FolderWeights final : public plan::WeightSource {
 public:
  // Throws ConfigError naming the tensor at fault (check_unet_weights) when `file` does not hold
  // exactly the tensors `config` implies.
  FolderWeights(std::shared_ptr<const SafeTensors> file, const UNetConfig& config);
  // Any component: the tensors its description declares (check_weights), `ignored` stored ones
  // skipped, `optional` ones allowed absent (weights another source replaces: layer() is then
  // not called for them); errors name `config_name`.
  FolderWeights(std::shared_ptr<const SafeTensors> file, const graph::Graph& description, const std::string& config_name,
                const std::function<bool(const std::string&)>& ignored = nullptr, const std::set<std::string>& optional = {});

  bool quantized() const override { return false; }
  plan::LayerSource layer(const std::string& name, int n, int k) const override;
  std::vector<float> tensor(const std::string& name) const override;
  std::optional<std::vector<plan::ActTable>> attention(const std::string&) const override { return std::nullopt; }
  std::optional<plan::FeatureCache> temporal_cache(size_t) const override { return std::nullopt; }

  // The stored dtype (F32, F16 or BF16; the last tensor's when they differ).
  const std::string& dtype() const { return dtype_; }

 private:
  explicit FolderWeights(std::shared_ptr<const SafeTensors> file);
  std::shared_ptr<const SafeTensors> file_;
  std::map<std::string, const TensorInfo*> by_name_;  // today's names
  std::string dtype_ = "F32";
};

}  // namespace qdm
