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
  int queue = 0;        // sample requests waiting on it
  int64_t seen_ms = 0;  // its last heartbeat, on the recording replica's clock
};

class WorkerDirectory {
 public:
  virtual ~WorkerDirectory() = default;
  virtual void record(const WorkerRecord& worker) = 0;
  // Workers heard from at or after `since_ms` (through any replica).
  virtual std::vector<WorkerRecord> live(int64_t since_ms) = 0;
};

// The directory of the store `url` names: nullptr for sqlite:, a table in the database for
// postgresql:// (migrated like the job store).
std::unique_ptr<WorkerDirectory> open_worker_directory(const std::string& url);

class PostgresWorkerDirectory : public WorkerDirectory {
 public:
  explicit PostgresWorkerDirectory(const std::string& url);
  ~PostgresWorkerDirectory() override;
  void record(const WorkerRecord& worker) override;
  std::vector<WorkerRecord> live(int64_t since_ms) override;

 private:
  std::mutex mu_;
  std::unique_ptr<pg::Connection> db_;
};

}  // namespace qdm::server
