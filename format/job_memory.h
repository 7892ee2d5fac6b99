// What a quantize job will hold in memory at its peak, estimated before it runs from its options
// and the model's description (format/graph): the scheduler refuses a Submit whose estimate is
// over --max-job-memory (RESOURCE_EXHAUSTED naming both), `qdm submit --dry-run` and every Job
// show it. Torch-free. The parts are upper bounds of what the engine keeps at once: the
// calibration set (x_t and the fp32 eps of every trajectory and step), the block reconstruction
// pairs (the largest block's input and output for every sampled step), the model's copies while
// weights are learned, fine-tuning's targets and backward pass, TMPQ's quantizer bank.
#pragma once

#include "format/autoencoder_kl_config.h"
#include "format/memory_estimate.h"
#include "format/quantize_options.h"
#include "format/unet_config.h"

namespace qdm {

// Throws std::invalid_argument (ConfigError) for a config the description refuses. `vae`: a
// text-to-image pipeline's VAE, counted when the options quantize its decoder too (the fp32
// latents, a decoding batch's values, the sampled layer inputs).
MemoryEstimate estimate_job_memory(const RecipeOptions& options, const UNetConfig& config, const AutoencoderKLConfig* vae = nullptr);

}  // namespace qdm
