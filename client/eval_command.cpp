// qdm eval: FID-FMNIST, class histogram and confidence of a model's samples.
#include <spdlog/spdlog.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "client/progress_bar.h"
#include "engine/data/fashion_mnist.h"
#include "engine/eval/evaluator.h"
#include "engine/model/model_folder.h"
#include "engine/model/unet_denoiser.h"
#include "engine/sampling/pipeline.h"
#include "engine/util/threads.h"

namespace qdm::cli {

void add_eval_command(CLI::App& app) {
  struct Args {
    std::string model, json, classifier = "models/fmnist-classifier", data = default_fashion_mnist_dir();
    std::string sampler = "ddim";
    int num = 1000, steps = 100, batch = 100;
    uint64_t seed = 0;
    bool floor = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Sample a model and report FID-FMNIST, class histogram and confidence");
  cmd->add_option("--model", a->model, "diffusers model folder");
  cmd->add_option("--num", a->num, "Number of samples")->capture_default_str()->check(CLI::Range(2, 100000));
  cmd->add_option("--steps", a->steps, "Sampling steps")->capture_default_str()->check(CLI::Range(1, 10000));
  cmd->add_option("--seed", a->seed, "Seed of sample 0")->capture_default_str();
  cmd->add_option("--sampler", a->sampler, "ddim or ddpm")->capture_default_str()->check(CLI::IsMember({"ddim", "ddpm"}));
  cmd->add_option("--batch", a->batch, "Images per UNet call")->capture_default_str();
  cmd->add_option("--classifier", a->classifier, "Feature classifier folder")->capture_default_str();
  cmd->add_option("--data", a->data, "Fashion-MNIST folder")->capture_default_str();
  cmd->add_option("--json", a->json, "Write the report here as JSON");
  cmd->add_flag("--floor", a->floor, "Also report FID of --num training images vs the test set");
  cmd->callback([a] {
    set_compute_threads();
    FmnistEvaluator evaluator(a->classifier, a->data);
    nlohmann::json report;
    if (!a->model.empty()) {
      DiffusionModel model = load_model_folder(a->model);
      SampleRequest req;
      req.num_images = a->num;
      req.seed = a->seed;
      req.batch_size = a->batch;
      req.sampler.kind = parse_sampler(a->sampler);
      req.sampler.steps = a->steps;
      ProgressBar bar("sampling");
      const auto start = std::chrono::steady_clock::now();
      at::Tensor images = sample_images(NoiseSchedule(model.scheduler), unet_denoiser(model.unet),
                                        model.config.in_channels, model.config.sample_size, req,
                                        [&](const SampleProgress& p) {
                                          bar.update((p.images_done + p.batch_images * double(p.step) / p.steps) / p.total_images);
                                          return true;
                                        });
      bar.finish();
      report = evaluator.evaluate(images).to_json();
      report["model"] = a->model;
      report["model_sha256"] = model.weights_sha256;
      report["sampler"] = a->sampler;
      report["steps"] = a->steps;
      report["seed"] = a->seed;
      report["sampling_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (a->floor) report["train_vs_test_fid"] = evaluator.train_vs_test_fid(a->num);
    if (report.empty()) throw CLI::ValidationError("eval", "give --model and/or --floor");
    std::printf("%s\n", report.dump(2).c_str());
    if (!a->json.empty()) std::ofstream(a->json) << report.dump(2) << "\n";
  });
}

}  // namespace qdm::cli
