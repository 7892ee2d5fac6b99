#include "server/model_store.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include <spdlog/spdlog.h>

#include "format/artifact_metadata.h"
#include "format/echo.h"
#include "format/artifact_pipeline.h"
#include "format/pipeline_folder.h"
#include "format/safetensors.h"
#include "format/sha256.h"
#include "format/unet_config.h"
#include "format/unet_tensors.h"
#include "service/convert.h"
#include "service/file_transfer.h"
#include "service/limits.h"

namespace fs = std::filesystem;

namespace qdm::server {

namespace {
// A UNet folder (config.json + weights) or a pipeline folder (model_index.json).
bool is_model_folder(const std::filesystem::path& d) {
  return is_pipeline_dir(d.string()) ||
         (std::filesystem::exists(d / "config.json") && std::filesystem::exists(d / "diffusion_pytorch_model.safetensors"));
}
}  // namespace
namespace {

const char* kWeights = "diffusion_pytorch_model.safetensors";

// Every tensor's elements; an artifact's embedded pipeline files (U8 bytes) are counted by the
// tensors inside them.
int64_t parameter_count(const SafeTensors& file) {
  int64_t n = 0;
  for (const auto& t : file.tensors()) {
    if (t.name.rfind(kPipelineTensorPrefix, 0) == 0) {
      if (t.name.size() > 12 && t.name.compare(t.name.size() - 12, 12, ".safetensors") == 0)
        n += parameter_count(SafeTensors::parse(std::vector<uint8_t>(file.data(t), file.data(t) + t.nbytes())));
      continue;
    }
    if (t.name != "report.figure_png") n += t.numel();
  }
  return n;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

grpc::Status invalid_name(const std::string& name) {
  return service::check_name("name", name);
}

}  // namespace

ModelStore::ModelStore(std::string data_dir, std::vector<std::string> model_roots, ModelLimits limits, bool shared)
    : data_(std::move(data_dir)), roots_(std::move(model_roots)), limits_(limits) {
  models_ = (fs::path(data_) / "models").string();
  artifacts_ = (fs::path(data_) / "artifacts").string();
  tmp_ = (fs::path(data_) / "tmp").string();
  fs::create_directories(models_);
  fs::create_directories(artifacts_);
  // Leftovers of uploads interrupted by a crash. On a folder shared by replicas only those older
  // than an hour: another replica may be receiving an upload right now.
  fs::create_directories(tmp_);
  const auto hour_ago = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& e : fs::directory_iterator(tmp_)) {
    std::error_code ec;
    if (!shared || fs::last_write_time(e.path(), ec) < hour_ago) fs::remove_all(e.path(), ec);
  }
  // Read-only roots are checked once, as uploads are: a bad folder is never served.
  for (const auto& root : roots_) {
    if (!fs::is_directory(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      const std::string name = e.path().filename().string();
      if (!is_model_folder(e.path())) continue;
      if (!service::valid_name(name)) {
        spdlog::warn("model root {}: skipping '{}': not a valid model name", root, name);
        continue;
      }
      if (root_models_.count(name)) continue;  // the first root wins
      try {
        validate_model(e.path().string());
        root_models_[name] = e.path().string();
      } catch (const std::exception& ex) {
        spdlog::warn("model root {}: skipping '{}': {}", root, name, ex.what());
      }
    }
  }
}

void ModelStore::validate_model(const std::string& dir) const {
  const fs::path d(dir);
  if (is_pipeline_dir(dir)) {  // a text-to-image pipeline: every component against its config
    check_pipeline_folder(dir, limits_);
    return;
  }
  UNetConfig config;
  try {
    nlohmann::json j = nlohmann::json::parse(read_text(d / "config.json"));
    config = UNetConfig::from_json(j);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("config.json is not valid JSON: ") + e.what());
  }
  check_model_limits(config, limits_);
  const SafeTensors weights = [&] {
    try {
      return SafeTensors::read_file((d / kWeights).string());
    } catch (const std::exception& e) {
      throw SafeTensorsError(std::string(kWeights) + ": " + service::public_message(e.what(), {dir}));
    }
  }();
  try {
    check_unet_weights(config, weights);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string(kWeights) + ": " + e.what());
  }
  for (const fs::path sched : {d / "scheduler" / "scheduler_config.json", d / "scheduler_config.json"})
    if (fs::exists(sched)) {
      try {
        SchedulerConfig::from_json(nlohmann::json::parse(read_text(sched)));
      } catch (const nlohmann::json::exception& e) {
        throw ConfigError(fs::relative(sched, d).string() + " is not valid JSON: " + e.what());
      } catch (const ConfigError& e) {
        throw ConfigError(fs::relative(sched, d).string() + ": " + e.what());
      }
    }
}

