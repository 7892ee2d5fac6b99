#include "engine/quant/tmpq/tmpq_recipe.h"

#include <chrono>

#include "engine/quant/tmpq/latency_table.h"
#include "engine/quant/tmpq/quantizer_bank.h"
#include "engine/quant/tmpq/search.h"

namespace qdm {

QuantizeResult quantize_tmpq(const DiffusionModel& model, const RecipeOptions& o, const RecipeEnvironment& env,
                             const QuantizeCallback& progress) {
  using namespace tmpq;
  auto report = [&](const std::string& stage, int done, int total, double loss = 0) {
    report_stage(progress, stage, done, total, loss);
    return true;
  };
  QuantizeResult result;
  QuantSpec spec = o.spec;
  spec.steps = o.search.steps;
  result.model = std::make_unique<QuantizedUNet>(clone_unet(model), spec);
  QuantizedUNet& q = *result.model;
  for (auto& p : q.unet->parameters()) p.set_requires_grad(false);

  auto t0 = std::chrono::steady_clock::now();
  const QuantizerBank bank = build_bank(model, q, o, [&](const std::string& stage, int d, int t) { return report(stage, d, t); });
  result.timings["quantizer_bank"] = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  report("kernel latency", 0, 1);
  const LatencyTable latency = measure_latency(bank, q, model.weights_sha256, env.cache_dir.empty() ? "" : env.cache_dir + "/latency");
  result.timings["kernel_latency"] = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  const SearchOutcome s = search(model, bank, q, latency, o, env, [&](const std::string& stage, int d, int t, double loss) {
    return report(stage, d, t, loss);
  });
  result.timings["search"] = seconds_since(t0);

  result.timesteps = s.best.timesteps;
  result.sampler = o.sampler;
  result.sampler.timesteps = s.best.timesteps;
  result.sampler.steps = static_cast<int>(s.best.timesteps.size());
  nlohmann::json bits = nlohmann::json::object();
  for (size_t i = 0; i < bank.layers.size(); ++i)
    bits[bank.layers[i].name] = {{"weight_bits", s.best.wbits[i]}, {"act_bits", bank.layers[i].act ? s.best.abits[i] : 32}};
  nlohmann::json population = nlohmann::json::array();
  for (const auto& [c, f] : s.final_population)
    population.push_back({{"fitness", f}, {"bitops_vs_6bit", bitops(bank, c) / uniform_bitops(bank, 6)}, {"ms_per_image", latency.ms(c)}});
  result.report["search"] = {{"options", o.search.to_json()},
                             {"history", s.history},
                             {"resumed_from_generation", s.resumed_from},
                             {"timesteps", s.best.timesteps},
                             {"layer_bits", bits},
                             {"fitness", s.fitness},
                             {"fitness_proxy", s.proxy},
                             {"fid_fmnist_final_ranking", s.fid < 0 ? nlohmann::json() : nlohmann::json(s.fid)},
                             {"bitops", bitops(bank, s.best)},
                             {"bitops_vs_6bit", bitops(bank, s.best) / uniform_bitops(bank, 6)},
                             {"ms_per_image", latency.ms(s.best)},
                             {"latency_measured_on", latency.machine},
                             {"final_population", population}};
  result.figure_png = plot_population(s, bank);
  return result;
}

}  // namespace qdm
