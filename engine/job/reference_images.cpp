#include "engine/job/reference_images.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <functional>
#include <thread>
#include <nlohmann/json.hpp>

#include "engine/runtime/loaded_model.h"
#include "engine/model_io/tensor_io.h"
#include "format/timesteps.h"
#include "format/sha256.h"

namespace qdm {

namespace fs = std::filesystem;

std::string reference_key(const DiffusionModel& model, const SampleRequest& r) {
  nlohmann::json key = {{"weights_sha256", model.weights_sha256},
                        {"config", model.config.to_json()},
                        {"scheduler", model.scheduler.to_json()},
                        {"num_images", r.num_images},
                        {"seed", r.seed},
                        {"seeds", r.seeds}};
  key.update(r.sampler.to_json());
  if (!model.prompts.empty()) key["prompts"] = model.prompts;  // a pipeline's labels are rows of its prompt table
  if (!r.class_labels.empty()) {
    key["class_labels"] = r.class_labels;
    key["guidance"] = r.guidance_scale;
  }
  return key.dump();
}

namespace {

fs::path cache_path(const std::string& key, const std::string& cache_dir) {
  return cache_dir.empty() ? fs::path() : fs::path(cache_dir) / (sha256_hex(key.data(), key.size()).substr(0, 32) + ".safetensors");
}

}  // namespace

bool reference_cached(const DiffusionModel& model, const SampleRequest& request, const std::string& cache_dir) {
  const fs::path path = cache_path(reference_key(model, request), cache_dir);
  return !path.empty() && fs::exists(path);
}

at::Tensor reference_images(const DiffusionModel& model, const SampleRequest& request, const std::string& cache_dir,
                            const std::function<bool(const SampleProgress&)>& on_progress, bool* from_cache) {
  if (from_cache) *from_cache = false;
  const std::string key = reference_key(model, request);
  const fs::path path = cache_path(key, cache_dir);
  if (!path.empty() && fs::exists(path)) {
    try {
      std::map<std::string, std::string> metadata;
      TensorMap stored = load_tensors(path.string(), &metadata);
      const auto images = stored.find("images");
      if (metadata["qdm:reference_key"] == key && images != stored.end() && images->second.size(0) == request.num_images) {
        if (from_cache) *from_cache = true;
        return images->second.to(at::kFloat);
      }
      spdlog::warn("reference images {}: made for other settings; sampling them again", path.string());
    } catch (const std::exception& e) {
      spdlog::warn("reference images {}: {}; sampling them again", path.string(), e.what());
    }
  }
  const NoiseSchedule schedule(model.scheduler);
  at::Tensor images = sample_images(schedule, fp32_denoiser(model.unet), model.config.in_channels,
                                    model.config.sample_size, request, on_progress);
  if (!path.empty()) {
    try {
      fs::create_directories(path.parent_path());
      // Per-thread temporary name: two job slots may sample the same references at once.
      const fs::path tmp = path.string() + ".tmp" + std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
      save_tensors(tmp.string(), {{"images", images.contiguous()}}, {{"qdm:reference_key", key}});
      fs::rename(tmp, path);
    } catch (const std::exception& e) {
      // A cache that cannot be written costs time on the next job, never this one.
      spdlog::warn("reference images {}: not cached: {}", path.string(), e.what());
    }
  }
  return images;
}

}  // namespace qdm
