#include "engine/quant/quantize_job.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>

#include "engine/artifact/artifact.h"
#include "engine/data/fashion_mnist.h"
#include "engine/eval/evaluator.h"
#include "engine/model/unet_denoiser.h"
#include "engine/quant/quality.h"
#include "engine/quant/reference_images.h"
#include "engine/sampling/pipeline.h"

namespace qdm {
namespace {

// Share of the whole job each stage takes, measured roughly on the shipped model; used only to
// turn per-stage progress into one number for progress bars and ETAs.
double stage_start(const std::string& stage, double* width) {
  struct Span { const char* prefix; double start, width; };
  static const Span spans[] = {{"calibration data", 0.0, 0.10},   {"weight ranges", 0.10, 0.02},
                               {"activation ranges", 0.12, 0.08}, {"reconstruction", 0.20, 0.65},
                               {"quality report", 0.85, 0.14},    {"writing artifact", 0.99, 0.01}};
  for (const auto& s : spans)
    if (stage.rfind(s.prefix, 0) == 0) {
      *width = s.width;
      return s.start;
    }
  *width = 0;
  return 0;
}

}  // namespace

QuantizeJobResult quantize_to_artifact(const DiffusionModel& model, const QuantizeJobOptions& options,
                                       const std::string& out_path, const QuantizeJobCallback& progress) {
  const auto start = std::chrono::steady_clock::now();
  auto report = [&](const std::string& stage, int done, int total, double loss) {
    if (!progress) return true;
    double width = 0;
    const double base = stage_start(stage, &width);
    return progress({stage, done, total, loss, base + width * (total > 0 ? double(done) / total : 0)});
  };
  QuantizeResult result = quantize_model(model, options.recipe, [&](const QuantizeProgress& p) {
    return report(p.stage, p.done, p.total, p.loss);
  });
  const double quant_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  ArtifactInfo info;
  info.config = model.config;
  info.scheduler = model.scheduler;
  info.sampler = options.recipe.sampler;
  info.timesteps = result.timesteps;
  info.source_sha256 = model.weights_sha256;
  info.recipe = options.recipe.to_json();
  info.timings = result.timings;
  info.timings["quantization"] = quant_seconds;
  if (options.report_samples > 0) {
    SampleRequest req;
    req.num_images = options.report_samples;
    req.seed = 0;
    req.sampler = options.recipe.sampler;
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
    at::Tensor q_images = sample_images(schedule, [&](const at::Tensor& x, int t, int step, const at::Tensor& labels) {
      return q.forward(x, t, step, labels);
    }, model.config.in_channels, model.config.sample_size, req, on_step(req.num_images));
    const ImageAgreement agree = compare_images(q_images, fp_images);
    info.report = {{"images", req.num_images}, {"seed", 0}, {"mse_vs_fp", agree.mse}, {"psnr_vs_fp", agree.psnr},
                   {"max_abs_pixel_vs_fp", agree.max_abs_pixel},
                   {"temporal_feature_cosine", temporal_feature_cosine(model.unet, q, result.timesteps)}};
    if (!options.classifier_dir.empty() && std::filesystem::exists(options.classifier_dir + "/model.safetensors") &&
        model.config.in_channels == 1 && model.config.sample_size == 32) {
      FmnistEvaluator evaluator(options.classifier_dir, default_fashion_mnist_dir());
      info.report["fid_fmnist"] = evaluator.evaluate(q_images).fid;
      info.report["fid_fmnist_fp"] = evaluator.evaluate(fp_images).fid;
    }
  }
  if (!report("writing artifact", 0, 1, 0)) throw QuantizeCancelled();
  QuantizeJobResult out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  info.timings["total"] = out.seconds;
  save_artifact(out_path, *result.model, info);
  out.report = info.report;
  out.timings = info.timings;
  return out;
}

}  // namespace qdm
