#include "engine/job/quantize_job.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>

#include "engine/artifact/artifact.h"
#include "engine/data/fashion_mnist.h"
#include "engine/eval/evaluator.h"
#include "engine/model/pipeline_folder.h"
#include "format/artifact_pipeline.h"
#include "engine/runtime/loaded_model.h"
#include "engine/quant/quality.h"
#include "engine/job/reference_images.h"
#include "engine/job/component_stage.h"
#include "engine/quant/recipe_table.h"
#include "engine/sampling/pipeline.h"

namespace qdm {
namespace {

// The stages of a job with their estimated cost in calibration image-steps (one fp32 UNet call on
// one image of the calibration pass), so overall progress advances with time and the scheduler's
// ETA (elapsed * (1 - p) / p) is honest whichever stages a recipe runs. Ratios measured on the
// shipped model (rtn and tfmq W4A8, 1 thread, the progress test's job, warm): block
// reconstruction runs the fp32 and the quantized prefix over the calibration set for every
// block (about 3.3 calibration passes), then an AdaRound iteration on one image costs about 3
// image-steps (forward, backward, the target); a report image-step costs about 1.25 (fp32 through
// the sampler) and 3.4 (the simulated quantized model).
class StagePlan {
 public:
  StagePlan(const QuantizeJobOptions& o, bool reference_cached) {
    const RecipeOptions& r = o.recipe;
    const RecipeRow& row = recipe_row(r.recipe);
    const RecipeInfo& info = *row.info;
    const double steps = r.sampler.steps, calib = r.calib_samples * steps;
    const bool recon = info.reconstruction, temporal = info.temporal;
    const double calib_steps = info.searches_schedule() ? r.calib_samples * static_cast<double>(r.search.base_steps) : calib;
    add("calibration data", calib_steps);
    add("weight ranges", 0.05 * calib + (recon ? 170 : 22));
    add("activation ranges", r.spec.act_bits > 0 ? calib_steps * (temporal ? 2.0 : 1.75) : 0);
    // TIAR: the temporal block alone over the schedule's steps (tiny layers, every step a row).
    if (temporal && !info.feature_cache) add("reconstruction: temporal information block", 0.01 * r.recon.iters * steps);
    if (row.own_stages) row.own_stages(r, [this](const std::string& stage, double cost) { add(stage, cost); });
    add("reconstruction", recon ? 3.3 * calib + 3.0 * r.recon.iters * r.recon.batch * (1 + (temporal ? 0 : r.recon.act_iters / std::max(1.0, double(r.recon.iters)))) : 0);
    const double final_steps = info.searches_schedule() ? r.search.steps : steps;  // the artifact's schedule
    if (const FinetuneOptions f = r.finetune_options(); f.iters > 0) {  // fp32 trajectories; an Adam step ~5.5
      // image-steps per image; the held-out evaluations
      add("fine-tuning data", (f.samples + f.holdout) * final_steps);
      add("fine-tuning", 5.5 * f.iters * f.batch + 1.5 * (f.evals + 1) * f.holdout * final_steps);
    }
    // fp32 trajectories over the artifact's schedule and the quantized model on them
    add("eps bias", r.bias_samples * final_steps * 2.0);
    // fp32 trajectories for the VAE decoder's latents, then each component's calibration
    const bool vae = r.quantizes("vae_decoder"), text = r.quantizes("text_encoder");
    add("quantizing components", (vae ? r.calib_samples * final_steps * 1.25 + 0.2 * r.calib_samples : 0) + (text ? 5 : 0));
    add("quality report", o.report_samples * steps * ((reference_cached ? 0 : 1.25) + 3.4));
    add("writing artifact", 0.01 * calib + 1);
  }
  // Overall progress of `done / total` through `stage`.
  double overall(const std::string& stage, int done, int total) const {
    double before = 0;
    for (const auto& [name, cost] : stages_) {
      if (stage.rfind(name, 0) == 0) return (before + cost * (total > 0 ? std::min(1.0, double(done) / total) : 0)) / total_;
      before += cost;
    }
    return before / total_;
  }

