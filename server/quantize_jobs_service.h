// qdm.v1.QuantizeJobs: thin handlers over the job store. Jobs are persisted before Submit
// answers; workers pick them up through the WorkerGateway.
#pragma once

#include <optional>

#include "format/job_memory.h"
#include "qdm/v1/jobs.grpc.pb.h"
#include "server/job_store.h"
#include "server/model_store.h"
#include "server/scheduler_metrics.h"
#include "service/auth.h"
#include "service/limits.h"

namespace qdm::server {

class QuantizeJobsService final : public v1::QuantizeJobs::Service {
 public:
  QuantizeJobsService(const service::TokenAuth& auth, JobStore& jobs, ModelStore& models, SchedulerMetrics& metrics, service::Limits limits);

  grpc::Status Submit(grpc::ServerContext*, const v1::SubmitJobRequest*, v1::Job*) override;
  grpc::Status Get(grpc::ServerContext*, const v1::GetJobRequest*, v1::Job*) override;
  grpc::Status List(grpc::ServerContext*, const v1::ListJobsRequest*, v1::ListJobsResponse*) override;
  grpc::Status Cancel(grpc::ServerContext*, const v1::CancelJobRequest*, v1::Job*) override;
  grpc::Status Watch(grpc::ServerContext*, const v1::WatchJobRequest*, grpc::ServerWriter<v1::Job>*) override;

  // Stops open Watch streams (shutdown).
  void shutdown() { stopping_ = true; }

 private:
  // The estimated peak memory of `options` on `model` (nullopt when the model is gone or does not open).
  std::optional<MemoryEstimate> estimate(const std::string& model, const v1::QuantizeOptions& options) const;
  void annotate(v1::Job& job) const;  // fills estimated_memory(_bytes)
  const service::TokenAuth& auth_;
  grpc::Status submit(const v1::SubmitJobRequest& request, v1::Job* job);
  JobStore& jobs_;
  ModelStore& models_;
  SchedulerMetrics& metrics_;
  service::Limits limits_;
  std::atomic<bool> stopping_{false};
};

}  // namespace qdm::server
