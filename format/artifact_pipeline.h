// A quantized text-to-image pipeline's artifact: the source pipeline's files beside the
// quantized UNet (text encoder, VAE decoder, tokenizer, model_index.json and the configs), each
// stored as a U8 tensor "pipeline/<name>", whole but for the VAE's weights, whose encoder half
// (never read to sample) is left out. Read back as a PipelineSource, the same checks and
// loaders run on it as on a folder. Torch-free: the sampler and the scheduler read it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "format/pipeline_folder.h"
#include "format/safetensors.h"

namespace qdm {

inline const char* const kPipelineTensorPrefix = "pipeline/";

// The files of pipeline folder `dir` an artifact embeds: every file pipeline_files() lists but
// the UNet's weights and calibration_prompts.txt, as (name, contents); the VAE's weights without
// its encoder's tensors (graph::vae_encoder_tensor), in their stored dtypes.
std::vector<std::pair<std::string, std::vector<uint8_t>>> pipeline_files_to_embed(const std::string& dir);

// The embedded files of an artifact (`names` as its metadata lists them); a file the metadata
// does not list reads as absent.
class ArtifactPipelineSource final : public PipelineSource {
 public:
  ArtifactPipelineSource(std::shared_ptr<const SafeTensors> artifact, std::vector<std::string> names);
  bool has(const std::string& name) const override;
  std::optional<std::string> read(const std::string& name) const override;
  std::shared_ptr<const SafeTensors> weights(const std::string& name) const override;
  std::string prefix() const override { return kPipelineTensorPrefix; }
  bool sampling_only() const override { return true; }

 private:
  const TensorInfo* find(const std::string& name) const;
  std::shared_ptr<const SafeTensors> file_;
  std::vector<std::string> names_;
};

}  // namespace qdm
