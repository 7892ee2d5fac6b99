#include "server/postgres_job_store.h"

#include <libpq-fe.h>
#include <poll.h>

#include "server/job_transitions.h"
#include "server/postgres_connection.h"
#include "server/postgres_schema.h"

namespace qdm::server {

using pg::Param;
using pg::Result;
using pg::Transaction;

namespace {

constexpr const char* kChannel = "qdm_jobs";
constexpr int64_t kQueueLock = 0x71646d5f71756575;  // "qdm_queu": submissions against the queue bound

// The job `job_id` locked for this transaction (FOR UPDATE) when `lease_id` still holds it and it
// has not finished; nullopt otherwise (the lease expired, moved on, or the job was cancelled).
// The database's clock comes back in the same statement (into db_now_ms when given).
std::optional<v1::Job> lock_leased(pg::Connection& db, const std::string& job_id, const std::string& lease_id,
                                   int64_t* db_now_ms = nullptr) {
  static const std::string sql = std::string("SELECT lease_id, job, ") + pg::kNowMs + " FROM jobs WHERE id = $1 FOR UPDATE";
  const pg::Result r = db.exec(sql.c_str(), {job_id});
  if (r.rows() == 0 || r.text(0, 0) != lease_id) return std::nullopt;
  v1::Job job = parse_job(r.bytes(0, 1));
  if (is_finished(job.state())) return std::nullopt;
  if (db_now_ms) *db_now_ms = r.integer(0, 2);
  return job;
}

void update_row(pg::Connection& db, const v1::Job& job, const std::string& lease_id, int64_t lease_expiry_ms, int64_t not_before_ms) {
  v1::Job stored = job;
  stored.clear_queue_position();  // derived on read
  set_time(stored.mutable_updated(), now_ms());
  db.exec("UPDATE jobs SET state = $1, lease_id = $2, lease_expiry_ms = $3, not_before_ms = $4, job = $5 WHERE id = $6",
          {static_cast<int>(stored.state()), lease_id, lease_expiry_ms, not_before_ms, Param::bytes(stored.SerializeAsString()), stored.id()});
  db.exec("SELECT pg_notify($1, '')", {kChannel});
}

void fill_position(pg::Connection& db, v1::Job& job, int64_t seq) {
  if (job.state() != v1::Job::QUEUED) return;
  const Result r = db.exec("SELECT COUNT(*) FROM jobs WHERE state = $1 AND seq < $2", {static_cast<int>(v1::Job::QUEUED), seq});
  job.set_queue_position(static_cast<int32_t>(r.integer(0, 0)));
}

}  // namespace

PostgresJobStore::PostgresJobStore(const std::string& url, Options options) : options_(options), url_(url) {
  db_ = std::make_unique<pg::Connection>(url);
  pg::migrate(*db_);
  listener_ = std::thread([this] { listen_loop(); });
}

PostgresJobStore::~PostgresJobStore() {
  stop_ = true;
  if (listener_.joinable()) listener_.join();
}

void PostgresJobStore::listen_loop() {
  std::unique_ptr<pg::Connection> conn;
  while (!stop_) {
    try {
      if (!conn) {
        conn = std::make_unique<pg::Connection>(url_);
        conn->exec("LISTEN qdm_jobs");
        changed();  // anything may have changed while not listening
      }
      pollfd fd{PQsocket(conn->raw()), POLLIN, 0};
      if (::poll(&fd, 1, 200) < 0) continue;
      if (!PQconsumeInput(conn->raw())) throw StoreError("listener connection lost");
      bool any = false;
      while (PGnotify* n = PQnotifies(conn->raw())) {
        any = true;
        PQfreemem(n);
      }
      if (any) changed();
    } catch (const std::exception&) {
      conn.reset();
      for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}



v1::Job PostgresJobStore::submit(const std::string& model, const v1::QuantizeOptions& options,
                                 const std::string& idempotency_key, const std::string& artifact_name, bool* created) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  v1::Job job = new_job(model, options, artifact_name);
  const std::string key = idempotency_key.empty() ? anonymous_key(job) : idempotency_key;
  Transaction tx(*db_);
  if (options_.max_queued > 0) {
    // One submitter at a time across replicas, so the bound holds exactly; a key seen before
    // answers its job even when the queue is full.
    db_->exec("SELECT pg_advisory_xact_lock($1)", {kQueueLock});
    const Result old = db_->exec("SELECT seq, job FROM jobs WHERE idem = $1", {key});
    if (old.rows() == 0) {
      const Result n = db_->exec("SELECT COUNT(*) FROM jobs WHERE state = $1", {static_cast<int>(v1::Job::QUEUED)});
      if (n.integer(0, 0) >= options_.max_queued) throw QueueFull(options_.max_queued);
    }
  }
  const Result ins = db_->exec(
      "INSERT INTO jobs (id, idem, state, model, job) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (idem) DO NOTHING RETURNING seq",
      {job.id(), key, static_cast<int>(job.state()), model, Param::bytes(job.SerializeAsString())});
  int64_t seq = 0;
  if (ins.rows() == 1) {
    seq = ins.integer(0, 0);
    *created = true;
    db_->exec("SELECT pg_notify($1, '')", {kChannel});
  } else {  // the key was used before (possibly through another replica)
    const Result old = db_->exec("SELECT seq, job FROM jobs WHERE idem = $1", {key});
    if (old.rows() != 1) throw StoreError("postgresql: an idempotency key conflicted but its job is gone");
    seq = old.integer(0, 0);
    job = parse_job(old.bytes(0, 1));
    *created = false;
  }
  fill_position(*db_, job, seq);
  tx.commit();
  if (*created) changed();
  return job;
}

std::optional<v1::Job> PostgresJobStore::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  const Result r = db_->exec("SELECT seq, job FROM jobs WHERE id = $1", {id});
  if (r.rows() == 0) return std::nullopt;
  v1::Job job = parse_job(r.bytes(0, 1));
  fill_position(*db_, job, r.integer(0, 0));
  return job;
}

std::optional<v1::Job> PostgresJobStore::get_by_key(const std::string& idempotency_key) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  const Result r = db_->exec("SELECT job FROM jobs WHERE idem = $1", {idempotency_key});
  if (r.rows() == 0) return std::nullopt;
  return parse_job(r.bytes(0, 0));
}

