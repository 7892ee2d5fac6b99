#include "client/job_view.h"

#include <fmt/format.h>

#include <algorithm>

#include "client/progress_bar.h"
#include "client/remote.h"
#include "service/auth.h"

namespace qdm::cli {

std::string state_name(v1::Job::State s) {
  std::string n = v1::Job::State_Name(s);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  return n;
}

void print_job_header() {
  fmt::print("{:<18} {:<10} {:<14} {:<11} {:>6} {:<36} {}\n", "ID", "STATE", "MODEL", "RECIPE", "PROG", "STAGE",
             "ARTIFACT");
}

void print_job_row(const v1::Job& j) {
  const std::string recipe = fmt::format("{} w{}a{}", j.options().recipe(), j.options().weight_bits(), j.options().act_bits());
  fmt::print("{:<18} {:<10} {:<14} {:<11} {:>5.0f}% {:<36} {}\n", j.id(), state_name(j.state()), j.model(), recipe,
             j.progress() * 100, j.stage().substr(0, 36), j.state() == v1::Job::SUCCEEDED ? j.artifact() : "");
}

void print_job(const v1::Job& j) {
  fmt::print("id:        {}\nstate:     {}\nmodel:     {}\nrecipe:    {} w{}a{} ({} steps)\nstage:     {}\n"
             "progress:  {:.1f}%\nattempt:   {}\nworker:    {}\n",
             j.id(), state_name(j.state()), j.model(), j.options().recipe(), j.options().weight_bits(),
             j.options().act_bits(), j.options().sampler().steps(), j.stage(), j.progress() * 100, j.attempt(), j.worker());
  if (j.state() == v1::Job::QUEUED) fmt::print("queue pos: {}\n", j.queue_position());
  if (j.eta_seconds() > 0) fmt::print("eta:       {:.0f} s\n", j.eta_seconds());
  if (!j.error().empty()) fmt::print("error:     {}\n", j.error());
  if (j.state() == v1::Job::SUCCEEDED) fmt::print("artifact:  {}\nreport:    {}\n", j.artifact(), j.report().json());
}

v1::Job watch_job(v1::QuantizeJobs::StubInterface& stub, const std::string& id, const RemoteArgs& remote) {
  grpc::ClientContext ctx;
  service::add_bearer(ctx, remote.token);  // no deadline: a watch lasts as long as the job
  v1::WatchJobRequest req;
  req.set_id(id);
  auto reader = stub.Watch(&ctx, req);
  v1::Job job;
  ProgressBar bar(id);
  while (reader->Read(&job)) {
    std::string detail = job.stage();
    if (job.state() == v1::Job::QUEUED) detail = fmt::format("queued, position {}", job.queue_position());
    if (job.loss() > 0) detail += fmt::format(" loss {:.4g}", job.loss());
    if (job.eta_seconds() > 0) detail += fmt::format(" eta {:.0f}s", job.eta_seconds());
    bar.update(job.progress(), detail);
  }
  bar.finish();
  check(reader->Finish());
  return job;
}

}  // namespace qdm::cli
