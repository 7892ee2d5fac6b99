#include "engine/model/model_folder.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <cstring>
#include <set>
#include <torch/utils.h>

#include "engine/model/module_weights.h"
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
