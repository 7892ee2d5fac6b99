#include "worker/sampling_service.h"

#include <spdlog/spdlog.h>

namespace qdm::worker {


SamplingService::SamplingService(const service::TokenAuth& auth, SampleBatcher& batcher, WorkerMetrics& metrics, service::Limits limits)
    : auth_(auth), batcher_(batcher), metrics_(metrics), limits_(limits) {}

grpc::Status SamplingService::run(grpc::ServerContext* context, const v1::SampleRequest& request,
                                  v1::SampleResponse* summary,
                                  const std::function<bool(const v1::SampleEvent&)>& on_event) {
  if (auto s = service::check_sample_request(request, limits_); !s.ok()) return s;
  spdlog::debug("request {}: {} images of {}{}", service::request_id(*context), request.num_images(), request.model(),
                request.artifact());
  auto pending = std::make_shared<PendingSample>();
  pending->request = request;
  pending->deadline = context->deadline();
  if (auto s = batcher_.submit(pending); !s.ok()) return s;
  std::unique_lock<std::mutex> lock(pending->mu);
  while (true) {
    pending->cv.wait_for(lock, std::chrono::milliseconds(100),
                         [&] { return pending->done || pending->progress || !pending->images.empty(); });
    if (context->IsCancelled()) pending->cancelled = true;
    std::vector<v1::SampleEvent> events;
    if (pending->progress) {
      events.emplace_back();
      *events.back().mutable_progress() = *pending->progress;
      pending->progress.reset();
    }
    while (!pending->images.empty()) {
      events.emplace_back();
      *events.back().mutable_image() = std::move(pending->images.front());
      pending->images.pop_front();
    }
    const bool done = pending->done;
    lock.unlock();
    for (auto& e : events) {
      if (e.has_image()) *summary->add_images() = e.image();
      if (on_event && !on_event(e)) pending->cancelled = true;
    }
    lock.lock();
    if (done && pending->images.empty()) break;
  }
  summary->set_queue_seconds(pending->summary.queue_seconds());
  summary->set_compute_seconds(pending->summary.compute_seconds());
  summary->set_batch_size(pending->summary.batch_size());
  return pending->status;
}

grpc::Status SamplingService::Sample(grpc::ServerContext* context, const v1::SampleRequest* request,
                                     v1::SampleResponse* response) {
  if (auto denied = auth_.check(*context, service::Scope::kWorker); !denied.ok())
    return denied;
  return run(context, *request, response, nullptr);
}

grpc::Status SamplingService::SampleStream(grpc::ServerContext* context, const v1::SampleRequest* request,
                                           grpc::ServerWriter<v1::SampleEvent>* writer) {
  if (auto denied = auth_.check(*context, service::Scope::kWorker); !denied.ok())
    return denied;
  v1::SampleResponse summary;
  auto status = run(context, *request, &summary, [&](const v1::SampleEvent& e) { return writer->Write(e); });
  if (status.ok()) {
    v1::SampleEvent done;
    summary.clear_images();  // already sent one by one
    *done.mutable_done() = summary;
    writer->Write(done);
  }
  return status;
}

}  // namespace qdm::worker
