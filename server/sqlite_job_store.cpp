#include "server/sqlite_job_store.h"

#include "server/job_transitions.h"

namespace qdm::server {
namespace {

// SQLite's error as a StoreError; SQLITE_FULL (disk or quota) is flagged as a full disk.
[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  const int code = sqlite3_errcode(db);
  throw StoreError(what + ": " + sqlite3_errmsg(db), code == SQLITE_FULL);
}

// One prepared statement; finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail(db, "sqlite prepare");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement& bind(int i, int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  Statement& bind(int i, const std::string& v) {
    return check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Statement& bind_text(int i, const std::string& v) {
    return check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, "sqlite step");
  }
  int64_t integer(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : "";
  }

 private:
  Statement& check(int rc) {
    if (rc != SQLITE_OK) fail(db_, "sqlite bind");
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

SqliteJobStore::SqliteJobStore(const std::string& path, Options options) : options_(options) {
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw StoreError("cannot open job store " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec(R"(CREATE TABLE IF NOT EXISTS jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT UNIQUE NOT NULL,
            idem TEXT,
            state INTEGER NOT NULL,
            model TEXT NOT NULL,
            lease_id TEXT NOT NULL DEFAULT '',
            lease_expiry_ms INTEGER NOT NULL DEFAULT 0,
            not_before_ms INTEGER NOT NULL DEFAULT 0,
            job BLOB NOT NULL))");
  exec("CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs(idem) WHERE idem IS NOT NULL");
  exec("CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq)");
}

SqliteJobStore::~SqliteJobStore() { sqlite3_close(db_); }

void SqliteJobStore::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw StoreError("sqlite: " + msg, sqlite3_errcode(db_) == SQLITE_FULL);
  }
}


std::optional<v1::Job> SqliteJobStore::load(const std::string& id, int64_t* seq, std::string* lease_id) {
  Statement s(db_, "SELECT seq, lease_id, job FROM jobs WHERE id = ?");
  s.bind_text(1, id);
  if (!s.step()) return std::nullopt;
  if (seq) *seq = s.integer(0);
  if (lease_id) *lease_id = s.blob(1);
  return parse_job(s.blob(2));
}

void SqliteJobStore::update(const v1::Job& job, const std::string& lease_id, int64_t lease_expiry_ms,
                      int64_t not_before_ms) {
  v1::Job stored = job;
  stored.clear_queue_position();  // derived on read
  set_time(stored.mutable_updated(), now_ms());
  Statement s(db_, "UPDATE jobs SET state = ?, lease_id = ?, lease_expiry_ms = ?, not_before_ms = ?, job = ? WHERE id = ?");
  s.bind(1, stored.state()).bind_text(2, lease_id).bind(3, lease_expiry_ms).bind(4, not_before_ms);
  s.bind(5, stored.SerializeAsString()).bind_text(6, stored.id());
  s.step();
  changed();
}

void SqliteJobStore::fill_queue_position(v1::Job& job, int64_t seq) {
  if (job.state() != v1::Job::QUEUED) return;
  Statement s(db_, "SELECT COUNT(*) FROM jobs WHERE state = ? AND seq < ?");
  s.bind(1, v1::Job::QUEUED).bind(2, seq);
  s.step();
  job.set_queue_position(static_cast<int32_t>(s.integer(0)));
}

v1::Job SqliteJobStore::submit(const std::string& model, const v1::QuantizeOptions& options,
                         const std::string& idempotency_key, const std::string& artifact_name, bool* created) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!idempotency_key.empty()) {
    Statement s(db_, "SELECT seq, job FROM jobs WHERE idem = ?");
    s.bind_text(1, idempotency_key);
    if (s.step()) {
      *created = false;
      v1::Job job = parse_job(s.blob(1));
      fill_queue_position(job, s.integer(0));
      return job;
    }
  }
  if (options_.max_queued > 0) {
    Statement q(db_, "SELECT COUNT(*) FROM jobs WHERE state = ?");
    q.bind(1, v1::Job::QUEUED);
    q.step();
    if (q.integer(0) >= options_.max_queued) throw QueueFull(options_.max_queued);
  }
  v1::Job job = new_job(model, options, artifact_name);
  Statement s(db_, "INSERT INTO jobs (id, idem, state, model, job) VALUES (?, ?, ?, ?, ?)");
  s.bind_text(1, job.id());
  s.bind_text(2, idempotency_key.empty() ? anonymous_key(job) : idempotency_key);
  s.bind(3, job.state()).bind_text(4, model).bind(5, job.SerializeAsString());
  s.step();
  *created = true;
  Statement q(db_, "SELECT seq FROM jobs WHERE id = ?");
  q.bind_text(1, job.id());
  q.step();
  fill_queue_position(job, q.integer(0));
  changed();
  return job;
}

std::optional<v1::Job> SqliteJobStore::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t seq = 0;
  auto job = load(id, &seq);
  if (job) fill_queue_position(*job, seq);
  return job;
}