std::optional<std::string> ModelStore::model_dir(const std::string& name) const {
  if (!service::valid_name(name)) return std::nullopt;
  const fs::path uploaded = fs::path(models_) / name;
  if (is_model_folder(uploaded)) return uploaded.string();
  auto it = root_models_.find(name);
  if (it != root_models_.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> ModelStore::artifact_path(const std::string& name) const {
  if (!service::valid_name(name)) return std::nullopt;
  const fs::path p = fs::path(artifacts_) / (name + ".safetensors");
  if (fs::exists(p)) return p.string();
  return std::nullopt;
}

std::optional<ModelStore::Shape> ModelStore::shape_of(const std::string& name, bool artifact) {
  const auto where = artifact ? artifact_path(name) : model_dir(name);
  if (!where) return std::nullopt;
  // A text-to-image pipeline's conditioning is its UNet's (cross_attention_dim: prompts).
  const bool pipeline = !artifact && is_pipeline_dir(*where);
  const std::string path = artifact   ? *where
                           : pipeline ? (fs::path(*where) / "unet" / "config.json").string()
                                      : (fs::path(*where) / "config.json").string();
  try {
    const auto stamp = std::to_string(fs::last_write_time(path).time_since_epoch().count()) + ":" +
                       std::to_string(fs::file_size(path));
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = config_cache_.find(path);
      if (it != config_cache_.end() && it->second.first == stamp) return it->second.second;
    }
    Shape shape;
    if (artifact) {
      auto file = std::make_shared<const SafeTensors>(SafeTensors::read_file(path));
      const ArtifactInfo info = read_artifact_info(*file);
      shape.unet = info.config;
      if (info.text_to_image()) {
        const ArtifactPipelineSource embedded(file, info.pipeline_files);
        if (const auto text = embedded.read("vae/config.json"))
          shape.vae = AutoencoderKLConfig::from_json(nlohmann::json::parse(*text));
      }
    } else {
      shape.unet = UNetConfig::from_json(nlohmann::json::parse(read_text(path)));
      if (pipeline) shape.vae = AutoencoderKLConfig::from_file((fs::path(*where) / "vae" / "config.json").string());
    }
    std::lock_guard<std::mutex> lock(mu_);
    config_cache_[path] = {stamp, shape};
    return shape;
  } catch (const std::exception& e) {
    spdlog::warn("{} '{}': config unreadable: {}", artifact ? "artifact" : "model", name, e.what());
    return std::nullopt;
  }
}

std::string ModelStore::cached_sha256(const std::string& path) {
  const auto stamp = std::to_string(fs::last_write_time(path).time_since_epoch().count()) + ":" +
                     std::to_string(fs::file_size(path));
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sha_cache_.find(path);
    if (it != sha_cache_.end() && it->second.first == stamp) return it->second.second;
  }
  std::string sha = sha256_file(path);
  std::lock_guard<std::mutex> lock(mu_);
  sha_cache_[path] = {stamp, sha};
  return sha;
}

std::vector<v1::ModelInfo> ModelStore::list(bool include_artifacts) {
  std::vector<v1::ModelInfo> out;
  std::map<std::string, std::string> names = root_models_;  // name -> dir; uploads shadow roots
  for (const auto& e : fs::directory_iterator(models_)) names[e.path().filename().string()] = e.path().string();
  for (const auto& [name, dir] : names) {
    v1::ModelInfo info;
    if (describe_model(name, dir, &info).ok()) out.push_back(std::move(info));
  }
  if (include_artifacts) {
    for (const auto& e : fs::directory_iterator(artifacts_)) {
      if (e.path().extension() != ".safetensors") continue;
      v1::ModelInfo info;
      if (describe_artifact(e.path().stem().string(), e.path().string(), &info).ok()) out.push_back(std::move(info));
    }
  }
  return out;
}

grpc::Status ModelStore::describe(const std::string& name, v1::ModelInfo* info) {
  if (auto s = invalid_name(name); !s.ok()) return s;
  if (auto dir = model_dir(name)) return describe_model(name, *dir, info);
  if (auto path = artifact_path(name)) return describe_artifact(name, *path, info);
  return {grpc::NOT_FOUND, "no model or artifact named " + echo(name) + "; qdm models list shows what there is"};
}

grpc::Status ModelStore::describe_model(const std::string& name, const std::string& dir, v1::ModelInfo* info) {
  try {
    if (is_pipeline_dir(dir)) {  // config: model_index.json; size and parameters: every component; hash: the UNet's
      const PipelineFiles p = check_pipeline_folder(dir, limits_);
      info->set_name(name);
      info->set_quantized(false);
      info->set_config_json(read_text(fs::path(dir) / "model_index.json"));
      int64_t bytes = 0, params = 0;
      for (const auto& w : {p.unet_weights, p.vae_weights, p.text_encoder_weights}) {
        bytes += static_cast<int64_t>(fs::file_size(w));
        params += parameter_count(SafeTensors::read_file(w));
      }
      info->set_bytes(bytes);
      info->set_parameters(params);
      info->set_sha256(cached_sha256(p.unet_weights));
      return grpc::Status::OK;
    }
    const fs::path weights = fs::path(dir) / kWeights;
    info->set_name(name);
    info->set_quantized(false);
    info->set_config_json(read_text(fs::path(dir) / "config.json"));
    info->set_bytes(static_cast<int64_t>(fs::file_size(weights)));
    info->set_sha256(cached_sha256(weights.string()));
    info->set_parameters(parameter_count(SafeTensors::read_file(weights.string())));
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return {grpc::INTERNAL, "model '" + name + "' cannot be read: " + service::public_message(e.what(), {dir})};
  }
}

