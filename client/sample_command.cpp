// qdm sample: generate images from a model folder or a quantized artifact, one PNG per image
// plus grid.png, with the generation parameters in PNG text chunks.
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>

#include "client/commands.h"
#include "client/progress_bar.h"
#include "format/class_labels.h"
#include "engine/runtime/device.h"
#include "engine/runtime/loaded_model.h"
#include "engine/sampling/images.h"
#include "engine/util/threads.h"

namespace qdm::cli {

void add_sampler_options(CLI::App* cmd, SamplerArgs& a) {
  cmd->add_option("--steps", a.steps, "Sampling steps (artifact default: its calibrated schedule)")->check(CLI::Range(1, 10000));
  cmd->add_option("--sampler", a.sampler, "ddim, ddpm or dpmpp2m (DPM-Solver++(2M), for few steps)")
      ->check(CLI::IsMember(sampler_names()));
  cmd->add_option("--eta", a.eta, "DDIM eta (0: deterministic)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--spacing", a.spacing, "Timestep spacing: leading, trailing, uniform, quad")
      ->check(CLI::IsMember({"leading", "trailing", "uniform", "quad"}));
  cmd->add_option("--timesteps", a.timesteps,
                  "An explicit schedule, descending training timesteps (e.g. 999,800,500,200,0), instead of --steps and --spacing")
      ->delimiter(',')
      ->excludes("--steps")
      ->excludes("--spacing");
  cmd->add_option("--class-label", a.class_labels,
                  "Class-conditional models: a label (index or name) for every image, one per image, or all (an even "
                  "spread); none: unconditional (the null class)");
  cmd->add_option("--guidance", a.guidance, "Classifier-free guidance scale (1: none)")->check(CLI::Range(0.0, 100.0));
}

SamplerOptions SamplerArgs::resolve(const SamplerOptions& defaults) const {
  SamplerOptions o = defaults;
  if (steps) o.steps = *steps;
  if (sampler) o.kind = parse_sampler(*sampler);
  if (eta) o.eta = *eta;
  if (spacing) o.spacing = parse_spacing(*spacing);
  if (!timesteps.empty()) {
    o.timesteps = timesteps;
    o.steps = static_cast<int>(timesteps.size());
  }
  return o;
}

SampleRequest SamplerArgs::request(const LoadedModel& model, int num, uint64_t seed, int batch) const {
  SampleRequest req;
  req.num_images = num;
  req.seed = seed;
  req.batch_size = batch;
  req.sampler = resolve(model.default_sampler());
  try {
    req.sampler.validate();
  } catch (const std::invalid_argument& e) {
    throw CLI::ValidationError("--timesteps/--steps", e.what());
  }
  model.check(req.sampler);
  try {
    req.class_labels = parse_class_labels(model.config(), class_labels, num);
    req.guidance_scale = guidance;
    model.check_conditioning(req.class_labels, req.guidance_scale);
  } catch (const std::invalid_argument& e) {
    throw CLI::ValidationError("--class-label/--guidance", e.what());
  }
  return req;
}

void add_source_options(CLI::App* cmd, SourceArgs& a) {
  cmd->add_option("--model", a.model, "diffusers model folder");
  cmd->add_option("--artifact", a.artifact, "quantized artifact (.safetensors) from qdm quantize");
  cmd->add_option("--kernels", a.kernels, "Artifacts: int (integer kernels) or sim (fake-quant simulation)")
      ->capture_default_str()->check(CLI::IsMember({"int", "sim"}));
  cmd->add_option("--device", a.device, "cpu, cuda, cuda:N or auto")->capture_default_str();
}

LoadedModel SourceArgs::load() const {
  if (model.empty() == artifact.empty()) throw CLI::ValidationError("give exactly one of --model or --artifact");
  c10::Device on = c10::kCPU;
  try {
    on = parse_device(device);
  } catch (const std::invalid_argument& e) {
    throw CLI::ValidationError("--device", e.what());
  }
  return artifact.empty() ? LoadedModel::from_folder(model, on) : LoadedModel::from_artifact(artifact, parse_kernel_mode(kernels), on);
}

at::Tensor sample_with_bar(LoadedModel& model, const SampleRequest& req, ServedModel::StageSeconds* stages) {
  ProgressBar bar("sampling");
  at::Tensor images = model.sample(req, [&](const SampleProgress& p) {
    const double done = p.images_done + p.batch_images * double(p.step) / p.steps;
    bar.update(done / p.total_images, std::to_string(p.images_done) + "/" + std::to_string(p.total_images) + " images");
    return true;
  }, stages);
  bar.finish();
  return images;
}

void add_sample_command(CLI::App& app) {
  struct Args {
    SourceArgs source;
    std::string out = "samples";
    int num = 16, batch = 64, threads = 0, columns = 0;
    uint64_t seed = 0;
    SamplerArgs sampler;
    std::vector<std::string> prompts;
    std::string negative_prompt;
    int height = 0, width = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("sample", "Generate images from a model folder or a quantized artifact");
  add_source_options(cmd, a->source);
  cmd->add_option("--num", a->num, "Number of images")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--seed", a->seed, "Seed of image 0; image i uses seed + i")->capture_default_str();
  add_sampler_options(cmd, a->sampler);
  cmd->add_option("--batch", a->batch, "Images per UNet call")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--columns", a->columns, "Grid columns (0: square)");
  cmd->add_option("--threads", a->threads, "Compute threads (0: all cores)");
  cmd->add_option("--out", a->out, "Output folder")->capture_default_str();
  cmd->add_option("--prompt", a->prompts,
                  "Text-to-image pipelines: one prompt for every image, or one per image (\"\" samples unconditionally)");
  cmd->add_option("--negative-prompt", a->negative_prompt, "What guidance steers away from (default: the empty prompt)");
  cmd->add_option("--height", a->height, "Pipelines: image height in pixels (default: the model's)")->check(CLI::Range(8, 4096));
  cmd->add_option("--width", a->width, "Pipelines: image width in pixels (default: the model's)")->check(CLI::Range(8, 4096));
  cmd->callback([a] {
    set_compute_threads(a->threads);
    LoadedModel model = a->source.load();
    SampleRequest req = a->sampler.request(model, a->num, a->seed, a->batch);
    req.prompts = a->prompts;
    req.negative_prompt = a->negative_prompt;
    req.height = a->height;
    req.width = a->width;
    try {
      model.check_prompts(req);
    } catch (const std::invalid_argument& e) {
      throw CLI::ValidationError("--prompt/--negative-prompt/--height/--width", e.what());
    }
    for (size_t i = 0; i < req.prompts.size(); ++i)
      if (model.prompt_truncated(req.prompts[i]))
        spdlog::warn("prompt {} is longer than the tokenizer's limit and was truncated", i);
    const auto start = std::chrono::steady_clock::now();
    ServedModel::StageSeconds stages;
    const at::Tensor images = sample_with_bar(model, req, &stages);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::filesystem::create_directories(a->out);
    for (int i = 0; i < a->num; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "/%05d.png", i);
      write_image_png(a->out + name, images, i, model.png_text(req, i));
    }
    const int cols = a->columns > 0 ? a->columns : static_cast<int>(std::ceil(std::sqrt(a->num)));
    write_image_png(a->out + "/grid.png", make_grid(images, cols), 0, model.png_text(req, 0));
    spdlog::info("{} images in {:.1f} s ({:.2f} images/s), kernels {}, resident {}", a->num, secs, a->num / secs,
                 model.kernels(), model.resident().summary());
    if (model.takes_prompts())
      spdlog::info("stages: text encoding {:.4f} s, denoising {:.4f} s, VAE decoding {:.4f} s", stages.text_encoding,
                   stages.denoising, stages.vae_decoding);
    std::printf("%s/grid.png\n", a->out.c_str());
  });
}

}  // namespace qdm::cli
