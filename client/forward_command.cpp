// qdm forward: one UNet call on tensors from a safetensors file, for checking qdm against
// PyTorch/diffusers on a user's own model.
#include <spdlog/spdlog.h>
#include <torch/utils.h>

#include "client/commands.h"
#include "engine/model/model_folder.h"
#include "engine/model_io/tensor_io.h"
#include "engine/util/threads.h"

namespace qdm::cli {

void add_forward_command(CLI::App& app) {
  auto model_dir = std::make_shared<std::string>();
  auto input = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("forward", "Run one UNet call: IN holds `sample` (N,C,H,W), `timestep` (N) and, for a "
                                             "class-conditional model, `class_labels` (N, int64); OUT gets `out`");
  cmd->add_option("--model", *model_dir, "diffusers model folder")->required();
  cmd->add_option("--input", *input, "safetensors with `sample`, `timestep` (and `class_labels`)")->required();
  cmd->add_option("--out", *output, "safetensors to write `out` to")->required();
  cmd->callback([=] {
    set_compute_threads();
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
