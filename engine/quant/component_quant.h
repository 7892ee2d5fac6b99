// A text-to-image pipeline's text encoder or VAE decoder quantized beside its UNet (qdm quantize
// --components; format/quantized_component.h): every conv and linear layer of the component at
// `bits` (8) weights per output channel on their MSE range (mse_weight_params) and `bits`
// activations per layer input on the MSE range (mse_range) of what the layer sees over the
// calibration inputs, attention cores left fp32. Its fidelity to the fp32 component is measured
// on the same inputs and goes in the report. The pipeline's modules are left as they were.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/pipeline_folder.h"
#include "format/quantized_component.h"

namespace qdm {

struct ComponentQuantization {
  QuantizedComponentInfo info;
  std::vector<uint8_t> file;  // quantized/<component>.safetensors, to embed in the artifact
};

// Calibrated on the token ids of `prompts`; report: the text states' relative L2 error.
ComponentQuantization quantize_text_encoder(TextToImagePipeline& pipe, const std::vector<std::string>& prompts, int bits = 8);
// Calibrated on `latents` as the sampler gives them (N, latent_channels, h, w), divided by the
// VAE's scaling_factor here; report: the decoded images' PSNR against the fp32 decoder's.
ComponentQuantization quantize_vae_decoder(TextToImagePipeline& pipe, const at::Tensor& latents, int bits = 8);

}  // namespace qdm
