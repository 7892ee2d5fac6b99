// qdm train-vae: trains the AutoencoderKL of a latent text-to-image pipeline on Fashion-MNIST.
#include <spdlog/spdlog.h>

#include "client/commands.h"
#include "client/training_options.h"
#include "engine/data/fashion_mnist.h"
#include "engine/train/vae_trainer.h"

namespace qdm::cli {

void add_train_vae_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train-vae", "Train an AutoencoderKL on Fashion-MNIST (EMA, checkpoints, exact resume); "
                                                "writes a diffusers vae/ folder and report.json (test PSNR)");
  auto o = std::make_shared<VaeTrainOptions>();
  auto config_path = std::make_shared<std::string>();
  o->data_dir = default_fashion_mnist_dir();
  o->loop.iterations = 6000;
  o->loop.lr = 1e-3;
  o->loop.warmup = 200;
  o->loop.min_lr = 1e-5;
  o->loop.ema_decay = 0.999;
  add_training_loop_options(cmd, o->loop, o->batch_size, o->threads, "Output vae folder (checkpoint.safetensors is kept there)");
  cmd->add_option("--config", *config_path, "AutoencoderKL config.json (default: 1 channel, 32x32 -> 4x8x8)");
  cmd->add_option("--data", o->data_dir, "Fashion-MNIST folder")->capture_default_str();
  cmd->add_option("--kl-weight", o->kl_weight, "Weight of the KL term")->capture_default_str();
  cmd->callback([o, config_path] {
    o->config = config_path->empty() ? fmnist_vae_config() : AutoencoderKLConfig::from_file(*config_path);
    const int64_t steps = train_vae(*o, [](const TrainingStep& s) {
      spdlog::info("step {}/{} loss {:.5f} rec {:.5f} kl {:.3f} lr {:.2e} ({:.0f} s)", s.step, s.total, s.loss,
                   s.extras.count("reconstruction") ? s.extras.at("reconstruction") : 0.0,
                   s.extras.count("kl") ? s.extras.at("kl") : 0.0, s.lr, s.seconds);
      return true;
    });
    spdlog::info("trained {} steps; vae folder {}", steps, o->loop.out_dir);
  });
}

}  // namespace qdm::cli
