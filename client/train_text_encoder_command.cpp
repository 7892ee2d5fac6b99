// qdm train-text-encoder: learns the tokenizer and trains the text encoder of a text-to-image
// pipeline on Fashion-MNIST captions.
#include <spdlog/spdlog.h>

#include "client/commands.h"
#include "engine/train/text_encoder_trainer.h"

namespace qdm::cli {

void add_train_text_encoder_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train-text-encoder",
                                 "Learn a BPE tokenizer from Fashion-MNIST captions and train a small CLIP text encoder "
                                 "(checkpoints, exact resume); writes DIR/tokenizer and DIR/text_encoder");
  auto o = std::make_shared<TextEncoderTrainOptions>();
  o->loop.iterations = 3000;
  o->loop.lr = 1e-3;
  o->loop.warmup = 100;
  o->loop.min_lr = 1e-5;
  cmd->add_option("--out", o->loop.out_dir, "Pipeline folder (checkpoint.safetensors is kept in it)")->required();
  cmd->add_option("--iters", o->loop.iterations, "Total optimizer steps")->check(CLI::Range(1, 10'000'000))->capture_default_str();
  cmd->add_option("--batch", o->batch_size, "Captions per step")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--lr", o->loop.lr, "Peak learning rate (cosine decay)")->capture_default_str();
  cmd->add_option("--merges", o->merges, "BPE merges learned from the captions")->check(CLI::Range(0, 100000))->capture_default_str();
  cmd->add_option("--max-length", o->max_length, "Tokens per prompt (model_max_length)")->check(CLI::Range(4, 512))->capture_default_str();
  cmd->add_option("--checkpoint-every", o->loop.checkpoint_every, "Steps between checkpoints")->capture_default_str();
  cmd->add_option("--log-every", o->loop.log_every, "Steps between log lines")->capture_default_str();
  cmd->add_option("--seed", o->loop.seed, "Random seed")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Intra-op threads")->capture_default_str();
  cmd->add_flag("--no-resume{false}", o->loop.resume, "Start over even if a checkpoint exists");
  cmd->callback([o] {
    const int64_t steps = train_text_encoder(*o, [](const TrainingStep& s) {
      spdlog::info("step {}/{} loss {:.4f} accuracy {:.3f} lr {:.2e} ({:.0f} s)", s.step, s.total, s.loss,
                   s.extras.count("accuracy") ? s.extras.at("accuracy") : 0.0, s.lr, s.seconds);
      return true;
    });
    spdlog::info("trained {} steps; text encoder in {}/text_encoder", steps, o->loop.out_dir);
  });
}

}  // namespace qdm::cli
