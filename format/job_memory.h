// What a quantize job will hold in memory at its peak, estimated before it runs from its options
// and the model's description (format/graph): the scheduler refuses a Submit whose estimate is
// over --max-job-memory (RESOURCE_EXHAUSTED naming both), `qdm submit --dry-run` and every Job
// show it. Torch-free. The parts are upper bounds of what the engine keeps at once: the
// calibration set (x_t and the fp32 eps of every trajectory and step), the block reconstruction
// pairs (the largest block's input and output for every sampled step), the model's copies while
// weights are learned, fine-tuning's targets and backward pass, TMPQ's quantizer bank.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "format/autoencoder_kl_config.h"
#include "format/quantize_options.h"
#include "format/unet_config.h"

namespace qdm {

struct JobMemory {
  std::vector<std::pair<std::string, int64_t>> parts;  // what holds the bytes, in job order
  int64_t total() const;
  // "8.4 GiB (calibration set 8.4 GiB, ...)", the largest parts first (at most four).
  std::string summary() const;
};

// Throws std::invalid_argument (ConfigError) for a config the description refuses. `vae`: a
// text-to-image pipeline's VAE, counted when the options quantize its decoder too (the fp32
// latents, a decoding batch's values, the sampled layer inputs).
JobMemory estimate_job_memory(const RecipeOptions& options, const UNetConfig& config, const AutoencoderKLConfig* vae = nullptr);

// "1.5 GiB", "320 MiB", "12 KiB".
std::string format_bytes(int64_t bytes);
// Bytes from "1073741824", Kubernetes quantities ("8Gi", "512Mi", "2G") or "1.5GiB"; throws
// std::invalid_argument saying what is accepted.
int64_t parse_bytes(const std::string& text);

}  // namespace qdm
