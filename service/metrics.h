// Prometheus exposition shared by the scheduler and the worker: one Exposer and Registry per
// process, the process gauges every qdm process exports (qdm_build_info,
// qdm_process_resident_memory_bytes) and per-RPC request metrics.
//
// Names follow Prometheus conventions: the qdm_ prefix, base units (_seconds, _bytes),
// counters end in _total, histograms rather than summaries, and no ids or seeds as labels.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <grpcpp/support/status.h>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace qdm::service {

// Resident set size of this process from /proc/self/status (0 where unavailable).
int64_t resident_memory_bytes();

class MetricsServer {
 public:
  // bind_address "host:port"; port 0 picks a free one (see port()). `component` is
  // "scheduler" or "worker" and labels qdm_build_info.
  MetricsServer(const std::string& bind_address, const std::string& component);
  ~MetricsServer();

  prometheus::Registry& registry() { return *registry_; }
  int port() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

// qdm_requests_total{component, method, code} and qdm_request_duration_seconds{component, method}.
// `component` ("scheduler", "worker") tells the public API's answers from the hops behind it: a
// Sample answered by the scheduler was also answered by a worker, and counts once per component.
class RpcMetrics {
 public:
  // `methods` get their {method, code="OK"} counter and latency histogram at once, so every
  // family is in the first scrape (dashboards and alerts see zeros, not absent series).
  RpcMetrics(prometheus::Registry& registry, const std::string& component, const std::vector<std::string>& methods);

  // Records one finished call ("QuantizeJobs/Submit") and returns `status` unchanged; the RPC
  // interceptor (rpc_interceptor.h) calls it for every call of every qdm.v1 method.
  grpc::Status record(const std::string& method, std::chrono::steady_clock::time_point start,
                      const grpc::Status& status);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  std::mutex mu_;
  std::map<std::pair<std::string, int>, prometheus::Counter*> counters_;
  std::map<std::string, prometheus::Histogram*> histograms_;
};

// Name of a status code as gRPC spells it ("OK", "INVALID_ARGUMENT", ...).
const char* status_code_name(grpc::StatusCode code);

// Bucket boundaries: whole requests and jobs (0.01 s .. ~2 h) and single sampler steps (1 ms .. 10 s).
prometheus::Histogram::BucketBoundaries request_buckets();
prometheus::Histogram::BucketBoundaries step_buckets();

}  // namespace qdm::service
