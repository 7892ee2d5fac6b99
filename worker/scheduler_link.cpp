#include "worker/scheduler_link.h"

#include <grpcpp/client_context.h>
#include <spdlog/spdlog.h>

#include "service/auth.h"

namespace qdm::worker {

SchedulerLink::SchedulerLink(v1::WorkerGateway::StubInterface& scheduler, v1::WorkerInfo info, LeaseHolder* jobs,
                             ModelCache& cache, SampleBatcher& batcher, std::string token,
                             std::function<void(bool)> on_connected)
    : scheduler_(scheduler), info_(std::move(info)), jobs_(jobs), cache_(cache), batcher_(batcher),
      token_(std::move(token)), on_connected_(std::move(on_connected)), thread_([this] { loop(); }) {}

SchedulerLink::~SchedulerLink() { stop(); }

void SchedulerLink::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void SchedulerLink::loop() {
  int failures = 0;
  bool connected = false;
  while (!stop_) {
    v1::HeartbeatRequest req;
    *req.mutable_worker() = info_;
    req.set_draining(draining_);
    if (jobs_)
      for (auto& r : jobs_->reports()) *req.add_leases() = r;
    for (auto& n : cache_.names()) req.add_loaded_models(n);
    req.set_sampling_queue(batcher_.queued_images());
    // The first contact only registers (answered at once, so readiness is immediate).
    req.set_free_slots(draining_ || !connected || !jobs_ ? 0 : std::max(0, jobs_->free_slots()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    service::add_bearer(ctx, token_);
    v1::HeartbeatResponse resp;
    const grpc::Status status = scheduler_.Heartbeat(&ctx, req, &resp);
    int wait_ms;
    if (status.ok()) {
      if (!connected) spdlog::info("connected to the scheduler as {}", info_.id());
      connected = true;
      failures = 0;
      on_connected_(true);
      if (jobs_) {
        for (const auto& lease : resp.revoked_leases()) jobs_->revoke(lease);
        for (const auto& a : resp.assignments()) jobs_->start(a);
      } else if (resp.assignments_size() > 0) {  // a scheduler that ignored sampling_only: the lease expires
        spdlog::error("the scheduler leased {} quantize job(s) to this sampling-only node; ignored", resp.assignments_size());
      }
      wait_ms = resp.assignments_size() > 0 ? 0 : resp.next_contact_ms();
    } else {
      if (connected || failures == 0)
        spdlog::warn("heartbeat failed ({}): {}; retrying", static_cast<int>(status.error_code()), status.error_message());
      connected = false;
      ++failures;
      wait_ms = std::min(2000, 100 * (1 << std::min(failures, 5)));  // well inside a lease
    }
    for (int waited = 0; waited < wait_ms && !stop_; waited += 50)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace qdm::worker
