// One head of quantized attention, softmax(Q K^T * scale) V with Q, K, V and the probabilities P
// each quantized with one activation table (u8 codes, the simulation's fake quantization), in two
// implementations that give the same bits:
//   attention_head_int    the products on the integer GEMMs (qgemm), K and V^T packed per call;
//   attention_head_exact  the same integer products on fp32 GEMMs (gemm_f32) over the operands'
//                         codes minus their zero points held as floats. Every product of two codes
//                         is an integer of at most 255^2, and every partial sum is bounded by
//                         (a row's sum of |a|) x (B's largest |b|): below 2^24 each is exact in
//                         fp32 whatever the order of the sums, so the sums equal the integer
//                         GEMM's and the dequantization (sum x (s_a s_b)) rounds once, as
//                         dequantize_output's. It checks that bound on its operands and returns
//                         false (writing nothing) where it does not hold; the caller then runs
//                         attention_head_int.
// The fp32 path skips the packing and the integer kernels' fixed costs, which pays on small heads;
// on large ones the integer GEMMs' wider multiply-adds win (attention_exact_pays).
// Torch-free; the execution plan's attention op calls them per (image, head).
#pragma once

#include <cstdint>

#include "engine/kernels/qgemm.h"

namespace qdm {

struct AttentionTables {
  ActQuant q, k, v, p;  // p: the softmax probabilities'
};

// q (len, d), k and v (len_kv, d): contiguous rows of the head's channels. out: (len, d) in rows
// of ldo floats.
void attention_head_int(QGemmIsa isa, const float* q, const float* k, const float* v, int len, int len_kv, int d,
                        const AttentionTables& t, float scale, float* out, int64_t ldo);
// `isa`: its softmax's kernel table (the products do not depend on it).
bool attention_head_exact(QGemmIsa isa, const float* q, const float* k, const float* v, int len, int len_kv, int d,
                          const AttentionTables& t, float scale, float* out, int64_t ldo);

// Whether attention_head_exact is the faster of the two for a head of this shape: at least 16 keys
// (gemm_f32's column block) and at most 2^19 multiply-adds per product. From
// bench/results/attention_heads.md (qdm_attention_bench: one head, one thread, d 32 and 64, len
// 16..1024, len_kv 8..1024, an Intel Xeon with AVX-512 VNNI): the fp32 path takes 0.6-0.95x the
// integer head's time on small heads and up to 2x on large ones (1024 x 1024 x 64), where the
// integer GEMMs' wider multiply-adds win; runs differ by about 10%, so the rule is coarse.
bool attention_exact_pays(int len, int len_kv, int d);

}  // namespace qdm
