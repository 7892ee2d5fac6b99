// qdm forward: one call of a model component on tensors from a safetensors file, for checking
// qdm against PyTorch/diffusers/transformers on a user's own model. A UNet folder, or a
// pipeline folder with --component unet|text_encoder|vae_decoder|vae_encoder.
#include <spdlog/spdlog.h>
#include <torch/utils.h>

#include "client/commands.h"
#include "engine/model/model_folder.h"
#include "engine/model/pipeline_folder.h"
#include "engine/model_io/tensor_io.h"
#include "engine/util/threads.h"

namespace qdm::cli {

void add_forward_command(CLI::App& app) {
  auto model_dir = std::make_shared<std::string>();
  auto input = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>();
  auto component = std::make_shared<std::string>("unet");
  auto* cmd = app.add_subcommand("forward", "Run one UNet call: IN holds `sample` (N,C,H,W), `timestep` (N) and, for a "
                                             "class-conditional model, `class_labels` (N, int64); OUT gets `out`");
  cmd->add_option("--model", *model_dir, "diffusers model folder")->required();
  cmd->add_option("--input", *input, "safetensors with `sample`, `timestep` (and `class_labels`)")->required();
  cmd->add_option("--out", *output, "safetensors to write `out` to")->required();
  cmd->add_option("--component", *component,
                  "Pipelines: unet (sample, timestep, encoder_hidden_states), text_encoder (input_ids), vae_decoder "
                  "(latent, already divided by scaling_factor), vae_encoder (sample in [-1, 1]: the posterior mean)")
      ->check(CLI::IsMember({"unet", "text_encoder", "vae_decoder", "vae_encoder"}))
      ->capture_default_str();
  cmd->callback([=] {
    set_compute_threads();
    if (is_pipeline_folder(*model_dir)) {
      TextToImagePipeline pipe = load_pipeline(*model_dir);
      TensorMap in = load_tensors(*input);
      auto need = [&](const char* key) -> const at::Tensor& {
        if (!in.count(key)) throw CLI::ValidationError("--input", std::string("missing tensor '") + key + "' for --component " + *component);
        return in[key];
      };
      torch::NoGradGuard no_grad;
      at::Tensor out;
      if (*component == "unet") out = pipe.unet->forward(need("sample").to(at::kFloat), need("timestep").to(at::kFloat), {}, need("encoder_hidden_states"));
      else if (*component == "text_encoder") out = pipe.text_encoder->forward(need("input_ids"));
      else if (*component == "vae_decoder") out = pipe.vae->decode(need("latent"));
      else out = pipe.vae->encode_mean(need("sample"));
      save_tensors(*output, {{"out", out.contiguous()}});
      spdlog::info("wrote out {} to {}", c10::str(out.sizes()), *output);
      return;
    }
    if (*component != "unet") throw CLI::ValidationError("--component", "a UNet folder has only the unet component");
    DiffusionModel model = load_model_folder(*model_dir);
    TensorMap in = load_tensors(*input);
    for (const char* key : {"sample", "timestep"})
      if (!in.count(key)) throw std::runtime_error(*input + ": missing tensor '" + key + "'");
    torch::NoGradGuard no_grad;
    at::Tensor labels;
    if (in.count("class_labels")) labels = in["class_labels"].to(at::kLong);
    at::Tensor out = model.unet->forward(in["sample"].to(at::kFloat), in["timestep"].to(at::kFloat), labels);
    save_tensors(*output, {{"out", out}});
    spdlog::info("wrote out {} to {}", c10::str(out.sizes()), *output);
  });
}

}  // namespace qdm::cli
