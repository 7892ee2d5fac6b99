#include "engine/quant/tmpq/quantizer_bank.h"

#include <ATen/core/grad_mode.h>

#include "engine/quant/calibration.h"
#include "engine/quant/uniform_quant.h"

namespace qdm::tmpq {
namespace {

std::vector<int> base_timesteps(const DiffusionModel& model, const RecipeOptions& o) {
  SamplerOptions base = o.sampler;
  base.timesteps.clear();
  base.steps = o.search.base_steps;
  base.spacing = TimestepSpacing::kLeading;
  return sampler_timesteps(NoiseSchedule(model.scheduler), base);
}

}  // namespace

QuantizerBank build_bank(const DiffusionModel& model, QuantizedUNet& q, const RecipeOptions& o,
                         const std::function<bool(const std::string&, int, int)>& report) {
  at::NoGradGuard no_grad;
  QuantizerBank bank;
  bank.base = base_timesteps(model, o);
  for (size_t i = 0; i < bank.base.size(); ++i) bank.index[bank.base[i]] = i;
  const int T = model.scheduler.num_train_timesteps;
  for (const auto& [lo, hi] : timestep_groups(T, o.search.steps, o.search.group_power)) {
    std::vector<int> in_group;
    for (int t : bank.base)
      if (t >= lo && t < hi) in_group.push_back(t);
    if (in_group.empty())
      throw std::invalid_argument("timestep group [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                  ") holds no timestep of the " + std::to_string(o.search.base_steps) +
                                  "-step base schedule: search fewer steps or more base steps");
    bank.space.group_timesteps.push_back(in_group);
  }
  // The first step is the base schedule's first: sampling starts from pure noise, and a first
  // step chosen lower in the top group [0.8 T, T) denoised noise as if it were x_t there (on
  // the shipped model: FID 573 at N = 10, the pixel-MSE proxy did not see it).
  auto& top = bank.space.group_timesteps.back();
  top = {top.front()};
  bank.space.weight_bits = o.search.weight_bits;
  bank.space.act_bits = o.search.act_bits;

  // Calibration data on the base schedule and an observer model with a table entry per base step.
  SamplerOptions base = o.sampler;
  base.timesteps.clear();
  base.steps = o.search.base_steps;
  base.spacing = TimestepSpacing::kLeading;
  const NoiseSchedule schedule(model.scheduler);
  const CalibrationSet calib = collect_calibration(model.unet, schedule, base, o.calib_samples, o.calib_seed, o.batch,
                                                   [&](int done, int total) {
                                                     if (!report("calibration data", done, total)) throw QuantizeCancelled();
                                                   });
  QuantSpec obs_spec = o.spec;
  obs_spec.steps = static_cast<int>(bank.base.size());
  obs_spec.weight_bits = 8;
  obs_spec.layer_bits.clear();
  QuantizedUNet obs(clone_unet(model), obs_spec);
  for (auto& l : obs.layers) l->set_weight_quant(minmax_weight_params(l->fp_weight().detach(), l->weight_bits));
  obs.cache_temporal_features(model.unet, bank.base);  // the TIB is exact: its layers are not observed
  for (auto& l : obs.layers)
    if (l->quant_input) l->act.mse_init = false;  // min/max EMA: one range serves every bit width
  observe_activations(obs, calib, o.batch, [&](int done, int total) {
    if (!report("activation ranges", done, total)) throw QuantizeCancelled();
  });
  bank.features = obs.temporal_cache;

