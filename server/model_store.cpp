#include "server/model_store.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "engine/model/unet_config.h"
#include "engine/model_io/safetensors.h"
#include "engine/util/sha256.h"
#include "service/file_transfer.h"

namespace fs = std::filesystem;

namespace qdm::server {
namespace {

const char* kWeights = "diffusion_pytorch_model.safetensors";

int64_t parameter_count(const SafeTensors& file) {
  int64_t n = 0;
  for (const auto& t : file.tensors()) n += t.numel();
  return n;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void fill_report(const nlohmann::json& report, v1::QualityReport* out) {
  out->set_json(report.dump());
  out->set_images(report.value("images", 0));
  out->set_fid_fmnist(report.value("fid_fmnist", 0.0));
  out->set_mse_vs_fp(report.value("mse_vs_fp", 0.0));
  out->set_psnr_vs_fp(report.value("psnr_vs_fp", 0.0));
  out->set_temporal_feature_cosine(report.value("temporal_feature_cosine", 0.0));
}

}  // namespace

ModelStore::ModelStore(std::string data_dir, std::vector<std::string> model_roots)
    : data_(std::move(data_dir)), roots_(std::move(model_roots)) {
  models_ = (fs::path(data_) / "models").string();
  artifacts_ = (fs::path(data_) / "artifacts").string();
  tmp_ = (fs::path(data_) / "tmp").string();
  fs::create_directories(models_);
  fs::create_directories(artifacts_);
  fs::remove_all(tmp_);  // leftovers of uploads interrupted by a crash
  fs::create_directories(tmp_);
}

std::optional<std::string> ModelStore::model_dir(const std::string& name) const {
  if (!service::valid_name(name)) return std::nullopt;
  const fs::path uploaded = fs::path(models_) / name;
  if (fs::exists(uploaded / "config.json")) return uploaded.string();
  for (const auto& root : roots_) {
    const fs::path p = fs::path(root) / name;
    if (fs::exists(p / "config.json") && fs::exists(p / kWeights)) return p.string();
  }
  return std::nullopt;
}

std::optional<std::string> ModelStore::artifact_path(const std::string& name) const {
  if (!service::valid_name(name)) return std::nullopt;
  const fs::path p = fs::path(artifacts_) / (name + ".safetensors");
  if (fs::exists(p)) return p.string();
  return std::nullopt;
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
  std::map<std::string, std::string> names;  // name -> dir, uploaded first (they shadow roots)
  for (const auto& root : roots_) {
    if (!fs::is_directory(root)) continue;
    for (const auto& e : fs::directory_iterator(root))
      if (fs::exists(e.path() / "config.json") && fs::exists(e.path() / kWeights) &&
          service::valid_name(e.path().filename().string()))
        names.emplace(e.path().filename().string(), e.path().string());
  }
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
  if (!service::valid_name(name))
    return {grpc::INVALID_ARGUMENT, "'" + name + "' is not a model name (1-128 of A-Z a-z 0-9 . _ + -)"};
  if (auto dir = model_dir(name)) return describe_model(name, *dir, info);
  if (auto path = artifact_path(name)) return describe_artifact(name, *path, info);
  return {grpc::NOT_FOUND, "no model or artifact named '" + name + "'; qdm models list shows what there is"};
}

grpc::Status ModelStore::describe_model(const std::string& name, const std::string& dir, v1::ModelInfo* info) {
  try {
    const fs::path weights = fs::path(dir) / kWeights;
    info->set_name(name);
    info->set_quantized(false);
    info->set_config_json(read_text(fs::path(dir) / "config.json"));
    info->set_bytes(static_cast<int64_t>(fs::file_size(weights)));
    info->set_sha256(cached_sha256(weights.string()));
    info->set_parameters(parameter_count(SafeTensors::read_file(weights.string())));
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return {grpc::INTERNAL, "model '" + name + "' cannot be read: " + e.what()};
  }
}

grpc::Status ModelStore::describe_artifact(const std::string& name, const std::string& path, v1::ModelInfo* info) {
  try {
    const SafeTensors file = SafeTensors::read_file(path);
    auto it = file.metadata().find("qdm");
    if (it == file.metadata().end()) return {grpc::INTERNAL, "artifact '" + name + "' has no qdm metadata"};
    const auto meta = nlohmann::json::parse(it->second);
    info->set_name(name);
    info->set_quantized(true);
    info->set_bytes(static_cast<int64_t>(file.file_bytes()));
    info->set_sha256(cached_sha256(path));
    info->set_parameters(parameter_count(file));
    info->set_config_json(meta.value("unet_config", nlohmann::json::object()).dump());
    nlohmann::json recipe = meta.value("recipe", nlohmann::json::object());
    recipe["sampler"] = meta.value("sampler", "");
    recipe["steps"] = meta.value("steps", 0);
    info->set_recipe_json(recipe.dump());
    info->set_source_model(meta.value("source_sha256", ""));
    fill_report(meta.value("report", nlohmann::json::object()), info->mutable_report());
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return {grpc::INTERNAL, "artifact '" + name + "' cannot be read: " + e.what()};
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
  if (!service::valid_name(name))
    return {grpc::INVALID_ARGUMENT, "'" + name + "' is not a model name (1-128 of A-Z a-z 0-9 . _ + -)"};
  const fs::path dir(temp_dir);
  if (!fs::exists(dir / "config.json") || !fs::exists(dir / kWeights))
    return {grpc::INVALID_ARGUMENT, "a model folder needs config.json and diffusion_pytorch_model.safetensors"};
  try {
    const UNetConfig config = UNetConfig::from_file((dir / "config.json").string());
    const SafeTensors weights = SafeTensors::read_file((dir / kWeights).string());
    if (weights.tensors().empty()) return {grpc::INVALID_ARGUMENT, "the safetensors file holds no tensors"};
    if (!weights.find("conv_in.weight"))
      return {grpc::INVALID_ARGUMENT, "the safetensors file has no conv_in.weight: is it a diffusers UNet2DModel?"};
    (void)config;
  } catch (const std::exception& e) {
    return {grpc::INVALID_ARGUMENT, std::string("the uploaded model is not valid: ") + e.what()};
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (model_dir(name) || artifact_path(name))
      return {grpc::ALREADY_EXISTS, "a model or artifact named '" + name + "' exists; pick another name or delete it"};
    fs::rename(dir, fs::path(models_) / name);
  }
  return describe_model(name, (fs::path(models_) / name).string(), info);
}

grpc::Status ModelStore::commit_artifact(const std::string& temp_file, const std::string& name) {
  try {
    const SafeTensors file = SafeTensors::read_file(temp_file);
    auto it = file.metadata().find("qdm");
    if (it == file.metadata().end()) return {grpc::INVALID_ARGUMENT, "the result is not a qdm artifact"};
    (void)nlohmann::json::parse(it->second);
  } catch (const std::exception& e) {
    return {grpc::INVALID_ARGUMENT, std::string("the artifact is not valid: ") + e.what()};
  }
  std::lock_guard<std::mutex> lock(mu_);
  fs::rename(temp_file, fs::path(artifacts_) / (name + ".safetensors"));
  return grpc::Status::OK;
}

grpc::Status ModelStore::remove(const std::string& name) {
  if (!service::valid_name(name))
    return {grpc::INVALID_ARGUMENT, "'" + name + "' is not a model name (1-128 of A-Z a-z 0-9 . _ + -)"};
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
  return {grpc::NOT_FOUND, "no model or artifact named '" + name + "'"};
}

}  // namespace qdm::server
