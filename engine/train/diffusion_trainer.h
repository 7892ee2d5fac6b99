// Trains a UNet2DModel on Fashion-MNIST with the DDPM epsilon objective, EMA weights,
// periodic checkpoints (model + EMA + optimizer in one safetensors file) and resumption.
// The output folder is a diffusers model folder holding the EMA weights.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/model/unet_config.h"
#include "engine/sampling/noise_schedule.h"

namespace qdm {

struct DiffusionTrainOptions {
  std::string out_dir;
  std::string data_dir;  // Fashion-MNIST idx files
  UNetConfig config;
  SchedulerConfig scheduler;
  int iterations = 20000;
  int batch_size = 64;
  double lr = 2e-4;
  int warmup = 500;            // linear lr warm-up steps
  double ema_decay = 0.999;
  int checkpoint_every = 500;  // also writes the EMA model folder
  int log_every = 50;
  uint64_t seed = 0;
  bool resume = true;          // continue from out_dir/checkpoint.safetensors if present
  bool hflip = true;           // random horizontal flips
  int threads = 0;             // 0: LibTorch's default
};

struct TrainProgress {
  int64_t step;
  int64_t total;
  double loss;  // mean over the last log interval
  double lr;
  double seconds;  // wall time since this run started
};

// Returns the number of steps done. `on_log` may return false to stop after a checkpoint.
int64_t train_diffusion(const DiffusionTrainOptions& options,
                        const std::function<bool(const TrainProgress&)>& on_log = nullptr);

}  // namespace qdm
