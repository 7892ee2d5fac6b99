// The CUDA W4A8 GEMM equals the scalar reference exactly. Runs where a GPU is present;
// elsewhere the test is skipped (it still has to compile with nvcc's runtime headers).
#include <gtest/gtest.h>

#include <random>

#include "engine/kernels/qgemm.h"
#include "engine/kernels/qgemm_cuda.h"

namespace qdm {
namespace {

TEST(QGemmCuda, MatchesScalarReferenceAtAwkwardSizes) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(7);
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {17, 33, 70}, {64, 16, 64}, {300, 130, 288}, {1024, 128, 1152}}) {
    std::vector<uint8_t> codes(static_cast<size_t>(n) * k);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() % 16);
    std::vector<float> scale(n, 0.1f), zero(n, 8.0f);
    const PackedWeights w = pack_weights(codes.data(), n, k, 4, scale.data(), zero.data(), WeightLayout::kRows);
    std::vector<uint8_t> a(static_cast<size_t>(m) * w.k_padded, 0);
    for (int r = 0; r < m; ++r)
      for (int c = 0; c < k; ++c) a[static_cast<size_t>(r) * w.k_padded + c] = static_cast<uint8_t>(rng() % 256);
    std::vector<int32_t> want(static_cast<size_t>(m) * n), got(want.size(), -1);
    qgemm_s32(QGemmIsa::kScalar, a.data(), m, w, want.data());
    qgemm_s32_cuda(a.data(), m, w, got.data());
    ASSERT_EQ(got, want) << "m=" << m << " n=" << n << " k=" << k;
  }
}

// 8-bit codes (one byte each, unsigned) against the definition.
TEST(QGemmCuda, EightBitCodesMatchTheDefinition) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(8);
  for (auto [m, n, k] : {std::tuple{1, 1, 64}, {17, 33, 128}, {300, 130, 320}}) {
    std::vector<uint8_t> w(static_cast<size_t>(n) * k), a(static_cast<size_t>(m) * k);
    for (auto& c : w) c = static_cast<uint8_t>(rng() % 256);
    for (auto& c : a) c = static_cast<uint8_t>(rng() % 256);
    std::vector<int32_t> want(static_cast<size_t>(m) * n, 0), got(want.size(), -1);
    for (int r = 0; r < m; ++r)
      for (int c = 0; c < n; ++c)
        for (int i = 0; i < k; ++i)
          want[static_cast<size_t>(r) * n + c] += a[static_cast<size_t>(r) * k + i] * w[static_cast<size_t>(c) * k + i];
    qgemm_u8_cuda(a.data(), m, w.data(), n, k, 8, got.data());
    ASSERT_EQ(got, want) << "m=" << m << " n=" << n << " k=" << k;
  }
}

TEST(QGemmCuda, RefusesOtherLayouts) {
  std::vector<uint8_t> codes(16 * 64, 1);
  std::vector<float> scale(16, 1.0f), zero(16, 0.0f);
  const PackedWeights w = pack_weights(codes.data(), 16, 64, 8, scale.data(), zero.data(), WeightLayout::kRows);
  std::vector<uint8_t> a(64, 1);
  std::vector<int32_t> acc(16);
  EXPECT_THROW(qgemm_s32_cuda(a.data(), 1, w, acc.data()), std::invalid_argument);
}

}  // namespace
}  // namespace qdm
