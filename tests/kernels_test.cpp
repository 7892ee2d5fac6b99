// Every integer GEMM path this CPU has against the scalar reference (exactly, integers) and
// the dequantized output against a double-precision simulation, at awkward sizes.
#include "engine/kernels/attention.h"
#include "engine/kernels/conv_f32_dnnl.h"
#include "engine/kernels/fused.h"
#include "engine/kernels/qconv.h"
#include "engine/kernels/kernel_table.h"
#include "engine/kernels/qgemm.h"
#include "engine/kernels/upsample_fold.h"
#include "engine/kernels/vq_decode.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

namespace qdm {
namespace {

struct Problem {
  int m, n, k, bits;
};

TEST(QGemm, EveryIsaMatchesTheScalarReferenceExactly) {
  std::mt19937 rng(7);
  const auto isas = supported_isas();
  std::printf("kernel paths on this CPU:");
  for (auto isa : isas) std::printf(" %s", isa_name(isa));
  std::printf("\n");
  for (Problem p : {Problem{1, 1, 1, 4}, Problem{3, 5, 63, 4}, Problem{2, 7, 65, 8}, Problem{5, 9, 200, 4},
                    Problem{4, 16, 576, 8}, Problem{6, 13, 1152, 4}, Problem{1, 3, 64, 3}, Problem{2, 4, 130, 6},
                    Problem{7, 19, 320, 4}, Problem{9, 33, 576, 2}}) {
    const int levels = (1 << p.bits) - 1;
    std::vector<uint8_t> codes(static_cast<size_t>(p.n) * p.k);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() % (levels + 1));
    std::vector<float> scale(static_cast<size_t>(p.n)), zero(static_cast<size_t>(p.n));
    for (int i = 0; i < p.n; ++i) {
      scale[static_cast<size_t>(i)] = 0.01f + 0.001f * i;
      zero[static_cast<size_t>(i)] = static_cast<float>(rng() % (levels + 1));
    }
    const PackedWeights w = pack_weights(codes.data(), p.n, p.k, p.bits, scale.data(), zero.data());
    for (WeightLayout layout : {WeightLayout::kRows, WeightLayout::kPanels16}) {
      const PackedWeights wl = pack_weights(codes.data(), p.n, p.k, p.bits, scale.data(), zero.data(), layout);
      ASSERT_EQ(wl.col_sum, w.col_sum);
      ASSERT_EQ(wl.zero, w.zero);
      for (int r = 0; r < p.n; ++r)
        for (int c = 0; c < p.k; ++c)
          ASSERT_EQ(wl.weight(r, c) + (p.bits > 4 ? 128 : 0), codes[static_cast<size_t>(r) * p.k + c]);
    }
    std::vector<uint8_t> a(static_cast<size_t>(p.m) * w.k_padded);
    for (auto& v : a) v = static_cast<uint8_t>(rng());  // padding too: padded weights are zero
    std::vector<int32_t> ref(static_cast<size_t>(p.m) * p.n), got(ref.size());
    qgemm_s32(QGemmIsa::kScalar, a.data(), p.m, w, ref.data());
    for (QGemmIsa isa : isas) {
      const PackedWeights wi = pack_weights(codes.data(), p.n, p.k, p.bits, scale.data(), zero.data(), layout_for(isa));
      std::fill(got.begin(), got.end(), -1);
      qgemm_s32(isa, a.data(), p.m, wi, got.data());
      EXPECT_EQ(got, ref) << isa_name(isa) << " m" << p.m << " n" << p.n << " k" << p.k << " bits" << p.bits;
    }
  }
}

TEST(QGemm, DequantizedOutputMatchesTheSimulation) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  const int m = 5, n = 11, k = 150, bits = 4;
  std::vector<float> x(static_cast<size_t>(m) * k), bias(static_cast<size_t>(n));
  for (auto& v : x) v = normal(rng);
  for (auto& v : bias) v = normal(rng);
  std::vector<uint8_t> codes(static_cast<size_t>(n) * k);
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % 16);
  std::vector<float> scale(static_cast<size_t>(n), 0.05f), zero(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) zero[static_cast<size_t>(i)] = static_cast<float>(i % 16);
  const ActQuant q{0.03f, 120};
  std::vector<uint8_t> a(static_cast<size_t>(m) * padded_k(k));
  std::vector<int32_t> sums(static_cast<size_t>(m)), acc(static_cast<size_t>(m) * n);
  quantize_rows(best_isa(), x.data(), m, k, q, a.data(), sums.data());
  std::vector<float> y(static_cast<size_t>(m) * n);
  for (QGemmIsa isa : supported_isas()) {
    const PackedWeights w = pack_weights(codes.data(), n, k, bits, scale.data(), zero.data(), layout_for(isa));
    qgemm_s32(isa, a.data(), m, w, acc.data());
    dequantize_output(acc.data(), m, w, q, sums.data(), bias.data(), y.data());
    for (int r = 0; r < m; ++r) {
      for (int c = 0; c < n; ++c) {
        // Fake-quant simulation in double: dequantize both operands, multiply, add bias.
        double expect = bias[static_cast<size_t>(c)];
        for (int i = 0; i < k; ++i) {
          const int qa = std::clamp(static_cast<int>(std::nearbyint(x[static_cast<size_t>(r) * k + i] / q.scale)) + q.zero, 0, 255);
          const double xa = q.scale * (qa - q.zero);
          const double xw = scale[static_cast<size_t>(c)] * (codes[static_cast<size_t>(c) * k + i] - zero[static_cast<size_t>(c)]);
          expect += xa * xw;
        }
        EXPECT_NEAR(y[static_cast<size_t>(r) * n + c], expect, 1e-4 * (1 + std::abs(expect))) << isa_name(isa);
      }
    }
  }
}

