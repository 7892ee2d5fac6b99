// How the CLI shows jobs: a table row, a detailed view, and a Watch with a progress bar.
#pragma once

#include <string>

#include "qdm/v1/jobs.grpc.pb.h"

namespace qdm::cli {

std::string state_name(v1::Job::State s);  // "queued", "running", ...
void print_job_row(const v1::Job& job);
void print_job_header();
// Every field, the quality report as readable fields; `json`: the Job as JSON for machines.
void print_job(const v1::Job& job, bool json = false);
// Follows a job with a progress bar; returns its final state.
struct RemoteArgs;
v1::Job watch_job(v1::QuantizeJobs::StubInterface& stub, const std::string& id, const RemoteArgs& remote);

}  // namespace qdm::cli
