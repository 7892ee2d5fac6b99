// qdm.v1.Models: list, describe, upload (chunked, sha256-checked, validated) and delete
// models and artifacts held by the scheduler's model store.
#pragma once

#include "qdm/v1/models.grpc.pb.h"
#include "server/job_store.h"
#include "server/model_store.h"
#include "server/scheduler_metrics.h"

#include "service/auth.h"

namespace qdm::server {

class ModelsService final : public v1::Models::Service {
 public:
  ModelsService(const service::TokenAuth& auth, ModelStore& models, JobStore& jobs, SchedulerMetrics& metrics, int64_t max_upload_bytes);

  grpc::Status List(grpc::ServerContext*, const v1::ListModelsRequest*, v1::ListModelsResponse*) override;
  grpc::Status Describe(grpc::ServerContext*, const v1::DescribeModelRequest*, v1::ModelInfo*) override;
  grpc::Status Upload(grpc::ServerContext*, grpc::ServerReader<v1::UploadChunk>*, v1::ModelInfo*) override;
  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteModelRequest*, v1::DeleteModelResponse*) override;

 private:
  const service::TokenAuth& auth_;
  grpc::Status upload(grpc::ServerReader<v1::UploadChunk>* reader, v1::ModelInfo* info);
  ModelStore& models_;
  JobStore& jobs_;
  SchedulerMetrics& metrics_;
  int64_t max_upload_bytes_;
};

}  // namespace qdm::server
