// Models resident on a worker: a bounded LRU of LoadedModels (fp32 folders and artifacts,
// the latter per kernel mode), loaded from the fetcher's local copies.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/runtime/loaded_model.h"
#include "worker/model_fetcher.h"
#include "worker/worker_metrics.h"

namespace qdm::worker {

class ModelCache {
 public:
  // Models load onto `device` (the worker's --device).
  ModelCache(ModelFetcher& fetcher, size_t max_models, WorkerMetrics& metrics, c10::Device device = c10::kCPU);

  // Throws FetchError (unknown name, transfer) or std::exception (the file does not load).
  std::shared_ptr<LoadedModel> get(const std::string& name, bool artifact, KernelMode kernels);
  std::vector<std::string> names();
  // Local folders that messages to clients must not name (see service::public_message).
  std::vector<std::string> hidden_paths() const;

 private:
  struct Entry {
    std::string key, name, version;
    std::shared_ptr<LoadedModel> model;
  };
  void update_metrics();
  ModelFetcher& fetcher_;
  size_t max_models_;
  c10::Device device_;
  WorkerMetrics& metrics_;
  std::mutex mu_;
  std::list<Entry> lru_;  // most recent first
};

// "fp32", or "w4a8-int" / "w8a8-sim" / "w4a32-int" for artifacts.
std::string precision_label(const LoadedModel& model);

}  // namespace qdm::worker
