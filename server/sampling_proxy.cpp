#include "server/sampling_proxy.h"

#include <grpcpp/client_context.h>
#include <spdlog/spdlog.h>

#include "format/class_labels.h"
#include "format/prompts.h"
#include "format/echo.h"

namespace qdm::server {
namespace {

using Clock = std::chrono::steady_clock;

std::string source_name(const v1::SampleRequest& r) {
  return r.source_case() == v1::SampleRequest::kModel ? r.model() : r.artifact();
}

// Keeps the in-flight gauge and the worker's load right however the call ends.
class Forwarding {
 public:
  Forwarding(WorkerRegistry& workers, std::shared_ptr<WorkerHandle> w, prometheus::Gauge& gauge)
      : workers_(workers), worker_(std::move(w)), gauge_(gauge) {
    gauge_.Increment();
  }
  ~Forwarding() {
    workers_.done(worker_);
    gauge_.Decrement();
  }
  WorkerHandle& worker() { return *worker_; }

 private:
  WorkerRegistry& workers_;
  std::shared_ptr<WorkerHandle> worker_;
  prometheus::Gauge& gauge_;
};

void log_request(const std::string& rid, const char* method, const v1::SampleRequest& r, const std::string& worker,
                 Clock::time_point start, const grpc::Status& status) {
  spdlog::info("request {}: {} {} x{} on worker {} -> {} in {:.2f} s{}{}", rid, method, source_name(r), r.num_images(),
               worker, service::status_code_name(status.error_code()),
               std::chrono::duration<double>(Clock::now() - start).count(), status.ok() ? "" : ": ",
               status.error_message());
}

grpc::Status unavailable() {
  return {grpc::UNAVAILABLE, "no worker is connected to the scheduler; start qdm-worker --scheduler HOST:PORT"};
}

}  // namespace

SamplingProxy::SamplingProxy(const service::TokenAuth& auth, ModelStore& models, WorkerRegistry& workers, SchedulerMetrics& metrics,
                             service::Limits limits)
    : auth_(auth), models_(models), workers_(workers), metrics_(metrics), limits_(limits) {}

grpc::Status SamplingProxy::check(const v1::SampleRequest& request) {
  if (auto s = service::check_sample_request(request, limits_); !s.ok()) return s;
  const bool artifact = request.source_case() == v1::SampleRequest::kArtifact;
  if (!artifact && !models_.model_dir(request.model()))
    return {grpc::NOT_FOUND, "no fp32 model named " + echo(request.model()) + "; qdm models list shows them"};
  if (artifact && !models_.artifact_path(request.artifact()))
    return {grpc::NOT_FOUND, "no artifact named " + echo(request.artifact()) + "; qdm models list --artifacts shows them"};
  // Class labels, prompts and guidance against the model's config, as the worker will check them.
  if (auto shape = models_.shape_of(source_name(request), artifact)) {
    const UNetConfig& config = shape->unet;
    try {  // prompts first: a prompt on a model without a text encoder is refused as that
      check_prompts(config, {request.prompt().begin(), request.prompt().end()}, request.negative_prompt(), request.num_images(),
                    request.height(), request.width());
      const auto labels = parse_class_labels(config, {request.class_labels().begin(), request.class_labels().end()},
                                             request.num_images());
      check_class_labels(config, labels, request.has_guidance_scale() ? request.guidance_scale() : 1.0);
    } catch (const std::invalid_argument& e) {
      return {grpc::INVALID_ARGUMENT, e.what()};
    }
    // Its cost before any work: the estimated peak memory on a worker against this service's limit.
    if (auto s = service::check_sample_memory(request, config, shape->vae ? &*shape->vae : nullptr, limits_); !s.ok()) return s;
  }
  return grpc::Status::OK;
}

grpc::Status SamplingProxy::Sample(grpc::ServerContext* context, const v1::SampleRequest* request,
                                   v1::SampleResponse* response) {
  const auto start = Clock::now();
  if (auto denied = auth_.check(*context, service::Scope::kWrite); !denied.ok())
    return denied;
  if (auto s = check(*request); !s.ok()) return s;
  auto worker = workers_.pick_for_sampling(source_name(*request));
  if (!worker) return unavailable();
  Forwarding fwd(workers_, worker, metrics_.sample_in_flight);
  auto ctx = grpc::ClientContext::FromServerContext(*context);
  service::add_bearer(*ctx, workers_.worker_token());
  const std::string rid = service::request_id(*context);
  ctx->AddMetadata("x-request-id", rid);
  const grpc::Status status = fwd.worker().sampling->Sample(ctx.get(), *request, response);
  log_request(rid, "Sample", *request, fwd.worker().id, start, status);
  return status;
}

grpc::Status SamplingProxy::SampleStream(grpc::ServerContext* context, const v1::SampleRequest* request,
                                         grpc::ServerWriter<v1::SampleEvent>* writer) {
  const auto start = Clock::now();
  if (auto denied = auth_.check(*context, service::Scope::kWrite); !denied.ok())
    return denied;
  if (auto s = check(*request); !s.ok()) return s;
  auto worker = workers_.pick_for_sampling(source_name(*request));
  if (!worker) return unavailable();
  Forwarding fwd(workers_, worker, metrics_.sample_in_flight);
  auto ctx = grpc::ClientContext::FromServerContext(*context);
  service::add_bearer(*ctx, workers_.worker_token());
  const std::string rid = service::request_id(*context);
  ctx->AddMetadata("x-request-id", rid);
  auto reader = fwd.worker().sampling->SampleStream(ctx.get(), *request);
  v1::SampleEvent event;
  while (reader->Read(&event)) {
    if (!writer->Write(event)) {
      ctx->TryCancel();
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  log_request(rid, "SampleStream", *request, fwd.worker().id, start, status);
  return status;
}

}  // namespace qdm::server
