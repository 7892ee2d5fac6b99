#include "worker/model_cache.h"

#include <filesystem>

#include <spdlog/spdlog.h>


namespace qdm::worker {

std::shared_ptr<ServedModel> load_on_plan(const std::string& path, bool artifact, KernelMode kernels) {
  if (kernels == KernelMode::kSim)
    throw std::invalid_argument("this node samples on the integer kernels only; ask for kernels int (the simulation runs on a qdm-worker)");
  return std::make_shared<ServedModel>(artifact ? ServedModel::from_artifact(path) : ServedModel::from_folder(path));
}

ModelCache::ModelCache(ModelFetcher& fetcher, size_t max_models, WorkerMetrics& metrics, ModelLoader loader)
    : fetcher_(fetcher), max_models_(std::max<size_t>(1, max_models)), loader_(std::move(loader)), metrics_(metrics) {}

std::shared_ptr<ServedModel> ModelCache::get(const std::string& name, bool artifact, KernelMode kernels) {
  // The local copy is checked against the scheduler on every use (a cheap header exchange).
  std::string version;
  const std::string path = fetcher_.fetch(name, artifact, &version);
  const std::string key = std::string(artifact ? "a:" : "m:") + name + (artifact && kernels == KernelMode::kSim ? ":sim" : "");
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    if (it->key != key) continue;
    if (it->version == version) {
      lru_.splice(lru_.begin(), lru_, it);
      return lru_.front().model;
    }
    lru_.erase(it);
    break;
  }
  std::shared_ptr<ServedModel> model = loader_(path, artifact, kernels);
  model->display_name = name;
  lru_.push_front({key, name, version, model});
  while (lru_.size() > max_models_) {
    spdlog::info("model cache: evicting {}", lru_.back().name);
    lru_.pop_back();
  }
  spdlog::info("loaded {} '{}' ({}, kernels {}, resident {})", artifact ? "artifact" : "model", name,
               precision_label(*model), model->kernels(), model->resident().summary());
  update_metrics();
  return model;
}

std::vector<std::string> ModelCache::names() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& e : lru_) out.push_back(e.name);
  return out;
}

void ModelCache::update_metrics() {
  double bytes = 0;
  for (const auto& e : lru_) bytes += static_cast<double>(e.model->weight_bytes());
  metrics_.loaded_model_bytes.Set(bytes);
  metrics_.loaded_models.Set(static_cast<double>(lru_.size()));
}

std::string precision_label(const ServedModel& model) {
  if (!model.quantized()) return "fp32";
  const auto& spec = model.artifact_info()->spec;
  const std::string kernels = model.kernels();  // "int (avx512vnni)" or "sim"
  return "w" + std::to_string(spec.weight_bits) + "a" + std::to_string(spec.act_bits == 0 ? 32 : spec.act_bits) + "-" +
         kernels.substr(0, kernels.find(' '));
}

std::vector<std::string> ModelCache::hidden_paths() const {
  return {std::filesystem::absolute(fetcher_.cache_dir()).string(), fetcher_.cache_dir()};
}

}  // namespace qdm::worker
