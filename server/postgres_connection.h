// One libpq connection for the PostgreSQL store: parameterised statements (text results,
// bytea parameters in binary), errors as StoreError (a full disk flagged), reconnection when the
// server went away between requests, and BEGIN/COMMIT scopes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "service/convert.h"

struct pg_conn;
struct pg_result;

namespace qdm::server::pg {

using service::StoreError;

// The server could not be reached at all (not up yet, a failover, a wrong host or password).
class Unreachable : public StoreError {
 public:
  using StoreError::StoreError;
};

class Result {
 public:
  explicit Result(pg_result* r) : r_(r) {}
  ~Result();
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  int rows() const;
  std::string text(int row, int col) const;
  int64_t integer(int row, int col) const { return std::stoll(text(row, col)); }
  std::string bytes(int row, int col) const;  // a bytea column
  int64_t affected() const;                   // rows an UPDATE changed
  pg_result* raw() const { return r_; }

 private:
  pg_result* r_;
};

// A statement parameter: text, or binary bytes (bytea).
struct Param {
  std::string value;
  bool binary = false;
  Param(std::string v) : value(std::move(v)) {}  // NOLINT: implicit, for brace lists
  Param(const char* v) : value(v) {}             // NOLINT
  Param(int64_t v) : value(std::to_string(v)) {}  // NOLINT
  Param(int v) : value(std::to_string(v)) {}      // NOLINT
  static Param bytes(std::string v) {
    Param p(std::move(v));
    p.binary = true;
    return p;
  }
};

// The database server's wall clock in ms since the epoch, as an SQL expression: leases, retry
// times and worker heartbeats are timed by it so that replicas' clocks never have to agree.
inline constexpr const char* kNowMs = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint";

class Connection {
 public:
  // Throws Unreachable saying why the server cannot be reached (never the URL's password).
  explicit Connection(const std::string& url);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  pg_conn* raw() { return conn_; }
  // Reconnects when the connection broke since the last request.
  void ensure();
  Result exec(const char* sql, const std::vector<Param>& params = {});

 private:
  pg_conn* conn_ = nullptr;
};

// BEGIN ... COMMIT, rolled back when the scope is left by an exception or an early return.
class Transaction {
 public:
  explicit Transaction(Connection& c) : c_(c) { c_.exec("BEGIN"); }
  ~Transaction();
  void commit() {
    c_.exec("COMMIT");
    done_ = true;
  }

 private:
  Connection& c_;
  bool done_ = false;
};

}  // namespace qdm::server::pg
