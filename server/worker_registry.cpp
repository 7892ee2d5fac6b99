#include "server/worker_registry.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <spdlog/spdlog.h>

namespace qdm::server {

WorkerRegistry::WorkerRegistry(std::chrono::milliseconds stale_after,
                               std::shared_ptr<grpc::ChannelCredentials> credentials, std::string worker_token,
                               WorkerDirectory* shared, std::string server_name)
    : stale_after_(stale_after), shared_(shared), credentials_(std::move(credentials)), worker_token_(std::move(worker_token)),
      server_name_(std::move(server_name)) {}

std::shared_ptr<WorkerHandle> WorkerRegistry::handle_for(const std::string& id, const std::string& address) {
  auto& w = workers_[id];
  if (!w || w->address != address) {
    auto fresh = std::make_shared<WorkerHandle>();
    fresh->id = id;
    fresh->address = address;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    if (!server_name_.empty()) args.SetSslTargetNameOverride(server_name_);
    fresh->sampling = v1::Sampling::NewStub(grpc::CreateCustomChannel(address, credentials_, args));
    w = fresh;
  }
  return w;
}

void WorkerRegistry::heartbeat(const v1::HeartbeatRequest& request) {
  const auto& info = request.worker();
  {
    std::lock_guard<std::mutex> lock(mu_);
    const bool known = workers_.count(info.id()) && workers_[info.id()]->address == info.address();
    auto w = handle_for(info.id(), info.address());
    if (!known)
      spdlog::info("{} {} at {}: {} job slots, batches of {}, sampling on {}", info.sampling_only() ? "sampler" : "worker",
                   info.id(), info.address(), info.sampling_only() ? 0 : info.job_slots(), info.max_batch(),
                   info.device().empty() ? "cpu" : info.device());
    w->loaded = {request.loaded_models().begin(), request.loaded_models().end()};
    w->draining = request.draining();
    w->reported_queue = request.sampling_queue();
    w->last_seen = std::chrono::steady_clock::now();
  }
  if (!shared_) return;
  WorkerRecord r{info.id(), info.address(), {request.loaded_models().begin(), request.loaded_models().end()},
                 request.draining(), request.sampling_queue()};
  try {
    shared_->record(r);
  } catch (const std::exception& e) {
    spdlog::warn("worker {}: not recorded for the other replicas: {}", info.id(), e.what());
  }
}

void WorkerRegistry::refresh_from_directory() {
  if (!shared_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (std::chrono::steady_clock::now() - refreshed_ < std::chrono::milliseconds(250)) return;
    refreshed_ = std::chrono::steady_clock::now();
  }
  std::vector<WorkerRecord> live;
  try {
    live = shared_->live(stale_after_.count());
  } catch (const std::exception& e) {
    spdlog::warn("the shared worker directory is unreachable ({}); sampling uses the workers connected here", e.what());
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  const auto steady_now = std::chrono::steady_clock::now();
  for (const auto& r : live) {
    const auto seen = steady_now - std::chrono::milliseconds(r.age_ms);
    auto it = workers_.find(r.id);
    if (it != workers_.end() && it->second->last_seen >= seen) continue;  // heard here more recently
    auto w = handle_for(r.id, r.address);
    w->loaded = {r.loaded.begin(), r.loaded.end()};
    w->draining = r.draining;
    w->reported_queue = r.queue;
    w->last_seen = seen;
  }
}

std::shared_ptr<WorkerHandle> WorkerRegistry::pick_for_sampling(const std::string& name) {
  refresh_from_directory();
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
  refresh_from_directory();
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  for (auto it = workers_.begin(); it != workers_.end();)
    it = now - it->second->last_seen > stale_after_ ? workers_.erase(it) : std::next(it);
  return static_cast<int>(workers_.size());
}

}  // namespace qdm::server
