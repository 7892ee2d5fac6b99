#include "service/metrics.h"

#include <prometheus/metric_family.h>

#include <fstream>
#include <sstream>

#ifndef QDM_VERSION
#define QDM_VERSION "dev"
#endif

namespace qdm::service {
namespace {

// Reads the process gauges at scrape time, so they are never stale.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily rss;
    rss.name = "qdm_process_resident_memory_bytes";
    rss.help = "Resident set size of this process";
    rss.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric m;
    m.gauge.value = static_cast<double>(resident_memory_bytes());
    rss.metric.push_back(m);
    return {rss};
  }
};

}  // namespace

int64_t resident_memory_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream s(line.substr(6));
      int64_t kb = 0;
      s >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

MetricsServer::MetricsServer(const std::string& bind_address, const std::string& component)
    : registry_(std::make_shared<prometheus::Registry>()), process_(std::make_shared<ProcessCollector>()) {
  prometheus::BuildGauge()
      .Name("qdm_build_info")
      .Help("Always 1; labels carry the version and the component")
      .Register(*registry_)
      .Add({{"version", QDM_VERSION}, {"component", component}})
      .Set(1);
  exposer_ = std::make_unique<prometheus::Exposer>(bind_address);
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(process_);
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const {
  const auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

RpcMetrics::RpcMetrics(prometheus::Registry& registry, const std::string& component, const std::vector<std::string>& methods)
    : requests_(prometheus::BuildCounter()
                    .Name("qdm_requests_total")
                    .Help("gRPC calls answered, by method and status code")
                    .Labels({{"component", component}})
                    .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("qdm_request_duration_seconds")
                   .Help("gRPC call latency from arrival to answer, by method")
                   .Labels({{"component", component}})
                   .Register(registry)) {
  for (const auto& m : methods) {
    counters_[{m, static_cast<int>(grpc::OK)}] = &requests_.Add({{"method", m}, {"code", "OK"}});
    histograms_[m] = &latency_.Add({{"method", m}}, request_buckets());
  }
}

grpc::Status RpcMetrics::record(const std::string& method, std::chrono::steady_clock::time_point start,
                                const grpc::Status& status) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::lock_guard<std::mutex> lock(mu_);
  auto key = std::make_pair(method, static_cast<int>(status.error_code()));
  auto c = counters_.find(key);
  if (c == counters_.end())
    c = counters_.emplace(key, &requests_.Add({{"method", method}, {"code", status_code_name(status.error_code())}})).first;
  c->second->Increment();
  auto h = histograms_.find(method);
  if (h == histograms_.end()) h = histograms_.emplace(method, &latency_.Add({{"method", method}}, request_buckets())).first;
  h->second->Observe(seconds);
  return status;
}

const char* status_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK: return "OK";
    case grpc::CANCELLED: return "CANCELLED";
    case grpc::UNKNOWN: return "UNKNOWN";
    case grpc::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND: return "NOT_FOUND";
    case grpc::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::ABORTED: return "ABORTED";
    case grpc::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::INTERNAL: return "INTERNAL";
    case grpc::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::DATA_LOSS: return "DATA_LOSS";
    default: return "UNKNOWN";
  }
}

prometheus::Histogram::BucketBoundaries request_buckets() {
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200};
}

prometheus::Histogram::BucketBoundaries step_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace qdm::service
