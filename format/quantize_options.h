// The options of a quantization, with the one set of defaults the command line, the service
// (QuantizeOptions in jobs.proto, converted in service/convert) and the engine share:
//   QuantSpec        bit widths and which layers stay fp32
//   ReconOptions     block reconstruction (AdaRound, LSQ) settings
//   RecipeOptions    the recipe, its schedule and calibration data
//   QuantizeJobOptions  a whole job: the recipe plus its quality report
// Torch-free, so the scheduler validates requests with exactly these rules.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "format/sampler_options.h"

namespace qdm {

struct QuantSpec {
  int weight_bits = 4;  // 2..8
  int act_bits = 8;     // 4..8, or 0 for fp32 activations (W4A32)
  int steps = 100;      // entries of per-step tables
  // Layers whose input activations stay fp32, by qualified-name substring. Default: TFMQ-DM's
  // choice (see methods.md): first time-embedding linear, conv_in, conv_out, skip 1x1 convs,
  // downsample convs.
  std::vector<std::string> keep_fp = {"time_embedding.linear_1", "conv_in", "conv_out", "conv_shortcut",
                                      "downsamplers"};
  // Their weights: per-channel keep_bits (8 by default: a fifth of the resident bytes of fp32
  // for them), or 0 for fp32 weights as TFMQ-DM's code keeps them.
  int keep_bits = 8;
  // Layers left entirely in fp32, weights and input, by qualified-name substring: the output
  // conv, whose weight error is the predicted noise's error with no norm after it (rtn W8A32 on
  // the shipped model, N = 10: PSNR vs FP32 26.3 dB with it at 8 bits, 37.3 dB with it fp32; it
  // holds 288 weights). Absent in older artifacts: none.
  std::vector<std::string> fp32_layers = {"conv_out"};
  // Layers whose weights are quantized but whose input stays fp32 (the first ResBlock conv's
  // input, as in TFMQ-DM's code).
  std::vector<std::string> keep_fp_input = {"down_blocks.0.resnets.0.conv1"};
  bool quantize_attention = true;  // q, k, v and softmax output as 8-bit activations
  // Mixed precision (tmpq): per layer name, its weight and activation bits instead of the above.
  std::map<std::string, std::pair<int, int>> layer_bits;

  nlohmann::json to_json() const;
  static QuantSpec from_json(const nlohmann::json& j);  // keep_bits absent (older artifacts): 0
  void validate() const;  // throws std::invalid_argument naming the bad option
};

struct ReconOptions {
  int iters = 500;     // AdaRound iterations per block
  int batch = 32;
  double lr = 1e-3;    // Adam on the rounding variables
  double lambda = 0.01;
  double warmup = 0.2;
  int act_iters = 500; // LSQ iterations per block (qdiffusion; 0 keeps the calibrated ranges)
  double act_lr = 4e-4;
  bool with_time_proj = true;  // optimise each resnet's time_emb_proj with its block
  uint64_t seed = 0;
};

// TMPQ-DM's search (recipe "tmpq"): the sampling timesteps, one per non-uniform group dense near
// t = 0, and every layer's weight and activation bits, by an evolutionary search whose fitness is
// image quality under a cost budget. See ../shared/methods.md.
struct SearchOptions {
  int steps = 10;         // timesteps of the searched schedule: one per group
  // The groups' layout: edges (linspace(0, (0.8 T)^(1/p), n))^p, the last group [0.8 T, T). p = 2
  // is the paper's (dense near t = 0); p = 1 spaces them evenly, so the uniform schedules
  // DPM-Solver++ samples best with on the shipped model are in the search space.
  double group_power = 2.0;
  int base_steps = 200;   // candidates: the timesteps of this leading-spaced DDIM schedule
  // TMPQ-DM's released search space: 4-bit activations on min/max ranges broke images that the
  // proxy scored well (bench/results/tmpq_table.md)
  std::vector<int> weight_bits = {5, 6, 7, 8};
  std::vector<int> act_bits = {5, 6, 7, 8};
  int population = 50, top = 10, mutations = 25, crossovers = 10, generations = 20;
  double mutation_prob = 0.25;
  uint64_t seed = 0;
  int fitness_images = 32;  // images per candidate (fixed seeds): mean squared distance to the fp32
                            // model's DDIM images (its base schedule) on the same seeds, in the
                            // evaluator's classifier features (pixels without the classifier)
  int final_candidates = 4; // the best by that proxy, re-ranked at the end by FID-FMNIST ...
  int final_images = 128;   // ... on this many images (needs the classifier; 0: the proxy decides)
  double bitops_cap = 1.0;  // BitOPs per image and step at most this times the all-6-bit model's
  double ms_cap = 0;        // measured ms per image (all steps, batch 1) at most this (0: no cap)
  std::string state_dir;    // each finished generation is saved here; a rerun resumes from it

