// The workers the scheduler knows from their heartbeats: where their Sampling service listens,
// which models they hold, how busy they are. A worker that has not been heard from for
// `stale_after` is dropped (its leases expire in the job store on their own). With a shared
// directory (PostgreSQL, scheduler replicas) heartbeats are recorded there and the workers
// other replicas hear from are picked too.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "qdm/v1/sampling.grpc.pb.h"
#include "qdm/v1/worker.pb.h"
#include "server/worker_directory.h"

namespace qdm::server {

struct WorkerHandle {
  std::string id, address;
  std::unique_ptr<v1::Sampling::Stub> sampling;
  std::set<std::string> loaded;
  bool draining = false;
  int reported_queue = 0;
  int in_flight = 0;  // sample calls the scheduler has open on it
  std::chrono::steady_clock::time_point last_seen;
};

class WorkerRegistry {
 public:
  // `credentials`: how workers are dialled (TLS with --worker-ca); `server_name`: the name
  // checked in every worker's certificate instead of its address's host (empty: the host).
  WorkerRegistry(std::chrono::milliseconds stale_after, std::shared_ptr<grpc::ChannelCredentials> credentials,
                 std::string worker_token, WorkerDirectory* shared = nullptr, std::string server_name = "");
  // Sent with every call to a worker.
  const std::string& worker_token() const { return worker_token_; }

  // Registers on first contact; updates address, models and load on every later one.
  void heartbeat(const v1::HeartbeatRequest& request);

  // A worker for sampling `name`: not draining; one that has it loaded first, then the least
  // busy. nullptr when none is connected. The caller calls done() when the call ends.
  std::shared_ptr<WorkerHandle> pick_for_sampling(const std::string& name);
  void done(const std::shared_ptr<WorkerHandle>& worker);

  int connected();  // drops stale workers first

 private:
  // Merges the shared directory's workers in (at most every 250 ms).
  void refresh_from_directory();
  std::shared_ptr<WorkerHandle> handle_for(const std::string& id, const std::string& address);  // mu_ held

  std::chrono::milliseconds stale_after_;
  WorkerDirectory* shared_;
  std::chrono::steady_clock::time_point refreshed_{};
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::string worker_token_;
  std::string server_name_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<WorkerHandle>> workers_;
};

}  // namespace qdm::server
