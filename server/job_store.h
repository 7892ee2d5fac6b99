// The scheduler's durable job store: SQLite in WAL mode with synchronous=FULL, so a job is on
// disk before Submit answers and survives kill -9 of the scheduler.
//
// Job states: QUEUED -> LEASED -> RUNNING(stage, progress) -> SUCCEEDED | FAILED | CANCELLED.
// A lease belongs to one worker and expires unless heartbeats extend it; an expired lease puts
// the job back in the queue with attempt + 1 (after a backoff), up to max_attempts. Only the
// current lease holder may report progress or finish the job (fencing by lease id).
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "qdm/v1/jobs.pb.h"
#include "service/convert.h"

namespace qdm::server {

using service::StoreError;  // thrown by every method when SQLite fails (full() for a full disk)

struct Lease {
  v1::Job job;
  std::string lease_id;
};

struct JobPage {
  std::vector<v1::Job> jobs;
  std::string next_page_token;
};

class JobStore {
 public:
  struct Options {
    int max_attempts = 3;
    double backoff_seconds = 2;  // before attempt n+1: backoff * 2^(n-1)
  };
  JobStore(const std::string& path, Options options);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Inserts a QUEUED job. With a non-empty idempotency key that was seen before, returns the
  // job stored under it instead and sets *created = false.
  v1::Job submit(const std::string& model, const v1::QuantizeOptions& options, const std::string& idempotency_key,
                 const std::string& artifact_name, bool* created);
  std::optional<v1::Job> get(const std::string& id);
  std::optional<v1::Job> get_by_key(const std::string& idempotency_key);
  // The current lease id of a job ("" when none).
  std::string current_lease(const std::string& job_id);
  // Newest first; `page_token` is the opaque token of the previous page.
  JobPage list(const std::vector<v1::Job::State>& states, int page_size, const std::string& page_token);
  // QUEUED/LEASED/RUNNING -> CANCELLED. std::nullopt for an unknown id; a finished job is returned
  // unchanged with *changed = false.
  std::optional<v1::Job> cancel(const std::string& id, bool* changed);

  // Oldest QUEUED job whose backoff has passed, leased to `worker` for `lease_seconds`.
  std::optional<Lease> lease_next(const std::string& worker, double lease_seconds);
  // Heartbeat from the lease holder: progress, and the lease extended. False when `lease_id` is
  // not the job's current lease (expired, requeued, cancelled): the worker must stop.
  bool report(const std::string& job_id, const std::string& lease_id, const std::string& stage, double progress,
              double loss, double lease_seconds);
  // The holder's result. False (and nothing changes) when the lease is not current.
  bool finish(const std::string& job_id, const std::string& lease_id, bool succeeded, const std::string& error,
              const std::string& report_json);
  // Leases past their expiry: requeued with attempt + 1, or FAILED after max_attempts.
  // Returns the ids that changed.
  std::vector<std::string> expire_leases();
  // At start: leases held while the scheduler was down get a fresh `lease_seconds`, so workers
  // that kept running their jobs can reconnect and resume them. Returns how many.
  int renew_leases_after_restart(double lease_seconds);

  std::map<v1::Job::State, int64_t> count_by_state();
  // True while a job that is not finished names `model`.
  bool model_in_use(const std::string& model);

  // Bumped on every change; Watch waits on it.
  uint64_t version();
  // Waits until version() != seen or `timeout` passes; returns the version.
  uint64_t wait_for_change(uint64_t seen, std::chrono::milliseconds timeout);

 private:
  void exec(const std::string& sql);
  std::optional<v1::Job> load(const std::string& id, int64_t* seq = nullptr, std::string* lease_id = nullptr);
  void update(const v1::Job& job, const std::string& lease_id, int64_t lease_expiry_ms, int64_t not_before_ms);
  void fill_queue_position(v1::Job& job, int64_t seq);
  void changed();

  Options options_;
  sqlite3* db_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t version_ = 0;
};

// Terminal states: SUCCEEDED, FAILED, CANCELLED.
bool is_finished(v1::Job::State s);
int64_t now_ms();

}  // namespace qdm::server
