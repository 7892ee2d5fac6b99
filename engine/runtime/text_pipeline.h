// A text-to-image pipeline folder (format/pipeline_folder.h) served torch-free: the CLIP
// tokenizer, and the text encoder, the UNet2DConditionModel and the AutoencoderKL decoder, each
// lowered from its description onto an execution plan. The UNet and the decoder take one image
// size per plan: the default size is built at load, others on first use (at most kMaxSizes kept,
// the least recently used dropped).
//
// An artifact that quantized the text encoder or the VAE decoder too (qdm quantize --components)
// runs them on the integer plan whatever kernels serve its UNet.
//
// Runs are not concurrent: the plans' buffers and the UNet's text-state table belong to the one
// request running (a worker runs one batch at a time).
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/kernels/qgemm.h"
#include "engine/runtime/resident_bytes.h"
#include "format/clip_tokenizer.h"
#include "format/safetensors.h"
#include "format/pipeline_folder.h"
#include "format/quantized_component.h"

namespace qdm {

class ArtifactWeights;
class ComponentWeights;
class ExecutionPlan;
class FolderWeights;
namespace plan {
class WeightSource;
}

class TextPipeline {
 public:
  static constexpr int kMaxSizes = 4;

  // Throws what check_pipeline_folder throws (ConfigError, SafeTensorsError naming the component)
  // and ModelLoadError for a tokenizer that does not load.
  static std::shared_ptr<TextPipeline> load(const std::string& dir, QGemmIsa isa);
  // A quantized pipeline's artifact: the files it embeds (format/artifact_pipeline.h) with the
  // same checks, and its UNet from `unet` (the artifact's weights). Throws ArtifactError.
  // unet_plans false: the UNet runs elsewhere (an artifact the plan cannot run); unet() is null.
  static std::shared_ptr<TextPipeline> from_artifact(std::shared_ptr<const SafeTensors> file,
                                                     std::shared_ptr<const ArtifactWeights> unet, QGemmIsa isa,
                                                     bool unet_plans = true);
  ~TextPipeline();

  // The text states of K prompts: (K, length, width).
  std::vector<float> encode(const std::vector<std::string>& prompts) const;
  bool truncated(const std::string& prompt) const { return tokenizer_.encode_padded(prompt).truncated; }

  // The UNet's plan for latents of h x w (h, w multiples of the UNet config's size_multiple()).
  std::shared_ptr<ExecutionPlan> unet(int h, int w) const;
  // n images (C, H, W) in [-1, 1] from n latents (latent_channels, h, w) as the sampler gives
  // them (divided by the VAE's scaling_factor here).
  std::vector<float> decode(const std::vector<float>& latents, int n, int h, int w) const;

  const PipelineFiles& files() const { return files_; }
  int factor() const { return files_.vae.factor(); }  // image pixels per latent pixel
  int size_multiple() const { return factor() * files_.unet.size_multiple(); }  // image height and width
  int default_size() const { return files_.unet.sample_size * factor(); }
  int latent_channels() const { return files_.vae.latent_channels; }
  int image_channels() const { return files_.vae.out_channels; }
  int text_length() const { return tokenizer_.max_length(); }
  // sha256 of the three weight files, in the order unet, vae, text_encoder (an artifact's: its
  // source pipeline's).
  const std::string& sha256() const { return sha256_; }
  // The resident weights of the plans built so far.
  ResidentBytes resident() const;
  QGemmIsa isa() const { return isa_; }
  // The components an artifact quantized beside its UNet (text_encoder, vae_decoder) and their
  // reports (format/quantized_component.h); empty for a folder.
  const std::vector<QuantizedComponentInfo>& quantized_components() const { return quantized_info_; }

 private:
  TextPipeline(PipelineFiles files, ClipTokenizer tokenizer, QGemmIsa isa);
  // The text encoder and VAE from the kept files; the UNet from unet_weights_.
  void build_components();
  struct Sized {
    int h, w;
    std::shared_ptr<ExecutionPlan> unet, decoder;
  };
  const Sized& sized(int h, int w) const;  // under mu_

  PipelineFiles files_;
  ClipTokenizer tokenizer_;
  QGemmIsa isa_;
  std::string sha256_;
  bool unet_plans_ = true;
  std::shared_ptr<const plan::WeightSource> unet_weights_;
  std::unique_ptr<FolderWeights> vae_weights_, text_weights_;
  // An artifact's quantized text encoder / VAE decoder (null: fp32) over the weights above.
  std::shared_ptr<const SafeTensors> quantized_text_file_, quantized_vae_file_;
  std::unique_ptr<ComponentWeights> text_quantized_, vae_quantized_;
  std::vector<QuantizedComponentInfo> quantized_info_;
  std::shared_ptr<ExecutionPlan> text_encoder_;
  mutable std::mutex mu_;
  mutable std::list<Sized> sizes_;  // most recently used first
};

}  // namespace qdm
