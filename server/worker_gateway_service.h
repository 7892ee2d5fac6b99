// qdm.v1.WorkerGateway: the scheduler's side of the worker protocol. Heartbeats register
// workers, extend and fence leases and hand out queued jobs (held open briefly when the queue
// is empty, so a job is picked up within moments of its Submit); FetchModel streams model files
// to workers; FinishJob stores a job's artifact when it comes from the current lease holder.
#pragma once

#include "qdm/v1/worker.grpc.pb.h"
#include "server/job_store.h"
#include "server/model_store.h"
#include "server/scheduler_metrics.h"
#include "server/worker_registry.h"

#include "service/auth.h"

namespace qdm::server {

struct LeaseSettings {
  double lease_seconds = 15;     // a lease lives this long without a heartbeat
  int heartbeat_ms = 1000;       // the next contact the scheduler asks for
  int hold_ms = 2000;            // how long an idle worker's heartbeat is held for a job
  bool require_worker_tls = false;  // the scheduler dials workers over TLS: a worker without it is refused
};

class WorkerGatewayService final : public v1::WorkerGateway::Service {
 public:
  WorkerGatewayService(const service::TokenAuth& auth, JobStore& jobs, ModelStore& models, WorkerRegistry& workers, SchedulerMetrics& metrics,
                       LeaseSettings settings);

  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status FetchModel(grpc::ServerContext*, const v1::FetchModelRequest*,
                          grpc::ServerWriter<v1::UploadChunk>*) override;
  grpc::Status FinishJob(grpc::ServerContext*, grpc::ServerReader<v1::FinishJobChunk>*,
                         v1::FinishJobResponse*) override;

  void shutdown() { stopping_ = true; }

 private:
  const service::TokenAuth& auth_;
  grpc::Status finish(grpc::ServerReader<v1::FinishJobChunk>* reader);
  void assign(const v1::HeartbeatRequest& request, v1::HeartbeatResponse* response);
  JobStore& jobs_;
  ModelStore& models_;
  WorkerRegistry& workers_;
  SchedulerMetrics& metrics_;
  LeaseSettings settings_;
  std::atomic<bool> stopping_{false};
};

}  // namespace qdm::server
