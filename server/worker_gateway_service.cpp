#include "server/worker_gateway_service.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <optional>

#include "format/echo.h"
#include "format/sha256.h"
#include "service/file_transfer.h"

namespace fs = std::filesystem;

namespace qdm::server {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(const google::protobuf::Timestamp& t) {
  return (now_ms() - (t.seconds() * 1000 + t.nanos() / 1000000)) / 1000.0;
}

// What a worker may say about itself: short ids, addresses and names (they are stored, logged
// and shared with the other replicas).
grpc::Status check_heartbeat(const v1::HeartbeatRequest& r) {
  const auto& w = r.worker();
  if (w.id().empty() || w.address().empty()) return {grpc::INVALID_ARGUMENT, "a heartbeat names the worker's id and address"};
  if (w.id().size() > 256 || w.address().size() > 256 || w.version().size() > 64 || w.device().size() > 64)
    return {grpc::INVALID_ARGUMENT, "worker id and address must be at most 256 characters, version and device 64"};
  if (r.loaded_models_size() > 1024 || r.leases_size() > 1024)
    return {grpc::INVALID_ARGUMENT, "a heartbeat lists at most 1024 loaded models and 1024 leases"};
  for (const auto& m : r.loaded_models())
    if (!service::valid_name(m)) return {grpc::INVALID_ARGUMENT, "loaded_models holds " + echo(m) + ", not a model name"};
  for (const auto& l : r.leases())
    if (l.job_id().size() > 128 || l.lease_id().size() > 128 || l.stage().size() > 128)
      return {grpc::INVALID_ARGUMENT, "lease reports' job_id, lease_id and stage must be at most 128 characters"};
  return grpc::Status::OK;
}

}  // namespace

WorkerGatewayService::WorkerGatewayService(const service::TokenAuth& auth, JobStore& jobs, ModelStore& models, WorkerRegistry& workers,
                                           SchedulerMetrics& metrics, LeaseSettings settings)
    : auth_(auth), jobs_(jobs), models_(models), workers_(workers), metrics_(metrics), settings_(settings) {}

void WorkerGatewayService::assign(const v1::HeartbeatRequest& request, v1::HeartbeatResponse* response) {
  // Never more jobs than the slots the worker registered, none to a sampling-only node.
  const int slots = request.worker().sampling_only() ? 0 : std::min(request.free_slots(), request.worker().job_slots());
  for (int i = response->assignments_size(); i < slots; ++i) {
    auto lease = jobs_.lease_next(request.worker().id(), settings_.lease_seconds);
    if (!lease) return;
    metrics_.queue_wait.Observe(seconds_since(lease->job.created()));
    auto* a = response->add_assignments();
    a->set_job_id(lease->job.id());
    a->set_lease_id(lease->lease_id);
    a->set_model(lease->job.model());
    *a->mutable_options() = lease->job.options();
    a->set_attempt(lease->job.attempt());
    a->set_artifact(lease->job.artifact());
    spdlog::info("job {} leased to worker {} (attempt {})", lease->job.id(), request.worker().id(),
                 lease->job.attempt());
  }
}

grpc::Status WorkerGatewayService::Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                                             v1::HeartbeatResponse* response) {
  if (auto denied = auth_.check(*context, service::Scope::kWorker); !denied.ok())
    return denied;
  if (auto s = check_heartbeat(*request); !s.ok()) return s;
  if (settings_.require_worker_tls && !request->worker().tls())
    return {grpc::FAILED_PRECONDITION, "this scheduler calls workers over TLS (--worker-ca), so the worker token never crosses "
                                    "the network in plaintext: start the worker with --tls-cert and --tls-key"};
  workers_.heartbeat(*request);
  try {
    for (const auto& l : request->leases())
      if (!jobs_.report(l.job_id(), l.lease_id(), l.stage(), l.progress(), l.loss(), settings_.lease_seconds))
        response->add_revoked_leases(l.lease_id());
    if (!request->draining() && request->free_slots() > 0 && !request->worker().sampling_only() && !stopping_) {
      assign(*request, response);
      // Nothing queued: hold the call a little, so new work starts without waiting a heartbeat.
      const auto deadline = Clock::now() + std::chrono::milliseconds(settings_.hold_ms);
      uint64_t seen = jobs_.version();
      while (response->assignments_size() == 0 && Clock::now() < deadline && !context->IsCancelled() && !stopping_) {
        seen = jobs_.wait_for_change(seen, std::chrono::milliseconds(200));
        assign(*request, response);
      }
    }
  } catch (const std::exception& e) {
    // The worker keeps its leases and retries: nothing it reported is lost by failing here.
    return metrics_.store_failure("WorkerGateway/Heartbeat", e);
  }
  response->set_next_contact_ms(settings_.heartbeat_ms);
  response->set_lease_seconds(static_cast<int32_t>(settings_.lease_seconds));
  return grpc::Status::OK;
}

