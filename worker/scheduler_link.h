// A node's side of the worker protocol: a heartbeat loop that registers the node, reports its
// leases, loaded models and queue, takes new quantize jobs when it has a free slot and stops
// jobs whose leases were revoked (a sampler, with no LeaseHolder, reports none and takes none). Survives scheduler restarts (it keeps
// calling, with backoff, and the scheduler re-learns it from the next heartbeat).
#pragma once

#include <atomic>
#include <functional>
#include <thread>

#include "qdm/v1/worker.grpc.pb.h"
#include "worker/lease_holder.h"
#include "worker/model_cache.h"
#include "worker/sample_batcher.h"

namespace qdm::worker {

class SchedulerLink {
 public:
  // jobs: null on a sampling-only node.
  SchedulerLink(v1::WorkerGateway::StubInterface& scheduler, v1::WorkerInfo info, LeaseHolder* jobs, ModelCache& cache,
                SampleBatcher& batcher, std::string token, std::function<void(bool)> on_connected);
  ~SchedulerLink();

  void set_draining() { draining_ = true; }
  void stop();

 private:
  void loop();
  v1::WorkerGateway::StubInterface& scheduler_;
  v1::WorkerInfo info_;
  LeaseHolder* jobs_;
  ModelCache& cache_;
  SampleBatcher& batcher_;
  std::string token_;
  std::function<void(bool)> on_connected_;
  std::atomic<bool> draining_{false}, stop_{false};
  std::thread thread_;
};

}  // namespace qdm::worker
