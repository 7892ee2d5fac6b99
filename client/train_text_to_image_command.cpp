// qdm train-text-to-image: trains the UNet2DConditionModel of a pipeline folder whose VAE and
// text encoder are trained (qdm train-vae, qdm train-text-encoder).
#include <spdlog/spdlog.h>

#include "client/commands.h"
#include "client/training_options.h"
#include "engine/data/fashion_mnist.h"
#include "engine/train/text_to_image_trainer.h"

namespace qdm::cli {

void add_train_text_to_image_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train-text-to-image",
                                 "Train the text-conditioned UNet of a pipeline folder (DIR/vae, DIR/text_encoder and "
                                 "DIR/tokenizer trained first) on Fashion-MNIST captions; EMA, checkpoints, exact resume");
  auto o = std::make_shared<TextToImageTrainOptions>();
  auto config_path = std::make_shared<std::string>();
  o->data_dir = default_fashion_mnist_dir();
  o->scheduler = stable_diffusion_scheduler();
  o->loop.iterations = 20000;
  o->loop.lr = 5e-4;
  o->loop.warmup = 500;
  o->loop.min_lr = 1e-5;
  o->loop.ema_decay = 0.999;
  o->loop.checkpoint_every = 1000;
  add_training_loop_options(cmd, o->loop, o->batch_size, o->threads, "Pipeline folder (the checkpoint is kept in its unet/)");
  cmd->add_option("--config", *config_path, "UNet2DConditionModel config.json (default: the shipped shape)");
  cmd->add_option("--data", o->data_dir, "Fashion-MNIST folder")->capture_default_str();
  cmd->add_option("--text-dropout", o->text_dropout, "Fraction of captions replaced by the empty prompt")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--min-snr", o->min_snr_gamma, "Min-SNR-gamma loss weighting (0: off)")->capture_default_str();
  cmd->add_option("--init", o->init_from,
                  "Warm start from this pipeline's (or UNet folder's) UNet weights, its config unless --config is given");
  cmd->callback([o, config_path] {
    if (!config_path->empty()) {
      o->config = UNetConfig::from_file(*config_path);
      o->default_config = false;
    }
    const int64_t steps = train_text_to_image(*o, [](const TrainingStep& s) {
      spdlog::info("step {}/{} loss {:.5f} lr {:.2e} ({:.0f} s)", s.step, s.total, s.loss, s.lr, s.seconds);
      return true;
    });
    spdlog::info("trained {} steps; pipeline folder {}", steps, o->loop.out_dir);
  });
}

}  // namespace qdm::cli
