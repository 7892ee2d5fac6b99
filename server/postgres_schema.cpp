#include "server/postgres_schema.h"

#include "server/job_store.h"

namespace qdm::server::pg {
namespace {

constexpr int64_t kMigrationLock = 0x71646d5f6a6f6273;  // "qdm_jobs": one migrator at a time

// Entry i takes the schema from version i to i + 1. Never edit one that has shipped; append.
const std::vector<std::vector<const char*>> kMigrations = {
    {R"(CREATE TABLE jobs (
          seq BIGSERIAL PRIMARY KEY,
          id TEXT UNIQUE NOT NULL,
          idem TEXT UNIQUE NOT NULL,
          state INTEGER NOT NULL,
          model TEXT NOT NULL,
          lease_id TEXT NOT NULL DEFAULT '',
          lease_expiry_ms BIGINT NOT NULL DEFAULT 0,
          not_before_ms BIGINT NOT NULL DEFAULT 0,
          job BYTEA NOT NULL))",
     "CREATE INDEX jobs_state ON jobs (state, seq)", "CREATE INDEX jobs_model ON jobs (model) WHERE state IN (1, 2, 3)"},
    // The worker registry every replica reads (worker_directory.h).
    {R"(CREATE TABLE workers (
          id TEXT PRIMARY KEY,
          address TEXT NOT NULL,
          loaded TEXT NOT NULL DEFAULT '',
          draining BOOLEAN NOT NULL DEFAULT false,
          queue INTEGER NOT NULL DEFAULT 0,
          seen_ms BIGINT NOT NULL))"},
};

}  // namespace

int schema_version() { return static_cast<int>(kMigrations.size()); }

void migrate(Connection& db) {
  Transaction tx(db);
  db.exec("SELECT pg_advisory_xact_lock($1)", {kMigrationLock});
  db.exec("CREATE TABLE IF NOT EXISTS qdm_schema_history (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)");
  const Result v = db.exec("SELECT COALESCE(MAX(version), 0) FROM qdm_schema_history");
  const int current = static_cast<int>(v.integer(0, 0));
  if (current > schema_version())
    throw StoreError("the store's schema is version " + std::to_string(current) + ", newer than this scheduler's " +
                     std::to_string(schema_version()) + ": run a newer qdm-scheduler");
  for (int i = current; i < schema_version(); ++i) {
    for (const char* sql : kMigrations[static_cast<size_t>(i)]) db.exec(sql);
    db.exec("INSERT INTO qdm_schema_history (version, applied_ms) VALUES ($1, $2)", {i + 1, now_ms()});
  }
  tx.commit();
}

}  // namespace qdm::server::pg
