#include "tests/pg_cluster.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace qdm::testing {
namespace {

std::string run(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  if (!p) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  std::array<char, 512> buf{};
  while (size_t n = std::fread(buf.data(), 1, buf.size(), p.get())) out.append(buf.data(), n);
  const int rc = ::pclose(p.release());
  if (rc != 0) throw std::runtime_error(cmd + " failed (see its stderr)");
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

struct Cluster {
  std::string dir, base;  // base: URL of database postgres
  Cluster() {
    dir = "/tmp/qdmpg-" + std::to_string(::getpid());
    base = run("bash " QDM_SOURCE_DIR "/tests/pg_cluster.sh start " + dir);
  }
  ~Cluster() { std::system(("bash " QDM_SOURCE_DIR "/tests/pg_cluster.sh stop " + dir).c_str()); }
  std::string url(const std::string& db) const {
    std::string u = base;
    return u.replace(u.find("/postgres?"), 10, "/" + db + "?");
  }
};

Cluster& cluster() {
  static Cluster c;  // stopped by the static destructor at exit
  return c;
}

std::string query(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(c, PQfinish);
  if (PQstatus(c) != CONNECTION_OK) throw std::runtime_error(std::string("connect: ") + PQerrorMessage(c));
  PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);  // "does not exist, skipping"
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(c, sql.c_str()), PQclear);
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + PQresultErrorMessage(r.get()));
  return PQntuples(r.get()) > 0 ? PQgetvalue(r.get(), 0, 0) : "";
}

}  // namespace

std::string fresh_postgres_database(const std::string& name) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  Cluster& c = cluster();
  query(c.base, "DROP DATABASE IF EXISTS " + name);
  query(c.base, "CREATE DATABASE " + name);
  return c.url(name);
}

std::string postgres_query(const std::string& name, const std::string& sql) { return query(cluster().url(name), sql); }

}  // namespace qdm::testing
