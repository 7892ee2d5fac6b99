// One UNet forward of a model folder (FP32, LibTorch) or an artifact (the execution plan, the
// per-layer integer kernels or the simulation), timed: the medians of `reps` calls on a batch of
// `batch` images at t = 500, as bench/peer_speed.sh compares them with ONNX Runtime. Prints one
// JSON line; --profile adds the plan's time per kernel kind.
//
//   build/bin/qdm_forward_bench --artifact A.safetensors --batch 64 --reps 20 [--profile]
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "engine/runtime/int_layers.h"
#include "engine/runtime/loaded_model.h"
#include "engine/runtime/text_pipeline.h"
#include "engine/util/allocator.h"
#include "engine/util/threads.h"

int main(int argc, char** argv) {
  qdm::ensure_passive_omp_wait(argv);
  qdm::keep_freed_tensor_memory();
  CLI::App app{"qdm UNet forward benchmark"};
  std::string model_dir, artifact, kernels = "int";
  int batch = 1, reps = 20, warmup = 3, t = 500;
  bool profile = false;
  int chunk = 0;
  app.add_option("--model", model_dir, "diffusers model folder (FP32)");
  app.add_option("--artifact", artifact, "quantized artifact");
  app.add_option("--kernels", kernels, "int or sim (artifacts)")->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--reps", reps)->capture_default_str();
  app.add_option("--warmup", warmup)->capture_default_str();
  app.add_option("--t", t, "timestep (artifacts with per-step tables: one of their schedule's)")->capture_default_str();
  app.add_flag("--profile", profile, "time per kernel kind (execution plan only)");
  int size = 0;
  app.add_option("--size", size, "text-to-image models: the latent height and width (0: the model's default)");
  app.add_option("--chunk", chunk, "execution plan: run the batch in chunks of this many images (0: the plan's default)");
  CLI11_PARSE(app, argc, argv);
  qdm::set_compute_threads();
  qdm::LoadedModel model = artifact.empty() ? qdm::LoadedModel::from_folder(model_dir)
                                            : qdm::LoadedModel::from_artifact(artifact, qdm::parse_kernel_mode(kernels));
  const auto& cfg = model.config();
  // A timestep the model accepts: the artifact's schedule step nearest t.
  int step = 0, tt = t;
  if (model.quantized()) {
    const auto& ts = model.artifact_info()->timesteps;
    size_t best = 0;
    for (size_t i = 0; i < ts.size(); ++i)
      if (std::abs(ts[i] - t) < std::abs(ts[best] - t)) best = i;
    step = static_cast<int>(best);
    tt = ts[best];
  }
  torch::NoGradGuard no_grad;
  const int side = size > 0 ? size : cfg.sample_size;
  const at::Tensor x = torch::randn({batch, cfg.in_channels, side, side});
  at::Tensor labels;
  if (cfg.conditional()) labels = at::full({batch}, static_cast<int64_t>(cfg.null_class.value_or(0)), at::kLong);
  auto plan = model.plan();
  if (size > 0) {
    if (!model.text() || !plan) throw std::invalid_argument("--size is for text-to-image models on the execution plan");
    plan = model.text()->unet(size, size);
  }
  // A text model (plan only): random text states, one entry per image.
  at::Tensor text;
  if (plan && cfg.text_conditioned() && model.text()) {
    text = torch::randn({batch, model.text()->text_length(), *cfg.cross_attention_dim});
    plan->set_text_states(text.data_ptr<float>(), static_cast<int>(batch));
    labels = at::arange(batch, at::kLong);
  }
  auto forward = [&] {
    if (plan) {
      at::Tensor out = at::empty_like(x);
      const int c = chunk > 0 ? chunk : batch;
      const int64_t per_image = x[0].numel();
      for (int i = 0; i < batch; i += c)
        plan->run(x.data_ptr<float>() + i * per_image, std::min(c, batch - i), tt, step,
                         labels.defined() ? labels.data_ptr<int64_t>() + i : nullptr, out.data_ptr<float>() + i * per_image);
    } else if (model.quantized()) {
      model.artifact_->model->forward(x, tt, step, labels);
    } else {
      model.fp->unet->forward(x, at::full({batch}, static_cast<float>(tt)), labels);
    }
  };
  for (int i = 0; i < warmup; ++i) forward();
  if (profile && plan) plan->set_profiling(true);
  qdm::IntLayerTime::reset();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    forward();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  nlohmann::json out = {{"what", plan || !artifact.empty() ? model.kernels() : "fp32 libtorch"},
                        {"batch", batch},
                        {"median_ms", ms[ms.size() / 2]},
                        {"min_ms", ms.front()},
                        {"weight_bytes", model.weight_bytes()},
                        {"peak_rss_mib", static_cast<double>(u.ru_maxrss) / 1024.0},
                        {"threads", qdm::compute_threads()}};
  if (profile && !plan && model.quantized()) {  // the per-layer path: kernels vs the rest of the graph
    const double layers = 1000.0 * qdm::IntLayerTime::layers().load() / reps, attn = 1000.0 * qdm::IntLayerTime::attention().load() / reps;
    out["profile_ms"] = {{"integer layers (quantize, im2col, GEMM / lane conv, dequantize)", layers},
                         {"integer attention cores", attn},
                         {"everything else (LibTorch ops: norms, SiLU, fp32 layers, attention projections' reshapes, concat, allocation)",
                          out["median_ms"].get<double>() - layers - attn}};
  }
  if (profile && plan) {
    nlohmann::json p = nlohmann::json::object();
    for (const auto& [kind, secs] : plan->profile()) p[kind] = 1000.0 * secs / reps;
    out["profile_ms"] = p;
    nlohmann::json ops = nlohmann::json::array();
    for (const auto& [name, secs] : plan->profile_ops()) ops.push_back({name, 1000.0 * secs / reps});
    out["ops_ms"] = ops;
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
