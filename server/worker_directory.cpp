#include "server/worker_directory.h"

#include "server/postgres_connection.h"
#include "server/postgres_schema.h"

namespace qdm::server {

std::unique_ptr<WorkerDirectory> open_worker_directory(const std::string& url) {
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) return std::make_unique<PostgresWorkerDirectory>(url);
  return nullptr;
}

PostgresWorkerDirectory::PostgresWorkerDirectory(const std::string& url) : db_(std::make_unique<pg::Connection>(url)) {
  pg::migrate(*db_);
}

PostgresWorkerDirectory::~PostgresWorkerDirectory() = default;

void PostgresWorkerDirectory::record(const WorkerRecord& w) {
  std::string loaded;
  for (const auto& m : w.loaded) loaded += (loaded.empty() ? "" : "\n") + m;  // names hold no newline
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  const std::string sql = std::string("INSERT INTO workers (id, address, loaded, draining, queue, seen_ms) VALUES ($1, $2, $3, $4, $5, ") +
                          pg::kNowMs + ") ON CONFLICT (id) DO UPDATE SET address = $2, loaded = $3, draining = $4, queue = $5, seen_ms = " +
                          pg::kNowMs;
  db_->exec(sql.c_str(), {w.id, w.address, loaded, w.draining ? "true" : "false", w.queue});
}

std::vector<WorkerRecord> PostgresWorkerDirectory::live(int64_t max_age_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  db_->ensure();
  const std::string sql = std::string("SELECT id, address, loaded, draining, queue, GREATEST(0, ") + pg::kNowMs +
                          " - seen_ms) FROM workers WHERE seen_ms >= " + pg::kNowMs + " - $1";
  const pg::Result r = db_->exec(sql.c_str(), {max_age_ms});
  std::vector<WorkerRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    WorkerRecord w;
    w.id = r.text(i, 0);
    w.address = r.text(i, 1);
    const std::string loaded = r.text(i, 2);
    for (size_t a = 0; a < loaded.size();) {
      size_t b = loaded.find('\n', a);
      if (b == std::string::npos) b = loaded.size();
      w.loaded.push_back(loaded.substr(a, b - a));
      a = b + 1;
    }
    w.draining = r.text(i, 3) == "t";
    w.queue = static_cast<int>(r.integer(i, 4));
    w.age_ms = r.integer(i, 5);
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace qdm::server
