// The flags every component trainer shares (qdm train-vae, train-text-encoder,
// train-text-to-image): output folder, steps, batch, learning rate, checkpoints, log, seed,
// threads, resume.
#pragma once

#include <CLI/CLI.hpp>

#include "engine/train/training_loop.h"

namespace qdm::cli {

inline void add_training_loop_options(CLI::App* cmd, TrainingLoopOptions& loop, int& batch, int& threads,
                                      const std::string& out_help) {
  cmd->add_option("--out", loop.out_dir, out_help)->required();
  cmd->add_option("--iters", loop.iterations, "Total optimizer steps")->check(CLI::Range(1, 10'000'000))->capture_default_str();
  cmd->add_option("--batch", batch, "Batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--lr", loop.lr, "Peak learning rate (warm-up, then cosine decay)")->capture_default_str();
  cmd->add_option("--checkpoint-every", loop.checkpoint_every, "Steps between checkpoints")->check(CLI::Range(1, 10'000'000))->capture_default_str();
  cmd->add_option("--log-every", loop.log_every, "Steps between log lines")->check(CLI::Range(1, 10'000'000))->capture_default_str();
  cmd->add_option("--seed", loop.seed, "Random seed")->capture_default_str();
  cmd->add_option("--threads", threads, "Intra-op threads")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_flag("--no-resume{false}", loop.resume, "Start over even if a checkpoint exists");
}

}  // namespace qdm::cli
