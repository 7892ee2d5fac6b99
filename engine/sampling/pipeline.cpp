#include "engine/sampling/pipeline.h"

#include <stdexcept>

namespace qdm {

std::vector<float> generate_images(const NoiseSchedule& schedule, const ModelFn& model, int64_t image_size,
                                   const SampleRequest& request,
                                   const std::function<bool(const SampleProgress&)>& on_progress) {
  if (!request.seeds.empty() && static_cast<int>(request.seeds.size()) != request.num_images)
    throw std::invalid_argument("seeds must hold one seed per image");
  if (request.num_images < 1) throw std::invalid_argument("num_images must be >= 1");
  if (request.batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
  if (!request.class_labels.empty() && static_cast<int>(request.class_labels.size()) != request.num_images)
    throw std::invalid_argument("class_labels must hold one label per image");
  std::vector<float> out(static_cast<size_t>(request.num_images) * image_size);
  for (int done = 0; done < request.num_images;) {
    const int n = std::min(request.batch_size, request.num_images - done);
    std::vector<uint64_t> seeds;
    for (int i = 0; i < n; ++i) seeds.push_back(request.image_seed(done + i));
    std::vector<int64_t> labels;
    if (!request.class_labels.empty())
      labels.assign(request.class_labels.begin() + done, request.class_labels.begin() + done + n);
    DenoiseFn denoise = guided_denoiser(model, labels, request.null_class, request.guidance_scale, image_size);
    if (request.eps_bias) denoise = bias_corrected(std::move(denoise), request.eps_bias, labels, request.null_class);
    StepCallback cb = nullptr;
    if (on_progress) cb = [&](int step, int steps) { return on_progress({done, n, step, steps, request.num_images}); };
    run_sampler(schedule, request.sampler, denoise, seeds, image_size, out.data() + static_cast<int64_t>(done) * image_size, cb);
    done += n;
  }
  return out;
}

}  // namespace qdm