// Activation quantization: every path gives the codes of round-half-to-even(x / s) + z
// clamped to [0, 255], row sums over the real K, and zero padding.
TEST(QGemm, ActivationQuantizationPathsAgreeWithTheDefinition) {
  const int m = 3, k = 83;  // a partial vector and a padded row
  const ActQuant q{0.5f, 7};
  std::vector<float> x(static_cast<size_t>(m) * k);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 60.0f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = i % 5 == 0 ? 0.25f * static_cast<float>(static_cast<int>(i % 40) - 20) : normal(rng);
  x[1] = 1e9f, x[2] = -1e9f;  // saturate both ends
  std::vector<uint8_t> expect(static_cast<size_t>(m) * padded_k(k), 0);
  std::vector<int32_t> expect_sums(static_cast<size_t>(m), 0);
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < k; ++c) {
      const float v = x[static_cast<size_t>(r) * k + c] / q.scale;
      const int code = std::clamp(static_cast<int>(std::nearbyint(std::clamp(v, -1e6f, 1e6f))) + q.zero, 0, 255);
      expect[static_cast<size_t>(r) * padded_k(k) + c] = static_cast<uint8_t>(code);
      expect_sums[static_cast<size_t>(r)] += code;
    }
  for (QGemmIsa isa : supported_isas()) {
    std::vector<uint8_t> a(expect.size(), 99);
    std::vector<int32_t> sums(static_cast<size_t>(m));
    quantize_rows(isa, x.data(), m, k, q, a.data(), sums.data());
    EXPECT_EQ(a, expect) << isa_name(isa);
    EXPECT_EQ(sums, expect_sums) << isa_name(isa);
  }
}

TEST(QGemm, Int4WeightsTakeHalfAByte) {
  std::vector<uint8_t> codes(64 * 128, 3);
  std::vector<float> scale(64, 1), zero(64, 0);
  EXPECT_EQ(pack_weights(codes.data(), 64, 128, 4, scale.data(), zero.data()).data.size(), 64u * 64u);
  EXPECT_EQ(pack_weights(codes.data(), 64, 128, 8, scale.data(), zero.data()).data.size(), 64u * 128u);
  EXPECT_EQ(pack_weights(codes.data(), 64, 128, 4, scale.data(), zero.data(), WeightLayout::kPanels16).data.size(), 64u * 64u);
  codes[5] = 16;
  EXPECT_THROW(pack_weights(codes.data(), 64, 128, 4, scale.data(), zero.data()), std::invalid_argument);
}

// gemm_f32 (an execution plan's fp32 layers and attention products) against a double-precision
// reference at every column layout: 32-wide blocks, the 16-wide block (an attention head's
// values), and the dot-product tail.
TEST(FusedKernels, GemmF32MatchesADoubleReferenceAtEveryColumnCount) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  for (int m : {1, 5}) for (int k : {16, 1027}) for (int n : {1, 15, 16, 17, 32, 48, 50}) {
    std::vector<float> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(k) * n), bias(static_cast<size_t>(n)), c(static_cast<size_t>(m) * n);
    for (auto& v : a) v = dist(rng);
    for (auto& v : b) v = dist(rng);
    for (auto& v : bias) v = dist(rng);
    gemm_f32(a.data(), k, m, k, b.data(), n, bias.data(), c.data(), n);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double ref = bias[static_cast<size_t>(j)], mag = std::abs(ref);
        for (int kk = 0; kk < k; ++kk) {
          const double t = static_cast<double>(a[static_cast<size_t>(i) * k + kk]) * b[static_cast<size_t>(kk) * n + j];
          ref += t;
          mag += std::abs(t);
        }
        ASSERT_NEAR(c[static_cast<size_t>(i) * n + j], ref, 1e-6 * mag + 1e-6) << "m " << m << " k " << k << " n " << n << " at " << i << "," << j;
      }
  }
}

// softmax_rows against a double-precision softmax (lane-parallel maximum and sum): every width
// around the 16 lanes, a 1,024-key row, large logits.
TEST(FusedKernels, SoftmaxRowsMatchADoubleReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 8.0f);
  for (int n : {1, 15, 16, 17, 77, 1029}) {
    const int rows = 3;
    const float scale = 0.3f;
    std::vector<float> x(static_cast<size_t>(rows) * (n + 2));
    for (auto& v : x) v = dist(rng);
    const std::vector<float> in = x;
    softmax_rows(QGemmIsa::kScalar, x.data(), n + 2, rows, n, scale);
    for (int r = 0; r < rows; ++r) {
      const float* row = in.data() + static_cast<size_t>(r) * (n + 2);
      double mx = -1e300, sum = 0, total = 0;
      for (int j = 0; j < n; ++j) mx = std::max(mx, static_cast<double>(row[j] * scale));
      for (int j = 0; j < n; ++j) sum += std::exp(static_cast<double>(row[j] * scale) - mx);
      for (int j = 0; j < n; ++j) {
        const double ref = std::exp(static_cast<double>(row[j] * scale) - mx) / sum;
        const float got = x[static_cast<size_t>(r) * (n + 2) + j];
        ASSERT_NEAR(got, ref, 2e-6 * ref + 1e-9) << "n " << n << " row " << r << " at " << j;
        total += got;
      }
      EXPECT_NEAR(total, 1.0, 1e-5) << "n " << n;
      // The two padding values past n are left alone.
      EXPECT_EQ(x[static_cast<size_t>(r) * (n + 2) + n], in[static_cast<size_t>(r) * (n + 2) + n]);
    }
    // Every instruction set's softmax gives the reference's bits (exponentials over the clamp
    // range included), and leaves the padding alone.
    std::vector<float> wide(in);
    for (size_t i = 0; i < wide.size(); i += 7) wide[i] *= 40.0f;
    std::vector<float> want = wide;
    softmax_rows(QGemmIsa::kScalar, want.data(), n + 2, rows, n, scale);
    for (QGemmIsa isa : supported_isas()) {
      std::vector<float> got = wide;
      softmax_rows(isa, got.data(), n + 2, rows, n, scale);
      ASSERT_EQ(std::memcmp(got.data(), want.data(), sizeof(float) * got.size()), 0) << isa_name(isa) << " n " << n;
    }
  }
  // A dense sweep of exponents (each row's maximum 0, then down to -88, the clamp) through every
  // ISA's exponential: 131,072 values, one ulp apart being a failure.
  const int n = 1024, rows = 128;
  std::vector<float> sweep(static_cast<size_t>(rows) * n);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < n; ++j) sweep[static_cast<size_t>(r) * n + j] = j == 0 ? 0.0f : -88.0f * (j + r / static_cast<float>(rows)) / n;
  std::vector<float> want = sweep;
  softmax_rows(QGemmIsa::kScalar, want.data(), n, rows, n, 1.0f);
  for (QGemmIsa isa : supported_isas()) {
    std::vector<float> got = sweep;
    softmax_rows(isa, got.data(), n, rows, n, 1.0f);
    ASSERT_EQ(std::memcmp(got.data(), want.data(), sizeof(float) * got.size()), 0) << isa_name(isa) << " exponent sweep";
  }
}

