// What a packed artifact says about itself: the JSON in its safetensors header under
// __metadata__["qdm"] (format version, UNet and scheduler configs, sampler and timesteps, recipe
// and quantization spec, per-layer bits, the source model, timings and the quality report).
// One reader and writer for the engine (which also reads the tensors) and the scheduler
// (which lists and describes artifacts without LibTorch).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "format/noise_schedule.h"
#include "format/quantize_options.h"
#include "format/sampler_options.h"
#include "format/unet_config.h"

namespace qdm {

class SafeTensors;

constexpr int kArtifactFormatVersion = 1;

class ArtifactError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ArtifactLayer {
  std::string name;
  int weight_bits = 0;
  int act_bits = 0;     // 0: fp32 input
  int act_entries = 0;  // activation table entries (1, or one per step)
  // Recipe vq: the layer's weights as additive-quantization codes (tensors <layer>.vq_codes,
  // .vq_codebooks, .vq_scales instead of .qweight/.wscale/.wzero); codebooks 0: scalar.
  int vq_codebooks = 0, vq_codebook_bits = 0, vq_group = 0;
  bool vector_quantized() const { return vq_codebooks > 0; }
};

struct ArtifactInfo {
  UNetConfig config;
  SchedulerConfig scheduler;
  SamplerOptions sampler;
  std::vector<int> timesteps;  // the schedule the tables were calibrated for
  std::string source_sha256;
  std::string source_name;     // the source model's name where the job knew it
  nlohmann::json recipe = nlohmann::json::object();   // RecipeOptions::to_json()
  nlohmann::json timings = nlohmann::json::object();  // seconds per stage
  nlohmann::json report;       // quality report; null when the job asked for none
  std::vector<uint8_t> figure_png;  // the recipe's figure (stored as tensor report.figure_png), or empty
  // A quantized text-to-image pipeline: the source pipeline's files other than the UNet's
  // weights (model_index.json, configs, text encoder, VAE, tokenizer), each embedded whole as a
  // U8 tensor "pipeline/<name>" (format/artifact_pipeline.h), so the artifact samples from
  // prompts without its source folder; and the sha256 of each source weights file. Empty for a
  // UNet artifact.
  std::vector<std::string> pipeline_files;
  std::map<std::string, std::string> pipeline_sha256;  // "unet", "vae", "text_encoder"
  bool text_to_image() const { return !pipeline_files.empty(); }
  // Filled from the model when saving:
  QuantSpec spec;
  std::vector<ArtifactLayer> layers;
  std::vector<std::string> kept_fp;
  int attention_quantized = 0;
  bool temporal_cache = false;

  nlohmann::json to_json() const;
  // Throws ArtifactError naming the missing or unsupported field (format_version first).
  static ArtifactInfo from_json(const nlohmann::json& j);
};

// The metadata of a safetensors file; throws ArtifactError when it is not a qdm artifact.
ArtifactInfo read_artifact_info(const SafeTensors& file);

}  // namespace qdm
