// Workers as every scheduler replica sees them. A worker heartbeats to one replica; that replica
// records it here, and a sampling request arriving at any replica can pick it (the scheduler
// dials the worker's advertised address itself). With SQLite there is one scheduler and no
// directory: the registry's own heartbeats are the whole picture.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace qdm::server {

namespace pg {
class Connection;
}

struct WorkerRecord {
  std::string id, address;
  std::vector<std::string> loaded;  // models resident in its cache
  bool draining = false;
  int queue = 0;       // sample requests waiting on it
  int64_t age_ms = 0;  // since its last heartbeat (through any replica); set by live()
};

// Heartbeats are timed by the directory's clock (the database's), never a replica's: replicas
// whose wall clocks disagree still agree on which workers are live.
class WorkerDirectory {
 public:
  virtual ~WorkerDirectory() = default;
  // Records a heartbeat of `worker` now.
  virtual void record(const WorkerRecord& worker) = 0;
  // Workers heard from within the last `max_age_ms` (through any replica).
  virtual std::vector<WorkerRecord> live(int64_t max_age_ms) = 0;
};

// The directory of the store `url` names: nullptr for sqlite:, a table in the database for
// postgresql:// (migrated like the job store).
std::unique_ptr<WorkerDirectory> open_worker_directory(const std::string& url);

class PostgresWorkerDirectory : public WorkerDirectory {
 public:
  explicit PostgresWorkerDirectory(const std::string& url);
  ~PostgresWorkerDirectory() override;
  void record(const WorkerRecord& worker) override;
  std::vector<WorkerRecord> live(int64_t max_age_ms) override;

 private:
  std::mutex mu_;
  std::unique_ptr<pg::Connection> db_;
};

}  // namespace qdm::server
