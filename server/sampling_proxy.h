// qdm.v1.Sampling on the scheduler: checks the request, picks a worker (one that has the model
// loaded first) and forwards the call to that worker's Sampling service. Deadline and
// cancellation travel with the forwarded call (ClientContext::FromServerContext), so a client
// that hangs up stops the work on the worker between steps.
#pragma once

#include "qdm/v1/sampling.grpc.pb.h"
#include "server/model_store.h"
#include "server/scheduler_metrics.h"
#include "server/worker_registry.h"
#include "service/auth.h"
#include "service/limits.h"

namespace qdm::server {

class SamplingProxy final : public v1::Sampling::Service {
 public:
  SamplingProxy(const service::TokenAuth& auth, ModelStore& models, WorkerRegistry& workers, SchedulerMetrics& metrics, service::Limits limits);

  grpc::Status Sample(grpc::ServerContext*, const v1::SampleRequest*, v1::SampleResponse*) override;
  grpc::Status SampleStream(grpc::ServerContext*, const v1::SampleRequest*,
                            grpc::ServerWriter<v1::SampleEvent>*) override;

 private:
  const service::TokenAuth& auth_;
  grpc::Status check(const v1::SampleRequest& request);
  ModelStore& models_;
  WorkerRegistry& workers_;
  SchedulerMetrics& metrics_;
  service::Limits limits_;
};

}  // namespace qdm::server
