#include "engine/eval/fid.h"

#include <stdexcept>

namespace qdm {
namespace {

// Symmetric PSD square root through the eigen-decomposition; tiny negative eigenvalues from
// rounding are clamped to 0.
at::Tensor sqrt_psd(const at::Tensor& m) {
  auto [values, vectors] = at::linalg_eigh(m);
  return at::matmul(vectors * values.clamp_min(0).sqrt().unsqueeze(0), vectors.transpose(0, 1));
}

}  // namespace

GaussianStats feature_stats(const at::Tensor& features) {
  if (features.dim() != 2 || features.size(0) < 2) throw std::invalid_argument("feature_stats needs (N >= 2, D)");
  const at::Tensor f = features.to(at::kDouble);
  GaussianStats s;
  s.count = f.size(0);
  s.mean = f.mean(0);
  const at::Tensor centred = f - s.mean;
  s.cov = at::matmul(centred.transpose(0, 1), centred) / static_cast<double>(s.count - 1);
  return s;
}

double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  const at::Tensor diff = a.mean - b.mean;
  const at::Tensor root_a = sqrt_psd(a.cov);
  const at::Tensor middle = at::matmul(root_a, at::matmul(b.cov, root_a));
  const at::Tensor sym = (middle + middle.transpose(0, 1)) / 2;
  const double tr_sqrt = at::linalg_eigvalsh(sym).clamp_min(0).sqrt().sum().item<double>();
  return diff.dot(diff).item<double>() + a.cov.trace().item<double>() + b.cov.trace().item<double>() - 2 * tr_sqrt;
}

}  // namespace qdm
