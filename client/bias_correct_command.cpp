// qdm bias-correct: the eps bias correction (qdm quantize --bias-samples) for an artifact that was
// quantized without it, or to measure it again: needs the artifact's source model folder.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "client/commands.h"
#include "client/progress_bar.h"
#include "engine/quant/bias_correction.h"
#include "engine/util/threads.h"

namespace qdm::cli {

void add_bias_correct_command(CLI::App& app) {
  struct Args {
    std::string model, artifact, out;
    int samples = 256, batch = 64;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bias-correct",
                                 "Measure an artifact's mean noise-prediction error per step against its source model and "
                                 "store it for subtraction at sampling (unconditional images)");
  cmd->add_option("--model", a->model, "The artifact's source model folder")->required();
  cmd->add_option("--artifact", a->artifact, "Artifact to correct")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", a->out, "Artifact to write (may be --artifact)")->required();
  cmd->add_option("--bias-samples", a->samples, "fp32 trajectories to measure on")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--batch", a->batch, "Images per UNet call")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->callback([a] {
    set_compute_threads();
    const DiffusionModel model = load_model_folder(a->model);
    ProgressBar bar("eps bias");
    const auto t0 = std::chrono::steady_clock::now();
    correct_artifact(model, a->artifact, a->out, a->samples, a->batch, [&](int done, int total) {
      bar.update(total ? double(done) / total : 0, "");
      return true;
    });
    bar.finish();
    spdlog::info("wrote {} ({} bytes) in {:.1f} s", a->out, std::filesystem::file_size(a->out),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  });
}

}  // namespace qdm::cli
