// Models resident on a worker or a sampler: a bounded LRU of ServedModels (fp32 folders and
// artifacts, the latter per kernel mode), loaded from the fetcher's local copies by the node's
// loader (the worker's LibTorch one, or the torch-free execution plan on a sampler).
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/runtime/served_model.h"
#include "worker/model_fetcher.h"
#include "worker/worker_metrics.h"

namespace qdm::worker {

// Loads a local model folder (artifact false) or artifact file; throws what the loaders throw.
using ModelLoader = std::function<std::shared_ptr<ServedModel>(const std::string& path, bool artifact, KernelMode kernels)>;

// The torch-free loader: the execution plan on this CPU; kernels sim is refused.
std::shared_ptr<ServedModel> load_on_plan(const std::string& path, bool artifact, KernelMode kernels);

class ModelCache {
 public:
  ModelCache(ModelFetcher& fetcher, size_t max_models, WorkerMetrics& metrics, ModelLoader loader = load_on_plan);

  // Throws FetchError (unknown name, transfer) or std::exception (the file does not load).
  std::shared_ptr<ServedModel> get(const std::string& name, bool artifact, KernelMode kernels);
  std::vector<std::string> names();
  // Local folders that messages to clients must not name (see service::public_message).
  std::vector<std::string> hidden_paths() const;

 private:
  struct Entry {
    std::string key, name, version;
    std::shared_ptr<ServedModel> model;
  };
  void update_metrics();
  ModelFetcher& fetcher_;
  size_t max_models_;
  ModelLoader loader_;
  WorkerMetrics& metrics_;
  std::mutex mu_;
  std::list<Entry> lru_;  // most recent first
};

// "fp32", or "w4a8-int" / "w8a8-sim" / "w4a32-int" for artifacts.
std::string precision_label(const ServedModel& model);

}  // namespace qdm::worker
