// Something images can be sampled from: an fp32 model folder or a quantized artifact, on the
// CPU or a CUDA device. The command line and the worker both sample through this.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "engine/artifact/artifact.h"
#include "engine/runtime/plan/execution_plan.h"
#include "engine/model/model_folder.h"
#include "engine/sampling/pipeline.h"
#include "engine/runtime/served_model.h"
#include "engine/sampling/tensor_sampling.h"

namespace qdm {

// plan_model (served_model.h) as a LibTorch noise predictor.
ModelDenoiser plan_denoiser(std::shared_ptr<ExecutionPlan> plan, const std::vector<int>& timesteps, bool per_step);

// A quantized model in memory (a recipe's result, or an artifact's simulation) on the kernels that
// serve it: the execution plan where it supports the model, else the simulation. The step index
// is taken as the table entry, so sample it over its own schedule (`timesteps`).
ModelDenoiser quantized_denoiser(QuantizedUNet& q, const std::vector<int>& timesteps);
// An fp32 UNet as a noise predictor without gradients (class labels for conditional models): on
// the CPU, its execution plan's fused fp32 kernels (a snapshot of the weights: for a model no
// longer trained); elsewhere, or with QDM_EXECUTION_PLAN=0, LibTorch. Every fp32 trajectory of
// a quantize job (calibration, reference images, fine-tuning targets, eps bias) runs on it.
ModelDenoiser fp32_denoiser(UNet2DModel unet);

// ServedModel with the LibTorch backends: on the CPU, models the execution plan runs are read
// straight into it (ServedModel::from_folder / from_artifact, no LibTorch module is built);
// the rest (kernels sim, a CUDA device, models the plan cannot run, QDM_EXECUTION_PLAN=0) run
// LibTorch's modules with the same description, checks and sampler.
class LoadedModel : public ServedModel {
 public:
  // On a CUDA device fp32 models and the simulation run LibTorch's CUDA operators; integer
  // kernels run TensorIntLayer (dp4a GEMM) with the attention core in the simulation.
  static LoadedModel from_folder(const std::string& dir, c10::Device device = c10::kCPU);
  static LoadedModel from_artifact(const std::string& path, KernelMode kernels = KernelMode::kInt,
                                   c10::Device device = c10::kCPU);

  // generate() as a (num_images, C, H, W) tensor on the CPU.
  at::Tensor sample(const SampleRequest& request, const std::function<bool(const SampleProgress&)>& on_progress = nullptr,
                    StageSeconds* stages = nullptr) const;
  c10::Device device() const { return device_; }

  // The LibTorch models behind the non-plan paths (null on the plan).
  std::shared_ptr<DiffusionModel> fp;         // a model folder
  std::shared_ptr<LoadedArtifact> artifact_;  // an artifact

 private:
  LoadedModel() = default;
  c10::Device device_ = c10::kCPU;
};

}  // namespace qdm