// One head of quantized attention on fp32 GEMMs over centred codes gives the integer GEMMs' bits
// on every instruction set (self- and cross-attention shapes, short and long sequences, tables
// with and without zero points), into strided output rows whose padding stays untouched; where
// its operands could leave fp32's exact integers (2^24) it refuses and writes nothing.
TEST(Attention, ExactFp32HeadGivesTheIntegerHeadsBitsOnEveryIsa) {
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.0f, 2.0f);
  struct Shape {
    int len, len_kv, d;
  };
  const AttentionTables centred{{12.0f / 255, 128, 255}, {12.0f / 255, 128, 255}, {8.0f / 255, 128, 255}, {1.0f / 255, 0, 255}};
  const AttentionTables offset{{10.0f / 255, 97, 255}, {14.0f / 255, 150, 255}, {6.0f / 255, 120, 255}, {0.4f / 255, 3, 255}};
  for (const AttentionTables& t : {centred, offset})
    for (const Shape s : {Shape{64, 64, 32}, Shape{16, 12, 40}, Shape{64, 77, 64}, Shape{5, 300, 24}, Shape{1024, 1024, 16}}) {
      std::vector<float> q(static_cast<size_t>(s.len) * s.d), k(static_cast<size_t>(s.len_kv) * s.d), v(k.size());
      for (auto* x : {&q, &k, &v})
        for (float& e : *x) e = g(rng);
      const float scale = 1.0f / std::sqrt(static_cast<float>(s.d));
      const int64_t ldo = s.d + 3;
      const float sentinel = -7.25f;
      std::vector<float> exact(static_cast<size_t>(s.len) * ldo, sentinel);
      ASSERT_TRUE(attention_head_exact(QGemmIsa::kScalar, q.data(), k.data(), v.data(), s.len, s.len_kv, s.d, t, scale, exact.data(), ldo))
          << s.len << "x" << s.len_kv << "x" << s.d;
      for (QGemmIsa isa : supported_isas()) {
        std::vector<float> integer(exact.size(), sentinel);
        attention_head_int(isa, q.data(), k.data(), v.data(), s.len, s.len_kv, s.d, t, scale, integer.data(), ldo);
        for (size_t i = 0; i < exact.size(); ++i)
          ASSERT_EQ(std::memcmp(&exact[i], &integer[i], sizeof(float)), 0)
              << isa_name(isa) << " " << s.len << "x" << s.len_kv << "x" << s.d << " at " << i << ": " << exact[i] << " vs " << integer[i];
      }
      for (int i = 0; i < s.len; ++i)
        for (int j = s.d; j < ldo; ++j) ASSERT_EQ(exact[static_cast<size_t>(i) * ldo + j], sentinel);
    }
  // Codes at the top of a zero-point-0 table over 300 channels: a row's sum times the largest
  // key code (300 x 255 x 255) passes 2^24, so the integer GEMMs must take it.
  const int len = 4, d = 300;
  const AttentionTables wide{{1.0f / 255, 0, 255}, {1.0f / 255, 0, 255}, {1.0f / 255, 0, 255}, {1.0f / 255, 0, 255}};
  std::vector<float> q(static_cast<size_t>(len) * d, 1.0f), k = q, v = q, out(q.size(), -7.25f);
  EXPECT_FALSE(attention_head_exact(QGemmIsa::kScalar, q.data(), k.data(), v.data(), len, len, d, wide, 0.1f, out.data(), d));
  for (float e : out) ASSERT_EQ(e, -7.25f);
}

}  // namespace
}  // namespace qdm

