// A UNet with fake-quant overrides on its layers: which layers are quantized, at which bit
// widths, which stay fp32, and the shared step context that selects per-step tables.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "engine/model/unet_2d.h"
#include "engine/quant/quant_layers.h"
#include "format/graph/unet_2d.h"
#include "format/quantize_options.h"

namespace qdm {

// Every label of a class-conditional model (0..L-1, the null class included) as an int64
// tensor; undefined for an unconditional model. The temporal features of a conditional model
// are f(t, label): the quantization covers every pair.
at::Tensor every_class_label(const UNetConfig& config);

using graph::is_temporal_layer;  // format/graph/unet_2d.h

class QuantizedUNet {
 public:
  QuantizedUNet(UNet2DModel unet, QuantSpec spec);

  UNet2DModel unet;
  QuantSpec spec;
  std::shared_ptr<StepContext> step;
  std::vector<std::shared_ptr<QuantLayer>> layers;               // quantized layers, model order
  std::vector<std::shared_ptr<QuantAttentionCore>> attention;    // per attention block
  std::vector<std::string> kept_fp;                              // layers with fp32 inputs (weights keep_bits)

  // tfmq+cache: the fp32 model's temporal features of every resnet for every step of the schedule,
  // [step][resnet] -> (L, C): one row per class label of a conditional model (L = its label
  // count), one row (L = 1) otherwise. When set, forward() uses them instead of the time
  // embedding. cache_temporal_features rounds them to F16 values (when in F16's range): the
  // artifact and the execution plan then hold them as F16, half the bytes, and the recipe
  // calibrates on exactly what is served. A cache read from an older artifact stays F32.
  std::vector<std::vector<at::Tensor>> temporal_cache;
  bool has_temporal_cache() const { return !temporal_cache.empty(); }
  void cache_temporal_features(UNet2DModel fp, const std::vector<int>& timesteps);
  // Every value of `t` is an F16 value (it converts to F16 and back unchanged).
  static bool holds_f16_values(const at::Tensor& t);

  void set_act_mode(ActQuantizer::Mode mode);
  // Moves the UNet, the layers' grid weights and the temporal feature cache to `device`
  // (activation tables are host scalars and go with every call).
  void to(c10::Device device);
  // Runs the UNet for sampling step `step_index`; labels (N) for conditional models.
  at::Tensor forward(const at::Tensor& x, int t, int step_index, const at::Tensor& labels = {});
  std::shared_ptr<QuantLayer> layer(const std::string& name) const;
};

}  // namespace qdm
