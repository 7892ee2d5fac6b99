// A text-to-image pipeline's component other than the UNet quantized with it (qdm quantize
// --components unet,text_encoder,vae_decoder): W8A8, per-output-channel weight codes and one
// activation table per layer input, stored in the artifact as an embedded file
// "quantized/<component>.safetensors" (format/artifact_pipeline.h) holding, per quantized layer,
//   <layer>.qweight  U8 (rows, k) codes   <layer>.wscale / .wzero  F32 (rows)
//   <layer>.ascale / .azero  F32 (1)
// under the component's own tensor names, and in its metadata "qdm" = JSON {"component", "layers":
// [{"name", "weight_bits", "act_bits"}], "report"}. The component's other tensors (embeddings,
// norms, biases, layers left fp32) stay in its embedded source weights, without the fp32 weights
// the codes replace; the artifact keeps the source files' hashes. Torch-free: the sampler reads it
// straight into its execution plan.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "format/safetensors.h"

namespace qdm {

// The VAE decoder's calibration (engine/quant/component_quant.cpp) decodes this many latents at
// once and keeps at most this many sampled input values per layer and batch; the scheduler's job
// memory estimate (format/job_memory.h) counts the same.
inline constexpr int64_t kComponentDecodeBatch = 4;
inline constexpr int64_t kComponentSampledValues = int64_t{1} << 18;

// What --components names: "unet" (always quantized), "text_encoder", "vae_decoder".
const std::vector<std::string>& component_names();
// The quantizable components but the UNet: text_encoder, vae_decoder.
bool is_extra_component(const std::string& name);
// "quantized/<component>.safetensors": its embedded file's name.
std::string quantized_component_file(const std::string& component);

struct QuantizedComponentLayer {
  std::string name;
  int weight_bits = 8, act_bits = 8;
};

struct QuantizedComponentInfo {
  std::string component;
  std::vector<QuantizedComponentLayer> layers;
  nlohmann::json report = nlohmann::json::object();  // its fidelity to the fp32 component

  std::string to_json() const;
  // Throws ArtifactError naming what is wrong.
  static QuantizedComponentInfo from_file(const SafeTensors& file);
};

}  // namespace qdm