  nlohmann::json to_json() const;
  void validate() const;
};

// VQDM (recipe "vq"): additive vector quantization of the weights (AQLM). Each group of `group`
// input values of an output channel (a conv's `group` input channels at one kernel position) is
// scale[channel] * (C_1[k_1] + ... + C_M[k_M]), M = codebooks, each of 2^codebook_bits vectors,
// per layer, on an integer grid whose sums are int8. A layer is vector-quantized only where its
// codes plus codebooks take fewer bytes than scalar weights at the spec's weight_bits; the
// others (small layers, kept layers) are scalar. See ../shared/methods.md.
struct VqOptions {
  int codebooks = 3, codebook_bits = 8, group = 8;
  int beam = 8;
  int adam_steps = 100;    // Adam steps on codebooks and scales per round
  double lr = 1e-3;
  int max_rounds = 10;     // beam search + Adam rounds per layer at most ...
  double min_gain = 0.01;  // ... stopping when a round gains less than this (relative)
  int step_stride = 5;     // X^T X from every k-th step of the calibration trajectories
  uint64_t seed = 0;

  double nominal_bits() const { return static_cast<double>(codebooks) * codebook_bits / group; }
  nlohmann::json to_json() const;
  void validate() const;
};

// Fine-tuning against the fp32 model (every recipe, after its weights and before the eps bias; on
// an existing artifact: qdm finetune). Adam on the quantized model's continuous parameters with
// every integer code fixed: each scalar layer's weight scales, each vq layer's row scales and
// codebooks (kept on their integer grid by a straight-through rounding), and the parameters that
// stay fp32 (biases, norms, fp32 layers); the loss is the mean squared error between its noise
// predictions and the fp32 model's on the x_t of fp32 sampling trajectories over the artifact's
// schedule (one step per iteration). The parameters are kept as they were at the lowest error on
// held-out trajectories (the start included: fine-tuning never raises it).
// See engine/quant/finetune.h.
struct FinetuneOptions {
  int iters = -1;       // Adam steps; 0: no fine-tuning; -1: the recipe's default (RecipeInfo::finetune_iters)
  int samples = 256;    // training trajectories, seeds calib_seed + 2,000,000 + i
  int holdout = 16;     // held-out trajectories (the seeds after those), the selection's error
  int batch = 32;       // trajectories per step
  double lr = 1e-3;     // relative for scales and codebooks (cosine decay to 0); biases and norms 0.1x
  int evals = 8;        // held-out evaluations over the run (the best is kept)
  uint64_t seed = 0;    // the order of steps and trajectories

  nlohmann::json to_json() const;
  void validate() const;
};

// The TMPQ-DM timestep groups for T training steps and n groups, ascending [lo, hi): boundaries
// (linspace(0, (0.8 T)^(1/power), n))^power without the first point, the last group [0.8 T, T);
// power 2 is the paper's.
std::vector<std::pair<int, int>> timestep_groups(int T, int n, double power = 2.0);

struct RecipeOptions {
  std::string recipe = "tfmq";
  QuantSpec spec;
  SamplerOptions sampler;  // the schedule the artifact is calibrated for
  int calib_samples = 32;  // trajectories; each contributes one x_t per step
  uint64_t calib_seed = 1234;
  int batch = 64;
  ReconOptions recon;         // qdiffusion / tfmq reconstruction settings
  int recon_step_stride = 5;  // weight reconstruction uses every k-th step of the calibration data
  // Eps bias correction (every recipe, last stage): the quantized model's mean noise-prediction
  // error per step, measured on this many fp32 trajectories of the null class (an unconditional
  // model: every trajectory), stored in the artifact and subtracted from its unconditional
  // predictions at sampling. 0: none.
  int bias_samples = 0;
  // Text-to-image pipelines: the prompts the calibration trajectories are drawn from (each
  // trajectory one of them, or the empty prompt, in turn). Empty: the pipeline folder's
  // calibration_prompts.txt (one per line). Models without a text encoder refuse them.
  std::vector<std::string> prompts;
  static constexpr int kMaxPrompts = 1024;
  // Text-to-image pipelines: what is quantized (format/quantized_component.h): the UNet always,
  // with the recipe; "text_encoder" and "vae_decoder" at W8A8 besides, calibrated on the
  // calibration prompts and the fp32 pipeline's final latents. Models without them refuse them.
  std::vector<std::string> components = {"unet"};
  bool quantizes(const std::string& component) const;
  SearchOptions search;       // tmpq
  VqOptions vq;               // vq
  FinetuneOptions finetune;   // every recipe: finetune_options().iters > 0
  // `finetune` with the recipe's default steps filled in (iters -1).
  FinetuneOptions finetune_options() const;

  nlohmann::json to_json() const;
  // Throws std::invalid_argument naming the option: an unknown recipe, bits, counts.
  void validate() const;
};

struct QuantizeJobOptions {
  RecipeOptions recipe;
  int report_samples = 64;     // images for the quality report (0: none; FID needs 2 or more)
  std::string classifier_dir;  // FID-FMNIST in the report when it holds a classifier (32x32, 1 channel)
  std::string reference_cache_dir;  // fp32 report images kept here for later jobs (empty: none)
  std::string source_name;          // the model's name, recorded in the artifact (empty: the folder's name)
  std::string cache_dir;            // kept between runs: kernel latency tables, search reference images (empty: none)
};

}  // namespace qdm
