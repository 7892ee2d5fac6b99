#include "server/worker_registry.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <spdlog/spdlog.h>

namespace qdm::server {

WorkerRegistry::WorkerRegistry(std::chrono::milliseconds stale_after,
                               std::shared_ptr<grpc::ChannelCredentials> credentials, std::string worker_token)
    : stale_after_(stale_after), credentials_(std::move(credentials)), worker_token_(std::move(worker_token)) {}

void WorkerRegistry::heartbeat(const v1::HeartbeatRequest& request) {
  const auto& info = request.worker();
  std::lock_guard<std::mutex> lock(mu_);
  auto& w = workers_[info.id()];
  if (!w || w->address != info.address()) {
    auto fresh = std::make_shared<WorkerHandle>();
    fresh->id = info.id();
    fresh->address = info.address();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    fresh->sampling = v1::Sampling::NewStub(grpc::CreateCustomChannel(info.address(), credentials_, args));
    w = fresh;
    spdlog::info("worker {} at {}: {} job slots, batches of {}, sampling on {}", info.id(), info.address(),
                 info.job_slots(), info.max_batch(), info.device().empty() ? "cpu" : info.device());
  }
  w->loaded = {request.loaded_models().begin(), request.loaded_models().end()};
  w->draining = request.draining();
  w->reported_queue = request.sampling_queue();
  w->last_seen = std::chrono::steady_clock::now();
}

std::shared_ptr<WorkerHandle> WorkerRegistry::pick_for_sampling(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  std::shared_ptr<WorkerHandle> best;
  auto score = [&](const WorkerHandle& w) {
    // Lower is better: a worker with the model loaded wins unless it is far busier.
    return (w.loaded.count(name) ? 0 : 4) + w.in_flight + w.reported_queue;
  };
  for (auto& [id, w] : workers_) {
    if (w->draining || now - w->last_seen > stale_after_) continue;
    if (!best || score(*w) < score(*best)) best = w;
  }
  if (best) {
    ++best->in_flight;
    best->loaded.insert(name);  // it will load it; route the next request there too
  }
  return best;
}

void WorkerRegistry::done(const std::shared_ptr<WorkerHandle>& worker) {
  std::lock_guard<std::mutex> lock(mu_);
  --worker->in_flight;
}

int WorkerRegistry::connected() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  for (auto it = workers_.begin(); it != workers_.end();)
    it = now - it->second->last_seen > stale_after_ ? workers_.erase(it) : std::next(it);
  return static_cast<int>(workers_.size());
}

}  // namespace qdm::server