std::string ModelStore::model_name_for_sha(const std::string& sha256) {
  if (sha256.empty()) return "";
  std::map<std::string, std::string> names = root_models_;
  for (const auto& e : fs::directory_iterator(models_)) names[e.path().filename().string()] = e.path().string();
  for (const auto& [name, dir] : names) {
    const fs::path w = is_pipeline_dir(dir) ? fs::path(dir) / "unet" / kWeights : fs::path(dir) / kWeights;
    std::error_code ec;
    if (fs::exists(w, ec) && cached_sha256(w.string()) == sha256) return name;
  }
  return "";
}

grpc::Status ModelStore::describe_artifact(const std::string& name, const std::string& path, v1::ModelInfo* info) {
  try {
    const SafeTensors file = SafeTensors::read_file(path);
    const ArtifactInfo meta = read_artifact_info(file);
    info->set_name(name);
    info->set_quantized(true);
    info->set_bytes(static_cast<int64_t>(file.file_bytes()));
    info->set_sha256(cached_sha256(path));
    info->set_parameters(parameter_count(file));
    info->set_config_json(meta.config.to_json().dump());
    nlohmann::json recipe = meta.recipe;
    recipe.update(meta.sampler.to_json());
    if (meta.text_to_image())  // a quantized pipeline: what it carries besides its UNet
      recipe["pipeline"] = {{"files", meta.pipeline_files}, {"source_sha256", meta.pipeline_sha256}};
    info->set_recipe_json(recipe.dump());
    info->set_source_model(meta.source_sha256);
    // The name the job recorded, else the store's model with those weights (if still there).
    info->set_source_model_name(meta.source_name.empty() ? model_name_for_sha(meta.source_sha256) : meta.source_name);
    service::fill_report(meta.report, info->mutable_report());
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return {grpc::INTERNAL, "artifact '" + name + "' cannot be read: " + service::public_message(e.what(), {data_})};
  }
}

v1::UploadChunk::Header ModelStore::file_header(const std::string& name, const std::string& dir,
                                                const std::vector<std::string>& files) {
  v1::UploadChunk::Header h;
  h.set_name(name);
  for (const auto& f : files) (*h.mutable_files())[f] = cached_sha256((fs::path(dir) / f).string());
  return h;
}

std::string ModelStore::make_temp_dir() {
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu_);
  fs::path p;
  do p = fs::path(tmp_) / ("t" + std::to_string(rng())); while (fs::exists(p));
  fs::create_directories(p);
  return p.string();
}

grpc::Status ModelStore::commit_model(const std::string& temp_dir, const std::string& name, v1::ModelInfo* info) {
  if (auto s = invalid_name(name); !s.ok()) return s;
  const fs::path dir(temp_dir);
  if (!is_model_folder(dir))
    return {grpc::INVALID_ARGUMENT, "a model folder needs config.json and diffusion_pytorch_model.safetensors, or a "
                                    "pipeline's model_index.json with its component folders"};
  try {
    validate_model(temp_dir);
  } catch (const std::exception& e) {
    return {grpc::INVALID_ARGUMENT, "the uploaded model is not valid: " + service::public_message(e.what(), {temp_dir, data_})};
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (model_dir(name) || artifact_path(name))
      return {grpc::ALREADY_EXISTS, "a model or artifact named " + echo(name) + " exists; pick another name or delete it"};
    fs::rename(dir, fs::path(models_) / name);
  }
  return describe_model(name, (fs::path(models_) / name).string(), info);
}

grpc::Status ModelStore::commit_artifact(const std::string& temp_file, const std::string& name) {
  try {
    read_artifact_info(SafeTensors::read_file(temp_file));
  } catch (const std::exception& e) {
    return {grpc::INVALID_ARGUMENT, "the artifact is not valid: " + service::public_message(e.what(), {data_})};
  }
  std::lock_guard<std::mutex> lock(mu_);
  fs::rename(temp_file, fs::path(artifacts_) / (name + ".safetensors"));
  return grpc::Status::OK;
}

grpc::Status ModelStore::remove(const std::string& name) {
  if (auto s = invalid_name(name); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  const fs::path uploaded = fs::path(models_) / name;
  if (fs::exists(uploaded)) {
    fs::remove_all(uploaded);
    return grpc::Status::OK;
  }
  if (auto p = artifact_path(name)) {
    fs::remove(*p);
    return grpc::Status::OK;
  }
  if (model_dir(name))
    return {grpc::FAILED_PRECONDITION, "model '" + name + "' lives in a read-only model root; remove it from the "
                                       "root's folder instead"};
  return {grpc::NOT_FOUND, "no model or artifact named " + echo(name)};
}

}  // namespace qdm::server
