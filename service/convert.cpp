#include "service/convert.h"

#include "format/recipes.h"

#include <nlohmann/json.hpp>

#include "format/artifact_metadata.h"
#include "format/json_fields.h"
#include "format/safetensors.h"

namespace qdm::service {

std::string public_message(std::string message, const std::vector<std::string>& hide) {
  for (std::string h : hide) {
    if (h.empty()) continue;
    while (h.size() > 1 && h.back() == '/') h.pop_back();
    for (const std::string cut : {h + "/", h}) {
      for (size_t pos; (pos = message.find(cut)) != std::string::npos;) message.erase(pos, cut.size());
    }
  }
  constexpr size_t kMax = 1000;
  if (message.size() > kMax) message = message.substr(0, kMax) + " (cut)";
  return message;
}

grpc::Status status_from_exception(const std::exception& e, const std::string& context,
                                   const std::vector<std::string>& hide) {
  const std::string message = public_message(context.empty() ? e.what() : context + ": " + e.what(), hide);
  if (auto* store = dynamic_cast<const StoreError*>(&e)) {
    if (store->full()) return {grpc::RESOURCE_EXHAUSTED, "the job store's disk is full; nothing was stored: " + message};
    return {grpc::UNAVAILABLE, "the job store cannot be used right now; nothing was stored, retry: " + message};
  }
  if (dynamic_cast<const std::invalid_argument*>(&e) || dynamic_cast<const ConfigError*>(&e) ||
      dynamic_cast<const ArtifactError*>(&e) || dynamic_cast<const SafeTensorsError*>(&e))
    return {grpc::INVALID_ARGUMENT, message};
  return {grpc::INTERNAL, message};
}

v1::SamplerSpec::Kind to_proto(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::kDDPM: return v1::SamplerSpec::DDPM;
    case SamplerKind::kDpmSolver2M: return v1::SamplerSpec::DPMPP_2M;
    case SamplerKind::kDDIM: break;
  }
  return v1::SamplerSpec::DDIM;
}

SamplerOptions sampler_options(const v1::SamplerSpec& spec, const SamplerOptions& defaults) {
  SamplerOptions o = defaults;
  if (spec.kind() == v1::SamplerSpec::DDPM) o.kind = SamplerKind::kDDPM;
  if (spec.kind() == v1::SamplerSpec::DDIM) o.kind = SamplerKind::kDDIM;
  if (spec.kind() == v1::SamplerSpec::DPMPP_2M) o.kind = SamplerKind::kDpmSolver2M;
  if (spec.steps() > 0 || !spec.spacing().empty()) o.timesteps.clear();  // an explicit schedule gives way
  if (spec.steps() > 0) o.steps = spec.steps();
  if (spec.kind() != v1::SamplerSpec::KIND_UNSPECIFIED || spec.eta() != 0) o.eta = spec.eta();
  if (o.kind != SamplerKind::kDDIM) o.eta = 0;
  if (!spec.spacing().empty()) o.spacing = parse_spacing(spec.spacing());
  o.validate();
  return o;
}

void to_proto(const SamplerOptions& o, v1::SamplerSpec* spec) {
  spec->set_kind(to_proto(o.kind));
  spec->set_steps(o.steps);
  spec->set_eta(o.eta);
  spec->set_spacing(spacing_name(o.spacing));
}

void apply_defaults(v1::QuantizeOptions& o) {
  const QuantizeJobOptions d;
  if (o.recipe().empty()) o.set_recipe(d.recipe.recipe);
  if (o.weight_bits() == 0) o.set_weight_bits(d.recipe.spec.weight_bits);
  if (o.act_bits() == 0) o.set_act_bits(d.recipe.spec.act_bits == 0 ? 32 : d.recipe.spec.act_bits);
  if (o.sampler().steps() == 0) o.mutable_sampler()->set_steps(d.recipe.sampler.steps);
  if (o.calib_samples() == 0) o.set_calib_samples(d.recipe.calib_samples);
  if (o.calib_seed() == 0) o.set_calib_seed(d.recipe.calib_seed);
  if (o.iters() == 0) o.set_iters(d.recipe.recon.iters);
  if (o.act_iters() == 0) o.set_act_iters(d.recipe.recon.act_iters);
  if (!o.has_keep_bits()) o.set_keep_bits(d.recipe.spec.keep_bits);
  if (!o.has_bias_samples()) o.set_bias_samples(d.recipe.bias_samples);
  if (!o.finetune().has_iters()) {  // the recipe's default
    RecipeOptions r = d.recipe;
    r.recipe = o.recipe();
    o.mutable_finetune()->set_iters(r.finetune_options().iters);
  }
  if (!o.has_fp32_layers())
    for (const auto& name : d.recipe.spec.fp32_layers) o.mutable_fp32_layers()->add_names(name);
}

