#include "server/scheduler_metrics.h"

#include <spdlog/spdlog.h>

#include "service/convert.h"

namespace qdm::server {
namespace {

prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

}  // namespace

SchedulerMetrics::SchedulerMetrics(prometheus::Registry& r)
    : rpc(r, "scheduler", {"QuantizeJobs/Submit", "QuantizeJobs/Get", "QuantizeJobs/List", "QuantizeJobs/Cancel",
              "QuantizeJobs/Watch", "Models/List", "Models/Describe", "Models/Upload", "Models/Delete",
              "Sampling/Sample", "Sampling/SampleStream", "WorkerGateway/Heartbeat", "WorkerGateway/FetchModel",
              "WorkerGateway/FinishJob"}),
      queue_depth(gauge(r, "qdm_queue_depth", "Requests or jobs waiting, by queue").Add({{"queue", "quantize"}})),
      queue_wait(prometheus::BuildHistogram()
                     .Name("qdm_queue_wait_seconds")
                     .Help("Time from arrival to the start of work, by queue")
                     .Register(r)
                     .Add({{"queue", "quantize"}}, service::request_buckets())),
      job_duration_family(prometheus::BuildHistogram()
                              .Name("qdm_job_duration_seconds")
                              .Help("Quantize job time from lease to finish, by outcome")
                              .Register(r)),
      job_succeeded(job_duration_family.Add({{"outcome", "succeeded"}}, service::request_buckets())),
      job_failed(job_duration_family.Add({{"outcome", "failed"}}, service::request_buckets())),
      workers(gauge(r, "qdm_workers", "Workers heard from within the lease time").Add({})),
      sample_in_flight(gauge(r, "qdm_sample_requests_in_flight", "Sample calls forwarded to workers and not yet answered").Add({})),
      store_errors(prometheus::BuildCounter()
                       .Name("qdm_store_errors_total")
                       .Help("Job store reads or writes that failed (disk full, I/O errors), by method")
                       .Register(r)) {
  store_errors.Add({{"method", "QuantizeJobs/Submit"}});  // in the first scrape, at zero
  auto& fam = gauge(r, "qdm_jobs", "Quantize jobs in the store, by state");
  for (auto s : {v1::Job::QUEUED, v1::Job::LEASED, v1::Job::RUNNING, v1::Job::SUCCEEDED, v1::Job::FAILED,
                 v1::Job::CANCELLED}) {
    std::string name = v1::Job::State_Name(s);
    for (auto& c : name) c = static_cast<char>(std::tolower(c));
    jobs[s] = &fam.Add({{"state", name}});
  }
}

grpc::Status SchedulerMetrics::store_failure(const std::string& method, const std::exception& e) {
  spdlog::error("{}: the job store failed: {}", method, e.what());
  store_errors.Add({{"method", method}}).Increment();
  return service::status_from_exception(e);
}

}  // namespace qdm::server