namespace qdm {
namespace {

// QDM_ISA names the path by name; a path this CPU lacks is refused with the ones it has. The
// process's choice (best_isa) is made once: ctest runs these tests once per path with QDM_ISA.
TEST(QGemm, InstructionSetsAreChosenByNameAndRefusedWhenAbsent) {
  EXPECT_EQ(parse_isa("scalar"), QGemmIsa::kScalar);
  for (QGemmIsa isa : supported_isas()) EXPECT_EQ(parse_isa(isa_name(isa)), isa);
  try {
    parse_isa("neon");
    ADD_FAILURE() << "neon accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("use scalar, avx2, avxvnni or avx512vnni"), std::string::npos) << e.what();
  }
  for (QGemmIsa isa : {QGemmIsa::kAvx2, QGemmIsa::kAvxVnni, QGemmIsa::kAvx512Vnni}) {
    const auto have = supported_isas();
    if (std::find(have.begin(), have.end(), isa) != have.end()) continue;
    try {
      parse_isa(isa_name(isa));
      ADD_FAILURE() << isa_name(isa) << " accepted on a CPU without it";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("not available on this CPU; it has scalar"), std::string::npos) << e.what();
    }
    EXPECT_THROW(kernel_table(isa), std::invalid_argument);
  }
  const char* env = std::getenv("QDM_ISA");
  EXPECT_EQ(best_isa(), env && *env ? parse_isa(env) : supported_isas().back());
  EXPECT_EQ(kernel_table(best_isa()).isa, best_isa());
}

// Random vq weights whose codebooks' largest magnitudes sum to at most 127.
VqWeights random_vq(std::mt19937& rng, int n, int k, int m, int bits, int group, WeightLayout layout) {
  const size_t entries = size_t{1} << bits;
  std::vector<uint8_t> codes(static_cast<size_t>(n) * (k / group) * m);
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % entries);
  std::vector<int8_t> words(static_cast<size_t>(m) * entries * group);
  const int bound = 127 / m;
  for (auto& w : words) w = static_cast<int8_t>(static_cast<int>(rng() % (2 * bound + 1)) - bound);
  std::vector<float> scale(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) scale[static_cast<size_t>(i)] = 0.002f * (i + 1);
  return make_vq_weights(n, k, m, bits, group, codes, words, scale, layout);
}

// The word-at-a-time decode equals the value-at-a-time reference, including sums that wrap a
// byte on the way (the final sums are int8); a decoded tile equals pack_weights of the same
// weights as 8-bit codes in every layout, and the GEMM on tiles equals it on the packed matrix.
TEST(VqDecode, EveryPathMatchesTheReferenceAndThePackedWeights) {
  std::mt19937 rng(17);
  struct Shape {
    int n, k, m, bits, group;
  };
  for (Shape s : {Shape{1, 8, 1, 4, 8}, Shape{5, 24, 3, 8, 8}, Shape{17, 72, 2, 6, 8}, Shape{33, 144, 4, 5, 16},
                  Shape{7, 36, 3, 3, 4}, Shape{64, 576, 3, 8, 8}}) {
    for (WeightLayout layout : {WeightLayout::kRows, WeightLayout::kPanels16}) {
      const VqWeights w = random_vq(rng, s.n, s.k, s.m, s.bits, s.group, layout);
      std::vector<int8_t> fast(static_cast<size_t>(s.n) * s.k), ref(fast.size());
      vq_decode_rows(w, 0, s.n, fast.data(), static_cast<size_t>(s.k));
      vq_decode_rows_reference(w, 0, s.n, ref.data(), static_cast<size_t>(s.k));
      ASSERT_EQ(fast, ref) << s.n << "x" << s.k;
      std::vector<uint8_t> codes(ref.size());
      for (size_t i = 0; i < ref.size(); ++i) codes[i] = static_cast<uint8_t>(ref[i] + 128);
      std::vector<float> zero(static_cast<size_t>(s.n), 128.0f);
      const PackedWeights packed = pack_weights(codes.data(), s.n, s.k, 8, w.scale.data(), zero.data(), layout);
      EXPECT_EQ(packed.col_sum, w.columns.col_sum);
      EXPECT_EQ(packed.zero, w.columns.zero);
      for (int n0 : {0, s.n / 2}) {  // a tile that starts mid-matrix
        PackedWeights tile;
        vq_decode_tile(w, n0, s.n, tile);
        for (int r = n0; r < s.n; ++r)
          for (int c = 0; c < s.k; ++c) ASSERT_EQ(tile.weight(r - n0, c), packed.weight(r, c)) << r << "," << c;
        for (QGemmIsa isa : supported_isas()) {
          if (layout_for(isa) != layout && isa != QGemmIsa::kScalar) continue;
          const int m = 3;
          std::vector<uint8_t> a(static_cast<size_t>(m) * packed.k_padded);
          for (auto& v : a) v = static_cast<uint8_t>(rng() % 256);
          std::vector<int32_t> full(static_cast<size_t>(m) * s.n), part(static_cast<size_t>(m) * (s.n - n0));
          PackedWeights packed_isa = pack_weights(codes.data(), s.n, s.k, 8, w.scale.data(), zero.data(), layout_for(isa));
          qgemm_s32(isa, a.data(), m, packed_isa, full.data());
          PackedWeights tile_isa;
          VqWeights wi = w;
          wi.columns.layout = layout_for(isa);
          vq_decode_tile(wi, n0, s.n, tile_isa);
          qgemm_s32(isa, a.data(), m, tile_isa, part.data());
          for (int r = 0; r < m; ++r)
            for (int j = n0; j < s.n; ++j)
              ASSERT_EQ(part[static_cast<size_t>(r) * (s.n - n0) + (j - n0)], full[static_cast<size_t>(r) * s.n + j]) << isa_name(isa);
        }
      }
    }
  }
}

