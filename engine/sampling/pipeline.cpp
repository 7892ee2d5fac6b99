#include "engine/sampling/pipeline.h"

#include <ATen/core/grad_mode.h>

#include <stdexcept>
#include <vector>

namespace qdm {

at::Tensor sample_images(const NoiseSchedule& schedule, const ModelDenoiser& denoise, int64_t channels,
                         int64_t size, const SampleRequest& request,
                         const std::function<bool(const SampleProgress&)>& on_progress) {
  if (!request.seeds.empty() && static_cast<int>(request.seeds.size()) != request.num_images)
    throw std::invalid_argument("seeds must hold one seed per image");
  if (request.num_images < 1) throw std::invalid_argument("num_images must be >= 1");
  if (request.batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
  if (!request.class_labels.empty() && static_cast<int>(request.class_labels.size()) != request.num_images)
    throw std::invalid_argument("class_labels must hold one label per image");
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (int done = 0; done < request.num_images;) {
    const int n = std::min(request.batch_size, request.num_images - done);
    SeededNoise noise = request.seeds.empty()
                            ? SeededNoise::consecutive(request.seed + static_cast<uint64_t>(done), n)
                            : SeededNoise({request.seeds.begin() + done, request.seeds.begin() + done + n});
    noise.set_device(request.device);
    StepCallback cb = nullptr;
    if (on_progress)
      cb = [&](int step, int steps) { return on_progress({done, n, step, steps, request.num_images}); };
    at::Tensor labels;
    if (!request.class_labels.empty())
      labels = at::tensor(std::vector<int64_t>(request.class_labels.begin() + done, request.class_labels.begin() + done + n),
                          at::kLong).to(request.device);
    Denoiser guided = guided_denoiser(denoise, labels, request.null_class, request.guidance_scale);
    if (request.eps_bias) guided = bias_corrected(std::move(guided), request.eps_bias, labels, request.null_class);
    out.push_back(run_sampler(schedule, request.sampler, guided, noise, channels, size, cb).cpu());
    done += n;
  }
  return at::cat(out, 0);
}

}  // namespace qdm
