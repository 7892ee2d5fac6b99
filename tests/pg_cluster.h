// A throw-away PostgreSQL cluster for one test process (tests/pg_cluster.sh), started on first
// use and stopped at exit; each test gets its own database in it.
#pragma once

#include <string>

namespace qdm::testing {

// The libpq URL of a new, empty database named `name` (letters, digits, _) in this process's
// cluster. Throws std::runtime_error when PostgreSQL cannot be started (the message says why).
std::string fresh_postgres_database(const std::string& name);
// Runs one SQL statement as the cluster's superuser on database `name`; returns the first
// column of the first row ("" when none).
std::string postgres_query(const std::string& name, const std::string& sql);

}  // namespace qdm::testing