grpc::Status WorkerGatewayService::FetchModel(grpc::ServerContext* context, const v1::FetchModelRequest* request,
                                              grpc::ServerWriter<v1::UploadChunk>* writer) {
  if (auto denied = auth_.check(*context, service::Scope::kWorker); !denied.ok())
    return denied;
  std::string dir;
  std::vector<std::string> files;
  if (request->artifact()) {
    auto path = models_.artifact_path(request->name());
    if (!path) return {grpc::NOT_FOUND, "no artifact named " + echo(request->name())};
    dir = fs::path(*path).parent_path().string();
    files = {fs::path(*path).filename().string()};
  } else {
    auto d = models_.model_dir(request->name());
    if (!d) return {grpc::NOT_FOUND, "no model named " + echo(request->name())};
    dir = *d;
    files = service::model_folder_files(dir);
  }
  v1::UploadChunk header;
  *header.mutable_header() = models_.file_header(request->name(), dir, files);
  if (!writer->Write(header)) return grpc::Status::CANCELLED;
  const bool ok = service::send_file_chunks(dir, files, [&](const v1::FileChunk& c) {
    v1::UploadChunk m;
    *m.mutable_chunk() = c;
    return writer->Write(m);
  });
  return ok ? grpc::Status::OK : grpc::Status::CANCELLED;
}

grpc::Status WorkerGatewayService::finish(grpc::ServerReader<v1::FinishJobChunk>* reader) {
  v1::FinishJobChunk chunk;
  if (!reader->Read(&chunk) || chunk.part_case() != v1::FinishJobChunk::kHeader)
    return {grpc::INVALID_ARGUMENT, "FinishJob starts with a header"};
  const auto h = chunk.header();
  auto job = jobs_.get(h.job_id());
  if (!job) return {grpc::NOT_FOUND, "no job " + echo(h.job_id())};
  if (jobs_.current_lease(h.job_id()) != h.lease_id())
    return {grpc::FAILED_PRECONDITION, "lease " + echo(h.lease_id()) + " of job " + h.job_id() +
                                           " is no longer current (expired or cancelled); the result is dropped"};
  if (!h.succeeded()) {
    if (!jobs_.finish(h.job_id(), h.lease_id(), false, h.error(), ""))
      return {grpc::FAILED_PRECONDITION, "lease of job " + h.job_id() + " is no longer current"};
    metrics_.job_failed.Observe(seconds_since(job->started().seconds() ? job->started() : job->created()));
    spdlog::warn("job {} failed: {}", h.job_id(), h.error());
    return grpc::Status::OK;
  }
  std::optional<service::ScratchDir> scratch;  // removed on every exit: nothing half-written stays
  try {
    scratch.emplace(models_.make_temp_dir());
  } catch (const fs::filesystem_error& e) {
    return service::storage_error("the artifact", e.path1().string(), e.code().value());
  }
  const std::string& dir = scratch->path();
  const std::string file = "artifact.safetensors";
  service::FileReceiver receiver(dir, {{file, h.artifact_sha256()}}, int64_t(8) << 30);
  grpc::Status status;
  while (status.ok() && reader->Read(&chunk)) {
    if (chunk.part_case() != v1::FinishJobChunk::kChunk) status = {grpc::INVALID_ARGUMENT, "one header per FinishJob"};
    else if (chunk.chunk().path() != file) status = {grpc::INVALID_ARGUMENT, "FinishJob carries artifact.safetensors only"};
    else status = receiver.add(chunk.chunk());
  }
  if (status.ok()) status = receiver.finish();
  if (status.ok() && jobs_.current_lease(h.job_id()) != h.lease_id())
    status = {grpc::FAILED_PRECONDITION, "the lease of job " + h.job_id() + " ended during the upload"};
  if (status.ok()) status = models_.commit_artifact((fs::path(dir) / file).string(), job->artifact());
  if (status.ok() && !jobs_.finish(h.job_id(), h.lease_id(), true, "", h.report_json())) {
    models_.remove(job->artifact());
    status = {grpc::FAILED_PRECONDITION, "the lease of job " + h.job_id() + " ended during the upload"};
  }
  if (status.ok()) {
    metrics_.job_succeeded.Observe(seconds_since(job->started().seconds() ? job->started() : job->created()));
    spdlog::info("job {} succeeded: artifact {} ({} bytes)", h.job_id(), job->artifact(), receiver.bytes());
  }
  return status;
}

grpc::Status WorkerGatewayService::FinishJob(grpc::ServerContext* context, grpc::ServerReader<v1::FinishJobChunk>* reader,
                                             v1::FinishJobResponse*) {
  if (auto denied = auth_.check(*context, service::Scope::kWorker); !denied.ok())
    return denied;
  grpc::Status status;
  try {
    status = finish(reader);
  } catch (const std::exception& e) {
    status = metrics_.store_failure("WorkerGateway/FinishJob", e);
  }
  return status;
}

}  // namespace qdm::server