std::string PostgresJobStore::current_lease(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  const Result r = db_->exec("SELECT lease_id FROM jobs WHERE id = $1", {job_id});
  return r.rows() ? r.text(0, 0) : "";
}

JobPage PostgresJobStore::list(const std::vector<v1::Job::State>& states, int page_size, const std::string& page_token) {
  const int64_t before = page_token_position(page_token);
  std::string set = "{";
  for (size_t i = 0; i < states.size(); ++i) set += (i ? "," : "") + std::to_string(static_cast<int>(states[i]));
  set += "}";
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  const Result r = db_->exec(
      "SELECT seq, job FROM jobs WHERE seq < $1 AND (cardinality($2::int[]) = 0 OR state = ANY($2::int[])) "
      "ORDER BY seq DESC LIMIT $3",
      {before, set, page_size + 1});
  JobPage page;
  int64_t last_seq = 0;
  for (int i = 0; i < r.rows(); ++i) {
    if (static_cast<int>(page.jobs.size()) == page_size) {
      page.next_page_token = std::to_string(last_seq);
      break;
    }
    last_seq = r.integer(i, 0);
    page.jobs.push_back(parse_job(r.bytes(i, 1)));
  }
  return page;
}

std::optional<v1::Job> PostgresJobStore::cancel(const std::string& id, bool* changed_out) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  Transaction tx(*db_);
  const Result r = db_->exec("SELECT job FROM jobs WHERE id = $1 FOR UPDATE", {id});
  if (r.rows() == 0) return std::nullopt;
  v1::Job job = parse_job(r.bytes(0, 0));
  *changed_out = false;
  if (!is_finished(job.state())) {
    cancel_job(job);
    update_row(*db_, job, "", 0, 0);
    *changed_out = true;
  }
  tx.commit();
  if (*changed_out) changed();
  return job;
}