  // The working model: the TIB replaced by the features, the kept layers at their fixed bits.
  for (auto& l : q.layers)
    if (is_temporal_layer(l->name)) l->quant_input = false;
  int done = 0;
  const int total = static_cast<int>(q.layers.size());
  for (auto& l : q.layers) {
    if (!report("weight ranges", done++, total)) throw QuantizeCancelled();
    std::shared_ptr<QuantLayer> observed = obs.layer(l->name);
    const at::Tensor w = l->fp_weight().detach();
    const bool kept = std::find(q.kept_fp.begin(), q.kept_fp.end(), l->name) != q.kept_fp.end();
    if (is_temporal_layer(l->name)) continue;  // never runs: the cached features replace the TIB
    if (kept) {
      l->set_weight_quant(mse_weight_params(w, l->weight_bits));
      bank.fixed_layers.emplace_back(observed->macs_per_image, l->weight_bits);
      continue;
    }
    LayerBank lb;
    lb.name = l->name;
    lb.layer = l.get();
    lb.act = l->quant_input;
    lb.macs = observed->macs_per_image;
    for (int b : o.search.weight_bits) {
      lb.params[b] = mse_weight_params(w, b);
      lb.fake[b] = fake_quant(w, lb.params[b]);
    }
    if (lb.act)
      for (int b : o.search.act_bits) {
        ActQuantizer a = observed->act;
        a.bits = b;
        a.finalize_per_step();
        lb.scale[b] = a.scale;
        lb.zero[b] = a.zero_point;
      }
    bank.layers.push_back(std::move(lb));
  }
  bank.space.layers = bank.layers.size();
  for (size_t i = 0; i < q.attention.size(); ++i) {
    QuantAttentionCore& src = *obs.attention[i];
    for (ActQuantizer* a : {&src.q, &src.k, &src.v}) a->finalize_per_step();
    bank.attention.push_back({q.attention[i].get(), src.q.scale, src.q.zero_point, src.k.scale, src.k.zero_point,
                              src.v.scale, src.v.zero_point, src.tokens, src.channels});
  }
  q.set_act_mode(ActQuantizer::Mode::kQuantize);
  return bank;
}

void assemble(const QuantizerBank& bank, const Candidate& c, QuantizedUNet& q) {
  std::vector<size_t> idx;
  for (int t : c.timesteps) idx.push_back(bank.index.at(t));
  auto pick = [&](const std::vector<float>& per_base) {
    std::vector<float> out;
    for (size_t i : idx) out.push_back(per_base[i]);
    return out;
  };
  q.spec.steps = static_cast<int>(idx.size());
  q.spec.layer_bits.clear();
  for (size_t i = 0; i < bank.layers.size(); ++i) {
    const LayerBank& lb = bank.layers[i];
    QuantLayer& l = *lb.layer;
    const int wb = c.wbits[i], ab = c.abits[i];
    l.weight_params = lb.params.at(wb);
    l.fake_weight = lb.fake.at(wb);
    l.weight_bits = wb;
    if (lb.act) {
      l.act.bits = ab;
      l.act.set_table(pick(lb.scale.at(ab)), pick(lb.zero.at(ab)));
      l.act.mode = ActQuantizer::Mode::kQuantize;
    }
    q.spec.layer_bits[lb.name] = {wb, lb.act ? ab : 0};
  }
  for (const auto& a : bank.attention) {
    a.core->q.set_table(pick(a.qs), pick(a.qz));
    a.core->k.set_table(pick(a.ks), pick(a.kz));
    a.core->v.set_table(pick(a.vs), pick(a.vz));
    a.core->probs.set_table(std::vector<float>(idx.size(), a.core->probs.scale.front()),
                            std::vector<float>(idx.size(), a.core->probs.zero_point.front()));
    a.core->set_mode(ActQuantizer::Mode::kQuantize);
  }
  q.temporal_cache.clear();
  for (size_t i : idx) q.temporal_cache.push_back(bank.features[i]);
}

double bitops(const QuantizerBank& bank, const Candidate& c) {
  double total = 0;
  for (size_t i = 0; i < bank.layers.size(); ++i)
    total += static_cast<double>(bank.layers[i].macs) * c.wbits[i] * (bank.layers[i].act ? c.abits[i] : 32);
  for (const auto& [macs, bits] : bank.fixed_layers) total += static_cast<double>(macs) * bits * 32;
  for (const auto& a : bank.attention)  // Q K^T and P V, 8-bit operands
    total += static_cast<double>(a.tokens) * a.tokens * a.channels * (8 * 8 + 8 * 8);
  return total;
}

double uniform_bitops(const QuantizerBank& bank, int bits) {
  Candidate c;
  c.wbits.assign(bank.layers.size(), bits);
  c.abits.assign(bank.layers.size(), bits);
  return bitops(bank, c);
}

}  // namespace qdm::tmpq
