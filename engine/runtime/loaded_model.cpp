#include "engine/runtime/loaded_model.h"

#include "format/pipeline_folder.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <unordered_map>

#include "format/class_labels.h"
#include "engine/runtime/device.h"
#include "engine/runtime/artifact_weights.h"
#include "engine/runtime/int_layers.h"
#include "engine/runtime/text_pipeline.h"
#include "format/graph/unet_2d.h"
#include "format/safetensors.h"
#include "engine/runtime/quantized_weights.h"
#include "engine/runtime/tensor_int_layer.h"

namespace qdm {
namespace {

size_t parameter_bytes(torch::nn::Module& m) {
  size_t bytes = 0;
  for (const auto& p : m.parameters()) bytes += static_cast<size_t>(p.numel()) * p.element_size();
  for (const auto& b : m.buffers()) bytes += static_cast<size_t>(b.numel()) * b.element_size();
  return bytes;
}

size_t eps_bias_bytes(const LoadedArtifact& a) { return a.eps_bias ? a.eps_bias->bytes() : 0; }

// QDM_EXECUTION_PLAN=0 runs artifacts on the per-layer integer kernels inside LibTorch's graph
// instead (for comparisons and bisection).
bool use_execution_plan() {
  const char* env = std::getenv("QDM_EXECUTION_PLAN");
  return !(env && std::string(env) == "0");
}

}  // namespace

ModelDenoiser plan_denoiser(std::shared_ptr<ExecutionPlan> plan, const std::vector<int>& timesteps, bool per_step) {
  return [model = plan_model(std::move(plan), timesteps, per_step)](const at::Tensor& x, int t, int step, const at::Tensor& labels) {
    const at::Tensor in = x.to(at::kFloat).contiguous();
    at::Tensor out = at::empty_like(in);
    const at::Tensor l = labels.defined() ? labels.to(at::kLong).contiguous() : at::Tensor();
    model(in.data_ptr<float>(), static_cast<int>(in.size(0)), t, step, l.defined() ? l.data_ptr<int64_t>() : nullptr,
          out.data_ptr<float>());
    return out;
  };
}

namespace {

// A text model run by label: the plan reads the rows of the UNet's prompt table (kept alive
// with the denoiser).
ModelDenoiser with_prompt_table(std::shared_ptr<ExecutionPlan> plan, const UNet2DModelImpl& unet, const std::vector<int>& timesteps,
                                bool per_step) {
  const at::Tensor states = unet.prompt_states();
  if (states.defined()) plan->set_text_states(states.data_ptr<float>(), static_cast<int>(states.size(0)));
  ModelDenoiser run = plan_denoiser(std::move(plan), timesteps, per_step);
  if (!states.defined()) return run;
  return [run, states](const at::Tensor& x, int t, int step, const at::Tensor& labels) { return run(x, t, step, labels); };
}

}  // namespace

ModelDenoiser quantized_denoiser(QuantizedUNet& q, const std::vector<int>& timesteps) {
  if (plan_unsupported(q).empty()) return with_prompt_table(make_plan(q, best_isa()), *q.unet, timesteps, true);
  return [&q](const at::Tensor& x, int t, int step, const at::Tensor& labels) { return q.forward(x, t, step, labels); };
}

ModelDenoiser fp32_denoiser(UNet2DModel unet) {
  const bool cpu = unet->parameters().empty() || unet->parameters().front().device().is_cpu();
  if (cpu && use_execution_plan() && ExecutionPlan::unsupported(unet->graph(), ModuleWeights(unet)).empty())
    return with_prompt_table(make_plan(unet, best_isa()), *unet, {}, false);
  return [unet](const at::Tensor& x, int t, int, const at::Tensor& labels) mutable {
    return unet->forward(x, at::full({x.size(0)}, static_cast<float>(t), x.options().dtype(at::kFloat)), labels);
  };
}

LoadedModel LoadedModel::from_folder(const std::string& dir, c10::Device device) {
  LoadedModel m;
  m.device_ = device;
  // On the CPU, the execution plan's fused fp32 kernels, read straight from the files.
  if (device.is_cpu() && use_execution_plan()) {
    try {
      static_cast<ServedModel&>(m) = ServedModel::from_folder(dir);
      return m;
    } catch (const PlanUnsupported& e) {
      spdlog::info("{}: {}; running it on LibTorch", dir, e.what());
    }
  }
  if (is_pipeline_dir(dir))
    throw std::invalid_argument("text-to-image pipelines are served on the CPU execution plan only; use --device cpu "
                                "and leave QDM_EXECUTION_PLAN unset");
  m.fp = std::make_shared<DiffusionModel>(load_model_folder(dir));
  if (!device.is_cpu()) m.fp->unet->to(device);
  Description d;
  d.path = dir;
  d.sha256 = m.fp->weights_sha256;
  d.config = m.fp->config;
  d.scheduler = m.fp->scheduler;
  const UNetConfig& c = m.fp->config;
  ModelFn fn = model_fn(fp32_denoiser(m.fp->unet), c.in_channels, c.sample_size, c.sample_size, device);
  static_cast<ServedModel&>(m) = ServedModel(std::move(d), std::move(fn), "fp32", parameter_bytes(*m.fp->unet));
  return m;
}

LoadedModel LoadedModel::from_artifact(const std::string& path, KernelMode kernels, c10::Device device) {
  LoadedModel m;
  m.device_ = device;
  if (!device.is_cpu() && kernels == KernelMode::kInt && !cuda_int_kernels_built())
    throw std::invalid_argument("integer kernels on " + device.str() +
                                " are not in this build (it needs a CUDA LibTorch and nvcc); use kernels sim");
  // Integer kernels on the CPU: the execution plan, read straight from the file.
  if (device.is_cpu() && kernels == KernelMode::kInt && use_execution_plan()) {
    try {
      static_cast<ServedModel&>(m) = ServedModel::from_artifact(path);
      return m;
    } catch (const PlanUnsupported& e) {
      spdlog::info("{}: {}; running it on the per-layer integer kernels", path, e.what());
    }
  }
  m.artifact_ = std::make_shared<LoadedArtifact>(load_artifact(path));
  std::string name;
  size_t int_bytes = 0;  // packed weights of the integer layers
  if (!device.is_cpu()) {
    if (kernels == KernelMode::kInt) int_bytes = use_tensor_integer_kernels(*m.artifact_->model, device);
    m.artifact_->model->to(device);
    name = kernels == KernelMode::kInt ? "int (cuda dp4a)" : "sim";
  } else if (kernels == KernelMode::kInt) {
    const QGemmIsa isa = best_isa();
    int_bytes = use_integer_kernels(*m.artifact_->model, isa);
    name = std::string("int (") + isa_name(isa) + ")";
  } else {
    name = "sim";
  }
  // Sim runs on the fp32 grid weights (the parameters themselves); int keeps packed weights only.
  size_t bytes = parameter_bytes(*m.artifact_->model->unet) + int_bytes + eps_bias_bytes(*m.artifact_);
  for (const auto& l : m.artifact_->model->layers)
    if (l->fake_weight.defined() && !l->fake_weight.is_alias_of(l->fp_weight()))
      bytes += static_cast<size_t>(l->fake_weight.numel()) * 4;
  Description d;
  d.path = path;
  d.sha256 = m.artifact_->sha256;
  d.config = m.artifact_->info.config;
  d.scheduler = m.artifact_->info.scheduler;
  d.artifact = std::make_shared<const ArtifactInfo>(m.artifact_->info);
  d.per_step_tables = m.artifact_->per_step_tables;
  d.eps_bias = m.artifact_->eps_bias;
  const UNetConfig& c = m.artifact_->info.config;
  if (m.artifact_->info.text_to_image()) {  // a quantized pipeline: its text encoder and VAE on plans, this UNet
    try {
      auto file = std::make_shared<const SafeTensors>(SafeTensors::read_file(path));
      auto weights = std::make_shared<const ArtifactWeights>(file, m.artifact_->info, graph::describe_unet_2d(c));
      d.text = TextPipeline::from_artifact(file, weights, best_isa(), /*unet_plans=*/false);
    } catch (const std::exception& e) {
      throw ArtifactError(path + ": " + e.what());
    }
    std::shared_ptr<LoadedArtifact> artifact = m.artifact_;
    const int64_t width = *c.cross_attention_dim, length = d.text->text_length();
    d.text_unet = [artifact, device, width, length](const float* states, int entries, int h, int w) {
      const at::Tensor table = torch::from_blob(const_cast<float*>(states), {entries, length, width}).clone().to(device);
      artifact->model->unet->set_prompt_states(table, std::nullopt);  // an image's label is its entry
      return model_fn(artifact_denoiser(*artifact), artifact->info.config.in_channels, h, w, device);
    };
  }
  ModelFn fn = model_fn(artifact_denoiser(*m.artifact_), c.in_channels, c.sample_size, c.sample_size, device);
  static_cast<ServedModel&>(m) = ServedModel(std::move(d), std::move(fn), name, bytes);
  return m;
}

at::Tensor LoadedModel::sample(const SampleRequest& request, const std::function<bool(const SampleProgress&)>& on_progress,
                              StageSeconds* stages) const {
  const ImageShape shape = image_shape(request);
  return image_tensor(generate(request, on_progress, stages), shape.channels, shape.height, shape.width);
}

}  // namespace qdm
