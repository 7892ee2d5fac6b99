// qdm submit: a quantize job on the service; --watch follows it to the end.
#include <fmt/format.h>

#include <optional>

#include "client/job_view.h"
#include "client/remote.h"
#include "format/quantize_options.h"
#include "format/recipes.h"
#include "qdm/v1/jobs.grpc.pb.h"
#include "service/convert.h"

namespace qdm::cli {
namespace {
std::string join_ints(const std::vector<int>& v) {
  std::string out;
  for (int x : v) out += (out.empty() ? "" : ",") + std::to_string(x);
  return out;
}
}  // namespace

void add_submit_command(CLI::App& app) {
  struct Args {
    RemoteArgs remote;
    // Unset options take the service's defaults, which are format/quantize_options.h's.
    std::string model, recipe, key, sampler, spacing;
    int wbits = 0, abits = 0, steps = 0, calib = 0, iters = 0, act_iters = 0;
    int report = QuantizeJobOptions{}.report_samples;
    int base_steps = 0, population = 0, top = 0, mutations = 0, crossovers = 0, generations = 0;
    int fitness_images = 0, final_candidates = 0, final_images = -1;
    double mutation_prob = 0, bitops_cap = 0, ms_cap = 0, group_power = 0;
    uint64_t search_seed = 0;
    std::vector<int> search_wbits, search_abits;
    int codebooks = 0, codebook_bits = 0, group = 0, vq_rounds = 0;
    std::vector<std::string> keep_fp, fp32_layers;
    std::optional<int> keep_bits, bias_samples, finetune_iters;
    std::vector<std::string> calib_prompts;
    std::vector<std::string> components;
    int finetune_samples = 0, finetune_holdout = 0, finetune_batch = 0;
    double finetune_lr = 0;
    bool fp32_none = false;
    bool watch = false;
    bool dry_run = false;
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
  cmd->add_option("--sampler", a->sampler, "ddim (default), ddpm or dpmpp2m")->check(CLI::IsMember(sampler_names()));
  cmd->add_option("--spacing", a->spacing, "leading (default), trailing, uniform, quad");
  cmd->add_option("--calib-samples", a->calib, fmt::format("Calibration trajectories (default {})", d.recipe.calib_samples));
  cmd->add_option("--iters", a->iters, fmt::format("Reconstruction iterations per block (default {})", d.recipe.recon.iters));
  cmd->add_option("--act-iters", a->act_iters, fmt::format("LSQ iterations per block, qdiffusion (default {})", d.recipe.recon.act_iters));
  cmd->add_option("--report-samples", a->report, "Images in the quality report")->capture_default_str();
  cmd->add_option("--bias-samples", a->bias_samples,
                  fmt::format("Eps bias correction: fp32 trajectories it is measured on, 0 for none (default {})", d.recipe.bias_samples));
  cmd->add_option("--calib-prompt", a->calib_prompts,
                  "Text-to-image pipelines: a calibration prompt (repeat it; default: the folder's calibration_prompts.txt)");
  cmd->add_option("--components", a->components,
                  "Text-to-image pipelines: what to quantize, unet plus text_encoder and vae_decoder (W8A8) where listed (default unet)")
      ->delimiter(',');
  cmd->add_option("--finetune-iters", a->finetune_iters,
                  "Fine-tuning against the fp32 model: Adam steps, 0 for none (default: the recipe's; vq 600, others none)");
  cmd->add_option("--finetune-samples", a->finetune_samples, fmt::format("Fine-tuning: training trajectories (default {})", d.recipe.finetune.samples));
  cmd->add_option("--finetune-holdout", a->finetune_holdout, fmt::format("Fine-tuning: held-out trajectories (default {})", d.recipe.finetune.holdout));
  cmd->add_option("--finetune-batch", a->finetune_batch, fmt::format("Fine-tuning: trajectories per step (default {})", d.recipe.finetune.batch));
  cmd->add_option("--finetune-lr", a->finetune_lr, fmt::format("Fine-tuning: learning rate (default {})", d.recipe.finetune.lr));
  // tmpq: --steps is the searched schedule's length; these shape the search (0: defaults).
  cmd->add_option("--base-steps", a->base_steps, fmt::format("tmpq: candidate timesteps' DDIM schedule (default {})", d.recipe.search.base_steps));
  cmd->add_option("--group-power", a->group_power,
                  fmt::format("tmpq: timestep groups' layout, 2 the paper's, 1 even (default {})", d.recipe.search.group_power));
  cmd->add_option("--population", a->population, fmt::format("tmpq: candidates per generation (default {})", d.recipe.search.population));
  cmd->add_option("--top", a->top, fmt::format("tmpq: parents kept per generation (default {})", d.recipe.search.top));
  cmd->add_option("--mutations", a->mutations, fmt::format("tmpq: mutated children per generation (default {})", d.recipe.search.mutations));
  cmd->add_option("--crossovers", a->crossovers, fmt::format("tmpq: crossover children per generation (default {})", d.recipe.search.crossovers));
  cmd->add_option("--mutation-prob", a->mutation_prob, fmt::format("tmpq: per-gene mutation probability (default {})", d.recipe.search.mutation_prob));
  cmd->add_option("--search-seed", a->search_seed, fmt::format("tmpq: the search's seed (default {})", d.recipe.search.seed));
  cmd->add_option("--search-wbits", a->search_wbits, "tmpq: weight bit widths to search (default " + join_ints(d.recipe.search.weight_bits) + ")")->delimiter(',');
  cmd->add_option("--search-abits", a->search_abits, "tmpq: activation bit widths to search (default " + join_ints(d.recipe.search.act_bits) + ")")->delimiter(',');
  cmd->add_option("--final-candidates", a->final_candidates, fmt::format("tmpq: candidates re-ranked by FID (default {})", d.recipe.search.final_candidates));
  cmd->add_option("--generations", a->generations, fmt::format("tmpq: generations (default {})", d.recipe.search.generations));
  cmd->add_option("--fitness-images", a->fitness_images, fmt::format("tmpq: images per candidate (default {})", d.recipe.search.fitness_images));
  cmd->add_option("--final-images", a->final_images, fmt::format("tmpq: images for the final FID ranking (default {})", d.recipe.search.final_images));
  cmd->add_option("--bitops-cap", a->bitops_cap, "tmpq: BitOPs cap, x the all-6-bit model's (default 1)");
  cmd->add_option("--ms-cap", a->ms_cap, "tmpq: measured ms per image cap (default none)");
  cmd->add_option("--codebooks", a->codebooks, fmt::format("vq: codebooks per group (default {})", d.recipe.vq.codebooks));
  cmd->add_option("--codebook-bits", a->codebook_bits, fmt::format("vq: bits per codebook index (default {})", d.recipe.vq.codebook_bits));
  cmd->add_option("--group", a->group, fmt::format("vq: input values per group (default {})", d.recipe.vq.group));
  cmd->add_option("--vq-rounds", a->vq_rounds, fmt::format("vq: rounds per layer at most (default {})", d.recipe.vq.max_rounds));
  cmd->add_option("--keep-fp", a->keep_fp, "Layer-name substrings kept in fp32");
  cmd->add_option("--keep-bits", a->keep_bits, fmt::format("Weight bits of the --keep-fp layers, 0 for fp32 (default {})", d.recipe.spec.keep_bits));
  auto* fp32 = cmd->add_option("--fp32-layers", a->fp32_layers, "Layer-name substrings left entirely in fp32 (default conv_out)");
  cmd->add_flag("--fp32-layers-none", a->fp32_none, "Quantize the output conv too (at --keep-bits)")->excludes(fp32);
  cmd->add_option("--idempotency-key", a->key, "Retrying with the same key returns the same job");
  cmd->add_flag("--watch", a->watch, "Follow the job until it finishes");
  cmd->add_flag("--dry-run", a->dry_run, "Check the job and print its estimated peak memory without queuing it")->excludes("--watch");
  cmd->callback([a] {
    auto stub = v1::QuantizeJobs::NewStub(a->remote.channel());
    v1::SubmitJobRequest req;
    req.set_model(a->model);
    req.set_idempotency_key(a->key);
    auto* o = req.mutable_options();
    o->set_recipe(a->recipe);
    o->set_weight_bits(a->wbits);
    o->set_act_bits(a->abits);
    const RecipeInfo* info = find_recipe(a->recipe);  // the scheduler refuses an unknown one, naming the recipes
    if (info && info->section == RecipeSection::kSearch) {
      auto* s = o->mutable_search();
      s->set_steps(a->steps);
      s->set_base_steps(a->base_steps);
      s->set_population(a->population);
      s->set_top(a->top);
      s->set_mutations(a->mutations);
      s->set_crossovers(a->crossovers);
      s->set_mutation_prob(a->mutation_prob);
      s->set_seed(a->search_seed);
      for (int b : a->search_wbits) s->add_weight_bits(b);
      for (int b : a->search_abits) s->add_act_bits(b);
      s->set_final_candidates(a->final_candidates);
      s->set_generations(a->generations);
      s->set_fitness_images(a->fitness_images);
      if (a->final_images >= 0) s->set_final_images(a->final_images);
      s->set_bitops_cap(a->bitops_cap);
      s->set_ms_cap(a->ms_cap);
      s->set_group_power(a->group_power);
    } else {
      o->mutable_sampler()->set_steps(a->steps);
    }
    if (info && info->section == RecipeSection::kVq) {
      auto* v = o->mutable_vq();
      v->set_codebooks(a->codebooks);
      v->set_codebook_bits(a->codebook_bits);
      v->set_group(a->group);
      v->set_max_rounds(a->vq_rounds);
    }
    if (!a->sampler.empty()) o->mutable_sampler()->set_kind(service::to_proto(parse_sampler(a->sampler)));
    o->mutable_sampler()->set_spacing(a->spacing);
    o->set_calib_samples(a->calib);
    o->set_iters(a->iters);
    o->set_act_iters(a->act_iters);
    o->set_report_samples(a->report);
    for (const auto& k : a->keep_fp) o->add_keep_fp(k);
    if (a->keep_bits) o->set_keep_bits(*a->keep_bits);
    if (a->bias_samples) o->set_bias_samples(*a->bias_samples);
    for (const auto& p : a->calib_prompts) o->add_calibration_prompt(p);
    for (const auto& c : a->components) o->add_components(c);
    if (a->finetune_iters) o->mutable_finetune()->set_iters(*a->finetune_iters);
    if (a->finetune_samples || a->finetune_holdout || a->finetune_batch || a->finetune_lr != 0) {
      auto* f = o->mutable_finetune();
      f->set_samples(a->finetune_samples);
      f->set_holdout(a->finetune_holdout);
      f->set_batch(a->finetune_batch);
      f->set_lr(a->finetune_lr);
    }
    if (a->fp32_none || !a->fp32_layers.empty()) {
      auto* layers = o->mutable_fp32_layers();
      for (const auto& k : a->fp32_layers) layers->add_names(k);
    }
    grpc::ClientContext ctx;
    a->remote.apply(ctx);
    req.set_validate_only(a->dry_run);
    v1::Job job;
    check(stub->Submit(&ctx, req, &job));
    if (a->dry_run) {
      fmt::print("valid: {} {} w{}a{}, estimated peak memory {} ({} bytes)\n", job.model(), job.options().recipe(),
                 job.options().weight_bits(), job.options().act_bits(), job.estimated_memory(), job.estimated_memory_bytes());
      return;
    }
    fmt::print("{}\n", job.id());
    if (a->watch) {
      const v1::Job last = watch_job(*stub, job.id(), a->remote);
      print_job(last);
      if (last.state() != v1::Job::SUCCEEDED) throw std::runtime_error("job " + job.id() + " " + state_name(last.state()));
    }
  });
}

}  // namespace qdm::cli
