// The scheduler's durable job store, one interface over two databases:
//   sqlite:PATH        (default) SQLite in WAL mode with synchronous=FULL, one scheduler;
//   postgresql://...   PostgreSQL, shared by any number of scheduler replicas (rows locked with
//                      FOR UPDATE / SKIP LOCKED, wake-ups across replicas by LISTEN/NOTIFY).
// Either way a job is durable before Submit answers and survives kill -9 of the scheduler.
//
// Job states: QUEUED -> LEASED -> RUNNING(stage, progress) -> SUCCEEDED | FAILED | CANCELLED.
// A lease belongs to one worker and expires unless heartbeats extend it; an expired lease puts
// the job back in the queue with attempt + 1 (after a backoff), up to max_attempts. Only the
// current lease holder may report progress or finish the job (fencing by lease id).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qdm/v1/jobs.pb.h"
#include "service/convert.h"

namespace qdm::server {

using service::StoreError;  // thrown by every method when the database fails (full() for a full disk)

struct QueueFull : std::runtime_error {
  explicit QueueFull(int limit)
      : std::runtime_error("the quantize queue is full (" + std::to_string(limit) +
                           " jobs waiting); retry later or cancel queued jobs") {}
};

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
    int max_queued = 0;          // QUEUED jobs at most (0: unbounded), exact across replicas
  };
  virtual ~JobStore() = default;

  // Inserts a QUEUED job. With a non-empty idempotency key that was seen before, returns the
  // job stored under it instead and sets *created = false. Throws QueueFull when max_queued jobs
  // are queued already (counted under a lock every replica takes).
  virtual v1::Job submit(const std::string& model, const v1::QuantizeOptions& options, const std::string& idempotency_key,
                         const std::string& artifact_name, bool* created) = 0;
  virtual std::optional<v1::Job> get(const std::string& id) = 0;
  virtual std::optional<v1::Job> get_by_key(const std::string& idempotency_key) = 0;
  // The current lease id of a job ("" when none).
  virtual std::string current_lease(const std::string& job_id) = 0;
  // Newest first; `page_token` is the opaque token of the previous page.
  virtual JobPage list(const std::vector<v1::Job::State>& states, int page_size, const std::string& page_token) = 0;
  // QUEUED/LEASED/RUNNING -> CANCELLED. std::nullopt for an unknown id; a finished job is returned
  // unchanged with *changed = false.
  virtual std::optional<v1::Job> cancel(const std::string& id, bool* changed) = 0;

  // Oldest QUEUED job whose backoff has passed, leased to `worker` for `lease_seconds`.
  virtual std::optional<Lease> lease_next(const std::string& worker, double lease_seconds) = 0;
  // Heartbeat from the lease holder: progress, and the lease extended. False when `lease_id` is
  // not the job's current lease (expired, requeued, cancelled): the worker must stop.
  virtual bool report(const std::string& job_id, const std::string& lease_id, const std::string& stage, double progress,
                      double loss, double lease_seconds) = 0;
  // The holder's result. False (and nothing changes) when the lease is not current.
  virtual bool finish(const std::string& job_id, const std::string& lease_id, bool succeeded, const std::string& error,
                      const std::string& report_json) = 0;
  // Leases past their expiry: requeued with attempt + 1, or FAILED after max_attempts.
  // Returns the ids that changed.
  virtual std::vector<std::string> expire_leases() = 0;
  // At start: leases held while the scheduler was down get a fresh `lease_seconds`, so workers
  // that kept running their jobs can reconnect and resume them. Returns how many.
  virtual int renew_leases_after_restart(double lease_seconds) = 0;

  virtual std::map<v1::Job::State, int64_t> count_by_state() = 0;
  // True while a job that is not finished names `model`.
  virtual bool model_in_use(const std::string& model) = 0;

  // Bumped on every change (on PostgreSQL: every change through any replica); Watch waits on it.
  uint64_t version();
  // Waits until version() != seen or `timeout` passes; returns the version.
  uint64_t wait_for_change(uint64_t seen, std::chrono::milliseconds timeout);

 protected:
  // Implementations call this after every change they make or learn of.
  void changed();

 private:
  std::mutex version_mu_;
  std::condition_variable version_cv_;
  uint64_t version_ = 0;
};

// Opens the store `url` names: "sqlite:PATH" or "postgresql://..." / "postgres://..." (a libpq
// connection URI). Throws std::invalid_argument for another scheme, StoreError when the database
// cannot be opened or migrated.
std::unique_ptr<JobStore> open_job_store(const std::string& url, JobStore::Options options);
// The position a page token stands for (the sequence number below which the page starts; the
// end of the list for an empty token). Throws std::invalid_argument for a token no store gave.
int64_t page_token_position(const std::string& token);

// The store's kind and location with its secrets removed (user info, password and sslpassword
// parameters: service::redact_secrets), for logs and messages.
std::string describe_store_url(const std::string& url);

// Terminal states: SUCCEEDED, FAILED, CANCELLED.
bool is_finished(v1::Job::State s);
int64_t now_ms();

}  // namespace qdm::server
