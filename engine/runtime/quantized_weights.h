// Execution-plan weight sources over LibTorch models in memory: a quantized model (a recipe's
// result, or an artifact loaded for the simulation) and an fp32 UNet. The plan packs what they
// give exactly as it packs an artifact read from disk.
#pragma once

#include <memory>

#include "engine/model/unet_2d.h"
#include "engine/runtime/plan/weight_source.h"

namespace qdm {

class QuantizedUNet;

class QuantizedWeights final : public plan::WeightSource {
 public:
  explicit QuantizedWeights(const QuantizedUNet& model) : q_(model) {}
  bool quantized() const override { return true; }
  std::string unsupported() const override;
  bool fp32_attention() const override;  // no quantized attention cores (W4A32): fp32 ones
  plan::LayerSource layer(const std::string& name, int n, int k) const override;
  std::vector<float> tensor(const std::string& name) const override;
  std::optional<std::vector<plan::ActTable>> attention(const std::string& name) const override;
  std::optional<plan::FeatureCache> temporal_cache(size_t i) const override;

 private:
  const QuantizedUNet& q_;
};

class ModuleWeights final : public plan::WeightSource {
 public:
  explicit ModuleWeights(UNet2DModel unet) : unet_(std::move(unet)) {}
  bool quantized() const override { return false; }
  plan::LayerSource layer(const std::string& name, int n, int k) const override;
  std::vector<float> tensor(const std::string& name) const override;
  std::optional<std::vector<plan::ActTable>> attention(const std::string&) const override { return std::nullopt; }
  std::optional<plan::FeatureCache> temporal_cache(size_t) const override { return std::nullopt; }

 private:
  UNet2DModel unet_;
};

class ExecutionPlan;
enum class QGemmIsa;
// A plan for a quantized model in memory / an fp32 UNet (the model's description at its sample size).
std::shared_ptr<ExecutionPlan> make_plan(const QuantizedUNet& model, QGemmIsa isa, int threads = 0);
std::shared_ptr<ExecutionPlan> make_plan(UNet2DModel unet, QGemmIsa isa, int threads = 0);
// Empty when make_plan can lower `model`; otherwise why not.
std::string plan_unsupported(const QuantizedUNet& model);

}  // namespace qdm
