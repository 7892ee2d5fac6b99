// Diagnostic: per step, how the quantized model's eps differs from FP32's on FP32 trajectories
// (null class): k = <eq - ef, ef> / <ef, ef> (PTQD's correlated part), relative error, and the
// relative size of the per-pixel mean error (systematic bias over samples).
#include <torch/torch.h>
#include <cstdio>
#include "engine/artifact/artifact.h"
#include "engine/model/model_folder.h"
#include "engine/quant/calibration.h"
#include "engine/sampling/samplers.h"
#include "format/noise_schedule.h"
using namespace qdm;
int main(int argc, char** argv) {
  torch::NoGradGuard ng;
  DiffusionModel fp = load_model_folder(argv[1]);
  LoadedArtifact art = load_artifact(argv[2]);
  ModelDenoiser q = artifact_denoiser(art);
  const NoiseSchedule schedule(fp.scheduler);
  SamplerOptions so = art.info.sampler;
  int n = argc > 3 ? atoi(argv[3]) : 64;
  CalibrationSet calib = collect_calibration(fp.unet, schedule, so, n, 12345, 64);
  at::Tensor null_labels = torch::full({n}, (int64_t)fp.unet->config().null_class.value_or(0), torch::kLong);
  for (size_t i = 0; i < calib.timesteps.size(); ++i) {
    at::Tensor x = calib.inputs[i];
    int t = calib.timesteps[i];
    at::Tensor tt = torch::full({n}, (float)t);
    at::Tensor ef = fp.unet->forward(x, tt, null_labels);
    at::Tensor eq = q(x, t, (int)i, null_labels);
    at::Tensor d = eq - ef;
    double k = (d * ef).sum().item<double>() / (ef * ef).sum().item<double>();
    double rel = d.norm().item<double>() / ef.norm().item<double>();
    double bias = d.mean(0).norm().item<double>() * std::sqrt((double)n) / ef.norm().item<double>();
    double resid = (d - k * ef).norm().item<double>() / ef.norm().item<double>();
    std::printf("step %2zu t %4d  k %+.4f  rel_err %.4f  resid_after_k %.4f  mean_err_rel %.4f\n", i, t, k, rel, resid, bias);
  }
}
