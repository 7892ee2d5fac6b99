#include "engine/runtime/loaded_model.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <unordered_map>

#include "format/class_labels.h"
#include "engine/model/unet_denoiser.h"
#include "engine/runtime/device.h"
#include "engine/runtime/int_layers.h"
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

size_t eps_bias_bytes(const LoadedArtifact& a) {
  return a.eps_bias ? static_cast<size_t>(a.eps_bias->maps.numel()) * a.eps_bias->maps.element_size() : 0;
}

// QDM_EXECUTION_PLAN=0 runs artifacts on the per-layer integer kernels inside LibTorch's graph
// instead (for comparisons and bisection).
bool use_execution_plan() {
  const char* env = std::getenv("QDM_EXECUTION_PLAN");
  return !(env && std::string(env) == "0");
}

}  // namespace

ModelDenoiser plan_denoiser(std::shared_ptr<ExecutionPlan> plan, const std::vector<int>& timesteps, bool per_step) {
  std::unordered_map<int, int> index;
  for (size_t i = 0; i < timesteps.size(); ++i) index[timesteps[i]] = static_cast<int>(i);
  return [plan, index, per_step](const at::Tensor& x, int t, int, const at::Tensor& labels) {
    auto it = index.find(t);
    if (it == index.end() && per_step)
      throw std::invalid_argument("timestep " + std::to_string(t) + " is not in the artifact's calibrated schedule");
    const at::Tensor in = x.to(at::kFloat).contiguous();
    at::Tensor out = at::empty_like(in);
    const at::Tensor l = labels.defined() ? labels.to(at::kLong).contiguous() : at::Tensor();
    plan->run(in.data_ptr<float>(), static_cast<int>(in.size(0)), t, it == index.end() ? 0 : it->second,
              l.defined() ? l.data_ptr<int64_t>() : nullptr, out.data_ptr<float>());
    return out;
  };
}

ModelDenoiser quantized_denoiser(QuantizedUNet& q, const std::vector<int>& timesteps) {
  if (plan_unsupported(q).empty()) return plan_denoiser(make_plan(q, best_isa()), timesteps, true);
  return [&q](const at::Tensor& x, int t, int step, const at::Tensor& labels) { return q.forward(x, t, step, labels); };
}

KernelMode parse_kernel_mode(const std::string& name) {
  if (name == "int") return KernelMode::kInt;
  if (name == "sim") return KernelMode::kSim;
  throw std::invalid_argument("unknown kernels '" + name + "'; use int or sim");
}

LoadedModel LoadedModel::from_folder(const std::string& dir, c10::Device device) {
  LoadedModel m;
  m.fp = std::make_shared<DiffusionModel>(load_model_folder(dir));
  m.device_ = device;
  if (!device.is_cpu()) m.fp->unet->to(device);
  m.path_ = dir;
  m.sha256_ = m.fp->weights_sha256;
  m.schedule_ = std::make_shared<NoiseSchedule>(m.fp->scheduler);
  m.denoiser_ = unet_denoiser(m.fp->unet);
  m.weight_bytes_ = parameter_bytes(*m.fp->unet);
  return m;
}

LoadedModel LoadedModel::from_artifact(const std::string& path, KernelMode kernels, c10::Device device) {
  LoadedModel m;
  m.device_ = device;
  if (!device.is_cpu() && kernels == KernelMode::kInt && !cuda_int_kernels_built())
    throw std::invalid_argument("integer kernels on " + device.str() +
                                " are not in this build (it needs a CUDA LibTorch and nvcc); use kernels sim");
  m.artifact_ = std::make_shared<LoadedArtifact>(load_artifact(path));
  size_t int_bytes = 0;  // packed weights of the integer layers
  if (!device.is_cpu()) {
    if (kernels == KernelMode::kInt) int_bytes = use_tensor_integer_kernels(*m.artifact_->model, device);
    m.artifact_->model->to(device);
    m.kernels_ = kernels == KernelMode::kInt ? "int (cuda dp4a)" : "sim";
  } else if (kernels == KernelMode::kInt && use_execution_plan() && plan_unsupported(*m.artifact_->model).empty()) {
    // The execution plan: fused kernels over preallocated buffers. It owns everything it needs,
    // so the simulation's weights are released.
    const QGemmIsa isa = best_isa();
    m.plan_ = make_plan(*m.artifact_->model, isa);
    m.kernels_ = std::string("int plan (") + isa_name(isa) + ")";
    m.weight_bytes_ = m.plan_->weight_bytes() + eps_bias_bytes(*m.artifact_);
    m.path_ = path;
    m.sha256_ = m.artifact_->sha256;
    m.schedule_ = std::make_shared<NoiseSchedule>(m.artifact_->info.scheduler);
    m.denoiser_ = plan_denoiser(m.plan_, m.artifact_->info.timesteps, m.artifact_->per_step_tables);
    m.artifact_->model.reset();
    return m;
  } else if (kernels == KernelMode::kInt) {
    const QGemmIsa isa = best_isa();
    int_bytes = use_integer_kernels(*m.artifact_->model, isa);
    m.kernels_ = std::string("int (") + isa_name(isa) + ")";
  } else {
    m.kernels_ = "sim";
  }
  // Sim runs on the fp32 grid weights (the parameters themselves); int keeps packed weights only.
  m.weight_bytes_ = parameter_bytes(*m.artifact_->model->unet) + int_bytes + eps_bias_bytes(*m.artifact_);
  for (const auto& l : m.artifact_->model->layers)
    if (l->fake_weight.defined() && !l->fake_weight.is_alias_of(l->fp_weight()))
      m.weight_bytes_ += static_cast<size_t>(l->fake_weight.numel()) * 4;
  m.path_ = path;
  m.sha256_ = m.artifact_->sha256;
  m.schedule_ = std::make_shared<NoiseSchedule>(m.artifact_->info.scheduler);
  m.denoiser_ = artifact_denoiser(*m.artifact_);
  return m;
}