TEST(VqDecode, RefusesWeightsThatCanLeaveInt8) {
  std::vector<int8_t> words(2 * 16 * 8, 0);
  words[0] = 100;
  words[16 * 8] = -28;  // 100 + 28 = 128 > 127
  EXPECT_THROW(make_vq_weights(1, 8, 2, 4, 8, std::vector<uint8_t>(2, 0), words, {1.0f}, WeightLayout::kRows),
               std::invalid_argument);
  words[16 * 8] = -27;
  EXPECT_NO_THROW(make_vq_weights(1, 8, 2, 4, 8, std::vector<uint8_t>(2, 0), words, {1.0f}, WeightLayout::kRows));
  EXPECT_THROW(make_vq_weights(1, 8, 2, 4, 8, std::vector<uint8_t>{0, 16}, words, {1.0f}, WeightLayout::kRows),
               std::invalid_argument);  // a code beyond its 16 entries
  EXPECT_THROW(make_vq_weights(1, 12, 2, 4, 8, std::vector<uint8_t>(2, 0), words, {1.0f}, WeightLayout::kRows),
               std::invalid_argument);  // k not a multiple of the group
}

// The four folded 2x2 phases against the definition: the codes upsampled 2x (nearest), padded
// by 1 with the zero point, and a 3x3 convolution of (a - z_a)(code - z_w), in int64.
// The lane convolution on every ISA that has one against its definition, bit for bit: the
// integer sums from the weights w'[n, k] (or an int8 weight tile), the zero-point corrections
// and dequantize_output's rounded multiply and add. Channel counts that leave a partial
// micro-kernel and transpose, pixel ranges across block boundaries, strides, 1x1, 2x2 and 3x3
// kernels, packed int4 rows (resident plans) and int8 rows, output-channel ranges, row
// redirections, NCHW and channels-last outputs.
TEST(QConv, EveryIsaMatchesTheDefinitionExactly) {
  std::mt19937 rng(21);
  struct Shape {
    int c, h, w, kernel, stride, n;
  };
  int paths = 0;
  for (QGemmIsa isa : supported_isas()) {
    if (!qconv_available(isa, 4)) continue;
    ++paths;
    for (const Shape sh : {Shape{4, 6, 7, 3, 1, 1}, Shape{12, 9, 11, 3, 1, 19}, Shape{20, 10, 9, 3, 2, 9}, Shape{36, 5, 13, 1, 1, 17},
                           Shape{8, 8, 8, 2, 1, 26}})
      for (int bits : {4, 8})
        for (bool resident : {true, false}) {
          const QConvShape s{sh.c, sh.h, sh.w, sh.kernel, sh.stride, 0};  // h, w: the padded image
          const int k = sh.kernel * sh.kernel * sh.c, n = sh.n, pix = s.ho() * s.wo();
          std::vector<uint8_t> codes(static_cast<size_t>(n) * k);
          for (auto& v : codes) v = static_cast<uint8_t>(rng() % (1u << bits));
          std::vector<float> scale(n), zero(n), bias(n);
          for (int j = 0; j < n; ++j) {
            scale[j] = 0.001f * static_cast<float>(1 + rng() % 97);
            zero[j] = static_cast<float>(rng() % (1u << bits));
            bias[j] = 0.01f * static_cast<float>(static_cast<int>(rng() % 200) - 100);
          }
          const PackedWeights w = pack_weights(codes.data(), n, k, bits, scale.data(), zero.data(), WeightLayout::kRows);
          std::vector<uint8_t> image(s.padded_bytes());
          for (auto& v : image) v = static_cast<uint8_t>(rng() % 256);
          const ActQuant q{0.037f, static_cast<int>(rng() % 256), 255};
          QConvPlan plan = resident ? qconv_resident_plan(isa, s, w, bias.data()) : qconv_plan(isa, s, w, q, bias.data());
          if (resident) qconv_set_table(plan, q);
          ASSERT_EQ(plan.nibbles, resident && bits == 4);
          // A tile of int8 rows for channels [n0, n1) replaces the weights there (the plan's
          // terms stay), as vq and the folded upsampler use it.
          const int n0 = n > 4 ? 4 : 0, n1 = n;
          // Tiles of any int8 rows, and of |w| <= 64 (plan.small_tile: folded 4-bit weights).
          std::vector<int8_t> tile(static_cast<size_t>(n1 - n0) * w.k_padded, 0), small(tile);
          for (int j = n0; j < n1; ++j)
            for (int i = 0; i < k; ++i) {
              tile[static_cast<size_t>(j - n0) * w.k_padded + i] = static_cast<int8_t>(rng() % 256);
              small[static_cast<size_t>(j - n0) * w.k_padded + i] = static_cast<int8_t>(static_cast<int>(rng() % 129) - 64);
            }
          const std::vector<int8_t>* from = nullptr;  // the tile in use, if any
          auto expect = [&](int r, int j, bool from_tile) {
            return qconv_reference(plan, image.data(), r, j,
                                   from_tile ? from->data() + static_cast<size_t>(j - n0) * w.k_padded : nullptr);
          };
          const std::string where = std::string(isa_name(isa)) + " C" + std::to_string(sh.c) + " k" + std::to_string(sh.kernel) +
                                    " s" + std::to_string(sh.stride) + " N" + std::to_string(n) + " W" + std::to_string(bits) +
                                    (resident ? " resident" : " per call");
          // NCHW, a pixel range crossing blocks.
          const int r0 = std::min(3, pix - 1), rows = pix - r0;
          std::vector<float> nchw(static_cast<size_t>(n) * pix, -7.0f);
          qconv_pixels(plan, image.data(), r0, rows, nchw.data());
          for (int j = 0; j < n; ++j)
            for (int r = r0; r < pix; ++r)
              ASSERT_EQ(nchw[static_cast<size_t>(j) * pix + r], expect(r, j, false)) << where << " NCHW pixel " << r << " channel " << j;
          // Channels-last rows of a wider matrix, channels [n0, n1), some rows redirected or dropped.
          const int64_t ld = n + 3;
          std::vector<int32_t> dest(static_cast<size_t>(pix));
          for (int r = 0; r < pix; ++r) dest[r] = r % 5 == 2 ? -1 : pix - 1 - r;
          for (int mode : {0, 1, 2}) {  // the plan's weights, a tile, a small tile
            const bool with_tile = mode > 0;
            from = mode == 1 ? &tile : &small;
            plan.small_tile = mode == 2;
            std::vector<float> rows_out(static_cast<size_t>(pix) * ld, -7.0f);
            qconv_pixels_rows(plan, image.data(), 0, pix, rows_out.data(), ld, n0, n1, with_tile ? from->data() : nullptr,
                              dest.data());
            for (int r = 0; r < pix; ++r) {
              const int d = dest[r];
              if (d < 0) continue;
              for (int j = 0; j < ld; ++j) {
                const float got = rows_out[static_cast<size_t>(d) * ld + j];
                if (j < n0 || j >= n1) ASSERT_EQ(got, -7.0f) << where << " wrote outside its channels";
                else ASSERT_EQ(got, expect(r, j, with_tile)) << where << " mode " << mode << " pixel " << r << " channel " << j;
              }
            }
            for (int r = 2; r < pix; r += 5)  // dropped pixels: their row (pix - 1 - r) receives nothing
              ASSERT_EQ(rows_out[static_cast<size_t>(pix - 1 - r) * ld + n0], -7.0f) << where << " dropped row written";
          }
        }
  }
  if (paths == 0) GTEST_SKIP() << "no lane convolution on this CPU";
  std::printf("lane convolution paths tested: %d\n", paths);
}

