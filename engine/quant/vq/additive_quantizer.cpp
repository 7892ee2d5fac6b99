#include "engine/quant/vq/additive_quantizer.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/train/adamw.h"

namespace qdm::vq {
namespace {

// Squared distances (N, K) between rows of x (N, g) and c (K, g).
at::Tensor sq_dist(const at::Tensor& x, const at::Tensor& c) {
  return x.pow(2).sum(1, true) - 2 * at::matmul(x, c.t()) + c.pow(2).sum(1).unsqueeze(0);
}

// The unscaled sum of codewords per group, (rows, groups, group).
at::Tensor codeword_sums(const AqCodes& q) {
  const int64_t rows = q.codes.size(0), groups = q.codes.size(1), m = q.codes.size(2);
  at::Tensor sum = at::zeros({rows * groups, q.group}, q.codebooks.options());
  for (int64_t i = 0; i < m; ++i)
    sum = sum + q.codebooks[i].index_select(0, q.codes.select(2, i).reshape({-1}));
  return sum.reshape({rows, groups, q.group});
}

void check_shapes(const at::Tensor& w, const at::Tensor& h, int group) {
  if (w.dim() != 2 || h.dim() != 2 || h.size(0) != w.size(1) || h.size(1) != w.size(1))
    throw std::invalid_argument("additive quantization: W must be (rows, cols) and H (cols, cols)");
  if (group < 1 || w.size(1) % group != 0)
    throw std::invalid_argument("additive quantization: " + std::to_string(w.size(1)) + " columns are not a multiple of the group " +
                                std::to_string(group));
}

}  // namespace

at::Tensor decode(const AqCodes& q) {
  return (codeword_sums(q) * q.scales.reshape({-1, 1, 1})).reshape({q.codes.size(0), -1});
}

double objective(const at::Tensor& w, const AqCodes& q, const at::Tensor& h) {
  at::NoGradGuard no_grad;
  const at::Tensor dw = w - decode(q);
  return (at::matmul(dw, h) * dw).sum().item<double>();
}

AqCodes init_residual_kmeans(const at::Tensor& w, int codebooks, int codebook_bits, int group, uint64_t seed, int kmeans_iters) {
  at::NoGradGuard no_grad;
  if (w.size(1) % group != 0) throw std::invalid_argument("additive quantization: columns not a multiple of the group");
  const int64_t rows = w.size(0), groups = w.size(1) / group, k = int64_t{1} << codebook_bits;
  AqCodes q;
  q.group = group;
  q.scales = w.pow(2).mean(1).sqrt().clamp_min(1e-12);
  at::Tensor residual = (w / q.scales.unsqueeze(1)).reshape({rows * groups, group}).clone();
  q.codebooks = at::zeros({codebooks, k, group}, w.options());
  q.codes = at::zeros({rows, groups, codebooks}, at::kLong);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  for (int m = 0; m < codebooks; ++m) {
    const int64_t n = residual.size(0);
    at::Tensor centers = residual.index_select(0, at::randint(n, {k}, gen, at::kLong)).clone();
    at::Tensor assign;
    for (int it = 0; it <= kmeans_iters; ++it) {
      assign = sq_dist(residual, centers).argmin(1);
      if (it == kmeans_iters) break;
      const at::Tensor sums = at::zeros_like(centers).index_add_(0, assign, residual);
      const at::Tensor counts = at::zeros({k}, w.options()).index_add_(0, assign, at::ones({n}, w.options()));
      const at::Tensor filled = counts > 0;
      centers = at::where(filled.unsqueeze(1), sums / counts.clamp_min(1).unsqueeze(1), centers);  // empty: kept
    }
    q.codebooks[m].copy_(centers);
    q.codes.select(2, m).copy_(assign.reshape({rows, groups}));
    residual = residual - centers.index_select(0, assign);
  }
  return q;
}

void beam_search(const at::Tensor& w, const at::Tensor& h, AqCodes& q, int beam) {
  at::NoGradGuard no_grad;
  check_shapes(w, h, q.group);
  const int64_t rows = w.size(0), groups = q.codes.size(1), m = q.codes.size(2), k = q.codebooks.size(1), g = q.group;
  const at::Tensor scale = q.scales.reshape({rows, 1, 1, 1});
  at::Tensor err = w - decode(q);  // kept current as groups change
  const at::Tensor row_index = at::arange(rows, at::kLong).unsqueeze(1);
  for (int64_t gi = 0; gi < groups; ++gi) {
    const int64_t c0 = gi * g;
    const at::Tensor hgg = h.slice(0, c0, c0 + g).slice(1, c0, c0 + g);
    const at::Tensor eg = err.slice(1, c0, c0 + g);
    // The pull of the other groups' errors on this one: sum over h != g of H_gh e_h.
    const at::Tensor b = at::matmul(err, h.slice(1, c0, c0 + g)) - at::matmul(eg, hgg);
    const at::Tensor target = w.slice(1, c0, c0 + g);
    at::Tensor codes = q.codes.select(1, gi).unsqueeze(1).clone();  // (rows, beam, M)
    at::Tensor sums = at::zeros({rows, 1, g}, w.options());
    for (int64_t i = 0; i < m; ++i) sums = sums + q.codebooks[i].index_select(0, codes.select(2, i).reshape({-1})).reshape({rows, 1, g});
    for (int64_t i = 0; i < m; ++i) {
      const int64_t width = codes.size(1);
      const at::Tensor base = sums - q.codebooks[i].index_select(0, codes.select(2, i).reshape({-1})).reshape({rows, width, g});
      const at::Tensor cand = base.unsqueeze(2) + q.codebooks[i].reshape({1, 1, k, g});  // (rows, width, K, g)
      const at::Tensor e = target.reshape({rows, 1, 1, g}) - scale * cand;
      const at::Tensor f = (at::matmul(e, hgg) * e).sum(-1) + 2 * (e * b.reshape({rows, 1, 1, g})).sum(-1);  // (rows, width, K)
      const int64_t keep = std::min<int64_t>(beam, width * k);
      const auto [unused, idx] = f.reshape({rows, width * k}).topk(keep, 1, /*largest=*/false, /*sorted=*/true);
      const at::Tensor parent = at::div(idx, k, "floor"), code = idx.remainder(k);
      codes = codes.index({row_index, parent});  // (rows, keep, M)
      codes.select(2, i).copy_(code);
      sums = cand.reshape({rows, width * k, g}).index({row_index, idx});
    }
    q.codes.select(1, gi).copy_(codes.select(1, 0));
    err.slice(1, c0, c0 + g).copy_(target - q.scales.unsqueeze(1) * sums.select(1, 0));
  }
}

void adam_codebooks(const at::Tensor& w, const at::Tensor& h, AqCodes& q, int steps, double lr) {
  check_shapes(w, h, q.group);
  at::AutoGradMode grad(true);
  at::Tensor codebooks = q.codebooks.detach().clone().set_requires_grad(true);
  at::Tensor scales = q.scales.detach().clone().set_requires_grad(true);
  AdamW opt({{"codebooks", codebooks}, {"scales", scales}}, {lr});
  const double norm = std::max(1e-30, (at::matmul(w, h) * w).sum().item<double>());  // keeps the loss O(1)
  AqCodes cur = q;
  for (int s = 0; s < steps; ++s) {
    cur.codebooks = codebooks;
    cur.scales = scales;
    const at::Tensor dw = w - decode(cur);
    const at::Tensor loss = (at::matmul(dw, h) * dw).sum() / norm;
    opt.zero_grad();
    loss.backward();
    opt.step(lr);
  }
  q.codebooks = codebooks.detach();
  q.scales = scales.detach();
}

void to_integer_codebooks(const at::Tensor& w, const at::Tensor& h, AqCodes& q, int beam) {
  at::NoGradGuard no_grad;
  // One grid step for all codebooks, the int8 range shared in proportion to each codebook's
  // largest entry (residual codebooks are smaller: an equal split would waste their share).
  const int64_t m = q.codebooks.size(0);
  const at::Tensor largest = q.codebooks.abs().reshape({m, -1}).amax(1);  // (M)
  const double step = std::max(1e-30, largest.sum().item<double>() / 127.0);
  const at::Tensor bound = (largest / step).floor().reshape({m, 1, 1});  // sums to <= 127
  q.codebooks = at::minimum(at::maximum((q.codebooks / step).round(), -bound), bound);
  q.scales = q.scales * step;
  // Each row's scale refitted in closed form for its int8 vector d: argmin_s (w - s d) H (w - s d)^T.
  auto refit = [&]() {
    const at::Tensor d = codeword_sums(q).reshape({q.codes.size(0), -1});
    const at::Tensor dh = at::matmul(d, h);
    const at::Tensor num = (dh * w).sum(1), den = (dh * d).sum(1);
    q.scales = at::where(den > 0, num / den.clamp_min(1e-30), q.scales);
  };
  refit();
  beam_search(w, h, q, beam);
  refit();
}

at::Tensor decode_int8(const AqCodes& q) {
  const at::Tensor sums = codeword_sums(q).reshape({q.codes.size(0), -1});
  if (!at::equal(sums, sums.round()) || sums.abs().max().item<double>() > 127)
    throw std::logic_error("decode_int8: the codebooks are not on the int8 grid (to_integer_codebooks first)");
  return sums.to(at::kChar);
}

AqCodes quantize(const at::Tensor& w, const at::Tensor& h, const AqOptions& o,
                 const std::function<bool(int round, double objective)>& progress) {
  check_shapes(w, h, o.group);
  if (o.codebooks < 1 || o.codebook_bits < 1 || o.codebook_bits > 16 || o.beam < 1)
    throw std::invalid_argument("additive quantization: codebooks >= 1, 1 <= codebook_bits <= 16, beam >= 1");
  AqCodes q = init_residual_kmeans(w, o.codebooks, o.codebook_bits, o.group, o.seed, o.kmeans_iters);
  double prev = objective(w, q, h);
  for (int round = 1; round <= o.max_rounds; ++round) {
    AqCodes before = q;  // Adam may overshoot: a round that loses is undone
    before.codebooks = q.codebooks.clone();
    before.scales = q.scales.clone();
    before.codes = q.codes.clone();
    if (o.adam_steps > 0) adam_codebooks(w, h, q, o.adam_steps, o.lr);
    beam_search(w, h, q, o.beam);
    const double now = objective(w, q, h);
    if (now > prev) {
      q = before;
      break;
    }
    if (progress && !progress(round, now)) break;
    if (prev <= 0 || (prev - now) / prev < o.min_gain) break;
    prev = now;
  }
  return q;
}

}  // namespace qdm::vq
