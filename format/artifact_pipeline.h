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

// Embedded files: (pipeline-relative name, contents).
using EmbeddedFiles = std::vector<std::pair<std::string, std::vector<uint8_t>>>;

// The files of pipeline folder `dir` an artifact embeds: every file pipeline_files() lists but
// the UNet's weights and calibration_prompts.txt, then `quantized` (the components quantized
// beside the UNet, format/quantized_component.h). Weights files go without what sampling does not
// read: the VAE's encoder (graph::vae_encoder_tensor) and the fp32 weights of every layer a
// quantized component's codes replace; each other tensor as stored.
EmbeddedFiles pipeline_files_to_embed(const std::string& dir, EmbeddedFiles quantized = {});

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
