// The SQLite job store (job_store.h): one scheduler process, WAL mode with synchronous=FULL.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <mutex>

#include "server/job_store.h"

namespace qdm::server {

class SqliteJobStore : public JobStore {
 public:
  SqliteJobStore(const std::string& path, Options options);
  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

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
  void exec(const std::string& sql);
  std::optional<v1::Job> load(const std::string& id, int64_t* seq = nullptr, std::string* lease_id = nullptr);
  void update(const v1::Job& job, const std::string& lease_id, int64_t lease_expiry_ms, int64_t not_before_ms);
  void fill_queue_position(v1::Job& job, int64_t seq);

  Options options_;
  sqlite3* db_ = nullptr;
  std::mutex mu_;
};

}  // namespace qdm::server
