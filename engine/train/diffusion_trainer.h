// Trains a UNet2DModel on Fashion-MNIST with the DDPM epsilon objective, EMA weights,
// periodic checkpoints (model + EMA + optimizer in one safetensors file) and resumption.
// The output folder is a diffusers model folder holding the EMA weights.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <ATen/ATen.h>

#include "format/unet_config.h"
#include "format/noise_schedule.h"

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
  // Learning rate after warm-up: "constant", or "cosine" decay to min_lr at `iterations`.
  std::string lr_schedule = "constant";
  double min_lr = 0.0;
  // Min-SNR-gamma loss weighting (Hang et al. 2023): each timestep's epsilon loss weighted by
  // min(SNR(t), gamma) / SNR(t); 0 leaves the loss unweighted.
  double min_snr_gamma = 0.0;
  // Class-conditional configs: the fraction of labels replaced by the config's null_class,
  // which teaches the unconditional prediction classifier-free guidance needs.
  double label_dropout = 0.1;
  // The class embedding's learning rate as a multiple of the schedule's: a zero-initialised
  // embedding warm-started beside trained weights otherwise stays small and guidance weak.
  double class_lr_scale = 1.0;
  // Warm start (when no checkpoint exists): weights of this model folder; parameters it lacks
  // (a class embedding added to an unconditional model) start at zero.
  std::string init_from;
};

struct TrainProgress {
  int64_t step;
  int64_t total;
  double loss;  // mean over the last log interval
  double lr;
  double seconds;  // wall time since this run started
};

// The learning rate at `step` (1-based) under warm-up and the schedule.
double scheduled_lr(const DiffusionTrainOptions& options, int64_t step);
// Per-sample loss weights for timesteps t (N) under min-SNR-gamma (ones when gamma is 0).
at::Tensor min_snr_weights(const at::Tensor& alphas_cumprod, const at::Tensor& t, double gamma);

// Classifier-free guidance's training half: each label replaced by null_class with probability
// `rate`, drawn from gen (the trainer's checkpointed generator).
at::Tensor apply_label_dropout(const at::Tensor& labels, double rate, int null_class, at::Generator& gen);

// Returns the number of steps done. `on_log` may return false to stop after a checkpoint.
int64_t train_diffusion(const DiffusionTrainOptions& options,
                        const std::function<bool(const TrainProgress&)>& on_log = nullptr);

}  // namespace qdm
