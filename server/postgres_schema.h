// The PostgreSQL store's schema: versioned migrations applied at start in one transaction under
// an advisory lock, so replicas starting at once migrate once; a database newer than this build
// is refused.
#pragma once

#include "server/postgres_connection.h"

namespace qdm::server::pg {

// The schema version this build migrates to.
int schema_version();
// Brings the database to schema_version(); throws StoreError (a newer schema says so).
void migrate(Connection& db);

}  // namespace qdm::server::pg
