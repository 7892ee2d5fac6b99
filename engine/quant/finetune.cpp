#include "engine/quant/finetune.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>
#include <stdexcept>

#include "engine/artifact/artifact.h"
#include "engine/quant/bias_correction.h"
#include "engine/quant/vq/layer_moments.h"
#include "engine/quant/vq/vq_layer.h"
#include "engine/train/adamw.h"

namespace qdm {
namespace {

// A scalar layer: its integer codes (minus zero points) fixed, each channel's scale a factor.
struct TrainedScalar {
  QuantLayer* layer;
  at::Tensor centered;  // (code - z), the weight's shape, float
  at::Tensor scale;     // (C) the recipe's scales
  at::Tensor factor;    // (C) trained, starts at 1
  at::Tensor weight() const {
    std::vector<int64_t> shape(static_cast<size_t>(centered.dim()), 1);
    shape[0] = -1;
    return centered * (scale * factor).reshape(shape);
  }
};

// A vq layer: codes fixed; codebook m = round(bound_m * unit_m) within +-bound_m, row scales a factor.
struct TrainedVq {
  QuantLayer* layer;
  vq::AqCodes codes;   // the recipe's (codebooks integers, float)
  at::Tensor bound;    // (M, 1, 1) each codebook's largest magnitude: the sums stay within int8
  at::Tensor unit;     // (M, 2^B, group) trained, codebooks / bound
  at::Tensor factor;   // (rows) trained, starts at 1
  std::vector<int64_t> shape;
  at::Tensor integer_codebooks() const {
    const at::Tensor c = unit * bound;
    const at::Tensor rounded = c + (at::round(c) - c).detach();  // straight-through
    return at::minimum(at::maximum(rounded, -bound), bound);
  }
  vq::AqCodes current() const {
    vq::AqCodes q = codes;
    q.codebooks = integer_codebooks();
    q.scales = codes.scales * factor;
    return q;
  }
  at::Tensor weight() const { return vq::from_group_order(vq::decode(current()), shape); }
};

double holdout_error(QuantizedUNet& q, const CalibrationSet& set, int batch) {
  at::NoGradGuard no_grad;
  double sum = 0;
  int64_t count = 0;
  for (size_t s = 0; s < set.inputs.size(); ++s) {
    const at::Tensor& xs = set.inputs[s];
    for (int64_t b = 0; b < xs.size(0); b += batch) {
      const int64_t n = std::min<int64_t>(batch, xs.size(0) - b);
      const at::Tensor e = q.forward(xs.narrow(0, b, n), set.timesteps[s], static_cast<int>(s), set.labels_of(b, n));
      sum += (e - set.eps[s].narrow(0, b, n)).pow(2).sum().item<double>();
      count += e.numel();
    }
  }
  return sum / static_cast<double>(std::max<int64_t>(count, 1));
}

// Fresh fp32 trajectories over `sampler`'s schedule (`timesteps`, the quantized model's): training,
// then held out, from seed calib_seed + 2,000,000 on; then finetune_quantized on them. Progress as
// the stages "fine-tuning data" and "fine-tuning".
FinetuneReport finetune_on_fresh_trajectories(const UNet2DModel& fp, const NoiseSchedule& schedule, const SamplerOptions& sampler,
                                              const std::vector<int>& timesteps, QuantizedUNet& q, const FinetuneOptions& f,
                                              uint64_t calib_seed, int batch, const QuantizeCallback& progress) {
  const int total = f.samples + f.holdout;
  auto trajectories = [&](int count, uint64_t seed, int offset) {
    return collect_calibration(fp, schedule, sampler, count, seed, batch, [&](int done, int all) {
      report_stage(progress, "fine-tuning data", offset * all / count + done, total * all / count);
    });
  };
  const uint64_t seed = calib_seed + 2000000;
  const CalibrationSet train = trajectories(f.samples, seed, 0);
  const CalibrationSet holdout = trajectories(f.holdout, seed + static_cast<uint64_t>(f.samples), f.samples);
  if (train.timesteps != timesteps) throw std::invalid_argument("fine-tuning: the sampler's schedule is not the artifact's");
  return finetune_quantized(q, train, holdout, f, [&](int done, int all, double loss) {
    return !progress || progress({"fine-tuning", done, all, loss});
  });
}

}  // namespace

nlohmann::json FinetuneReport::to_json() const {
  return {{"holdout_mse_before", holdout_before}, {"holdout_mse_after", holdout_after}, {"best_iter", best_iter},
          {"params", params}};
}

FinetuneReport finetune_quantized(QuantizedUNet& q, const CalibrationSet& train, const CalibrationSet& holdout,
                                  const FinetuneOptions& o, const FinetuneProgress& progress) {
  o.validate();
  if (train.inputs.size() != train.eps.size() || holdout.inputs.size() != holdout.eps.size() || train.inputs.empty())
    throw std::invalid_argument("fine-tuning needs trajectories with the fp32 model's predictions");
  if (train.timesteps != holdout.timesteps || static_cast<int>(train.timesteps.size()) != q.spec.steps)
    throw std::invalid_argument("fine-tuning: the trajectories are not over the model's schedule");
  if (train.samples() < o.batch) throw std::invalid_argument("fine-tuning: fewer trajectories than its batch");
  const bool cached = q.has_temporal_cache();

  // What trains, and its name for the optimizer's learning-rate groups.
  std::vector<TrainedScalar> scalars;
  std::vector<TrainedVq> vqs;
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::set<std::string> quantized_weights;
  for (auto& l : q.layers) {
    quantized_weights.insert(l->name + ".weight");
    if (cached && is_temporal_layer(l->name)) continue;  // replaced by the feature cache: never runs
    if (l->adaround) throw std::logic_error("fine-tuning: AdaRound not finished on " + l->name);
    if (l->vq) {
      TrainedVq v{l.get(), *l->vq, {}, {}, {}, l->fp_weight().sizes().vec()};
      const int64_t m = v.codes.codebooks.size(0);
      v.bound = v.codes.codebooks.abs().reshape({m, -1}).amax(1).clamp_min(1).reshape({m, 1, 1});
      v.unit = (v.codes.codebooks / v.bound).clone().set_requires_grad(true);
      v.factor = at::ones({v.codes.scales.size(0)}).set_requires_grad(true);
      params.push_back({"unit:" + l->name, v.unit});
      params.push_back({"factor:" + l->name, v.factor});
      vqs.push_back(std::move(v));
      continue;
    }
    const at::Tensor w = l->fake_weight.defined() ? l->fake_weight.detach() : fake_quant(l->fp_weight().detach(), l->weight_params);
    const at::Tensor codes = quantize_codes(w.reshape({w.size(0), -1}), l->weight_params).to(at::kFloat);
    TrainedScalar s{l.get(), (codes - l->weight_params.zero_point.reshape({-1, 1})).reshape(w.sizes()),
                    l->weight_params.scale.reshape({-1}).to(at::kFloat), {}};
    s.factor = at::ones({s.scale.size(0)}).set_requires_grad(true);
    params.push_back({"factor:" + l->name, s.factor});
    scalars.push_back(std::move(s));
  }
  std::vector<at::Tensor> fp_params;
  for (auto& p : q.unet->named_parameters()) {
    if (quantized_weights.count(p.key()) || (cached && is_temporal_layer(p.key()))) continue;
    p.value().set_requires_grad(true);
    fp_params.push_back(p.value());
    params.push_back({"fp:" + p.key(), p.value()});
  }
  FinetuneReport report;
  for (const auto& p : params) report.params += static_cast<int>(p.second.numel());

  auto install = [&](bool final) {
    for (auto& s : scalars) {
      if (final) {
        at::NoGradGuard no_grad;
        s.layer->weight_params.scale = (s.scale * s.factor).detach().reshape(s.layer->weight_params.scale.sizes()).clone();
        s.layer->fake_weight = s.weight().detach().clone();
      } else {
        s.layer->fake_weight = s.weight();
      }
    }
    for (auto& v : vqs) {
      if (final) {
        at::NoGradGuard no_grad;
        vq::AqCodes c = v.current();
        c.codebooks = c.codebooks.detach().clone();
        c.scales = c.scales.detach().clone();
        vq::install(*v.layer, std::move(c));
      } else {
        v.layer->fake_weight = v.weight();
      }
    }
  };
  // The kept state: every trained tensor's values at the best held-out error so far.
  std::vector<at::Tensor> best;
  auto snapshot = [&] {
    best.clear();
    for (const auto& p : params) best.push_back(p.second.detach().clone());
  };
  auto restore = [&] {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].second.copy_(best[i]);
  };
  auto evaluate = [&] {
    {
      at::NoGradGuard no_grad;
      install(false);
    }
    return holdout_error(q, holdout, o.batch);
  };