// The lane convolution's input: an image quantized into its padded channels-last codes as the
// simulation rounds (x / scale half to even, plus the zero point, clamped), border = zero point.
TEST(QConv, QuantizedImageFollowsTheDefinitionOnEveryIsa) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  const QConvShape s{20, 5, 7, 3, 1, 1};
  std::vector<float> x(static_cast<size_t>(s.c) * s.h * s.w);
  for (auto& v : x) v = 3 * normal(rng);
  const ActQuant q{0.05f, 100, 255};
  for (QGemmIsa isa : supported_isas()) {
    std::vector<uint8_t> padded(s.padded_bytes(), 1);
    qconv_quantize_image(isa, x.data(), s, q, padded.data());
    for (int y = 0; y < s.hp(); ++y)
      for (int xx = 0; xx < s.wp(); ++xx)
        for (int c = 0; c < s.c; ++c) {
          const bool border = y == 0 || xx == 0 || y == s.hp() - 1 || xx == s.wp() - 1;
          const float v = border ? 0 : x[(static_cast<size_t>(c) * s.h + y - 1) * s.w + xx - 1];
          const int want = border ? q.zero : static_cast<int>(std::clamp(std::nearbyint(v / q.scale) + q.zero, 0.0f, 255.0f));
          ASSERT_EQ(padded[(static_cast<size_t>(y) * s.wp() + xx) * s.c + c], want) << isa_name(isa) << " " << y << "," << xx << "," << c;
        }
  }
}

// Group norm (+ SiLU) quantized into padded codes: every ISA's kernel gives the reference's codes
// (the AVX-512 one the same operations in the same order), over channel counts with vector tails.
TEST(FusedKernels, GroupNormCodesAreTheSameOnEveryIsa) {
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  for (int c : {4, 20, 64, 131, 96})
    for (bool silu : {false, true}) {
      const PaddedShape s = c == 96 ? PaddedShape{32, 32, c, 1} : PaddedShape{5, 6, c, 1};  // 98,304 values
      const int groups = c % 4 == 0 ? 4 : 1;
      std::vector<float> x(static_cast<size_t>(s.h) * s.w * c), mean(groups), rstd(groups), gamma(c), beta(c);
      for (auto& v : x) v = 2 * normal(rng);
      for (int g = 0; g < groups; ++g) mean[g] = 0.1f * normal(rng), rstd[g] = 0.5f + 0.1f * g;
      for (int ch = 0; ch < c; ++ch) gamma[ch] = 1 + 0.1f * normal(rng), beta[ch] = 0.1f * normal(rng);
      const GroupNormApply g{c, groups, mean.data(), rstd.data(), gamma.data(), beta.data(), silu};
      const ActQuant q = c == 96 ? ActQuant{0.013f, 100, 255} : ActQuant{0.02f, 30, 255};
      std::vector<uint8_t> want(s.bytes(), 7);
      group_norm_to_padded(QGemmIsa::kScalar, x.data(), c, 0, static_cast<int64_t>(s.h) * s.w, g, q, s, want.data());
      for (QGemmIsa isa : supported_isas()) {
        std::vector<uint8_t> got(s.bytes(), 7);
        group_norm_to_padded(isa, x.data(), c, 0, static_cast<int64_t>(s.h) * s.w, g, q, s, got.data());
        EXPECT_EQ(got, want) << isa_name(isa) << " C" << c << (silu ? " silu" : "");
      }
    }
}

