// The packed quantized artifact: one safetensors file holding
//   <layer>.qweight  U8  packed integer weight codes (rows = output channels, int4 two per byte)
//   <layer>.wscale / <layer>.wzero  F32 per output channel
//   <layer>.ascale / <layer>.azero  F32 activation table (1 entry, or one per sampling step)
//   <attn>.{q,k,v}.ascale / azero   attention activation tables
//   every other tensor (norms, biases, layers kept in fp32) as F32 under its diffusers name
//   eps_bias  F16 (steps, C, H, W), the eps bias correction's maps (recipe option bias_samples)
//   pipeline/<name>  U8  a quantized text-to-image pipeline's other files, what sampling reads
//                        of them (format/artifact_pipeline.h)
// and, in the header's __metadata__, "qdm" = JSON: format version, UNet and scheduler
// configs, recipe and options, bit widths, the sampling schedule, source model sha256,
// timings and the quality report. Loading needs neither the source model nor calibration data.
#pragma once

#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <vector>

#include "format/unet_config.h"
#include "engine/quant/quant_model.h"
#include "format/artifact_metadata.h"
#include "format/artifact_pipeline.h"
#include "format/noise_schedule.h"
#include "engine/sampling/eps_bias.h"
#include "engine/sampling/tensor_sampling.h"
#include "engine/sampling/samplers.h"

namespace qdm {

struct DiffusionModel;

// Writes the tensors of `model` and `info` as metadata, with its spec, layers, kept layers and
// feature cache flag taken from the model; `eps_bias` (one map per step of info.timesteps) when
// given.
// `pipeline` (a quantized pipeline's files, pipeline_files_to_embed) are embedded and listed in
// the metadata.
void save_artifact(const std::string& path, QuantizedUNet& model, const ArtifactInfo& info,
                   const EpsBias* eps_bias = nullptr, const EmbeddedFiles* pipeline = nullptr);

// Copies the artifact at `in_path` to `out_path` with `bias` as its eps bias (replacing any
// earlier one; the recipe's bias_samples set to `samples`, its seconds under timings.eps_bias);
// every other tensor is copied unchanged. Throws ArtifactError when the bias's schedule is not
// the artifact's.
void add_eps_bias(const std::string& in_path, const std::string& out_path, const EpsBias& bias, int samples,
                  double seconds);

struct LoadedArtifact {
  ArtifactInfo info;
  std::unique_ptr<QuantizedUNet> model;
  std::string sha256;
  int64_t file_bytes = 0;
  bool per_step_tables = false;  // activation tables per step: only its own schedule samples
  std::shared_ptr<const EpsBias> eps_bias;  // the eps bias correction, when the recipe measured one
  EmbeddedFiles pipeline_files;             // a quantized pipeline's files (kept when it is rewritten)
};
// Throws ArtifactError / SafeTensorsError naming what is wrong.
LoadedArtifact load_artifact(const std::string& path);

// A quantized pipeline's artifact beside its source pipeline (fine-tuning, eps bias): the
// prompt table its recipe calibrated on (its recorded prompts, else the folder's
// calibration_prompts.txt) set on both UNets, which then run by label. Nothing for a UNet model.
void use_artifact_prompts(DiffusionModel& model, LoadedArtifact& artifact);

// A noise predictor over a quantized model: maps each timestep to its table entry; a
// timestep outside the calibrated schedule is an error when the tables are per step.
ModelDenoiser artifact_denoiser(LoadedArtifact& artifact);
// Checks that `options` visit exactly the artifact's schedule (per-step tables) or throws
// std::invalid_argument saying what to change.
void check_schedule(const LoadedArtifact& artifact, const NoiseSchedule& schedule, const SamplerOptions& options);

}  // namespace qdm
