#include "engine/quant/quality.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "engine/sampling/images.h"

namespace qdm {

ImageAgreement compare_images(const at::Tensor& images, const at::Tensor& reference) {
  const at::Tensor a = (images.clamp(-1, 1) + 1) / 2, b = (reference.clamp(-1, 1) + 1) / 2;
  const at::Tensor mse = (a - b).pow(2).flatten(1).mean(1);  // per image
  ImageAgreement r;
  r.mse = mse.mean().item<double>();
  r.psnr = (10 * at::log10(1.0 / mse.clamp_min(1e-12))).mean().item<double>();
  r.max_abs_pixel = (to_uint8_hwc(images).to(at::kInt) - to_uint8_hwc(reference).to(at::kInt)).abs().max().item<double>();
  return r;
}

double temporal_feature_cosine(UNet2DModel fp, QuantizedUNet& q, const std::vector<int>& timesteps) {
  at::NoGradGuard no_grad;
  double total = 0;
  int count = 0;
  const at::Tensor labels = every_class_label(fp->config());  // every (t, class) of a conditional model
  const int64_t rows = labels.defined() ? labels.size(0) : 1;
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const at::Tensor t = at::full({rows}, static_cast<float>(timesteps[i]));
    q.step->step = static_cast<int>(i);
    const auto ref = fp->temporal_features(t, labels);
    // A cached TIB serves the fp32 features themselves.
    const auto got = q.has_temporal_cache() ? q.temporal_cache[i] : q.unet->temporal_features(t, labels);
    for (size_t k = 0; k < ref.size(); ++k) {
      total += at::cosine_similarity(ref[k], got[k], 1).mean().item<double>();
      ++count;
    }
  }
  return count ? total / count : 1.0;
}

}  // namespace qdm
