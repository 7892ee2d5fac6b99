#include "format/model_folder.h"

#include <filesystem>

namespace qdm {

namespace fs = std::filesystem;

ModelFolderFiles open_model_folder(const std::string& dir) {
  if (!fs::is_directory(dir)) throw ModelLoadError("model folder '" + dir + "' does not exist");
  const fs::path root(dir);
  if (!fs::exists(root / "config.json")) throw ModelLoadError("'" + dir + "' has no config.json");
  const fs::path weights = root / "diffusion_pytorch_model.safetensors";
  if (!fs::exists(weights))
    throw ModelLoadError("'" + dir + "' has no diffusion_pytorch_model.safetensors (only safetensors weights are read)");
  ModelFolderFiles f;
  f.dir = dir;
  f.weights = weights.string();
  f.config = UNetConfig::from_file((root / "config.json").string());
  for (const fs::path candidate : {root / "scheduler" / "scheduler_config.json", root / "scheduler_config.json"}) {
    if (fs::exists(candidate)) {
      f.scheduler = SchedulerConfig::from_file(candidate.string());
      break;
    }
  }
  return f;
}

}  // namespace qdm
