// A diffusers StableDiffusionPipeline folder checked without LibTorch: model_index.json names the
// supported classes, each component's weights match the tensors its config implies (from the
// component's description), the tokenizer loads, and the parts fit together. The scheduler
// validates uploads with it; the engine's loader runs the same checks before building modules.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "format/autoencoder_kl_config.h"
#include "format/clip_text_config.h"
#include "format/noise_schedule.h"
#include "format/unet_config.h"
#include "format/unet_tensors.h"  // ModelLimits

namespace qdm {

class SafeTensors;

struct PipelineFiles {
  std::string dir;
  UNetConfig unet;
  AutoencoderKLConfig vae;
  ClipTextConfig text_encoder;
  SchedulerConfig scheduler;
  std::string unet_weights, vae_weights, text_encoder_weights;  // paths
  // Whether the VAE's weights hold its encoder: always in a folder; a quantized pipeline's
  // artifact embeds the decoder only (older artifacts the whole VAE).
  bool vae_encoder = true;
  // An artifact's component quantized beside its UNet: the fp32 weights its codes replace
  // ("<layer>.weight"), which the artifact leaves out (older artifacts keep them).
  std::set<std::string> text_encoder_replaced, vae_replaced;
  // The weights files as the check read them, when asked to keep them (loaders then read each
  // file once); null otherwise.
  std::shared_ptr<const SafeTensors> unet_file, vae_file, text_encoder_file;
};

// Whether dir holds model_index.json.
bool is_pipeline_dir(const std::string& dir);

// Where a pipeline's files come from: a folder, or the copies a quantized pipeline's artifact
// embeds. Names are pipeline-relative ("tokenizer/vocab.json").
class PipelineSource {
 public:
  virtual ~PipelineSource() = default;
  virtual bool has(const std::string& name) const = 0;
  // A file's contents, or nullopt when absent.
  virtual std::optional<std::string> read(const std::string& name) const = 0;
  // A weights file parsed; throws SafeTensorsError naming it.
  virtual std::shared_ptr<const SafeTensors> weights(const std::string& name) const = 0;
  // What PipelineFiles' paths start with (a folder's path; "" for an artifact).
  virtual std::string prefix() const = 0;
  // Whether the source serves sampling only (an artifact): its VAE may hold the decoder alone.
  virtual bool sampling_only() const { return false; }
};

class FolderSource final : public PipelineSource {
 public:
  explicit FolderSource(std::string dir) : dir_(std::move(dir)) {}
  bool has(const std::string& name) const override;
  std::optional<std::string> read(const std::string& name) const override;
  std::shared_ptr<const SafeTensors> weights(const std::string& name) const override;
  std::string prefix() const override { return dir_ + "/"; }

 private:
  std::string dir_;
};

// Throws ConfigError (or SafeTensorsError) naming the component file and field or tensor.
// keep_files: PipelineFiles keeps the weights files it read (a loader's single read).
PipelineFiles check_pipeline_folder(const std::string& dir, const ModelLimits& limits = {}, bool keep_files = false);
// The same checks on any source; `unet_weights` false skips the UNet's weights (an artifact
// holds its quantized UNet apart).
PipelineFiles check_pipeline_files(const PipelineSource& source, const ModelLimits& limits = {}, bool keep_files = false,
                                   bool unet_weights = true);
// The tokenizer of a source's tokenizer/ files; throws ConfigError naming the file.
class ClipTokenizer;
ClipTokenizer load_tokenizer(const PipelineSource& source);
// The weights file of the text encoder (model.safetensors, or diffusion_pytorch_model.safetensors).
std::string text_encoder_weights_name(const PipelineSource& source);

// The files a pipeline folder may hold (relative paths), the ones transferred on upload and to
// workers: model_index.json, scheduler/, unet/, vae/, text_encoder/, tokenizer/, and the optional
// calibration_prompts.txt (quantize jobs' default prompts).
const std::vector<std::string>& pipeline_file_names();
// Those present in dir (the required ones are checked by check_pipeline_folder).
std::vector<std::string> pipeline_files(const std::string& dir);

// The fp32 weights ("<layer>.weight") that `component`'s quantized file in `source` replaces
// (format/quantized_component.h); none when the source holds no such file.
std::set<std::string> replaced_weights(const PipelineSource& source, const std::string& component);

// Stored text-encoder tensors a CLIPTextModel does not use (position_ids, a text projection).
bool ignored_text_encoder_tensor(const std::string& name);

}  // namespace qdm
