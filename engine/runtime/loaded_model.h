// Something images can be sampled from: an fp32 model folder or a quantized artifact, on the
// CPU or a CUDA device. The command line and the worker both sample through this.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "engine/artifact/artifact.h"
#include "engine/runtime/plan/execution_plan.h"
#include "engine/model/model_folder.h"
#include "engine/sampling/pipeline.h"
#include "format/png.h"

namespace qdm {

// An execution plan as a noise predictor: each timestep maps to its index in `timesteps` (the
// plan's table entry), as artifact_denoiser does; with `per_step` tables a timestep outside
// them is an error.
ModelDenoiser plan_denoiser(std::shared_ptr<ExecutionPlan> plan, const std::vector<int>& timesteps, bool per_step);

// A quantized model in memory (a recipe's result, or an artifact's simulation) on the kernels that
// serve it: the execution plan where it supports the model, else the simulation. The step index
// is taken as the table entry, so sample it over its own schedule (`timesteps`).
ModelDenoiser quantized_denoiser(QuantizedUNet& q, const std::vector<int>& timesteps);

// How a quantized artifact runs: integer kernels (default) or the fake-quant simulation.
enum class KernelMode { kInt, kSim };
KernelMode parse_kernel_mode(const std::string& name);  // "int" | "sim"

class LoadedModel {
 public:
  // On a CUDA device fp32 models and the simulation run LibTorch's CUDA operators; integer
  // kernels run TensorIntLayer (dp4a GEMM) with the attention core in the simulation.
  static LoadedModel from_folder(const std::string& dir, c10::Device device = c10::kCPU);
  static LoadedModel from_artifact(const std::string& path, KernelMode kernels = KernelMode::kInt,
                                   c10::Device device = c10::kCPU);

  // Validates `options` for this model (steps within the schedule, the artifact's calibrated
  // schedule when its tables are per step); throws std::invalid_argument saying what to change.
  void check(const SamplerOptions& options) const;
  // Validates a request's class labels and guidance for this model (labels in range, none
  // for an unconditional model, guidance only with a null class); throws
  // std::invalid_argument naming the valid labels.
  void check_conditioning(const std::vector<int>& labels, double guidance) const;
  at::Tensor sample(const SampleRequest& request,
                    const std::function<bool(const SampleProgress&)>& on_progress = nullptr);

  const UNetConfig& config() const;
  const NoiseSchedule& schedule() const { return *schedule_; }
  const std::string& path() const { return path_; }
  const std::string& sha256() const { return sha256_; }
  bool quantized() const { return artifact_ != nullptr; }
  // The sampler an artifact was calibrated for (fp32 models: DDIM, 100 steps).
  SamplerOptions default_sampler() const;
  PngText png_text(const SampleRequest& request, int image_index) const;
  // Bytes of resident weights: fp32 parameters plus packed integer weights.
  size_t weight_bytes() const { return weight_bytes_; }
  std::string kernels() const { return kernels_; }
  c10::Device device() const { return device_; }

  std::string display_name;                 // PNG metadata names this instead of the path when set
  std::shared_ptr<DiffusionModel> fp;       // set for model folders
  std::shared_ptr<LoadedArtifact> artifact_;  // set for artifacts
  std::shared_ptr<ExecutionPlan> plan_;       // integer kernels on the CPU, when the plan supports the artifact

 private:
  std::string path_, sha256_, kernels_ = "fp32";
  size_t weight_bytes_ = 0;
  c10::Device device_ = c10::kCPU;
  std::shared_ptr<NoiseSchedule> schedule_;
  ModelDenoiser denoiser_;
  std::shared_ptr<std::atomic<bool>> warned_clipped_guidance_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace qdm
