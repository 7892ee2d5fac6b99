#include "client/job_view.h"

#include <fmt/format.h>

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

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

namespace {

// The quality report as fields a person reads; --json prints the stored JSON instead.
void print_report(const v1::QualityReport& r) {
  if (r.json().empty()) {
    fmt::print("report:    none (report_samples 0)\n");
    return;
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(r.json());
  } catch (const nlohmann::json::exception&) {
    fmt::print("report:    {}\n", r.json());
    return;
  }
  auto num = [&](const char* key) -> std::optional<double> {
    if (j.contains(key) && j[key].is_number()) return j[key].get<double>();
    return std::nullopt;
  };
  if (j.value("images", 0) == 0) fmt::print("report:    none (the job asked for no report images)\n");
  else fmt::print("report:    {} images, seeds from {}\n", j.value("images", 0), j.value("seed", 0));
  if (auto fid = num("fid_fmnist")) {
    const auto fp = num("fid_fmnist_fp");
    fmt::print("  FID-FMNIST       {:.1f}{}\n", *fid, fp ? fmt::format(" (fp32 {:.1f}, {:+.1f}%)", *fp, 100 * (*fid - *fp) / *fp) : "");
  }
  if (auto psnr = num("psnr_vs_fp")) fmt::print("  PSNR vs fp32     {:.2f} dB\n", *psnr);
  if (auto mse = num("mse_vs_fp")) fmt::print("  MSE vs fp32      {:.5f}\n", *mse);
  if (auto px = num("max_abs_pixel_vs_fp")) fmt::print("  max pixel diff   {:.0f} levels\n", *px);
  if (auto cos = num("temporal_feature_cosine")) fmt::print("  temporal cosine  {:.4f}\n", *cos);
  if (j.contains("timings") && j["timings"].is_object()) {
    std::string t;
    for (const auto& [stage, secs] : j["timings"].items())
      if (secs.is_number()) t += fmt::format("{}{} {:.0f} s", t.empty() ? "" : ", ", stage, secs.get<double>());
    fmt::print("  timings          {}\n", t);
  }
}

}  // namespace

void print_job(const v1::Job& j, bool json) {
  if (json) {
    std::string out;
    google::protobuf::util::JsonPrintOptions o;
    o.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(j, &out, o);
    fmt::print("{}", out);
    return;
  }
  fmt::print("id:        {}\nstate:     {}\nmodel:     {}\nrecipe:    {} w{}a{} ({} steps)\nstage:     {}\n"
             "progress:  {:.1f}%\nattempt:   {}\nworker:    {}\n",
             j.id(), state_name(j.state()), j.model(), j.options().recipe(), j.options().weight_bits(),
             j.options().act_bits(), j.options().sampler().steps(), j.stage(), j.progress() * 100, j.attempt(), j.worker());
  if (j.state() == v1::Job::QUEUED) fmt::print("queue pos: {}\n", j.queue_position());
  if (j.eta_seconds() > 0) fmt::print("eta:       {:.0f} s\n", j.eta_seconds());
  if (!j.estimated_memory().empty()) fmt::print("memory:    about {}\n", j.estimated_memory());
  if (!j.error().empty()) fmt::print("error:     {}\n", j.error());
  if (j.state() == v1::Job::SUCCEEDED) {
    fmt::print("artifact:  {}\n", j.artifact());
    print_report(j.report());
  }
}

v1::Job watch_job(v1::QuantizeJobs::StubInterface& stub, const std::string& id, const RemoteArgs& remote) {
  grpc::ClientContext ctx;
  service::add_bearer(ctx, remote.token);  // no deadline: a watch lasts as long as the job
  v1::WatchJobRequest req;
  req.set_id(id);
  auto reader = stub.Watch(&ctx, req);
  v1::Job job;
  ProgressBar bar(id, true);
  while (reader->Read(&job)) {
    std::string detail = job.stage();
    if (job.state() == v1::Job::QUEUED) detail = fmt::format("queued, position {}", job.queue_position());
    if (job.loss() > 0) detail += fmt::format(" loss {:.4g}", job.loss());
    if (job.eta_seconds() > 0) detail += fmt::format(" eta {:.0f}s", job.eta_seconds());
    bar.update(job.progress(), detail, state_name(job.state()) + ":" + job.stage().substr(0, job.stage().find(':')));
  }
  bar.finish();
  check(reader->Finish());
  return job;
}

}  // namespace qdm::cli
