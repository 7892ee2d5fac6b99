// qdm train-text-encoder: learns the tokenizer and trains the text encoder of a text-to-image
// pipeline on Fashion-MNIST captions.
#include <spdlog/spdlog.h>

#include "client/commands.h"
#include "client/training_options.h"
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
  add_training_loop_options(cmd, o->loop, o->batch_size, o->threads,
                            "Pipeline folder (the checkpoint is kept in its text_encoder/)");
  cmd->add_option("--merges", o->merges, "BPE merges learned from the captions")->check(CLI::Range(0, 100000))->capture_default_str();
  cmd->add_option("--max-length", o->max_length, "Tokens per prompt (model_max_length)")->check(CLI::Range(4, 512))->capture_default_str();
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
