#include "server/postgres_connection.h"

#include <libpq-fe.h>

#include <cstring>

namespace qdm::server::pg {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

Result::~Result() { PQclear(r_); }
int Result::rows() const { return PQntuples(r_); }
std::string Result::text(int row, int col) const {
  return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
}
std::string Result::bytes(int row, int col) const {  // bytea in text format: \x + hex
  size_t n = 0;
  unsigned char* p = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row, col)), &n);
  if (!p) throw StoreError("postgresql: out of memory decoding a stored value");
  std::string s(reinterpret_cast<const char*>(p), n);
  PQfreemem(p);
  return s;
}
int64_t Result::affected() const {
  const char* n = PQcmdTuples(r_);
  return n && *n ? std::stoll(n) : 0;
}

Connection::Connection(const std::string& url) {
  conn_ = PQconnectdb(url.c_str());
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string msg = PQerrorMessage(conn_);
    PQfinish(conn_);
    conn_ = nullptr;
    throw Unreachable("cannot connect to the PostgreSQL store: " + first_line(msg));
  }
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);  // "already exists" notices
}

Connection::~Connection() { PQfinish(conn_); }

void Connection::ensure() {
  if (PQstatus(conn_) == CONNECTION_OK) return;
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) throw Unreachable("the PostgreSQL store is unreachable: " + first_line(PQerrorMessage(conn_)));
}

Result Connection::exec(const char* sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (const auto& p : params) {
    values.push_back(p.value.data());
    lengths.push_back(static_cast<int>(p.value.size()));
    formats.push_back(p.binary ? 1 : 0);
  }
  Result r(PQexecParams(conn_, sql, static_cast<int>(params.size()), nullptr, values.data(), lengths.data(), formats.data(), 0));
  const ExecStatusType st = PQresultStatus(r.raw());
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  const char* state = PQresultErrorField(r.raw(), PG_DIAG_SQLSTATE);
  const bool full = state && (std::strcmp(state, "53100") == 0 || std::strcmp(state, "53200") == 0);  // disk, memory
  std::string what = sql;
  what = what.substr(0, what.find_first_of(" \n"));
  throw StoreError("postgresql " + what + ": " + first_line(PQresultErrorMessage(r.raw())), full);
}

Transaction::~Transaction() {
  if (done_) return;
  try {
    c_.exec("ROLLBACK");
  } catch (const std::exception&) {
    // the connection is gone; the server rolls back
  }
}

}  // namespace qdm::server::pg