const UNetConfig& LoadedModel::config() const { return artifact_ ? artifact_->info.config : fp->config; }

SamplerOptions LoadedModel::default_sampler() const { return artifact_ ? artifact_->info.sampler : SamplerOptions{}; }

void LoadedModel::check(const SamplerOptions& options) const {
  sampler_timesteps(*schedule_, options);  // throws for steps outside [1, T]
  if (artifact_) check_schedule(*artifact_, *schedule_, options);
}

void LoadedModel::check_conditioning(const std::vector<int>& labels, double guidance) const {
  check_class_labels(config(), labels, guidance);
}

at::Tensor LoadedModel::sample(const SampleRequest& request,
                               const std::function<bool(const SampleProgress&)>& on_progress) {
  check(request.sampler);
  check_conditioning(request.class_labels, request.guidance_scale);
  if (request.guidance_scale != 1.0 && schedule_->config.clip_sample && !warned_clipped_guidance_->exchange(true))
    spdlog::warn("{}: its scheduler clips the predicted x0 (clip_sample: true), which saturates guided DDIM samples "
                 "(class accuracy 0.43 clipped vs 0.98 unclipped at guidance 3 on the shipped model, "
                 "bench/results/guidance_clipping.md); set \"clip_sample\": false in its scheduler_config.json for guidance",
                 display_name.empty() ? std::filesystem::path(path_).filename().string() : display_name);
  SampleRequest on_device = request;
  on_device.device = device_;
  on_device.null_class = config().null_class;
  if (artifact_) on_device.eps_bias = artifact_->eps_bias;
  // No label on a conditional model: unconditional sampling with the null class.
  if (config().conditional() && request.class_labels.empty())
    on_device.class_labels.assign(static_cast<size_t>(request.num_images), *config().null_class);
  return sample_images(*schedule_, denoiser_, config().in_channels, config().sample_size, on_device, on_progress);
}

PngText LoadedModel::png_text(const SampleRequest& r, int i) const {
  PngText text = {{"Software", "qdm 0.1.0"},
                  {artifact_ ? "qdm:artifact" : "qdm:model", display_name.empty() ? path_ : display_name},
                  {"qdm:sha256", sha256_},
                  {"qdm:sampler", sampler_name(r.sampler.kind)},
                  {"qdm:steps", std::to_string(r.sampler.steps)},
                  {"qdm:eta", std::to_string(r.sampler.eta)},
                  {"qdm:spacing", spacing_name(r.sampler.spacing)},
                  {"qdm:seed", std::to_string(r.seeds.empty() ? r.seed + static_cast<uint64_t>(i) : r.seeds.at(i))}};
  if (config().conditional()) {
    const int label = r.class_labels.empty() ? config().null_class.value_or(-1) : r.class_labels.at(static_cast<size_t>(i));
    text.emplace_back("qdm:class_label", std::to_string(label));
    text.emplace_back("qdm:class_name", class_label_name(config(), label));
    text.emplace_back("qdm:guidance", std::to_string(r.guidance_scale));
  }
  if (artifact_) text.emplace_back("qdm:recipe", artifact_->info.recipe.value("recipe", ""));
  if (artifact_) text.emplace_back("qdm:kernels", kernels_);
  return text;
}

}  // namespace qdm