std::optional<Lease> PostgresJobStore::lease_next(const std::string& worker, double lease_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  Transaction tx(*db_);
  // SKIP LOCKED: a job another replica is leasing right now is passed over, never leased twice.
  // The database's clock comes back with the row: an empty poll costs one statement.
  static const std::string sql = std::string("SELECT job, ") + pg::kNowMs + " FROM jobs WHERE state = $1 AND not_before_ms <= " +
                                 pg::kNowMs + " ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED";
  const Result r = db_->exec(sql.c_str(), {static_cast<int>(v1::Job::QUEUED)});
  if (r.rows() == 0) return std::nullopt;
  const int64_t now = r.integer(0, 1);
  Lease lease{parse_job(r.bytes(0, 0)), ""};
  lease.lease_id = lease_job(lease.job, worker);
  update_row(*db_, lease.job, lease.lease_id, now + static_cast<int64_t>(lease_seconds * 1000), 0);
  tx.commit();
  changed();
  return lease;
}

bool PostgresJobStore::report(const std::string& job_id, const std::string& lease_id, const std::string& stage,
                              double progress, double loss, double lease_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  Transaction tx(*db_);
  int64_t db_now = 0;
  std::optional<v1::Job> leased = lock_leased(*db_, job_id, lease_id, &db_now);
  if (!leased) return false;
  v1::Job& job = *leased;
  report_job(job, stage, progress, loss);
  update_row(*db_, job, lease_id, db_now + static_cast<int64_t>(lease_seconds * 1000), 0);
  tx.commit();
  changed();
  return true;
}

bool PostgresJobStore::finish(const std::string& job_id, const std::string& lease_id, bool succeeded,
                              const std::string& error, const std::string& report_json) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  Transaction tx(*db_);
  std::optional<v1::Job> leased = lock_leased(*db_, job_id, lease_id);
  if (!leased) return false;
  v1::Job& job = *leased;
  finish_job(job, succeeded, error, report_json);
  update_row(*db_, job, "", 0, 0);
  tx.commit();
  changed();
  return true;
}

std::vector<std::string> PostgresJobStore::expire_leases() {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  Transaction tx(*db_);
  // Every replica runs this; SKIP LOCKED lets them split the work instead of waiting. The
  // database's clock comes back with each expired row: a run that finds none is one statement.
  static const std::string sql = std::string("SELECT id, job, ") + pg::kNowMs +
                                 " FROM jobs WHERE state IN ($1, $2) AND lease_expiry_ms < " + pg::kNowMs + " FOR UPDATE SKIP LOCKED";
  const Result r = db_->exec(sql.c_str(), {static_cast<int>(v1::Job::LEASED), static_cast<int>(v1::Job::RUNNING)});
  std::vector<std::string> ids;
  for (int i = 0; i < r.rows(); ++i) {
    v1::Job job = parse_job(r.bytes(i, 1));
    const int64_t not_before = expire_job(job, options_, r.integer(i, 2));
    update_row(*db_, job, "", 0, not_before);
    ids.push_back(r.text(i, 0));
  }
  tx.commit();
  if (!ids.empty()) changed();
  return ids;
}

int PostgresJobStore::renew_leases_after_restart(double lease_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  // With replicas the other schedulers kept expiring leases; this only extends the leases of
  // workers that were connected to a replica that went down, giving them time to fail over.
  static const std::string sql =
      std::string("UPDATE jobs SET lease_expiry_ms = GREATEST(lease_expiry_ms, ") + pg::kNowMs + " + $1) WHERE state IN ($2, $3)";
  const Result r = db_->exec(sql.c_str(), {static_cast<int64_t>(lease_seconds * 1000), static_cast<int>(v1::Job::LEASED),
                                           static_cast<int>(v1::Job::RUNNING)});
  return static_cast<int>(r.affected());
}

std::map<v1::Job::State, int64_t> PostgresJobStore::count_by_state() {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  const Result r = db_->exec("SELECT state, COUNT(*) FROM jobs GROUP BY state");
  std::map<v1::Job::State, int64_t> counts;
  for (int i = 0; i < r.rows(); ++i) counts[static_cast<v1::Job::State>(r.integer(i, 0))] = r.integer(i, 1);
  return counts;
}

bool PostgresJobStore::model_in_use(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  const Result r = db_->exec("SELECT EXISTS (SELECT 1 FROM jobs WHERE model = $1 AND state IN ($2, $3, $4))",
                             {model, static_cast<int>(v1::Job::QUEUED), static_cast<int>(v1::Job::LEASED),
                              static_cast<int>(v1::Job::RUNNING)});
  return r.text(0, 0) == "t";
}



}  // namespace qdm::server
