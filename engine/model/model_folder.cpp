#include "engine/model/model_folder.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <cstring>
#include <set>
#include <torch/utils.h>

#include "engine/model/module_weights.h"
#include "engine/model/pipeline_folder.h"
#include "engine/sampling/text_to_image.h"
#include "format/prompts.h"
#include "format/quantize_options.h"
#include "format/safetensors.h"
#include "format/unet_tensors.h"
#include "engine/model_io/tensor_io.h"
#include "format/sha256.h"

namespace qdm {
namespace fs = std::filesystem;


std::string load_unet_weights(UNet2DModelImpl& unet, const SafeTensors& file) {
  WeightNames names;
  names.canonical = canonical_tensor_name;
  return load_module_weights(unet, file, "config.json", names);
}

DiffusionModel load_model_folder(const std::string& dir) {
  if (is_pipeline_folder(dir)) {
    auto pipe = std::make_shared<TextToImagePipeline>(load_pipeline(dir));
    DiffusionModel m;
    m.dir = dir;
    m.config = pipe->unet->config();
    m.scheduler = pipe->scheduler;
    m.unet = pipe->unet;
    m.weights_sha256 = pipe->unet_sha256;
    m.weights_dtype = pipe->unet_dtype;
    m.pipeline = std::move(pipe);
    return m;
  }
  const ModelFolderFiles files = open_model_folder(dir);
  DiffusionModel m;
  m.dir = dir;
  m.config = files.config;
  m.scheduler = files.scheduler;
  const fs::path weights(files.weights);
  const SafeTensors file = SafeTensors::read_file(weights.string());
  try {
    check_unet_weights(m.config, file);  // the scheduler's check of uploads, before any allocation
    m.unet = UNet2DModel(m.config);
    m.weights_dtype = load_unet_weights(*m.unet, file);
  } catch (const std::exception& e) {
    throw ModelLoadError(weights.string() + ": " + e.what());
  }
  m.unet->eval();
  m.weights_sha256 = sha256_file(weights.string());
  return m;
}

at::Tensor DiffusionModel::images(const at::Tensor& samples) const {
  if (!pipeline) return samples;
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  const double scale = pipeline->vae->config().scaling_factor;
  for (int64_t i = 0; i < samples.size(0); i += 64)
    out.push_back(pipeline->vae->decode(samples.narrow(0, i, std::min<int64_t>(64, samples.size(0) - i)) / scale).clamp(-1, 1));
  return at::cat(out);
}

void use_prompts(DiffusionModel& model, const std::vector<std::string>& prompts) {
  if (!model.pipeline)
    throw std::invalid_argument("calibration prompts are for text-to-image pipelines; this model has no text encoder");
  if (prompts.empty())
    throw std::invalid_argument("a text-to-image pipeline needs calibration prompts: give some (qdm quantize --calib-prompt), "
                                "or put them in the folder's calibration_prompts.txt, one per line");
  std::vector<std::string> rows = prompts;
  rows.push_back("");  // the null label: guidance's unconditional branch
  const at::Tensor states = encode_prompts(*model.pipeline, rows);
  model.unet->set_prompt_states(states, static_cast<int>(rows.size()) - 1);
  model.prompts = std::move(rows);
}

std::vector<std::string> folder_calibration_prompts(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "calibration_prompts.txt");
  std::vector<std::string> prompts;
  std::string line;
  while (in && std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line.size() > kMaxPromptBytes)
      throw ModelLoadError("calibration_prompts.txt: a line is longer than " + std::to_string(kMaxPromptBytes) + " bytes");
    prompts.push_back(line);
    if (prompts.size() > static_cast<size_t>(RecipeOptions::kMaxPrompts))
      throw ModelLoadError("calibration_prompts.txt: more than " + std::to_string(RecipeOptions::kMaxPrompts) + " prompts");
  }
  return prompts;
}

void save_model_folder(const std::string& dir, UNet2DModelImpl& unet, const SchedulerConfig& scheduler) {
  const fs::path root(dir);
  fs::create_directories(root / "scheduler");
  TensorMap tensors;
  for (const auto& p : unet.named_parameters()) tensors[p.key()] = p.value();
  for (const auto& b : unet.named_buffers()) tensors[b.key()] = b.value();
  save_tensors((root / "diffusion_pytorch_model.safetensors").string(), tensors, {{"format", "pt"}});
  nlohmann::json cfg = unet.config().to_json();
  cfg["_diffusers_version"] = "0.30.0";
  std::ofstream(root / "config.json") << cfg.dump(2) << "\n";
  std::ofstream(root / "scheduler" / "scheduler_config.json") << scheduler.to_json().dump(2) << "\n";
}

}  // namespace qdm
