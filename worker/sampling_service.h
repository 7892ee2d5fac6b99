// qdm.v1.Sampling on a worker: checks the request, queues it on the batcher and relays
// progress (latest only, so a slow client cannot grow memory) and images to the caller.
// A caller that hangs up or runs out of deadline is dropped between steps.
#pragma once

#include "qdm/v1/sampling.grpc.pb.h"
#include "service/auth.h"
#include "service/limits.h"
#include "worker/sample_batcher.h"

namespace qdm::worker {

class SamplingService final : public v1::Sampling::Service {
 public:
  SamplingService(const service::TokenAuth& auth, SampleBatcher& batcher, WorkerMetrics& metrics, service::Limits limits);

  grpc::Status Sample(grpc::ServerContext*, const v1::SampleRequest*, v1::SampleResponse*) override;
  grpc::Status SampleStream(grpc::ServerContext*, const v1::SampleRequest*,
                            grpc::ServerWriter<v1::SampleEvent>*) override;

 private:
  const service::TokenAuth& auth_;
  // Runs the request; `on_event` gets progress and images as they come (nullptr: none).
  grpc::Status run(grpc::ServerContext* context, const v1::SampleRequest& request, v1::SampleResponse* summary,
                   const std::function<bool(const v1::SampleEvent&)>& on_event);
  SampleBatcher& batcher_;
  WorkerMetrics& metrics_;
  service::Limits limits_;
};

}  // namespace qdm::worker
