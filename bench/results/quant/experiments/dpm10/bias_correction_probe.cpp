// Diagnostic: per-step mean eps error of an artifact (null class, on FP32's own trajectories),
// subtracted at sampling; FID of 1000 unguided samples with and without it.
#include <torch/torch.h>
#include <cstdio>
#include "engine/eval/evaluator.h"
#include "engine/data/fashion_mnist.h"
#include "engine/model/model_folder.h"
#include "engine/runtime/loaded_model.h"
#include "engine/runtime/loaded_model.h"
#include "engine/sampling/pipeline.h"
#include "format/noise_schedule.h"
using namespace qdm;
int main(int argc, char** argv) {
  torch::NoGradGuard ng;
  DiffusionModel fp = load_model_folder(argv[1]);
  LoadedModel m = LoadedModel::from_artifact(argv[2], KernelMode::kInt);
  ModelDenoiser q = plan_denoiser(m.plan(), m.artifact_info()->timesteps, m.per_step_tables());
  ModelDenoiser f = fp32_denoiser(fp.unet);
  const int n = atoi(argv[3]);
  const bool baseline = argc > 4 && std::string(argv[4]) == "baseline";
  const NoiseSchedule schedule(fp.scheduler);
  const int null_class = *fp.unet->config().null_class;
  const SamplerOptions so = m.default_sampler();
  std::vector<at::Tensor> bias(static_cast<size_t>(so.steps));
  std::vector<double> count(static_cast<size_t>(so.steps), 0);
  {  // FP32 trajectories (seeds 100000..), the quantized model's eps error on them
    SampleRequest r;
    r.num_images = n; r.seed = 100000; r.batch_size = 64; r.sampler = so;
    r.null_class = null_class; r.class_labels.assign(n, null_class);
    sample_images(schedule, [&](const at::Tensor& x, int t, int step, const at::Tensor& labels) {
      at::Tensor ef = f(x, t, step, labels);
      at::Tensor d = (q(x, t, step, labels) - ef).sum(0);
      auto& b = bias[static_cast<size_t>(step)];
      b = b.defined() ? b + d : d;
      count[static_cast<size_t>(step)] += x.size(0);
      return ef;
    }, 1, 32, r);
  }
  for (size_t i = 0; i < bias.size(); ++i) {
    bias[i] = bias[i] / count[i];
    std::printf("step %zu bias rms %.5f\n", i, bias[i].pow(2).mean().sqrt().item<double>());
  }
  FmnistEvaluator ev("models/fmnist-classifier", default_fashion_mnist_dir());
  SampleRequest r;
  r.num_images = 1000; r.seed = 0; r.batch_size = 64; r.sampler = so;
  r.null_class = null_class; r.class_labels.assign(1000, null_class);
  at::Tensor images = sample_images(schedule, [&](const at::Tensor& x, int t, int step, const at::Tensor& labels) {
    at::Tensor e = q(x, t, step, labels);
    return baseline ? e : e - bias[static_cast<size_t>(step)].unsqueeze(0);
  }, 1, 32, r);
  QualityReport rep = ev.evaluate(images);
  std::printf("%s\n", rep.to_json().dump().c_str());
}