std::optional<v1::Job> SqliteJobStore::get_by_key(const std::string& idempotency_key) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, "SELECT job FROM jobs WHERE idem = ?");
  s.bind_text(1, idempotency_key);
  if (!s.step()) return std::nullopt;
  return parse_job(s.blob(0));
}

std::string SqliteJobStore::current_lease(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string lease;
  auto job = load(job_id, nullptr, &lease);
  return job ? lease : "";
}

JobPage SqliteJobStore::list(const std::vector<v1::Job::State>& states, int page_size, const std::string& page_token) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t before = page_token_position(page_token);
  std::string sql = "SELECT seq, job FROM jobs WHERE seq < ?";
  if (!states.empty()) {
    sql += " AND state IN (";
    for (size_t i = 0; i < states.size(); ++i) sql += (i ? ",?" : "?");
    sql += ")";
  }
  sql += " ORDER BY seq DESC LIMIT ?";
  Statement s(db_, sql.c_str());
  int i = 1;
  s.bind(i++, before);
  for (auto st : states) s.bind(i++, st);
  s.bind(i++, page_size + 1);
  JobPage page;
  int64_t last_seq = 0;
  while (s.step()) {
    if (static_cast<int>(page.jobs.size()) == page_size) {
      page.next_page_token = std::to_string(last_seq);
      break;
    }
    last_seq = s.integer(0);
    page.jobs.push_back(parse_job(s.blob(1)));
  }
  return page;
}

std::optional<v1::Job> SqliteJobStore::cancel(const std::string& id, bool* changed_out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto job = load(id);
  if (!job) return std::nullopt;
  *changed_out = false;
  if (is_finished(job->state())) return job;
  cancel_job(*job);
  update(*job, "", 0, 0);
  *changed_out = true;
  return job;
}

std::optional<Lease> SqliteJobStore::lease_next(const std::string& worker, double lease_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, "SELECT job FROM jobs WHERE state = ? AND not_before_ms <= ? ORDER BY seq LIMIT 1");
  s.bind(1, v1::Job::QUEUED).bind(2, now_ms());
  if (!s.step()) return std::nullopt;
  Lease lease{parse_job(s.blob(0)), ""};
  lease.lease_id = lease_job(lease.job, worker);
  update(lease.job, lease.lease_id, now_ms() + static_cast<int64_t>(lease_seconds * 1000), 0);
  return lease;
}

bool SqliteJobStore::report(const std::string& job_id, const std::string& lease_id, const std::string& stage,
                      double progress, double loss, double lease_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string current;
  auto job = load(job_id, nullptr, &current);
  if (!job || current != lease_id || is_finished(job->state())) return false;
  report_job(*job, stage, progress, loss);
  update(*job, lease_id, now_ms() + static_cast<int64_t>(lease_seconds * 1000), 0);
  return true;
}

bool SqliteJobStore::finish(const std::string& job_id, const std::string& lease_id, bool succeeded,
                      const std::string& error, const std::string& report_json) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string current;
  auto job = load(job_id, nullptr, &current);
  if (!job || current != lease_id || is_finished(job->state())) return false;
  finish_job(*job, succeeded, error, report_json);
  update(*job, "", 0, 0);
  return true;
}

std::vector<std::string> SqliteJobStore::expire_leases() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  {
    Statement s(db_, "SELECT id FROM jobs WHERE state IN (?, ?) AND lease_expiry_ms < ?");
    s.bind(1, v1::Job::LEASED).bind(2, v1::Job::RUNNING).bind(3, now_ms());
    while (s.step()) ids.push_back(s.blob(0));
  }
  for (const auto& id : ids) {
    auto job = load(id);
    if (!job) continue;
    const int64_t not_before = expire_job(*job, options_, now_ms());
    update(*job, "", 0, not_before);
  }
  return ids;
}

int SqliteJobStore::renew_leases_after_restart(double lease_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, "UPDATE jobs SET lease_expiry_ms = ? WHERE state IN (?, ?)");
  s.bind(1, now_ms() + static_cast<int64_t>(lease_seconds * 1000)).bind(2, v1::Job::LEASED).bind(3, v1::Job::RUNNING);
  s.step();
  return sqlite3_changes(db_);
}

std::map<v1::Job::State, int64_t> SqliteJobStore::count_by_state() {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<v1::Job::State, int64_t> counts;
  Statement s(db_, "SELECT state, COUNT(*) FROM jobs GROUP BY state");
  while (s.step()) counts[static_cast<v1::Job::State>(s.integer(0))] = s.integer(1);
  return counts;
}

bool SqliteJobStore::model_in_use(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, "SELECT COUNT(*) FROM jobs WHERE model = ? AND state IN (?, ?, ?)");
  s.bind_text(1, model).bind(2, v1::Job::QUEUED).bind(3, v1::Job::LEASED).bind(4, v1::Job::RUNNING);
  s.step();
  return s.integer(0) > 0;
}



}  // namespace qdm::server
