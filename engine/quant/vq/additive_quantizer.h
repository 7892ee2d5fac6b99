// Additive vector quantization of one weight matrix (AQLM, as VQDM uses it): the columns are cut
// into groups of `group` consecutive values (a conv weight is permuted first so a group is that
// many input channels at one kernel position), and every group of every row is
//   scale[row] * (C_1[k_1] + ... + C_M[k_M])
// with M codebooks of 2^B vectors of length `group`. The objective is the layer's output error
// on its calibration inputs, tr(dW H dW^T) with H = X^T X (the inputs' second moment), so
// directions the inputs never excite cost nothing.
//
// The optimisation alternates beam search over the codes (codebooks fixed) with Adam on the
// codebooks and scales (codes fixed), from residual k-means; see ../shared/methods.md (VQDM).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

namespace qdm::vq {

struct AqCodes {
  at::Tensor codes;      // (rows, groups, M) int64, each in [0, 2^B)
  at::Tensor codebooks;  // (M, 2^B, group) float
  at::Tensor scales;     // (rows) float
  int group = 8;
};

// B: each codebook holds 2^B vectors.
inline int codebook_bits(const AqCodes& q) {
  int bits = 0;
  while ((int64_t{1} << bits) < q.codebooks.size(1)) ++bits;
  return bits;
}

// scale * sum of codewords, (rows, groups * group).
at::Tensor decode(const AqCodes& q);
// tr(dW H dW^T), dW = W - decode(q); W (rows, cols), H (cols, cols) symmetric PSD.
double objective(const at::Tensor& w, const AqCodes& q, const at::Tensor& h);

// Scales = each row's RMS (so codebooks see unit-scale groups), then codebook m by k-means on
// what codebooks 1..m-1 leave of the groups, codes by nearest codeword. Seeded.
AqCodes init_residual_kmeans(const at::Tensor& w, int codebooks, int codebook_bits, int group, uint64_t seed,
                             int kmeans_iters = 10);

// One pass over the groups in order: each group's codes re-chosen by beam search (width
// `beam`; codebook by codebook, every codeword tried for every beam entry) under the objective
// with the other groups fixed. The current codes are always a candidate, so the objective
// never rises.
void beam_search(const at::Tensor& w, const at::Tensor& h, AqCodes& q, int beam);

// `steps` Adam steps on the codebooks and scales (codes fixed) against the objective.
void adam_codebooks(const at::Tensor& w, const at::Tensor& h, AqCodes& q, int steps, double lr);

// Puts the codebooks on one integer grid whose M-term sums fit int8 (codebook m's entries within
// +-b_m, sum of b_m <= 127, shared in proportion to each codebook's largest entry; the grid step
// folded into the row scales), then re-fits the codes by one beam-search pass and the row scales
// in closed form. A decoded group is then exactly scale[row] times an int8
// vector, which the integer GEMM and lane convolution read like W8 weights: the decode is M table
// look-ups and adds per group, into a cache-resident tile, never the whole matrix.
void to_integer_codebooks(const at::Tensor& w, const at::Tensor& h, AqCodes& q, int beam);
// The int8 weights (rows, cols) the integer codebooks decode to, without the scales.
at::Tensor decode_int8(const AqCodes& q);

struct AqOptions {
  int codebooks = 3, codebook_bits = 8, group = 8;
  int beam = 8;
  int adam_steps = 100;      // per round
  double lr = 1e-3;
  int max_rounds = 20;       // beam + Adam rounds at most
  double min_gain = 0.01;    // stop when a round gains less than this (relative)
  int kmeans_iters = 10;
  uint64_t seed = 0;
};

// The whole optimisation; `progress(round, objective)` after every round may return false to
// stop (the codes so far are returned). Throws std::invalid_argument when the columns are not a
// multiple of the group or the shapes disagree.
AqCodes quantize(const at::Tensor& w, const at::Tensor& h, const AqOptions& o,
                 const std::function<bool(int round, double objective)>& progress = nullptr);

}  // namespace qdm::vq
