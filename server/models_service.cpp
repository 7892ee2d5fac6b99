#include "server/models_service.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <optional>

#include "format/echo.h"
#include "format/pipeline_folder.h"
#include "service/file_transfer.h"

namespace qdm::server {


ModelsService::ModelsService(const service::TokenAuth& auth, ModelStore& models, JobStore& jobs, SchedulerMetrics& metrics, int64_t max_upload_bytes)
    : auth_(auth), models_(models), jobs_(jobs), metrics_(metrics), max_upload_bytes_(max_upload_bytes) {}

grpc::Status ModelsService::List(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                                 v1::ListModelsResponse* response) {
  if (auto denied = auth_.check(*context, service::Scope::kRead); !denied.ok())
    return denied;
  for (auto& m : models_.list(request->include_artifacts())) *response->add_models() = std::move(m);
  return grpc::Status::OK;
}

grpc::Status ModelsService::Describe(grpc::ServerContext* context, const v1::DescribeModelRequest* request,
                                     v1::ModelInfo* info) {
  if (auto denied = auth_.check(*context, service::Scope::kRead); !denied.ok())
    return denied;
  return models_.describe(request->name(), info);
}

grpc::Status ModelsService::upload(grpc::ServerReader<v1::UploadChunk>* reader, v1::ModelInfo* info) {
  v1::UploadChunk chunk;
  if (!reader->Read(&chunk) || chunk.part_case() != v1::UploadChunk::kHeader)
    return {grpc::INVALID_ARGUMENT, "an upload starts with a header (name and each file's sha256)"};
  const auto header = chunk.header();
  if (!service::valid_name(header.name()))
    return {grpc::INVALID_ARGUMENT, echo(header.name()) + " is not a model name (1-128 of A-Z a-z 0-9 . _ + -)"};
  if (models_.model_dir(header.name()) || models_.artifact_path(header.name()))
    return {grpc::ALREADY_EXISTS, "a model named " + echo(header.name()) + " exists; pick another name or delete it"};
  static const std::set<std::string> unet_files = {"config.json", "diffusion_pytorch_model.safetensors",
                                                   "scheduler/scheduler_config.json", "scheduler_config.json"};
  static const std::set<std::string> pipe_files(pipeline_file_names().begin(), pipeline_file_names().end());
  std::map<std::string, std::string> files(header.files().begin(), header.files().end());
  const bool pipeline = files.count("model_index.json") > 0;
  for (const auto& [path, sha] : files) {
    if (!(pipeline ? pipe_files : unet_files).count(path))
      return {grpc::INVALID_ARGUMENT,
              "file " + echo(path) + " is not part of a model folder; send config.json, diffusion_pytorch_model.safetensors and "
              "optionally scheduler/scheduler_config.json, or a pipeline: model_index.json with unet/, vae/, text_encoder/, "
              "tokenizer/ and scheduler/"};
    if (sha.size() != 64) return {grpc::INVALID_ARGUMENT, "sha256 of " + echo(path) + " must be 64 hex digits"};
  }
  std::optional<service::ScratchDir> scratch;  // removed on every exit: a failed upload leaves nothing
  try {
    scratch.emplace(models_.make_temp_dir());
  } catch (const std::filesystem::filesystem_error& e) {
    return service::storage_error("the upload", e.path1().string(), e.code().value());
  }
  const std::string& dir = scratch->path();
  service::FileReceiver receiver(dir, files, max_upload_bytes_);
  grpc::Status status;
  while (status.ok() && reader->Read(&chunk)) {
    if (chunk.part_case() != v1::UploadChunk::kChunk)
      status = {grpc::INVALID_ARGUMENT, "only one header per upload; the rest are file chunks"};
    else
      status = receiver.add(chunk.chunk());
  }
  if (status.ok()) status = receiver.finish();
  if (status.ok()) status = models_.commit_model(dir, header.name(), info);
  if (status.ok()) spdlog::info("model {} uploaded ({} bytes)", header.name(), receiver.bytes());
  return status;
}

grpc::Status ModelsService::Upload(grpc::ServerContext* context, grpc::ServerReader<v1::UploadChunk>* reader,
                                   v1::ModelInfo* info) {
  if (auto denied = auth_.check(*context, service::Scope::kWrite); !denied.ok())
    return denied;
  return upload(reader, info);
}

grpc::Status ModelsService::Delete(grpc::ServerContext* context, const v1::DeleteModelRequest* request,
                                   v1::DeleteModelResponse*) {
  if (auto denied = auth_.check(*context, service::Scope::kWrite); !denied.ok())
    return denied;
  if (jobs_.model_in_use(request->name()))
    return {grpc::FAILED_PRECONDITION, "model " + echo(request->name()) +
                                                               "' is used by a queued or running job; cancel it first"};
  auto status = models_.remove(request->name());
  if (status.ok()) spdlog::info("model {} deleted", request->name());
  return status;
}

}  // namespace qdm::server