TEST(UpsampleFold, PhasesEqualTheUpsampledConvolutionExactly) {
  std::mt19937 rng(11);
  for (int bits : {2, 4, 5}) {
    const int c = 12, n = 5, h = 3, w = 5, k = 9 * c, z_a = 7;
    std::vector<uint8_t> codes(static_cast<size_t>(n) * k);
    std::vector<float> scale(n, 0.5f), zero(n);
    for (auto& v : codes) v = static_cast<uint8_t>(rng() % (1u << bits));
    for (auto& z : zero) z = static_cast<float>(rng() % (1u << bits));
    const PackedWeights pw = pack_weights(codes.data(), n, k, bits, scale.data(), zero.data(), WeightLayout::kRows);
    ASSERT_TRUE(upsample_fold_fits(pw, c));
    std::vector<uint8_t> low(static_cast<size_t>(h) * w * c);
    for (auto& v : low) v = static_cast<uint8_t>(rng() % 256);
    auto low_at = [&](int y, int x, int ch) {  // padded by 1 with the zero point
      return y < 0 || y >= h || x < 0 || x >= w ? z_a : static_cast<int>(low[(static_cast<size_t>(y) * w + x) * c + ch]);
    };
    for (int p = 0; p < 4; ++p) {
      const int py = p / 2, px = p % 2, kp = padded_k(4 * c);
      const PackedWeights header = upsample_fold_header(pw, c, p);
      std::vector<int8_t> rows(static_cast<size_t>(n) * kp, 99);
      upsample_fold_rows(pw, c, p, 1, n, rows.data() + kp);  // a row range
      upsample_fold_rows(pw, c, p, 0, 1, rows.data());
      for (int o = 0; o < n; ++o) {
        int64_t sum = 0;
        for (int i = 0; i < 4 * c; ++i) sum += rows[static_cast<size_t>(o) * kp + i];
        for (int i = 4 * c; i < kp; ++i) EXPECT_EQ(rows[static_cast<size_t>(o) * kp + i], 0) << "K padding";
        EXPECT_EQ(header.col_sum[o], sum);
        EXPECT_EQ(header.zero[o], 0);
        for (int i = 0; i < h; ++i)
          for (int j = 0; j < w; ++j) {
            const int oy = 2 * i + py, ox = 2 * j + px;
            int64_t want = 0, got = 0;
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx)
                for (int ch = 0; ch < c; ++ch) {
                  const int uy = oy + ky - 1, ux = ox + kx - 1;  // in the upsampled image
                  const int a = uy < 0 || uy >= 2 * h || ux < 0 || ux >= 2 * w ? z_a : low_at(uy / 2, ux / 2, ch);
                  want += static_cast<int64_t>(a - z_a) *
                          (codes[static_cast<size_t>(o) * k + (ky * 3 + kx) * c + ch] - static_cast<int>(zero[o]));
                }
            for (int ty = 0; ty < 2; ++ty)
              for (int tx = 0; tx < 2; ++tx)
                for (int ch = 0; ch < c; ++ch)
                  got += static_cast<int64_t>(low_at(i + py + ty - 1, j + px + tx - 1, ch) - z_a) *
                         rows[static_cast<size_t>(o) * kp + (ty * 2 + tx) * c + ch];
            ASSERT_EQ(got, want) << bits << "-bit, phase " << p << ", output " << o << " at " << oy << "," << ox;
          }
      }
    }
  }
}

TEST(UpsampleFold, EightBitWeightsThatLeaveInt8AreRefused) {
  const int c = 4, n = 2, k = 9 * c;
  std::vector<uint8_t> codes(static_cast<size_t>(n) * k, 255);
  std::vector<float> scale(n, 1.0f), zero(n, 0.0f);
  const PackedWeights pw = pack_weights(codes.data(), n, k, 8, scale.data(), zero.data(), WeightLayout::kRows);
  EXPECT_FALSE(upsample_fold_fits(pw, c));
  std::vector<int8_t> rows(static_cast<size_t>(padded_k(4 * c)));
  EXPECT_THROW(upsample_fold_rows(pw, c, 0, 0, 1, rows.data()), std::invalid_argument);
  codes.assign(codes.size(), 130);  // small signed weights fit even at 8 bits
  zero.assign(n, 128.0f);
  EXPECT_TRUE(upsample_fold_fits(pack_weights(codes.data(), n, k, 8, scale.data(), zero.data(), WeightLayout::kRows), c));
}

// conv_in / conv_out shapes straight from the image against a double-precision convolution,
// at awkward sizes: every branch (dot products below 16 outputs, 16-wide accumulation, the
// output tail past a multiple of 16), strides, padding, scales and biases.
TEST(ConvF32Direct, MatchesTheDefinitionAtAwkwardShapes) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  struct Shape {
    int c, n, kernel, stride, pad;
  };
  for (const Shape sh : {Shape{1, 32, 3, 1, 1}, Shape{3, 1, 3, 1, 1}, Shape{20, 3, 3, 2, 1}, Shape{1, 24, 3, 1, 1},
                         Shape{2, 40, 3, 2, 0}, Shape{7, 5, 1, 1, 0}})
    for (bool scaled : {false, true}) {
      const int h = 5, w = 7, ld = sh.c + 3, k = sh.kernel * sh.kernel * sh.c;
      const int ho = (h + 2 * sh.pad - sh.kernel) / sh.stride + 1, wo = (w + 2 * sh.pad - sh.kernel) / sh.stride + 1;
      std::vector<float> x(static_cast<size_t>(h) * w * ld), wt(static_cast<size_t>(k) * sh.n), scale(sh.n), bias(sh.n);
      for (auto& v : x) v = normal(rng);
      for (auto& v : wt) v = normal(rng);
      for (auto& v : scale) v = 0.5f + std::abs(normal(rng));
      for (auto& v : bias) v = normal(rng);
      const int ld_out = sh.n + 2;
      std::vector<float> out(static_cast<size_t>(ho) * wo * ld_out, 0.0f);
      // two calls over pixel ranges, as the plan's tasks
      const int64_t mid = ho * wo / 2;
      conv_f32_direct(x.data(), ld, h, w, sh.c, sh.kernel, sh.stride, sh.pad, 0, mid, wt.data(), sh.n,
                      scaled ? scale.data() : nullptr, bias.data(), out.data(), ld_out);
      conv_f32_direct(x.data(), ld, h, w, sh.c, sh.kernel, sh.stride, sh.pad, mid, ho * wo, wt.data(), sh.n,
                      scaled ? scale.data() : nullptr, bias.data(), out.data() + mid * ld_out, ld_out);
      for (int oy = 0; oy < ho; ++oy)
        for (int ox = 0; ox < wo; ++ox)
          for (int j = 0; j < sh.n; ++j) {
            double want = 0;
            for (int ky = 0; ky < sh.kernel; ++ky)
              for (int kx = 0; kx < sh.kernel; ++kx) {
                const int iy = oy * sh.stride - sh.pad + ky, ix = ox * sh.stride - sh.pad + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                for (int ch = 0; ch < sh.c; ++ch)
                  want += static_cast<double>(x[(static_cast<size_t>(iy) * w + ix) * ld + ch]) *
                          wt[static_cast<size_t>((ky * sh.kernel + kx) * sh.c + ch) * sh.n + j];
              }
            want = want * (scaled ? scale[j] : 1.0) + bias[j];
            ASSERT_NEAR(out[(static_cast<size_t>(oy) * wo + ox) * ld_out + j], want, 1e-4 * (1 + std::abs(want)))
                << "c " << sh.c << " n " << sh.n << " k " << sh.kernel << " stride " << sh.stride << " at " << oy << "," << ox << "," << j;
          }
    }
}

