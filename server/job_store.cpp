#include "server/job_store.h"

#include <nlohmann/json.hpp>

#include <random>
#include <stdexcept>

#include "server/job_transitions.h"
#include "service/redact.h"
#include "server/postgres_job_store.h"
#include "server/sqlite_job_store.h"

namespace qdm::server {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_finished(v1::Job::State s) {
  return s == v1::Job::SUCCEEDED || s == v1::Job::FAILED || s == v1::Job::CANCELLED;
}

uint64_t JobStore::version() {
  std::lock_guard<std::mutex> lock(version_mu_);
  return version_;
}

uint64_t JobStore::wait_for_change(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(version_mu_);
  version_cv_.wait_for(lock, timeout, [&] { return version_ != seen; });
  return version_;
}

void JobStore::changed() {
  {
    std::lock_guard<std::mutex> lock(version_mu_);
    ++version_;
  }
  version_cv_.notify_all();
}

std::unique_ptr<JobStore> open_job_store(const std::string& url, JobStore::Options options) {
  if (url.rfind("sqlite:", 0) == 0) return std::make_unique<SqliteJobStore>(url.substr(7), options);
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0)
    return std::make_unique<PostgresJobStore>(url, options);
  throw std::invalid_argument("--store must be sqlite:PATH or a postgresql:// URL");
}

int64_t page_token_position(const std::string& token) {
  if (token.empty()) return INT64_MAX;
  // A store's tokens are the decimal sequence numbers it counts: at most 19 digits.
  const bool digits = token.size() <= 19 && token.find_first_not_of("0123456789") == std::string::npos;
  if (!digits) throw std::invalid_argument("page_token is not one this service returned; pass next_page_token of the last page");
  try {
    return std::stoll(token);
  } catch (const std::exception&) {
    throw std::invalid_argument("page_token is not one this service returned; pass next_page_token of the last page");
  }
}

std::string describe_store_url(const std::string& url) { return service::redact_secrets(url); }

std::string random_hex(int n) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s += hex[rng() & 15];
  return s;
}

void set_time(google::protobuf::Timestamp* t, int64_t ms) {
  t->set_seconds(ms / 1000);
  t->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

int64_t to_ms(const google::protobuf::Timestamp& t) { return t.seconds() * 1000 + t.nanos() / 1000000; }

v1::Job parse_job(const std::string& bytes) {
  v1::Job job;
  if (!job.ParseFromString(bytes)) throw StoreError("job store: a stored job does not parse");
  return job;
}

v1::Job new_job(const std::string& model, const v1::QuantizeOptions& options, const std::string& artifact_name) {
  v1::Job job;
  job.set_id("job-" + random_hex(12));
  job.set_model(model);
  *job.mutable_options() = options;
  job.set_state(v1::Job::QUEUED);
  job.set_stage("queued");
  job.set_attempt(0);
  job.set_artifact(artifact_name.empty() ? job.id() : artifact_name + "-" + job.id().substr(4, 6));
  const int64_t now = now_ms();
  set_time(job.mutable_created(), now);
  set_time(job.mutable_updated(), now);
  return job;
}

std::string anonymous_key(const v1::Job& job) { return "anon:" + job.id(); }

std::string lease_job(v1::Job& job, const std::string& worker) {
  job.set_state(v1::Job::LEASED);
  job.set_stage("leased");
  job.set_worker(worker);
  job.set_attempt(job.attempt() + 1);
  job.clear_error();
  return "lease-" + random_hex(16);
}

void report_job(v1::Job& job, const std::string& stage, double progress, double loss) {
  if (job.state() == v1::Job::LEASED) set_time(job.mutable_started(), now_ms());
  job.set_state(v1::Job::RUNNING);
  if (!stage.empty()) job.set_stage(stage);
  job.set_progress(progress);
  job.set_loss(loss);
  // ETA from this attempt's rate so far.
  const double elapsed = (now_ms() - to_ms(job.started())) / 1000.0;
  job.set_eta_seconds(progress > 0.005 ? elapsed * (1 - progress) / progress : 0);
}

void finish_job(v1::Job& job, bool succeeded, const std::string& error, const std::string& report_json) {
  job.set_state(succeeded ? v1::Job::SUCCEEDED : v1::Job::FAILED);
  job.set_stage(succeeded ? "done" : "failed");
  job.set_eta_seconds(0);
  if (succeeded) {
    job.set_progress(1);
    try {
      service::fill_report(nlohmann::json::parse(report_json), job.mutable_report());
    } catch (const nlohmann::json::exception&) {
      job.mutable_report()->set_json(report_json);
    }
  } else {
    job.set_error(error);
  }
  set_time(job.mutable_finished(), now_ms());
}

void cancel_job(v1::Job& job) {
  job.set_state(v1::Job::CANCELLED);
  job.set_stage("cancelled");
  job.set_eta_seconds(0);
  set_time(job.mutable_finished(), now_ms());
}

int64_t expire_job(v1::Job& job, const JobStore::Options& options, int64_t now) {
  const std::string lost = job.worker();
  if (job.attempt() >= options.max_attempts) {
    job.set_state(v1::Job::FAILED);
    job.set_stage("failed");
    job.set_error("the lease expired " + std::to_string(job.attempt()) + " times (last worker '" + lost +
                  "' stopped sending heartbeats); giving up after max_attempts=" + std::to_string(options.max_attempts));
    set_time(job.mutable_finished(), now_ms());
    return 0;
  }
  job.set_state(v1::Job::QUEUED);
  job.set_stage("requeued");
  job.set_progress(0);
  job.set_loss(0);
  job.set_error("attempt " + std::to_string(job.attempt()) + " on worker '" + lost + "' lost its lease");
  const double backoff = options.backoff_seconds * (1 << std::min(job.attempt() - 1, 10));
  return now + static_cast<int64_t>(backoff * 1000);
}

}  // namespace qdm::server
