// qdm eval: FID-FMNIST, class histogram and confidence of a model's or an artifact's samples.
#include <spdlog/spdlog.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "engine/data/fashion_mnist.h"
#include "engine/data/captions.h"
#include "engine/eval/evaluator.h"
#include "engine/runtime/loaded_model.h"
#include "engine/util/threads.h"

namespace qdm::cli {

void add_eval_command(CLI::App& app) {
  struct Args {
    SourceArgs source;
    std::string json, classifier = "models/fmnist-classifier", data = default_fashion_mnist_dir();
    int num = 1000, batch = 100;
    uint64_t seed = 0;
    bool floor = false;
    SamplerArgs sampler;
    std::string prompts = "held-out";
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Sample a model or artifact and report FID-FMNIST, class histogram and confidence");
  add_source_options(cmd, a->source);
  cmd->add_option("--num", a->num, "Number of samples")->capture_default_str()->check(CLI::Range(2, 100000));
  cmd->add_option("--seed", a->seed, "Seed of sample 0")->capture_default_str();
  add_sampler_options(cmd, a->sampler);
  cmd->add_option("--batch", a->batch, "Images per UNet call")->capture_default_str();
  cmd->add_option("--classifier", a->classifier, "Feature classifier folder")->capture_default_str();
  cmd->add_option("--data", a->data, "Fashion-MNIST folder")->capture_default_str();
  cmd->add_option("--json", a->json, "Write the report here as JSON");
  cmd->add_flag("--floor", a->floor, "Also report FID of --num training images vs the test set");
  cmd->add_option("--prompts", a->prompts,
                  "Text-to-image pipelines: image i asks for class i % 10 in a held-out or a training phrasing; none: the "
                  "empty prompt (unguided). prompt_agreement is the fraction classified as asked")
      ->check(CLI::IsMember({"held-out", "training", "none"}))
      ->capture_default_str();
  cmd->callback([a] {
    set_compute_threads();
    FmnistEvaluator evaluator(a->classifier, a->data);
    nlohmann::json report;
    if (!a->source.model.empty() || !a->source.artifact.empty()) {
      LoadedModel model = a->source.load();
      SampleRequest req = a->sampler.request(model, a->num, a->seed, a->batch);
      // Text-to-image pipelines: image i asks for class i % 10 in a held-out or training phrasing.
      std::vector<int64_t> asked;
      if (model.takes_prompts() && a->prompts != "none")
        evaluation_prompts(a->num, a->prompts == "held-out" ? CaptionSet::kHeldOut : CaptionSet::kTraining, a->seed, req.prompts, asked);
      const auto start = std::chrono::steady_clock::now();
      const at::Tensor images = sample_with_bar(model, req);
      // Labels 0..9 are Fashion-MNIST's classes; the null class (no label) is unconditional.
      at::Tensor labels;
      if (!req.class_labels.empty()) {
        for (int l : req.class_labels)
          if (l < 0 || l >= kFashionMnistClasses) throw CLI::ValidationError("--class-label", "eval needs Fashion-MNIST labels 0..9 or none");
        labels = at::tensor(std::vector<int64_t>(req.class_labels.begin(), req.class_labels.end()), at::kLong);
      }
      if (!asked.empty()) labels = at::tensor(asked, at::kLong);
      report = evaluator.evaluate(images, labels).to_json();
      if (!asked.empty()) report["prompt_agreement"] = report["class_accuracy"];
      if (model.takes_prompts()) report["prompts"] = a->prompts;
      if (!req.class_labels.empty() || req.guidance_scale != 1.0) report["guidance"] = req.guidance_scale;
      report[model.quantized() ? "artifact" : "model"] = model.path();
      report["sha256"] = model.sha256();
      report["kernels"] = model.kernels();
      report["weight_bytes"] = model.weight_bytes();
      report["resident_breakdown"] = model.resident().parts;
      report["sampler"] = sampler_name(req.sampler.kind);
      report["steps"] = req.sampler.steps;
      report["seed"] = a->seed;
      report["sampling_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (a->floor) report["train_vs_test_fid"] = evaluator.train_vs_test_fid(a->num);
    if (report.empty()) throw CLI::ValidationError("eval", "give --model, --artifact and/or --floor");
    std::printf("%s\n", report.dump(2).c_str());
    if (!a->json.empty()) std::ofstream(a->json) << report.dump(2) << "\n";
  });
}

}  // namespace qdm::cli
