// Where the scheduler keeps models and artifacts:
//   <data>/models/<name>/          uploaded diffusers folders (config.json + safetensors)
//   <data>/artifacts/<name>.safetensors   quantized artifacts written by jobs
//   <root>/<name>/                 read-only model roots given on the command line (the shipped
//                                  models/ directory by default)
// Names are plain ([A-Za-z0-9._+-]); a request never names a path, so nothing outside the
// store and the configured roots can be reached. Every write lands in <data>/tmp first and is
// renamed into place after validation, so a crash never leaves a half-stored model.
#pragma once

#include <grpcpp/support/status.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "format/autoencoder_kl_config.h"
#include "format/unet_tensors.h"
#include "qdm/v1/models.pb.h"

namespace qdm::server {

class ModelStore {
 public:
  // Model roots are checked at start like uploads; a folder that fails is skipped with a warning.
  // `shared`: other scheduler replicas use `data_dir` too (a ReadWriteMany volume): writes are
  // renames into place as always, and only stale temporary folders are cleaned at start.
  ModelStore(std::string data_dir, std::vector<std::string> model_roots, ModelLimits limits = {}, bool shared = false);

  std::optional<std::string> model_dir(const std::string& name) const;
  std::optional<std::string> artifact_path(const std::string& name) const;

  std::vector<v1::ModelInfo> list(bool include_artifacts);
  // What a model or artifact is, for the checks before a request is queued: its UNet's config
  // and, for a text-to-image pipeline, its VAE's (the size of its images). Cached by file stamp;
  // nullopt when unknown or unreadable.
  struct Shape {
    UNetConfig unet;
    std::optional<AutoencoderKLConfig> vae;
  };
  std::optional<Shape> shape_of(const std::string& name, bool artifact);
  std::optional<UNetConfig> config_of(const std::string& name, bool artifact) {
    auto s = shape_of(name, artifact);
    return s ? std::optional<UNetConfig>(s->unet) : std::nullopt;
  }
  // NOT_FOUND for an unknown name.
  grpc::Status describe(const std::string& name, v1::ModelInfo* info);

  // Header (name + each file's sha256) for sending `files` under `dir`; hashes are cached by
  // mtime and size, so workers checking their copies on every use cost no rehashing.
  v1::UploadChunk::Header file_header(const std::string& name, const std::string& dir,
                                      const std::vector<std::string>& files);

  // A fresh folder under <data>/tmp for an upload or a job result; removed by the caller or
  // by the next start.
  std::string make_temp_dir();
  // Validates the uploaded folder as the engine would load it, without LibTorch (config.json
  // within the limits, every tensor the config implies present with its shape and a float
  // dtype, nothing else) and moves it to models/<name>. INVALID_ARGUMENT names the field or
  // tensor, and files relative to the upload.
  grpc::Status commit_model(const std::string& temp_dir, const std::string& name, v1::ModelInfo* info);
  // Validates a qdm artifact (its metadata parses) and moves it to artifacts/<name>.safetensors.
  grpc::Status commit_artifact(const std::string& temp_file, const std::string& name);
  // Uploaded models and artifacts only; models in a read-only root are refused.
  grpc::Status remove(const std::string& name);

 private:
  grpc::Status describe_model(const std::string& name, const std::string& dir, v1::ModelInfo* info);
  // Throws ConfigError / SafeTensorsError naming what is wrong, files relative to `dir`.
  void validate_model(const std::string& dir) const;
  std::string model_name_for_sha(const std::string& sha256);
  grpc::Status describe_artifact(const std::string& name, const std::string& path, v1::ModelInfo* info);
  std::string cached_sha256(const std::string& path);

  std::string data_, models_, artifacts_, tmp_;
  std::vector<std::string> roots_;
  ModelLimits limits_;
  std::map<std::string, std::string> root_models_;  // valid read-only models: name -> folder
  std::mutex mu_;  // commits, removals and the hash cache
  std::map<std::string, std::pair<std::string, std::string>> sha_cache_;  // path -> (mtime+size, sha)
  std::map<std::string, std::pair<std::string, Shape>> config_cache_;  // path -> (mtime+size, shape)
};

}  // namespace qdm::server
