// Dynamic batching of sample requests on a worker (Triton semantics): requests that can share
// a UNet call (same model or artifact, kernels, sampler, steps, eta, spacing, guidance scale;
// class labels are per image and may differ) are merged up to
// `max_batch` images; a batch leaves when it is full or its oldest request has waited
// `max_delay`. The queue is bounded in images: submit() answers RESOURCE_EXHAUSTED when full.
// Every image keeps its own seed, so results do not depend on what it was batched with.
// One thread runs batches in order; a request whose caller went away or whose deadline passed
// is dropped between steps, and a batch with no live request left stops.
#pragma once

#include <grpcpp/support/status.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "qdm/v1/sampling.pb.h"
#include "worker/model_cache.h"
#include "worker/worker_metrics.h"

namespace qdm::worker {

struct BatchingOptions {
  bool enabled = true;
  int max_batch = 16;                          // images per UNet call
  std::chrono::milliseconds max_delay{10};
  int max_queued_images = 256;
};

// One request in flight: filled by the batcher, read by the RPC handler.
struct PendingSample {
  v1::SampleRequest request;
  std::vector<int> labels;  // resolved by the batcher against the model (empty: none)
  std::chrono::steady_clock::time_point arrived = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max();
  std::atomic<bool> cancelled{false};

  std::mutex mu;
  std::condition_variable cv;
  std::optional<v1::SampleEvent::Progress> progress;  // latest only
  std::deque<v1::GeneratedImage> images;              // not yet sent
  bool done = false;
  grpc::Status status;
  v1::SampleResponse summary;                         // timings and batch size
};

class SampleBatcher {
 public:
  SampleBatcher(ModelCache& cache, BatchingOptions options, WorkerMetrics& metrics);
  ~SampleBatcher();

  grpc::Status submit(const std::shared_ptr<PendingSample>& request);
  int queued_images();
  void stop();

 private:
  void loop();
  void run(std::vector<std::shared_ptr<PendingSample>> batch);
  ModelCache& cache_;
  BatchingOptions options_;
  WorkerMetrics& metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<PendingSample>> queue_;
  int queued_images_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace qdm::worker
