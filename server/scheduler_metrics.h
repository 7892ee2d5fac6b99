// The scheduler's own metrics, created once at start (labelled children included).
#pragma once

#include <map>
#include <string>

#include "qdm/v1/jobs.pb.h"
#include "service/metrics.h"

namespace qdm::server {

struct SchedulerMetrics {
  explicit SchedulerMetrics(prometheus::Registry& r);

  service::RpcMetrics rpc;
  std::map<v1::Job::State, prometheus::Gauge*> jobs;  // qdm_jobs{state}
  prometheus::Gauge& queue_depth;                      // qdm_queue_depth{queue="quantize"}
  prometheus::Histogram& queue_wait;                   // qdm_queue_wait_seconds{queue="quantize"}
  prometheus::Family<prometheus::Histogram>& job_duration_family;
  prometheus::Histogram& job_succeeded;                // qdm_job_duration_seconds{outcome}
  prometheus::Histogram& job_failed;
  prometheus::Gauge& workers;                          // qdm_workers
  prometheus::Gauge& sample_in_flight;                 // qdm_sample_requests_in_flight
  prometheus::Family<prometheus::Counter>& store_errors;  // qdm_store_errors_total{method}

  // A job store failure in `method` (an RPC, or "maintenance"): logged at error level, counted,
  // and mapped to UNAVAILABLE (RESOURCE_EXHAUSTED for a full disk) with a message.
  grpc::Status store_failure(const std::string& method, const std::exception& e);
};

}  // namespace qdm::server
