#include "engine/quant/vq/vq_recipe.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <map>

#include "engine/quant/vq/additive_quantizer.h"
#include "engine/quant/vq/layer_moments.h"
#include "engine/quant/vq/vq_layer.h"

namespace qdm {
namespace {

// The block a layer belongs to: down_blocks.i, up_blocks.i, mid_block, or the layer itself.
std::string block_of(const std::string& name) {
  for (const char* prefix : {"down_blocks.", "up_blocks."})
    if (name.rfind(prefix, 0) == 0) return name.substr(0, name.find('.', std::string(prefix).size()));
  if (name.rfind("mid_block.", 0) == 0) return "mid_block";
  return name;
}

vq::ConvGeometry geometry(const QuantLayer& l) {
  if (l.conv) return {l.conv->kernel, l.conv->stride, l.conv->padding};
  return {0, 1, 0};
}

}  // namespace

int64_t vq_layer_bytes(int64_t rows, int64_t cols, const VqOptions& o) {
  const int64_t code_bytes = (o.codebook_bits + 7) / 8;
  return rows * (cols / o.group) * o.codebooks * code_bytes + static_cast<int64_t>(o.codebooks) * (int64_t{1} << o.codebook_bits) * o.group + 4 * rows;
}

int64_t scalar_layer_bytes(int64_t rows, int64_t cols, int bits) { return (rows * cols * bits + 7) / 8 + 8 * rows; }

QuantizeResult quantize_vq(const DiffusionModel& model, const RecipeOptions& o, const QuantizeCallback& progress) {
  auto report = [&](const std::string& stage, int done, int total, double loss = 0) {
    report_stage(progress, stage, done, total, loss);
  };
  const VqOptions& v = o.vq;
  const RecipeInfo& r = recipe_info(o.recipe);
  QuantizeResult result;
  const CalibrationSet calib = begin_quantization(model, o, progress, result);
  QuantizedUNet& q = *result.model;
  const QuantSpec& spec = q.spec;
  weight_ranges(q, /*minmax=*/false, progress, result.timings);  // the layers vq leaves scalar keep them
  // The temporal information block: exact features per step (and class), vq+cache; or scalar
  // weights learned apart against the fp32 block (TIAR), vq: bytes that match the bits.
  if (r.feature_cache) q.cache_temporal_features(model.unet, result.timesteps);
  activation_ranges(q, calib, o.batch, /*per_step=*/true, progress, result.timings);  // FSC
  if (!r.feature_cache && o.recon.iters > 0) {
    ReconOptions recon = o.recon;
    reconstruct_temporal_stage(q, model, result.timesteps, recon, progress, result.timings);
  }
  // A cached TIB never runs; a quantized one stays scalar (its bytes count among the scalar layers').
  auto cached = [&](const std::string& name) { return r.feature_cache && is_temporal_layer(name); };

  // The layers where vector quantization pays, grouped by block in model order.
  std::vector<std::pair<std::string, std::vector<QuantLayer*>>> blocks;
  int64_t vq_weights = 0, total_weights = 0, vq_bytes = 0, scalar_bytes = 0;
  for (auto& layer : q.layers) {
    if (cached(layer->name)) continue;
    const at::Tensor w = layer->fp_weight();
    const int64_t rows = w.size(0), cols = w.numel() / rows;
    total_weights += w.numel();
    const int64_t channels = layer->conv ? layer->conv->in_channels : cols;
    const bool kept = layer->weight_bits != spec.weight_bits;
    if (kept || is_temporal_layer(layer->name) || channels % v.group != 0 || vq_layer_bytes(rows, cols, v) >= scalar_layer_bytes(rows, cols, spec.weight_bits)) {
      scalar_bytes += scalar_layer_bytes(rows, cols, layer->weight_bits);
      continue;
    }
    const std::string block = block_of(layer->name);
    if (blocks.empty() || blocks.back().first != block) blocks.push_back({block, {}});
    blocks.back().second.push_back(layer.get());
  }
  // Layers left entirely in fp32 (fp32_layers, or kept layers at keep_bits 0): their fp32 bytes.
  const auto params = q.unet->named_parameters();
  for (const std::string& name : q.kept_fp) {
    if (q.layer(name) != nullptr || cached(name)) continue;
    if (const at::Tensor* w = params.find(name + ".weight")) {
      total_weights += w->numel();
      scalar_bytes += 4 * w->numel();
    }
  }
  int layers_total = 0, layers_done = 0;
  for (const auto& b : blocks) layers_total += static_cast<int>(b.second.size());

  auto t0 = std::chrono::steady_clock::now();
  nlohmann::json layer_reports = nlohmann::json::array();
  for (auto& [block, layers] : blocks) {
    // X^T X of each layer's inputs, through the model as quantized so far.
    std::map<QuantLayer*, vq::InputMoments> moments;
    for (QuantLayer* l : layers) {
      const at::Tensor w = l->fp_weight();
      auto [it, fresh] = moments.try_emplace(l, w.numel() / w.size(0), geometry(*l));
      vq::InputMoments* m = &it->second;
      l->input_tap = [m](const at::Tensor& x) { m->add(x); };
    }
    {
      at::NoGradGuard no_grad;
      const int steps = static_cast<int>(calib.inputs.size());
      for (int s = 0; s < steps; s += v.step_stride) {
        const at::Tensor& xs = calib.inputs[static_cast<size_t>(s)];
        for (int64_t b = 0; b < xs.size(0); b += o.batch) {
          const int64_t n = std::min<int64_t>(o.batch, xs.size(0) - b);
          q.forward(xs.narrow(0, b, n), calib.timesteps[static_cast<size_t>(s)], s, calib.labels_of(b, n));
        }
        report("vq inputs: " + block, s + 1, steps);
      }
    }
    for (QuantLayer* l : layers) l->input_tap = nullptr;

    for (QuantLayer* l : layers) {
      const at::Tensor w_fp = l->fp_weight().detach();
      const at::Tensor w = vq::to_group_order(w_fp).to(at::kFloat);
      const at::Tensor h = moments.at(l).h();
      vq::AqOptions ao;
      ao.codebooks = v.codebooks;
      ao.codebook_bits = v.codebook_bits;
      ao.group = v.group;
      ao.beam = v.beam;
      ao.adam_steps = v.adam_steps;
      ao.lr = v.lr;
      ao.max_rounds = v.max_rounds;
      ao.min_gain = v.min_gain;
      ao.seed = v.seed + static_cast<uint64_t>(layers_done);
      const double zero_obj = (at::matmul(w, h) * w).sum().item<double>();  // all-zero weights
      const std::string stage = "vq: " + l->name;
      vq::AqCodes codes = vq::quantize(w, h, ao, [&](int round, double objective) {
        report(stage, layers_done, layers_total, objective / std::max(zero_obj, 1e-30));
        return round < v.max_rounds;
      });
      const double float_obj = vq::objective(w, codes, h);
      vq::to_integer_codebooks(w, h, codes, v.beam);
      const double int_obj = vq::objective(w, codes, h);
      const double scalar_obj = [&] {
        const at::Tensor ws = vq::to_group_order(l->fake_weight);
        const at::Tensor d = w - ws;
        return (at::matmul(d, h) * d).sum().item<double>();
      }();
      vq::install(*l, std::move(codes));
      const int64_t rows = w.size(0), cols = w.size(1);
      vq_weights += rows * cols;
      vq_bytes += vq_layer_bytes(rows, cols, v);
      layer_reports.push_back({{"layer", l->name},
                               {"weights", rows * cols},
                               {"relative_error", float_obj / std::max(zero_obj, 1e-30)},
                               {"relative_error_int8", int_obj / std::max(zero_obj, 1e-30)},
                               {"relative_error_scalar", scalar_obj / std::max(zero_obj, 1e-30)}});
      report(stage, ++layers_done, layers_total, int_obj / std::max(zero_obj, 1e-30));
    }
  }
  result.timings["vq"] = seconds_since(t0);

  // The scalar layers left (small layers at weight_bits, kept layers) learn their rounding as
  // in tfmq: AdaRound block by block against the fp32 blocks' outputs, the vq layers fixed.
  if (o.recon.iters > 0) {
    ReconOptions recon = o.recon;
    recon.with_time_proj = false;  // cached, or reconstructed apart and frozen (TFMQ)
    recon.act_iters = 0;           // the FSC tables stay
    reconstruct_on_calibration(q, model, calib, o.recon_step_stride, recon, progress, result.timings);
  }
  q.set_act_mode(ActQuantizer::Mode::kQuantize);

  const int64_t bytes = vq_bytes + scalar_bytes;
  result.report["vq"] = {
      {"nominal_bits", v.nominal_bits()},
      {"vq_layers", layers_total},
      {"vq_weights", vq_weights},
      {"weights", total_weights},
      {"vq_bits_per_weight", vq_weights ? 8.0 * static_cast<double>(vq_bytes) / static_cast<double>(vq_weights) : 0.0},
      {"bits_per_weight", total_weights ? 8.0 * static_cast<double>(bytes) / static_cast<double>(total_weights) : 0.0},
      {"weight_bytes", bytes},
      {"layers", layer_reports}};
  return result;
}

}  // namespace qdm
