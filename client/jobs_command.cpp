// qdm jobs list|get|watch|cancel: quantize jobs on the service.
#include <fmt/format.h>

#include "client/job_view.h"
#include "client/remote.h"

namespace qdm::cli {

void add_jobs_command(CLI::App& app) {
  auto* jobs = app.add_subcommand("jobs", "Quantize jobs on the service");
  jobs->require_subcommand(1);

  auto* list = jobs->add_subcommand("list", "Jobs, newest first");
  auto remote_list = std::make_shared<RemoteArgs>();  // one per subcommand: CLI11 fills env defaults per option
  add_remote_options(list, *remote_list);
  auto states = std::make_shared<std::vector<std::string>>();
  auto page_size = std::make_shared<int>(50);
  auto all = std::make_shared<bool>(false);
  list->add_option("--state", *states, "Only jobs in these states (queued, leased, running, succeeded, failed, cancelled)");
  list->add_option("--page-size", *page_size, "Jobs per page")->capture_default_str();
  list->add_flag("--all", *all, "Follow next_page_token to the end");
  list->callback([remote = remote_list, states, page_size, all] {
    auto stub = v1::QuantizeJobs::NewStub(remote->channel());
    v1::ListJobsRequest req;
    req.set_page_size(*page_size);
    for (auto s : *states) {
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
      v1::Job::State st;
      if (!v1::Job::State_Parse(s, &st)) throw CLI::ValidationError("--state", "unknown state " + s);
      req.add_states(st);
    }
    print_job_header();
    while (true) {
      grpc::ClientContext ctx;
      remote->apply(ctx);
      v1::ListJobsResponse resp;
      check(stub->List(&ctx, req, &resp));
      for (const auto& j : resp.jobs()) print_job_row(j);
      if (!*all || resp.next_page_token().empty()) {
        if (!resp.next_page_token().empty()) fmt::print("(more: --all)\n");
        break;
      }
      req.set_page_token(resp.next_page_token());
    }
  });

  auto id = std::make_shared<std::string>();
  auto* get = jobs->add_subcommand("get", "One job in detail");
  auto remote_get = std::make_shared<RemoteArgs>();  // one per subcommand: CLI11 fills env defaults per option
  add_remote_options(get, *remote_get);
  get->add_option("id", *id, "Job id")->required();
  auto json = std::make_shared<bool>(false);
  get->add_flag("--json", *json, "The job as JSON (for scripts)");
  get->callback([remote = remote_get, id, json] {
    auto stub = v1::QuantizeJobs::NewStub(remote->channel());
    grpc::ClientContext ctx;
    remote->apply(ctx);
    v1::GetJobRequest req;
    req.set_id(*id);
    v1::Job job;
    check(stub->Get(&ctx, req, &job));
    print_job(job, *json);
  });

  auto* watch = jobs->add_subcommand("watch", "Follow a job until it finishes");
  auto remote_watch = std::make_shared<RemoteArgs>();  // one per subcommand: CLI11 fills env defaults per option
  add_remote_options(watch, *remote_watch);
  watch->add_option("id", *id, "Job id")->required();
  watch->callback([remote = remote_watch, id] {
    auto stub = v1::QuantizeJobs::NewStub(remote->channel());
    const v1::Job job = watch_job(*stub, *id, *remote);
    print_job(job);
    if (job.state() != v1::Job::SUCCEEDED) throw std::runtime_error("job " + *id + " " + state_name(job.state()));
  });

  auto* cancel = jobs->add_subcommand("cancel", "Cancel a queued or running job");
  auto remote_cancel = std::make_shared<RemoteArgs>();  // one per subcommand: CLI11 fills env defaults per option
  add_remote_options(cancel, *remote_cancel);
  cancel->add_option("id", *id, "Job id")->required();
  cancel->callback([remote = remote_cancel, id] {
    auto stub = v1::QuantizeJobs::NewStub(remote->channel());
    grpc::ClientContext ctx;
    remote->apply(ctx);
    v1::CancelJobRequest req;
    req.set_id(*id);
    v1::Job job;
    check(stub->Cancel(&ctx, req, &job));
    fmt::print("{} {}\n", job.id(), state_name(job.state()));
  });
}

}  // namespace qdm::cli
