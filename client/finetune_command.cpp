// qdm finetune: fine-tuning against the fp32 model (qdm quantize --finetune-iters) for an existing
// artifact: needs the artifact's source model folder. An eps bias in it is measured again.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "client/commands.h"
#include "client/progress_bar.h"
#include "engine/quant/finetune.h"
#include "engine/util/threads.h"
#include "format/recipes.h"

namespace qdm::cli {

namespace {
// "vq 600, others none": the recipes' default fine-tuning steps.
std::string finetune_defaults() {
  std::string out;
  for (const auto& r : recipes())
    if (r.finetune_iters > 0) out += std::string(r.name) + " " + std::to_string(r.finetune_iters) + ", ";
  return out + "others none";
}
}  // namespace

void add_finetune_options(CLI::App* cmd, FinetuneOptions& o) {
  cmd->add_option("--finetune-iters", o.iters,
                  "Fine-tuning against the fp32 model: Adam steps (0: none; -1: the recipe's default, " + finetune_defaults() + ")")
      ->capture_default_str()->check(CLI::Range(-1, 1000000));
  cmd->add_option("--finetune-samples", o.samples, "Fine-tuning: fp32 trajectories trained on")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--finetune-holdout", o.holdout, "Fine-tuning: held-out trajectories that choose the kept parameters")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--finetune-batch", o.batch, "Fine-tuning: trajectories per step")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--finetune-lr", o.lr, "Fine-tuning: learning rate (relative for scales and codebooks; 0.1x for biases and norms)")
      ->capture_default_str();
  cmd->add_option("--finetune-evals", o.evals, "Fine-tuning: held-out evaluations over the run")->capture_default_str()->check(CLI::Range(1, 1000));
}

void add_finetune_command(CLI::App& app) {
  struct Args {
    std::string model, artifact, out;
    FinetuneOptions options;
    int batch = 64;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("finetune",
                                 "Fine-tune an artifact's scales, codebooks, biases and norms (codes fixed) against its source "
                                 "model's noise predictions");
  cmd->add_option("--model", a->model, "The artifact's source model folder")->required();
  cmd->add_option("--artifact", a->artifact, "Artifact to fine-tune")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", a->out, "Artifact to write (may be --artifact)")->required();
  add_finetune_options(cmd, a->options);
  cmd->add_option("--batch", a->batch, "Images per UNet call collecting trajectories")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->callback([a] {
    set_compute_threads();
    if (a->options.iters < 1) throw CLI::ValidationError("--finetune-iters", "set it: Adam steps, >= 1 (vq's default is 600)");
    const DiffusionModel model = load_model_folder(a->model);
    std::string stage;
    std::unique_ptr<ProgressBar> bar;
    const auto t0 = std::chrono::steady_clock::now();
    const FinetuneReport r = finetune_artifact(model, a->artifact, a->out, a->options, a->batch, [&](const QuantizeProgress& p) {
      if (p.stage != stage) {
        if (bar) bar->finish();
        stage = p.stage;
        bar = std::make_unique<ProgressBar>(stage);
      }
      bar->update(p.total ? double(p.done) / p.total : 0, p.loss > 0 ? fmt::format("held-out {:.5f}", p.loss) : "");
      return true;
    });
    if (bar) bar->finish();
    spdlog::info("held-out eps error {:.6f} -> {:.6f} (kept iteration {}, {} parameters); wrote {} in {:.1f} s", r.holdout_before,
                 r.holdout_after, r.best_iter, r.params, a->out,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  });
}

}  // namespace qdm::cli
