// The PostgreSQL job store (job_store.h): any number of scheduler replicas share one database.
// Rows are changed under FOR UPDATE (leases: FOR UPDATE SKIP LOCKED, so two replicas never lease
// one job), every change NOTIFYs the channel qdm_jobs and a listener connection per replica
// turns notifications from every replica into version() bumps for Watch. The schema is created
// and migrated at start under an advisory lock, so replicas starting at once migrate once.
// Times are the replicas' clocks (keep them synchronised, as Kubernetes nodes are).
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "server/job_store.h"

namespace qdm::server {
namespace pg {
class Connection;
}

class PostgresJobStore : public JobStore {
 public:
  // `url`: a libpq connection URI (postgresql://user:password@host:port/db?sslmode=...).
  PostgresJobStore(const std::string& url, Options options);
  ~PostgresJobStore() override;
  PostgresJobStore(const PostgresJobStore&) = delete;
  PostgresJobStore& operator=(const PostgresJobStore&) = delete;

  v1::Job submit(const std::string& model, const v1::QuantizeOptions& options, const std::string& idempotency_key,
                 const std::string& artifact_name, bool* created) override;
  std::optional<v1::Job> get(const std::string& id) override;
  std::optional<v1::Job> get_by_key(const std::string& idempotency_key) override;
  std::string current_lease(const std::string& job_id) override;
  JobPage list(const std::vector<v1::Job::State>& states, int page_size, const std::string& page_token) override;
  std::optional<v1::Job> cancel(const std::string& id, bool* changed) override;
  std::optional<Lease> lease_next(const std::string& worker, double lease_seconds) override;
  bool report(const std::string& job_id, const std::string& lease_id, const std::string& stage, double progress,
              double loss, double lease_seconds) override;
  bool finish(const std::string& job_id, const std::string& lease_id, bool succeeded, const std::string& error,
              const std::string& report_json) override;
  std::vector<std::string> expire_leases() override;
  int renew_leases_after_restart(double lease_seconds) override;
  std::map<v1::Job::State, int64_t> count_by_state() override;
  bool model_in_use(const std::string& model) override;

 private:
  void listen_loop();

  Options options_;
  std::string url_;
  std::unique_ptr<pg::Connection> db_;  // requests, one at a time (mu_)
  std::mutex mu_;
  std::atomic<bool> stop_{false};
  std::thread listener_;
};

}  // namespace qdm::server
