#include "engine/model/model_folder.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <cstring>
#include <set>
#include <torch/utils.h>

#include "format/safetensors.h"
#include "format/unet_tensors.h"
#include "engine/model_io/tensor_io.h"
#include "format/sha256.h"

namespace qdm {
namespace fs = std::filesystem;

namespace {

std::string shape_str(at::IntArrayRef s) { return c10::str(s); }

}  // namespace

std::string load_unet_weights(UNet2DModelImpl& unet, const SafeTensors& file) {
  std::map<std::string, at::Tensor> targets;
  for (const auto& p : unet.named_parameters()) targets[p.key()] = p.value();
  for (const auto& b : unet.named_buffers()) targets[b.key()] = b.value();

  std::set<std::string> loaded;
  std::string dtype;
  torch::NoGradGuard no_grad;
  for (const auto& info : file.tensors()) {
    const std::string name = canonical_tensor_name(info.name);
    auto it = targets.find(name);
    if (it == targets.end())
      throw ModelLoadError("unexpected tensor '" + info.name +
                           "': this config.json builds no such parameter (config and weights do not match)");
    if (!loaded.insert(name).second)
      throw ModelLoadError("tensor '" + name + "' is stored twice (old and new attention names)");
    if (info.dtype != DType::F32 && info.dtype != DType::F16 && info.dtype != DType::BF16)
      throw ModelLoadError("tensor '" + info.name + "' has dtype " + dtype_name(info.dtype) +
                           "; model weights must be F32, F16 or BF16");
    at::Tensor src = to_tensor(file, info);
    if (src.sizes() != it->second.sizes())
      throw ModelLoadError("tensor '" + info.name + "' has shape " + shape_str(src.sizes()) +
                           " but config.json implies " + shape_str(it->second.sizes()));
    it->second.copy_(src.to(at::kFloat));
    dtype = dtype_name(info.dtype);
  }
  for (const auto& [name, t] : targets)
    if (!loaded.count(name)) throw ModelLoadError("missing tensor '" + name + "' required by config.json");
  return dtype.empty() ? "F32" : dtype;
}

DiffusionModel load_model_folder(const std::string& dir) {
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