  // The kept parameters installed as the artifact stores them, nothing left requiring grad.
  auto finish = [&] {
    restore();
    install(true);
    for (auto& p : fp_params) p.set_requires_grad(false);
  };

  report.holdout_before = report.holdout_after = evaluate();
  snapshot();
  if (progress && !progress(0, o.iters, report.holdout_before)) throw QuantizeCancelled();

  AdamW::Options ao;
  ao.lr = o.lr;
  AdamW adam(params, ao);
  adam.set_lr_scale("fp:", 0.1);
  std::mt19937_64 rng(o.seed);
  const int steps = static_cast<int>(train.inputs.size());
  const int64_t n = train.samples();
  const int eval_every = std::max(1, o.iters / o.evals);
  double last_eval = report.holdout_before;
  try {
    for (int it = 1; it <= o.iters; ++it) {
      const int s = static_cast<int>(rng() % static_cast<uint64_t>(steps));
      // o.batch distinct trajectories.
      std::vector<int64_t> rows(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
      std::shuffle(rows.begin(), rows.end(), rng);
      rows.resize(static_cast<size_t>(o.batch));
      const at::Tensor index = at::tensor(rows, at::kLong);
      const at::Tensor x = train.inputs[static_cast<size_t>(s)].index_select(0, index);
      const at::Tensor target = train.eps[static_cast<size_t>(s)].index_select(0, index);
      const at::Tensor labels = train.labels.defined() ? train.labels.index_select(0, index) : at::Tensor();

      adam.zero_grad();
      install(false);
      const at::Tensor loss = (q.forward(x, train.timesteps[static_cast<size_t>(s)], s, labels) - target).pow(2).mean();
      loss.backward();
      const double lr = 0.5 * o.lr * (1 + std::cos(M_PI * (it - 1) / o.iters));  // cosine decay
      adam.step(lr);

      if (it % eval_every == 0 || it == o.iters) {
        last_eval = evaluate();
        if (last_eval < report.holdout_after) {
          report.holdout_after = last_eval;
          report.best_iter = it;
          snapshot();
        }
      }
      if (progress && !progress(it, o.iters, last_eval)) throw QuantizeCancelled();
    }
  } catch (...) {
    finish();
    throw;
  }
  finish();
  return report;
}

void finetune_stage(const DiffusionModel& model, const RecipeOptions& o, QuantizeResult& result, const QuantizeCallback& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const FinetuneReport r =
      finetune_on_fresh_trajectories(model.unet, NoiseSchedule(model.scheduler), result.sampler, result.timesteps, *result.model,
                                     o.finetune_options(), o.calib_seed, o.batch, progress);
  result.report["finetune"] = r.to_json();
  result.timings["finetune"] = seconds_since(t0);
}

FinetuneReport finetune_artifact(const DiffusionModel& source, const std::string& artifact_path, const std::string& out_path,
                                 const FinetuneOptions& f, int batch, const QuantizeCallback& progress) {
  f.validate();
  if (f.iters < 1) throw std::invalid_argument("finetune iters must be >= 1");
  const auto t0 = std::chrono::steady_clock::now();
  LoadedArtifact a = load_artifact(artifact_path);
  if (a.info.source_sha256 != source.weights_sha256)
    throw std::invalid_argument("the artifact was not quantized from this model (its source weights' sha256 differs)");
  DiffusionModel model = source;
  use_artifact_prompts(model, a);  // a pipeline: its calibration prompts' table
  for (auto& p : a.model->unet->parameters()) p.set_requires_grad(false);
  const uint64_t calib_seed = a.info.recipe.value("calib_seed", RecipeOptions{}.calib_seed);
  const FinetuneReport r = finetune_on_fresh_trajectories(model.unet, NoiseSchedule(a.info.scheduler), a.info.sampler,
                                                          a.info.timesteps, *a.model, f, calib_seed, batch, progress);
  ArtifactInfo info = a.info;
  info.recipe["finetune"] = f.to_json();
  info.timings["finetune"] = seconds_since(t0);
  if (info.report.is_object()) {
    info.report["finetune"] = r.to_json();
    info.report["measured_before_finetune"] = true;  // its images came from the weights before
  }
  std::shared_ptr<const EpsBias> bias;
  if (a.eps_bias) {  // measured on the weights before: again, on as many trajectories
    const auto t1 = std::chrono::steady_clock::now();
    bias = std::make_shared<const EpsBias>(measure_artifact_eps_bias(model, a, a.info.recipe.value("bias_samples", 256), batch,
                                                                     [&](int done, int all) {
                                                                       report_stage(progress, "eps bias", done, all);
                                                                       return true;
                                                                     }));
    info.timings["eps_bias"] = seconds_since(t1);
  }
  const std::string tmp = out_path + ".tmp";  // out_path may be artifact_path
  save_artifact(tmp, *a.model, info, bias.get(), a.pipeline_files.empty() ? nullptr : &a.pipeline_files);
  std::filesystem::rename(tmp, out_path);
  return r;
}

}  // namespace qdm
