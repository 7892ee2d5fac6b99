// The job state machine of job_store.h as pure functions on the stored v1::Job, shared by every
// store implementation: each store only decides which row changes, under which lock.
#pragma once

#include <cstdint>
#include <string>

#include "server/job_store.h"

namespace qdm::server {

std::string random_hex(int n);
void set_time(google::protobuf::Timestamp* t, int64_t ms);
int64_t to_ms(const google::protobuf::Timestamp& t);
// Throws StoreError when the bytes are not a job.
v1::Job parse_job(const std::string& bytes);

// A new QUEUED job with a fresh id ("job-" + 12 hex digits).
v1::Job new_job(const std::string& model, const v1::QuantizeOptions& options, const std::string& artifact_name);
// The idempotency key stored for a submission without one (unique per job).
std::string anonymous_key(const v1::Job& job);
// QUEUED -> LEASED to `worker`, attempt + 1; returns the new lease id.
std::string lease_job(v1::Job& job, const std::string& worker);
// A heartbeat: LEASED/RUNNING -> RUNNING with progress, loss and the ETA from this attempt's rate.
void report_job(v1::Job& job, const std::string& stage, double progress, double loss);
void finish_job(v1::Job& job, bool succeeded, const std::string& error, const std::string& report_json);
void cancel_job(v1::Job& job);
// A lost lease: FAILED after max_attempts, else QUEUED again. Returns the time (ms since the
// epoch on the caller's clock `now`) before which it is not leased again, 0 when FAILED.
int64_t expire_job(v1::Job& job, const JobStore::Options& options, int64_t now);

}  // namespace qdm::server
