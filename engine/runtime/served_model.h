// A model that serves sample requests, torch-free: an fp32 model folder or a packed artifact
// read straight into an execution plan (from_folder / from_artifact), or any other noise
// predictor with the same description (the LibTorch worker's simulation and CUDA paths build
// one, loaded_model.h). What a request needs is here: its checks (steps, the artifact's
// calibrated schedule, class labels and guidance), sampling over float buffers, PNG text and
// the figures a server reports (kernels, resident bytes). qdm-sampler links only this.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/runtime/resident_bytes.h"
#include "engine/sampling/pipeline.h"
#include "format/artifact_metadata.h"
#include "format/noise_schedule.h"
#include "format/png.h"
#include "format/unet_config.h"

namespace qdm {

class ExecutionPlan;
class TextPipeline;

// How a quantized artifact runs: integer kernels (default) or the fake-quant simulation (which
// needs LibTorch: the worker has it, qdm-sampler does not).
enum class KernelMode { kInt, kSim };
KernelMode parse_kernel_mode(const std::string& name);  // "int" | "sim"

// The execution plan cannot run this model (e.g. a W4A32 artifact); the message says why.
class PlanUnsupported : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// An execution plan as a noise predictor: each timestep maps to its index in `timesteps` (the
// plan's table entry); with `per_step` tables a timestep outside them is an error.
ModelFn plan_model(std::shared_ptr<ExecutionPlan> plan, const std::vector<int>& timesteps, bool per_step);

class ServedModel {
 public:
  // What a model is, whatever runs it.
  struct Description {
    std::string path, sha256;
    UNetConfig config;
    SchedulerConfig scheduler;
    std::shared_ptr<const ArtifactInfo> artifact;  // null for a model folder
    bool per_step_tables = false;                  // artifacts: only their own schedule samples
    std::shared_ptr<const EpsBias> eps_bias;       // artifacts whose recipe measured one
    std::shared_ptr<const TextPipeline> text;      // text-to-image pipelines: prompts in
    // A text-to-image artifact run off the execution plan (kernels sim, the per-layer integer
    // kernels): its UNet for one request's text states (`entries` of (L, D) floats, kept by the
    // caller while it runs) at latents of h x w. Null: the pipeline's own UNet plans.
    std::function<ModelFn(const float* states, int entries, int h, int w)> text_unet;
  };

  // On this CPU's execution plan (the best instruction set, QDM_KERNEL_ISA honoured). Throw
  // ModelLoadError, ConfigError, ArtifactError or SafeTensorsError naming what is wrong, and
  // PlanUnsupported for a valid model the plan cannot run.
  // A folder with model_index.json is a text-to-image pipeline (from_pipeline).
  static ServedModel from_folder(const std::string& dir);
  static ServedModel from_pipeline(const std::string& dir);
  static ServedModel from_artifact(const std::string& path);
  // Any other noise predictor; `weight_bytes` are its resident weights (or their breakdown).
  ServedModel(Description description, ModelFn model, std::string kernels, size_t weight_bytes);
  ServedModel(Description description, ModelFn model, std::string kernels, ResidentBytes resident);

  // Validates `options` for this model (steps within the schedule, the artifact's calibrated
  // schedule when its tables are per step); throws std::invalid_argument saying what to change.
  void check(const SamplerOptions& options) const;
  // Validates a request's class labels and guidance (labels in range, none for an
  // unconditional model, guidance only with a null class); throws std::invalid_argument naming
  // the valid labels.
  void check_conditioning(const std::vector<int>& labels, double guidance) const;
  // Validates a request's prompts and size: prompts only for a text-to-image pipeline (and then
  // no class labels), one for every image or one per image, a size in multiples of the model's
  // factor up to 4096 pixels; throws std::invalid_argument saying what to change.
  void check_prompts(const SampleRequest& request) const;
  bool takes_prompts() const { return d_.text != nullptr; }
  // Whether the tokenizer cuts the prompt (longer than its limit).
  bool prompt_truncated(const std::string& prompt) const;
  // The shape of each image a request gives.
  struct ImageShape {
    int channels, height, width;
    size_t size() const { return static_cast<size_t>(channels) * height * width; }
  };
  ImageShape image_shape(const SampleRequest& request) const;
  // num_images images of image_shape() floats in [-1, 1], after check, check_conditioning and
  // check_prompts.
  // Wall seconds of a request's stages: text encoding and VAE decoding are zero for a UNet
  // model, whose every second is denoising.
  struct StageSeconds {
    double text_encoding = 0, denoising = 0, vae_decoding = 0;
  };
  std::vector<float> generate(const SampleRequest& request,
                              const std::function<bool(const SampleProgress&)>& on_progress = nullptr,
                              StageSeconds* stages = nullptr) const;

  const UNetConfig& config() const { return d_.config; }
  const NoiseSchedule& schedule() const { return *schedule_; }
  const std::string& path() const { return d_.path; }
  const std::string& sha256() const { return d_.sha256; }
  bool quantized() const { return d_.artifact != nullptr; }
  const ArtifactInfo* artifact_info() const { return d_.artifact.get(); }
  bool per_step_tables() const { return d_.per_step_tables; }
  const std::shared_ptr<const EpsBias>& eps_bias() const { return d_.eps_bias; }
  void set_eps_bias(std::shared_ptr<const EpsBias> bias) { d_.eps_bias = std::move(bias); }
  // The sampler an artifact was calibrated for (fp32 models: DDIM, 100 steps).
  SamplerOptions default_sampler() const;
  PngText png_text(const SampleRequest& request, int image_index) const;
  // Bytes of resident weights (packed codes, tables, fp32 tensors, caches, the eps bias).
  size_t weight_bytes() const { return resident_.total(); }
  const ResidentBytes& resident() const { return resident_; }
  // "int plan (avx512vnni)", "fp32 plan (avx2)", "sim", "int (cuda dp4a)", ...
  const std::string& kernels() const { return kernels_; }
  const std::shared_ptr<const TextPipeline>& text() const { return d_.text; }
  // The execution plan, when one runs the model.
  const std::shared_ptr<ExecutionPlan>& plan() const { return plan_; }

  std::string display_name;  // PNG metadata names this instead of the path when set

 protected:
  ServedModel() = default;

 private:
  Description d_;
  std::shared_ptr<const NoiseSchedule> schedule_;
  ModelFn model_;
  std::string kernels_;
  ResidentBytes resident_;
  std::shared_ptr<ExecutionPlan> plan_;
  std::vector<float> generate_from_prompts(const SampleRequest& request,
                                           const std::function<bool(const SampleProgress&)>& on_progress,
                                           StageSeconds* stages) const;
  std::shared_ptr<std::atomic<bool>> warned_clipped_guidance_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace qdm