QuantizeJobOptions quantize_job_options(const v1::QuantizeOptions& o) {
  QuantizeJobOptions j;
  RecipeOptions& r = j.recipe;
  r.recipe = o.recipe();
  r.spec.weight_bits = o.weight_bits();
  r.spec.act_bits = o.act_bits() == 32 ? 0 : o.act_bits();
  if (o.keep_fp_size() > 0) r.spec.keep_fp.assign(o.keep_fp().begin(), o.keep_fp().end());
  if (o.has_keep_bits()) r.spec.keep_bits = o.keep_bits();
  if (o.has_fp32_layers()) r.spec.fp32_layers.assign(o.fp32_layers().names().begin(), o.fp32_layers().names().end());
  r.sampler = sampler_options(o.sampler(), r.sampler);
  r.calib_samples = o.calib_samples();
  r.calib_seed = o.calib_seed();
  if (o.has_bias_samples()) r.bias_samples = o.bias_samples();
  r.prompts.assign(o.calibration_prompt().begin(), o.calibration_prompt().end());
  if (o.components_size() > 0) r.components.assign(o.components().begin(), o.components().end());
  r.recon.iters = o.iters();
  r.recon.act_iters = o.act_iters();
  {
    const auto& f = o.finetune();
    FinetuneOptions& d = r.finetune;
    if (f.has_iters()) d.iters = f.iters();
    if (f.samples() > 0) d.samples = f.samples();
    if (f.holdout() > 0) d.holdout = f.holdout();
    if (f.batch() > 0) d.batch = f.batch();
    if (f.lr() != 0) d.lr = f.lr();
    if (f.evals() > 0) d.evals = f.evals();
  }
  const RecipeInfo* info = find_recipe(r.recipe);  // checked by the caller (service/limits.cpp)
  if (info && info->section == RecipeSection::kSearch) {  // the sampler's steps are the searched schedule's; candidates from base_steps
    const auto& s = o.search();
    SearchOptions& d = r.search;
    if (s.base_steps() > 0) d.base_steps = s.base_steps();
    d.steps = s.steps() > 0 ? s.steps() : d.steps;
    if (s.weight_bits_size() > 0) d.weight_bits.assign(s.weight_bits().begin(), s.weight_bits().end());
    if (s.act_bits_size() > 0) d.act_bits.assign(s.act_bits().begin(), s.act_bits().end());
    if (s.population() > 0) d.population = s.population();
    if (s.top() > 0) d.top = s.top();
    if (s.mutations() > 0) d.mutations = s.mutations();
    if (s.crossovers() > 0) d.crossovers = s.crossovers();
    if (s.generations() > 0) d.generations = s.generations();
    if (s.mutation_prob() != 0) d.mutation_prob = s.mutation_prob();
    if (s.seed() != 0) d.seed = s.seed();
    if (s.fitness_images() > 0) d.fitness_images = s.fitness_images();
    if (s.final_candidates() > 0) d.final_candidates = s.final_candidates();
    if (s.has_final_images()) d.final_images = s.final_images();
    if (s.bitops_cap() != 0) d.bitops_cap = s.bitops_cap();
    if (s.ms_cap() != 0) d.ms_cap = s.ms_cap();
    if (s.group_power() != 0) d.group_power = s.group_power();
    r.sampler.steps = d.base_steps;
  }
  if (info && info->section == RecipeSection::kVq) {
    const auto& s = o.vq();
    VqOptions& d = r.vq;
    if (s.codebooks() > 0) d.codebooks = s.codebooks();
    if (s.codebook_bits() > 0) d.codebook_bits = s.codebook_bits();
    if (s.group() > 0) d.group = s.group();
    if (s.beam() > 0) d.beam = s.beam();
    if (s.max_rounds() > 0) d.max_rounds = s.max_rounds();
    if (s.adam_steps() > 0) d.adam_steps = s.adam_steps();
    if (s.step_stride() > 0) d.step_stride = s.step_stride();
    if (s.seed() != 0) d.seed = s.seed();
  }
  r.validate();
  j.report_samples = o.report_samples();
  return j;
}

void fill_report(const nlohmann::json& report, v1::QualityReport* out) {
  if (!report.is_object()) return;  // no report
  out->set_json(report.dump());
  out->set_images(report.value("images", 0));
  auto number = [&](const char* key) { return report.contains(key) && report[key].is_number() ? report[key].get<double>() : 0.0; };
  out->set_fid_fmnist(number("fid_fmnist"));
  out->set_mse_vs_fp(number("mse_vs_fp"));
  out->set_psnr_vs_fp(number("psnr_vs_fp"));
  out->set_temporal_feature_cosine(number("temporal_feature_cosine"));
}

}  // namespace qdm::service
