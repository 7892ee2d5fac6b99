// Each `qdm` subcommand registers itself on the CLI11 app from its own file.
#pragma once

#include <ATen/ATen.h>

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/runtime/loaded_model.h"

namespace qdm {
}  // namespace qdm

namespace qdm::cli {

// Sampler flags shared by sample, eval and quantize; unset flags take the model's defaults.
struct SamplerArgs {
  std::optional<int> steps;
  std::optional<std::string> sampler, spacing;
  std::optional<double> eta;
  std::vector<int> timesteps;  // an explicit schedule (descending), instead of steps and spacing
  // Class-conditional models: labels (indices, names, one per image, or "all") and guidance.
  std::vector<std::string> class_labels;
  double guidance = 1.0;
  SamplerOptions resolve(const SamplerOptions& defaults) const;
  // A request for `model` with these flags, checked against the model's schedule.
  SampleRequest request(const LoadedModel& model, int num, uint64_t seed, int batch) const;
  // The same for a text-to-image pipeline (20 DDIM steps unless asked): images, seeds, batch,
  // sampler and guidance; the caller adds the prompts.
};
void add_sampler_options(CLI::App* cmd, SamplerArgs& args);
// --model / --artifact / --kernels: what to sample from.
struct SourceArgs {
  std::string model, artifact, kernels = "int", device = "cpu";
  LoadedModel load() const;  // exactly one of model / artifact
};
void add_source_options(CLI::App* cmd, SourceArgs& args);
at::Tensor sample_with_bar(LoadedModel& model, const SampleRequest& request, ServedModel::StageSeconds* stages = nullptr);
// --finetune-*: fine-tuning against the fp32 model (quantize, finetune).
void add_finetune_options(CLI::App* cmd, FinetuneOptions& options);

void add_train_command(CLI::App& app);
void add_train_vae_command(CLI::App& app);
void add_train_text_encoder_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_train_text_to_image_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_finetune_command(CLI::App& app);
void add_bias_correct_command(CLI::App& app);
void add_train_classifier_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_inspect_command(CLI::App& app);

}  // namespace qdm::cli
