#include "engine/quant/tmpq/latency_table.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/kernels/qgemm.h"
#include "engine/runtime/plan/execution_plan.h"
#include "engine/runtime/quantized_weights.h"
#include "format/sha256.h"

namespace qdm::tmpq {
namespace {

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown cpu";
}

}  // namespace

double LatencyTable::ms(const Candidate& c) const {
  double per_call = rest_ms;
  for (size_t i = 0; i < layer_ms.size(); ++i) per_call += layer_ms[i].at(c.wbits[i]);
  return per_call * static_cast<double>(c.timesteps.size());
}

LatencyTable measure_latency(const QuantizerBank& bank, QuantizedUNet& q, const std::string& model_sha256,
                             const std::string& cache_dir) {
  const QGemmIsa isa = best_isa();
  LatencyTable table;
  table.machine = cpu_name() + ", " + isa_name(isa);
  std::string layers;
  for (const auto& l : bank.layers) layers += l.name + ",";
  nlohmann::json bits = bank.space.weight_bits;
  const std::string key = table.machine + "|" + model_sha256 + "|" + layers + "|" + bits.dump();
  const std::string file = cache_dir.empty() ? "" : cache_dir + "/latency-" + sha256_hex(key.data(), key.size()).substr(0, 24) + ".json";
  if (!file.empty() && std::filesystem::exists(file)) {
    try {
      const auto j = nlohmann::json::parse(std::ifstream(file));
      if (j.at("key") == key) {
        table.rest_ms = j.at("rest_ms").get<double>();
        for (const auto& row : j.at("layer_ms")) {
          std::map<int, double> m;
          for (const auto& [b, ms] : row.items()) m[std::stoi(b)] = ms.get<double>();
          table.layer_ms.push_back(m);
        }
        return table;
      }
    } catch (const std::exception&) {
      // measured again below
    }
  }
  table.layer_ms.assign(bank.layers.size(), {});
  const int reps = 20;
  std::vector<double> rest;
  for (int b : bank.space.weight_bits) {
    Candidate c;
    for (auto it = bank.space.group_timesteps.rbegin(); it != bank.space.group_timesteps.rend(); ++it) c.timesteps.push_back(it->front());
    c.wbits.assign(bank.layers.size(), b);
    // Any activation width the bank holds: u8 codes whatever the width, the kernels' time is the same.
    c.abits.assign(bank.layers.size(), bank.space.act_bits.back());
    assemble(bank, c, q);
    const std::shared_ptr<ExecutionPlan> built = make_plan(q, isa);  // the threads serving uses
    ExecutionPlan& plan = *built;
    const auto& cfg = q.unet->config();
    std::vector<float> x(static_cast<size_t>(cfg.in_channels) * cfg.sample_size * cfg.sample_size, 0.1f), out(x.size());
    const int64_t label = q.unet->null_label().value_or(0);
    const int64_t* labels = q.unet->takes_labels() ? &label : nullptr;
    const at::Tensor& prompts = q.unet->prompt_states();  // a text model: its prompt table's states
    if (prompts.defined()) plan.set_text_states(prompts.data_ptr<float>(), static_cast<int>(prompts.size(0)));
    for (int i = 0; i < 3; ++i) plan.run(x.data(), 1, c.timesteps[0], 0, labels, out.data());
    plan.set_profiling(true);
    for (int i = 0; i < reps; ++i) plan.run(x.data(), 1, c.timesteps[0], 0, labels, out.data());
    double total = 0, in_layers = 0;
    std::map<std::string, double> by_op;
    for (const auto& [name, secs] : plan.profile_ops()) {
      const double ms = 1000.0 * secs / reps;
      total += ms;
      by_op[name.substr(0, name.find(" ["))] += ms;
    }
    for (size_t i = 0; i < bank.layers.size(); ++i) {
      double ms = 0;
      for (const auto& [op, t] : by_op)  // the layer's op and its input quantization ("<layer> input")
        if (op == bank.layers[i].name || op == bank.layers[i].name + " input") ms += t;
      table.layer_ms[i][b] = ms;
      in_layers += ms;
    }
    rest.push_back(total - in_layers);
  }
  for (double r : rest) table.rest_ms += r / static_cast<double>(rest.size());
  if (!file.empty()) {
    try {
      std::filesystem::create_directories(cache_dir);
      nlohmann::json rows = nlohmann::json::array();
      for (const auto& m : table.layer_ms) {
        nlohmann::json row = nlohmann::json::object();
        for (const auto& [b, ms] : m) row[std::to_string(b)] = ms;
        rows.push_back(row);
      }
      const std::string tmp = file + ".tmp";
      std::ofstream(tmp) << nlohmann::json{{"key", key}, {"machine", table.machine}, {"rest_ms", table.rest_ms}, {"layer_ms", rows}}.dump();
      std::filesystem::rename(tmp, file);
    } catch (const std::exception&) {
      // a cache that cannot be written costs a measurement next time
    }
  }
  return table;
}

}  // namespace qdm::tmpq
