// qdm submit: a quantize job on the service; --watch follows it to the end.
#include <fmt/format.h>

#include "client/job_view.h"
#include "client/remote.h"
#include "format/quantize_options.h"
#include "format/recipes.h"
#include "qdm/v1/jobs.grpc.pb.h"

namespace qdm::cli {

void add_submit_command(CLI::App& app) {
  struct Args {
    RemoteArgs remote;
    // Unset options take the service's defaults, which are format/quantize_options.h's.
    std::string model, recipe, key, sampler, spacing;
    int wbits = 0, abits = 0, steps = 0, calib = 0, iters = 0, act_iters = 0;
    int report = QuantizeJobOptions{}.report_samples;
    std::vector<std::string> keep_fp;
    bool watch = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("submit", "Submit a quantize job to the service");
  add_remote_options(cmd, a->remote);
  cmd->add_option("--model", a->model, "Model name on the service (qdm models list)")->required();
  const QuantizeJobOptions d;
  cmd->add_option("--recipe", a->recipe, "Recipe: " + recipe_list() + " (default " + d.recipe.recipe + ")");
  cmd->add_option("--wbits", a->wbits, fmt::format("Weight bits, 2-8 (default {})", d.recipe.spec.weight_bits));
  cmd->add_option("--abits", a->abits, fmt::format("Activation bits, 4-8 or 32 (default {})", d.recipe.spec.act_bits));
  cmd->add_option("--steps", a->steps, fmt::format("Sampler steps the artifact is calibrated for (default {})", d.recipe.sampler.steps));
  cmd->add_option("--sampler", a->sampler, "ddim (default) or ddpm")->check(CLI::IsMember({"ddim", "ddpm"}));
  cmd->add_option("--spacing", a->spacing, "leading (default), trailing, uniform, quad");
  cmd->add_option("--calib-samples", a->calib, fmt::format("Calibration trajectories (default {})", d.recipe.calib_samples));
  cmd->add_option("--iters", a->iters, fmt::format("Reconstruction iterations per block (default {})", d.recipe.recon.iters));
  cmd->add_option("--act-iters", a->act_iters, fmt::format("LSQ iterations per block, qdiffusion (default {})", d.recipe.recon.act_iters));
  cmd->add_option("--report-samples", a->report, "Images in the quality report")->capture_default_str();
  cmd->add_option("--keep-fp", a->keep_fp, "Layer-name substrings kept in fp32");
  cmd->add_option("--idempotency-key", a->key, "Retrying with the same key returns the same job");
  cmd->add_flag("--watch", a->watch, "Follow the job until it finishes");
  cmd->callback([a] {
    auto stub = v1::QuantizeJobs::NewStub(a->remote.channel());
    v1::SubmitJobRequest req;
    req.set_model(a->model);
    req.set_idempotency_key(a->key);
    auto* o = req.mutable_options();
    o->set_recipe(a->recipe);
    o->set_weight_bits(a->wbits);
    o->set_act_bits(a->abits);
    o->mutable_sampler()->set_steps(a->steps);
    if (a->sampler == "ddpm") o->mutable_sampler()->set_kind(v1::SamplerSpec::DDPM);
    else if (a->sampler == "ddim") o->mutable_sampler()->set_kind(v1::SamplerSpec::DDIM);
    o->mutable_sampler()->set_spacing(a->spacing);
    o->set_calib_samples(a->calib);
    o->set_iters(a->iters);
    o->set_act_iters(a->act_iters);
    o->set_report_samples(a->report);
    for (const auto& k : a->keep_fp) o->add_keep_fp(k);
    grpc::ClientContext ctx;
    a->remote.apply(ctx);
    v1::Job job;
    check(stub->Submit(&ctx, req, &job));
    fmt::print("{}\n", job.id());
    if (a->watch) {
      const v1::Job last = watch_job(*stub, job.id(), a->remote);
      print_job(last);
      if (last.state() != v1::Job::SUCCEEDED) throw std::runtime_error("job " + job.id() + " " + state_name(last.state()));
    }
  });
}

}  // namespace qdm::cli
