// Fréchet distance between Gaussians fitted to two feature sets (the FID formula):
// |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), in double precision.
#pragma once

#include <ATen/ATen.h>

namespace qdm {

struct GaussianStats {
  at::Tensor mean;  // (D) double
  at::Tensor cov;   // (D, D) double, unbiased
  int64_t count = 0;
};

GaussianStats feature_stats(const at::Tensor& features);  // (N, D), N >= 2
double frechet_distance(const GaussianStats& a, const GaussianStats& b);

}  // namespace qdm
