// What runs the quantize jobs the scheduler leases to a node: the worker's JobRunner. A
// qdm-sampler has none (it registers as sampling-only and is never leased a job).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "qdm/v1/worker.pb.h"

namespace qdm::worker {

class LeaseHolder {
 public:
  virtual ~LeaseHolder() = default;
  virtual void start(const v1::JobAssignment& assignment) = 0;
  virtual void revoke(const std::string& lease_id) = 0;
  virtual std::vector<v1::LeaseReport> reports() = 0;
  virtual int free_slots() = 0;
  // Waits for running jobs (SIGTERM); cancels what is left after `timeout`.
  virtual void drain(std::chrono::seconds timeout) = 0;
};

}  // namespace qdm::worker
