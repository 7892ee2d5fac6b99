#include "engine/runtime/served_model.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <unordered_map>

#include "engine/runtime/artifact_weights.h"
#include "engine/runtime/folder_weights.h"
#include "engine/runtime/plan/execution_plan.h"
#include "engine/runtime/text_pipeline.h"
#include "format/class_labels.h"
#include "format/graph/unet_2d.h"
#include "format/model_folder.h"
#include "format/pipeline_folder.h"
#include "format/prompts.h"
#include "format/safetensors.h"
#include "format/sha256.h"

namespace qdm {

ModelFn plan_model(std::shared_ptr<ExecutionPlan> plan, const std::vector<int>& timesteps, bool per_step) {
  std::unordered_map<int, int> index;
  for (size_t i = 0; i < timesteps.size(); ++i) index[timesteps[i]] = static_cast<int>(i);
  return [plan, index, per_step](const float* x, int n, int t, int, const int64_t* labels, float* eps) {
    auto it = index.find(t);
    if (it == index.end() && per_step)
      throw std::invalid_argument("timestep " + std::to_string(t) + " is not in the artifact's calibrated schedule");
    plan->run(x, n, t, it == index.end() ? 0 : it->second, labels, eps);
  };
}

KernelMode parse_kernel_mode(const std::string& name) {
  if (name == "int") return KernelMode::kInt;
  if (name == "sim") return KernelMode::kSim;
  throw std::invalid_argument("unknown kernels '" + name + "'; use int or sim");
}

ServedModel::ServedModel(Description description, ModelFn model, std::string kernels, ResidentBytes resident)
    : d_(std::move(description)),
      schedule_(std::make_shared<const NoiseSchedule>(d_.scheduler)),
      model_(std::move(model)),
      kernels_(std::move(kernels)),
      resident_(std::move(resident)) {}

ServedModel::ServedModel(Description description, ModelFn model, std::string kernels, size_t weight_bytes)
    : ServedModel(std::move(description), std::move(model), std::move(kernels), [&] {
        ResidentBytes r;
        r.add(resident::kOther, weight_bytes);
        return r;
      }()) {}

ServedModel ServedModel::from_folder(const std::string& dir) {
  if (is_pipeline_dir(dir)) return from_pipeline(dir);
  const ModelFolderFiles files = open_model_folder(dir);
  auto file = std::make_shared<const SafeTensors>(SafeTensors::read_file(files.weights));
  std::unique_ptr<FolderWeights> weights;
  const graph::Graph graph = graph::describe_unet_2d(files.config);
  try {
    weights = std::make_unique<FolderWeights>(file, files.config);
  } catch (const std::exception& e) {
    throw ModelLoadError(files.weights + ": " + e.what());
  }
  if (const std::string why = ExecutionPlan::unsupported(graph, *weights); !why.empty())
    throw PlanUnsupported("the execution plan cannot run this model: " + why);
  const QGemmIsa isa = best_isa();
  auto plan = std::make_shared<ExecutionPlan>(graph, *weights, isa);
  Description d;
  d.path = dir;
  d.sha256 = sha256_file(files.weights);
  d.config = files.config;
  d.scheduler = files.scheduler;
  ServedModel m(std::move(d), plan_model(plan, {}, false), std::string("fp32 plan (") + isa_name(isa) + ")", plan->resident());
  m.plan_ = std::move(plan);
  return m;
}

ServedModel ServedModel::from_pipeline(const std::string& dir) {
  const QGemmIsa isa = best_isa();
  std::shared_ptr<const TextPipeline> text;
  try {
    text = TextPipeline::load(dir, isa);
  } catch (const std::invalid_argument& e) {  // a valid pipeline the plan cannot lower
    throw PlanUnsupported(std::string("the execution plan cannot run this pipeline: ") + e.what());
  }
  Description d;
  d.path = dir;
  d.sha256 = text->sha256();
  d.config = text->files().unet;
  d.scheduler = text->files().scheduler;
  d.text = text;
  const int size = d.config.sample_size;
  ServedModel m(std::move(d), nullptr, std::string("fp32 plan (") + isa_name(isa) + ")", text->resident());
  m.plan_ = text->unet(size, size);
  return m;
}

ServedModel ServedModel::from_artifact(const std::string& path) {
  auto file = std::make_shared<const SafeTensors>(SafeTensors::read_file(path));
  Description d;
  std::shared_ptr<ArtifactWeights> weights;
  graph::Graph graph;
  try {
    ArtifactInfo info = read_artifact_info(*file);
    graph = graph::describe_unet_2d(info.config);
    weights = std::make_shared<ArtifactWeights>(file, std::move(info), graph);
  } catch (const std::exception& e) {
    throw ArtifactError(path + ": " + e.what());
  }
  const ArtifactInfo& info = weights->info();
  if (const std::string why = ExecutionPlan::unsupported(graph, *weights); !why.empty())
    throw PlanUnsupported("the execution plan cannot run this artifact: " + why);
  if (const TensorInfo* t = file->find("eps_bias")) {
    auto bias = std::make_shared<EpsBias>();
    bias->timesteps = info.timesteps;
    bias->map_size = t->numel() / static_cast<int64_t>(std::max<size_t>(1, info.timesteps.size()));
    bias->maps = file->floats(*t);
    d.eps_bias = std::move(bias);
  }
  const QGemmIsa isa = best_isa();
  if (info.text_to_image()) {  // a quantized pipeline: prompts in, its UNet on the integer plan
    try {
      d.text = TextPipeline::from_artifact(file, weights, isa);
    } catch (const std::exception& e) {
      throw ArtifactError(path + ": " + e.what());
    }
  }
  auto plan = d.text ? d.text->unet(info.config.sample_size, info.config.sample_size)
                     : std::make_shared<ExecutionPlan>(graph, *weights, isa);
  d.path = path;
  d.sha256 = sha256_file(path);
  d.config = info.config;
  d.scheduler = info.scheduler;
  d.per_step_tables = weights->per_step_tables();
  d.artifact = std::make_shared<const ArtifactInfo>(info);
  ResidentBytes bytes = d.text ? d.text->resident() : plan->resident();
  if (d.eps_bias) bytes.add(resident::kEpsBias, d.eps_bias->bytes());
  ModelFn fn = plan_model(plan, info.timesteps, d.per_step_tables);
  ServedModel m(std::move(d), std::move(fn), std::string("int plan (") + isa_name(isa) + ")", bytes);
  m.plan_ = std::move(plan);
  return m;
}

SamplerOptions ServedModel::default_sampler() const { return d_.artifact ? d_.artifact->sampler : SamplerOptions{}; }

void ServedModel::check(const SamplerOptions& options) const {
  const std::vector<int> timesteps = sampler_timesteps(*schedule_, options);  // throws for steps outside [1, T]
  if (d_.artifact && d_.per_step_tables && timesteps != d_.artifact->timesteps)
    throw std::invalid_argument("this artifact's activation tables were calibrated per step for " +
                                std::to_string(d_.artifact->sampler.steps) + " steps with " +
                                spacing_name(d_.artifact->sampler.spacing) + " spacing; sample with those steps and spacing");
}

void ServedModel::check_conditioning(const std::vector<int>& labels, double guidance) const {
  check_class_labels(config(), labels, guidance);
}

void ServedModel::check_prompts(const SampleRequest& r) const {
  const int n = r.seeds.empty() ? r.num_images : static_cast<int>(r.seeds.size());
  qdm::check_prompts(config(), r.prompts, r.negative_prompt, n, r.height, r.width);
  if (!d_.text) return;
  const int m = d_.text->size_multiple();
  if (r.height % m != 0 || r.width % m != 0)
    throw std::invalid_argument("height and width must be multiples of " + std::to_string(m) + " (0: " +
                                std::to_string(d_.text->default_size()) + ")");
}

bool ServedModel::prompt_truncated(const std::string& prompt) const { return d_.text && d_.text->truncated(prompt); }

ServedModel::ImageShape ServedModel::image_shape(const SampleRequest& r) const {
  if (!d_.text) return {config().in_channels, config().sample_size, config().sample_size};
  const int size = d_.text->default_size();
  return {d_.text->image_channels(), r.height > 0 ? r.height : size, r.width > 0 ? r.width : size};
}

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

// Each distinct prompt is encoded once per request; an image's "label" is the index of its
// prompt's text states, and the negative prompt (by default the empty one) is the null class
// that classifier-free guidance mixes against. The latents are decoded after the last step.
std::vector<float> ServedModel::generate_from_prompts(const SampleRequest& request,
                                                      const std::function<bool(const SampleProgress&)>& on_progress,
                                                      StageSeconds* stages) const {
  StageSeconds local;
  StageSeconds& t = stages ? *stages : local;
  check_prompts(request);
  const int n = request.seeds.empty() ? request.num_images : static_cast<int>(request.seeds.size());
  const PromptTable table = prompt_table(request.prompts, n, request.guidance_scale != 1.0, request.negative_prompt);
  SampleRequest r = request;
  r.class_labels = table.image_entry;
  r.null_class = table.null_entry;
  auto start = std::chrono::steady_clock::now();
  const std::vector<float> states = d_.text->encode(table.entries);
  t.text_encoding = seconds_since(start);
  const ImageShape shape = image_shape(request);
  const int f = d_.text->factor(), lh = shape.height / f, lw = shape.width / f, lat = d_.text->latent_channels();
  const int entries = static_cast<int>(table.entries.size());
  std::shared_ptr<ExecutionPlan> unet;
  ModelFn model;
  if (d_.text_unet) {
    model = d_.text_unet(states.data(), entries, lh, lw);
  } else {
    unet = d_.text->unet(lh, lw);
    unet->set_text_states(states.data(), entries);
    model = plan_model(unet, d_.artifact ? d_.artifact->timesteps : std::vector<int>{}, d_.per_step_tables);
  }
  start = std::chrono::steady_clock::now();
  // An artifact's tables are its schedule's; its eps bias was measured at the default size.
  if (lh == config().sample_size && lw == config().sample_size) r.eps_bias = d_.eps_bias;
  const std::vector<float> latents = generate_images(*schedule_, model, static_cast<int64_t>(lat) * lh * lw, r, on_progress);
  if (unet) unet->set_text_states(nullptr, 0);
  t.denoising = seconds_since(start);
  start = std::chrono::steady_clock::now();
  std::vector<float> images = d_.text->decode(latents, n, lh, lw);
  t.vae_decoding = seconds_since(start);
  return images;
}

std::vector<float> ServedModel::generate(const SampleRequest& request, const std::function<bool(const SampleProgress&)>& on_progress,
                                         StageSeconds* stages) const {
  check(request.sampler);
  check_conditioning(request.class_labels, request.guidance_scale);
  if (request.guidance_scale != 1.0 && schedule_->config.clip_sample && !warned_clipped_guidance_->exchange(true))
    spdlog::warn("{}: its scheduler clips the predicted x0 (clip_sample: true), which saturates guided DDIM samples "
                 "(class accuracy 0.43 clipped vs 0.98 unclipped at guidance 3 on the shipped model, "
                 "bench/results/guidance_clipping.md); set \"clip_sample\": false in its scheduler_config.json for guidance",
                 display_name.empty() ? std::filesystem::path(d_.path).filename().string() : display_name);
  if (d_.text) return generate_from_prompts(request, on_progress, stages);
  check_prompts(request);  // none on a model without a text encoder
  SampleRequest r = request;
  r.null_class = config().null_class;
  r.eps_bias = d_.eps_bias;
  // No label on a conditional model: unconditional sampling with the null class.
  if (config().conditional() && request.class_labels.empty())
    r.class_labels.assign(static_cast<size_t>(request.num_images), *config().null_class);
  const int64_t s = config().sample_size;
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> images = generate_images(*schedule_, model_, config().in_channels * s * s, r, on_progress);
  if (stages) *stages = {0.0, seconds_since(start), 0.0};
  return images;
}

PngText ServedModel::png_text(const SampleRequest& r, int i) const {
  PngText text = {{"Software", "qdm 0.1.0"},
                  {d_.artifact ? "qdm:artifact" : "qdm:model", display_name.empty() ? d_.path : display_name},
                  {"qdm:sha256", d_.sha256},
                  {"qdm:sampler", sampler_name(r.sampler.kind)},
                  {"qdm:steps", std::to_string(r.sampler.steps)},
                  {"qdm:eta", std::to_string(r.sampler.eta)},
                  {"qdm:spacing", spacing_name(r.sampler.spacing)},
                  {"qdm:seed", std::to_string(r.image_seed(i))}};
  if (config().conditional()) {
    const int label = r.class_labels.empty() ? config().null_class.value_or(-1) : r.class_labels.at(static_cast<size_t>(i));
    text.emplace_back("qdm:class_label", std::to_string(label));
    text.emplace_back("qdm:class_name", class_label_name(config(), label));
    text.emplace_back("qdm:guidance", std::to_string(r.guidance_scale));
  }
  if (d_.text) {
    const std::string prompt = r.prompts.empty() ? "" : r.prompts.at(prompt_of_image(r.prompts, i));
    text.emplace_back("qdm:prompt", prompt);
    if (prompt_truncated(prompt)) text.emplace_back("qdm:prompt_truncated", "true");
    if (r.guidance_scale != 1.0) text.emplace_back("qdm:negative_prompt", r.negative_prompt);
    text.emplace_back("qdm:guidance", std::to_string(r.guidance_scale));
    const ImageShape shape = image_shape(r);
    text.emplace_back("qdm:size", std::to_string(shape.width) + "x" + std::to_string(shape.height));
  }
  if (d_.artifact) text.emplace_back("qdm:recipe", d_.artifact->recipe.value("recipe", ""));
  if (d_.artifact) text.emplace_back("qdm:kernels", kernels_);
  return text;
}

}  // namespace qdm
