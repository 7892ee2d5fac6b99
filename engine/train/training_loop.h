// The loop every trainer shares: AdamW over a module's parameters with warm-up and an optional
// cosine decay, an optional EMA copy, a data generator whose state is checkpointed, one
// safetensors checkpoint (model, EMA, optimizer, generator; step in the metadata) that a rerun
// resumes from exactly, train_log.jsonl, and a callback that writes the usable output. A
// trainer supplies the batch loss and the writer. (The diffusion trainer predates it.)
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace qdm {

struct TrainingLoopOptions {
  std::string out_dir;  // checkpoint.safetensors and train_log.jsonl go here
  int iterations = 1000;
  double lr = 1e-3;
  int warmup = 100;
  bool cosine = true;  // decay to min_lr at `iterations`; else constant after warm-up
  double min_lr = 0.0;
  double ema_decay = 0.0;  // 0: no EMA (the writer gets the trained weights)
  int checkpoint_every = 500;
  int log_every = 50;
  uint64_t seed = 0;
  bool resume = true;
  double grad_clip = 1.0;  // global norm; 0: none
};

struct TrainingStep {
  int64_t step, total;
  double loss;                           // mean over the last log interval
  std::map<std::string, double> extras;  // the loss's parts, means over the interval
  double lr, seconds;
};

// loss(gen, extras) computes one batch's loss (drawing data from gen) and may add named parts to
// extras. write(model) saves the usable output (called with the EMA weights when ema_decay > 0,
// after each checkpoint). on_log may return false to stop after a checkpoint. Returns the steps done.
int64_t run_training_loop(torch::nn::Module& model, torch::nn::Module* ema, const TrainingLoopOptions& options,
                          const std::function<at::Tensor(at::Generator&, std::map<std::string, double>&)>& loss,
                          const std::function<void(torch::nn::Module&)>& write,
                          const std::function<bool(const TrainingStep&)>& on_log = nullptr);

}  // namespace qdm