// oneDNN's fp32 convolution (where the build has it) against the definition, on slices of wider
// buffers, and the same bits whatever the number of bands an image runs in (the plan's batch
// independence rests on it).
TEST(DnnlConvF32, MatchesTheDefinitionAndIgnoresTheBands) {
  if (!DnnlConvF32::available()) GTEST_SKIP() << "built without oneDNN";
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  struct Shape {
    int c, h, n, kernel, stride, pad, ld_in, ld_out;
  };
  for (const Shape sh : {Shape{32, 16, 32, 3, 1, 1, 32, 32}, Shape{24, 9, 40, 3, 2, 1, 30, 40}, Shape{64, 8, 16, 1, 1, 0, 64, 48},
                         Shape{16, 12, 64, 3, 1, 1, 96, 64}, Shape{8, 1, 24, 1, 1, 0, 8, 24}}) {
    const int h = sh.h, w = sh.h + 1, k = sh.kernel * sh.kernel * sh.c;
    const int ho = (h + 2 * sh.pad - sh.kernel) / sh.stride + 1, wo = (w + 2 * sh.pad - sh.kernel) / sh.stride + 1;
    std::vector<float> x(static_cast<size_t>(h) * w * sh.ld_in), wt(static_cast<size_t>(k) * sh.n), bias(sh.n);
    for (auto& v : x) v = normal(rng);
    for (auto& v : wt) v = normal(rng);
    for (auto& v : bias) v = normal(rng);
    const DnnlConvF32 conv(sh.c, h, w, sh.kernel, sh.stride, sh.pad, wt.data(), sh.n, bias.data(), 3);
    std::vector<float> whole(static_cast<size_t>(ho) * wo * sh.ld_out, -7.0f), banded = whole;
    conv.run(1, 0, x.data(), sh.ld_in, whole.data(), sh.ld_out);
    for (int b = 0; b < conv.bands(); ++b) conv.run(conv.bands(), b, x.data(), sh.ld_in, banded.data(), sh.ld_out);
    EXPECT_EQ(whole, banded) << "c " << sh.c << " n " << sh.n;
    for (int oy = 0; oy < ho; ++oy)
      for (int ox = 0; ox < wo; ++ox)
        for (int j = 0; j < sh.ld_out; ++j) {
          const float got = whole[(static_cast<size_t>(oy) * wo + ox) * sh.ld_out + j];
          if (j >= sh.n) {  // columns past n belong to another value of the buffer: untouched
            ASSERT_EQ(got, -7.0f);
            continue;
          }
          double want = bias[j];
          for (int ky = 0; ky < sh.kernel; ++ky)
            for (int kx = 0; kx < sh.kernel; ++kx) {
              const int iy = oy * sh.stride - sh.pad + ky, ix = ox * sh.stride - sh.pad + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              for (int ch = 0; ch < sh.c; ++ch)
                want += static_cast<double>(x[(static_cast<size_t>(iy) * w + ix) * sh.ld_in + ch]) *
                        wt[static_cast<size_t>((ky * sh.kernel + kx) * sh.c + ch) * sh.n + j];
            }
          ASSERT_NEAR(got, want, 1e-4 * (1 + std::abs(want))) << "c " << sh.c << " n " << sh.n << " at " << oy << "," << ox << "," << j;
        }
  }
}

}  // namespace
}  // namespace qdm

namespace qdm {
namespace {

// GEGLU's erf: within 5e-7 of libm's (in float) over the range activations take, odd, saturating; the
// rows kernel equals a * gelu(g) by that erf.
TEST(FusedKernels, GegluErfMatchesLibm) {
  double worst = 0;
  for (float x = -12.0f; x <= 12.0f; x += 1.0f / 1024) worst = std::max(worst, std::abs(double(fast_erf(x)) - std::erf(double(x))));
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(fast_erf(-0.5f), -fast_erf(0.5f));
  EXPECT_EQ(fast_erf(100.0f), 1.0f);
  std::vector<float> in(3 * 10), out(3 * 5);
  for (size_t i = 0; i < in.size(); ++i) in[i] = std::sin(0.7f * static_cast<float>(i)) * 3.0f;
  geglu_rows(in.data(), 10, 3, 5, out.data(), 5);
  for (int r = 0; r < 3; ++r)
    for (int j = 0; j < 5; ++j) {
      const double a = in[r * 10 + j], g = in[r * 10 + 5 + j];
      EXPECT_NEAR(out[r * 5 + j], a * 0.5 * g * (1 + std::erf(g / std::sqrt(2.0))), 1e-5);
    }
}

}  // namespace
}  // namespace qdm
