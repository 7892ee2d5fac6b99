// qdm sample: generate images from a model folder, one PNG per image plus grid.png.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "client/progress_bar.h"
#include "engine/model/model_folder.h"
#include "engine/model/unet_denoiser.h"
#include "engine/sampling/images.h"
#include "engine/sampling/pipeline.h"
#include "engine/util/threads.h"

namespace qdm::cli {

void add_sample_command(CLI::App& app) {
  struct Args {
    std::string model, out = "samples", sampler = "ddim", spacing = "leading";
    int num = 16, steps = 100, batch = 64, threads = 0, columns = 0;
    uint64_t seed = 0;
    double eta = 0.0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("sample", "Generate images from a model folder");
  cmd->add_option("--model", a->model, "diffusers model folder")->required();
  cmd->add_option("--num", a->num, "Number of images")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--steps", a->steps, "Sampling steps")->capture_default_str()->check(CLI::Range(1, 10000));
  cmd->add_option("--seed", a->seed, "Seed of image 0; image i uses seed + i")->capture_default_str();
  cmd->add_option("--sampler", a->sampler, "ddim or ddpm")->capture_default_str()->check(CLI::IsMember({"ddim", "ddpm"}));
  cmd->add_option("--eta", a->eta, "DDIM eta (0: deterministic)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--spacing", a->spacing, "Timestep spacing: leading, trailing, uniform, quad")
      ->capture_default_str()->check(CLI::IsMember({"leading", "trailing", "uniform", "quad"}));
  cmd->add_option("--batch", a->batch, "Images per UNet call")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--columns", a->columns, "Grid columns (0: square)");
  cmd->add_option("--threads", a->threads, "Compute threads (0: all cores)");
  cmd->add_option("--out", a->out, "Output folder")->capture_default_str();
  cmd->callback([a] {
    set_compute_threads(a->threads);
    DiffusionModel model = load_model_folder(a->model);
    SampleRequest req;
    req.num_images = a->num;
    req.seed = a->seed;
    req.batch_size = a->batch;
    req.sampler.kind = parse_sampler(a->sampler);
    req.sampler.steps = a->steps;
    req.sampler.eta = a->eta;
    req.sampler.spacing = parse_spacing(a->spacing);
    const NoiseSchedule schedule(model.scheduler);
    ProgressBar bar("sampling");
    const auto start = std::chrono::steady_clock::now();
    at::Tensor images = sample_images(schedule, unet_denoiser(model.unet), model.config.in_channels,
                                      model.config.sample_size, req, [&](const SampleProgress& p) {
                                        const double done = p.images_done + p.batch_images * double(p.step) / p.steps;
                                        bar.update(done / p.total_images, std::to_string(p.images_done) + "/" +
                                                                              std::to_string(p.total_images) + " images");
                                        return true;
                                      });
    bar.finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::filesystem::create_directories(a->out);
    for (int i = 0; i < a->num; ++i) {
      const PngText text = {{"Software", "qdm 0.1.0"},
                            {"qdm:model", model.dir},
                            {"qdm:model_sha256", model.weights_sha256},
                            {"qdm:sampler", a->sampler},
                            {"qdm:steps", std::to_string(a->steps)},
                            {"qdm:eta", std::to_string(a->eta)},
                            {"qdm:spacing", a->spacing},
                            {"qdm:seed", std::to_string(a->seed + static_cast<uint64_t>(i))}};
      char name[32];
      std::snprintf(name, sizeof name, "/%05d.png", i);
      write_image_png(a->out + name, images, i, text);
    }
    const int cols = a->columns > 0 ? a->columns : static_cast<int>(std::ceil(std::sqrt(a->num)));
    write_image_png(a->out + "/grid.png", make_grid(images, cols), 0,
                    {{"Software", "qdm 0.1.0"}, {"qdm:seed", std::to_string(a->seed)}, {"qdm:steps", std::to_string(a->steps)}});
    spdlog::info("{} images in {:.1f} s ({:.2f} images/s)", a->num, secs, a->num / secs);
    std::printf("%s/grid.png\n", a->out.c_str());
  });
}

}  // namespace qdm::cli