 private:
  void add(const std::string& name, double cost) {
    stages_.emplace_back(name, cost);
    total_ += cost;
  }
  std::vector<std::pair<std::string, double>> stages_;
  double total_ = 0;
};

}  // namespace

QuantizeJobResult quantize_to_artifact(const DiffusionModel& source, const QuantizeJobOptions& options,
                                       const std::string& out_path, const QuantizeJobCallback& progress) {
  const auto start = std::chrono::steady_clock::now();
  options.recipe.validate();
  DiffusionModel model = source;
  // A pipeline's UNet runs by label over the calibration prompts (and the empty one); a model
  // without a text encoder refuses them there.
  if (model.pipeline || !options.recipe.prompts.empty())
    use_prompts(model, options.recipe.prompts.empty() ? folder_calibration_prompts(model.dir) : options.recipe.prompts);
  SampleRequest req;  // the quality report's images
  req.num_images = options.report_samples;
  req.seed = 0;
  req.sampler = options.recipe.sampler;
  if (model.unet->takes_labels() && options.report_samples > 0) {
    // Conditional models: an even spread over the classes (a pipeline: its prompts), unguided.
    const std::vector<int> labels = model.unet->user_labels();
    if (labels.empty()) throw std::invalid_argument("the quality report needs integer class labels");
    for (int i = 0; i < req.num_images; ++i) req.class_labels.push_back(labels[static_cast<size_t>(i) % labels.size()]);
    req.null_class = model.unet->null_label();
  }
  const StagePlan plan(options, options.report_samples > 0 && reference_cached(model, req, options.reference_cache_dir));
  auto report = [&](const std::string& stage, int done, int total, double loss) {
    if (!progress) return true;
    return progress({stage, done, total, loss, plan.overall(stage, done, total)});
  };
  QuantizeResult result = quantize_model(model, options.recipe, [&](const QuantizeProgress& p) {
    return report(p.stage, p.done, p.total, p.loss);
  }, RecipeEnvironment{options.classifier_dir, options.cache_dir});
  req.sampler = result.sampler;  // a searched schedule (tmpq) is known only now
  RecipeOptions component_options = options.recipe;
  component_options.sampler = result.sampler;
  const auto components_start = std::chrono::steady_clock::now();
  ComponentStageResult components = quantize_components(model, component_options, [&](int done, int total) {
    return report("quantizing components", done, total, 0);
  });
  const double component_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - components_start).count();
  const double quant_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  ArtifactInfo info;
  info.config = model.config;
  info.scheduler = model.scheduler;
  info.sampler = result.sampler;
  info.timesteps = result.timesteps;
  info.source_sha256 = model.weights_sha256;
  info.source_name = options.source_name.empty() ? std::filesystem::path(model.dir).filename().string() : options.source_name;
  info.recipe = options.recipe.to_json();
  info.timings = result.timings;
  info.timings["quantization"] = quant_seconds;
  if (!components.files.empty()) info.timings["components"] = component_seconds;
  if (options.report_samples > 0) {
    const NoiseSchedule schedule(model.scheduler);
    const int total = 2 * req.num_images;
    auto on_step = [&](int offset) {
      return [&, offset](const SampleProgress& p) {
        return report("quality report", offset + p.images_done + p.batch_images * p.step / std::max(1, p.steps), total, 0);
      };
    };
    bool cached = false;
    at::Tensor fp_images = reference_images(model, req, options.reference_cache_dir, on_step(0), &cached);
    if (cached) spdlog::info("quality report: fp32 reference images from {}", options.reference_cache_dir);
    QuantizedUNet& q = *result.model;
    SampleRequest q_req = req;
    q_req.eps_bias = result.eps_bias;  // the quantized model samples as its artifact will
    at::Tensor q_images = sample_images(schedule, [&](const at::Tensor& x, int t, int step, const at::Tensor& labels) {
      return q.forward(x, t, step, labels);
    }, model.config.in_channels, model.config.sample_size, q_req, on_step(req.num_images));
    // A pipeline's report compares decoded images (its samples are latents).
    q_images = model.images(q_images);
    fp_images = model.images(fp_images);
    const ImageAgreement agree = compare_images(q_images, fp_images);
    info.report = {{"images", req.num_images}, {"seed", 0}, {"mse_vs_fp", agree.mse}, {"psnr_vs_fp", agree.psnr},
                   {"max_abs_pixel_vs_fp", agree.max_abs_pixel},
                   {"temporal_feature_cosine", temporal_feature_cosine(model.unet, q, result.timesteps)}};
    // FID needs two images or more; a one-image report has the per-image measures only.
    if (req.num_images >= 2 && !options.classifier_dir.empty() &&
        std::filesystem::exists(options.classifier_dir + "/model.safetensors") && q_images.size(1) == 1 &&
        q_images.size(2) == 32 && q_images.size(3) == 32) {
      FmnistEvaluator evaluator(options.classifier_dir, default_fashion_mnist_dir());
      info.report["fid_fmnist"] = evaluator.evaluate(q_images).fid;
      info.report["fid_fmnist_fp"] = evaluator.evaluate(fp_images).fid;
    }
  }
  if (!result.report.empty()) {  // the recipe's own report fields (tmpq: its search)
    if (!info.report.is_object()) info.report = nlohmann::json::object();
    info.report.update(result.report);
  }
  if (!components.files.empty()) {  // each quantized component's fidelity to its fp32 self
    if (!info.report.is_object()) info.report = nlohmann::json::object();
    info.report["components"] = components.report;
  }
  info.figure_png = result.figure_png;
  if (!report("writing artifact", 0, 1, 0)) throw QuantizeCancelled();
  QuantizeJobResult out;
  out.figure_png = result.figure_png;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  info.timings["total"] = out.seconds;
  EmbeddedFiles pipeline;  // a pipeline's text encoder, VAE, tokenizer and configs go with it
  if (model.pipeline) {
    pipeline = pipeline_files_to_embed(model.dir, std::move(components.files));
    info.pipeline_sha256 = {{"unet", model.pipeline->unet_sha256}, {"vae", model.pipeline->vae_sha256},
                            {"text_encoder", model.pipeline->text_encoder_sha256}};
  }
  save_artifact(out_path, *result.model, info, result.eps_bias.get(), model.pipeline ? &pipeline : nullptr);
  out.report = info.report;
  out.timings = info.timings;
  return out;
}

}  // namespace qdm
