// The worker's metrics, created once at start.
#pragma once

#include "service/metrics.h"

namespace qdm::worker {

struct WorkerMetrics {
  // device: where the worker samples ("cpu", "cuda:0"), exported as qdm_worker_device_info.
  WorkerMetrics(prometheus::Registry& r, const std::string& device);

  // qdm_sample_step_duration_seconds{precision, device}: one sampler step of one batch.
  prometheus::Histogram& step_latency(const std::string& precision);
  // qdm_sample_stage_duration_seconds{stage}: text_encoding, denoising, vae_decoding of one
  // batch (a UNet model's batches only denoise).
  prometheus::Histogram& stage_latency(const std::string& stage);
  // qdm_images_generated_total{precision}
  prometheus::Counter& images(const std::string& precision);

  service::RpcMetrics rpc;
  prometheus::Histogram& batch_size;        // qdm_batch_size (images per UNet batch)
  prometheus::Histogram& queue_wait;        // qdm_queue_wait_seconds{queue="sampling"}
  prometheus::Gauge& queue_depth;           // qdm_queue_depth{queue="sampling"} (images waiting)
  prometheus::Gauge& loaded_model_bytes;    // qdm_loaded_model_bytes (resident weights of cached models)
  prometheus::Gauge& loaded_models;         // qdm_loaded_models
  prometheus::Gauge& jobs_running;          // qdm_worker_jobs_running
  prometheus::Gauge& device_info;           // qdm_worker_device_info{device} = 1

 private:
  prometheus::Family<prometheus::Histogram>& steps_;
  prometheus::Family<prometheus::Counter>& images_;
  prometheus::Family<prometheus::Histogram>& stages_;
  std::string device_;
  std::mutex mu_;
  std::map<std::string, prometheus::Histogram*> step_children_;
  std::map<std::string, prometheus::Counter*> image_children_;
  std::map<std::string, prometheus::Histogram*> stage_children_;
};

}  // namespace qdm::worker
