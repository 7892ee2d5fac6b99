#include "worker/worker_metrics.h"

namespace qdm::worker {

WorkerMetrics::WorkerMetrics(prometheus::Registry& r, const std::string& device)
    : rpc(r, "worker", {"Sampling/Sample", "Sampling/SampleStream"}),
      batch_size(prometheus::BuildHistogram()
                     .Name("qdm_batch_size")
                     .Help("Images per sampling batch (requests merged by the dynamic batcher)")
                     .Register(r)
                     .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128})),
      queue_wait(prometheus::BuildHistogram()
                     .Name("qdm_queue_wait_seconds")
                     .Help("Time from arrival to the start of work, by queue")
                     .Register(r)
                     .Add({{"queue", "sampling"}}, service::request_buckets())),
      queue_depth(prometheus::BuildGauge()
                      .Name("qdm_queue_depth")
                      .Help("Requests or jobs waiting, by queue")
                      .Register(r)
                      .Add({{"queue", "sampling"}})),
      loaded_model_bytes(prometheus::BuildGauge()
                             .Name("qdm_loaded_model_bytes")
                             .Help("Resident weight bytes of the models in the worker's cache")
                             .Register(r)
                             .Add({})),
      loaded_models(prometheus::BuildGauge().Name("qdm_loaded_models").Help("Models in the worker's cache").Register(r).Add({})),
      jobs_running(prometheus::BuildGauge()
                       .Name("qdm_worker_jobs_running")
                       .Help("Quantize jobs running on this worker")
                       .Register(r)
                       .Add({})),
      device_info(prometheus::BuildGauge()
                      .Name("qdm_worker_device_info")
                      .Help("Always 1; the device label says where this worker samples (cpu, cuda:N)")
                      .Register(r)
                      .Add({{"device", device}})),
      steps_(prometheus::BuildHistogram()
                 .Name("qdm_sample_step_duration_seconds")
                 .Help("Wall time of one sampler step of one batch, by precision and device")
                 .Register(r)),
      images_(prometheus::BuildCounter()
                  .Name("qdm_images_generated_total")
                  .Help("Images generated, by precision")
                  .Register(r)),
      stages_(prometheus::BuildHistogram()
                  .Name("qdm_sample_stage_duration_seconds")
                  .Help("Wall time of one sampling batch's stages: text_encoding, denoising, vae_decoding")
                  .Register(r)) {
  device_info.Set(1);
  device_ = device;
  // Children that dashboards and alerts expect from the first scrape.
  step_latency("fp32");
  images("fp32");
  for (const char* stage : {"text_encoding", "denoising", "vae_decoding"}) stage_latency(stage);
}

prometheus::Histogram& WorkerMetrics::stage_latency(const std::string& stage) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& h = stage_children_[stage];
  if (!h) h = &stages_.Add({{"stage", stage}}, service::request_buckets());
  return *h;
}

prometheus::Histogram& WorkerMetrics::step_latency(const std::string& precision) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& h = step_children_[precision];
  if (!h) h = &steps_.Add({{"precision", precision}, {"device", device_}}, service::step_buckets());
  return *h;
}

prometheus::Counter& WorkerMetrics::images(const std::string& precision) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& c = image_children_[precision];
  if (!c) c = &images_.Add({{"precision", precision}});
  return *c;
}

}  // namespace qdm::worker
