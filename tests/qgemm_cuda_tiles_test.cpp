// The CUDA GEMM's shared-memory index arithmetic on the CPU (no GPU needed): within a warp, the
// dot-product loop's reads of w_tile fall on distinct banks (or share an address: a broadcast),
// and every staging write stays inside its tile row.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "engine/kernels/qgemm_cuda_tiles.h"

namespace qdm::cuda_tiles {
namespace {

// The most distinct word addresses one bank serves for one warp-wide access: 1 is
// conflict-free. `address(tid)` is the word a thread reads; a warp is 32 consecutive thread
// ids of the block, tid = ty * kTile + tx.
template <typename F>
int worst_bank_ways(int warp, F address) {
  std::map<int, std::set<int>> by_bank;
  for (int lane = 0; lane < 32; ++lane) {
    const int a = address(warp * 32 + lane);
    by_bank[a % kBanks].insert(a);
  }
  size_t worst = 0;
  for (const auto& [bank, addresses] : by_bank) worst = std::max(worst, addresses.size());
  return static_cast<int>(worst);
}

TEST(QGemmCudaTiles, DotProductReadsAreConflictFree) {
  for (int warp = 0; warp < kTile * kTile / 32; ++warp)
    for (int word = 0; word < kWords; ++word) {
      EXPECT_EQ(worst_bank_ways(warp, [&](int tid) { return w_word(tid % kTile, word); }), 1) << "word " << word;
      EXPECT_EQ(worst_bank_ways(warp, [&](int tid) { return a_word(tid / kTile, word); }), 1) << "word " << word;
    }
}

TEST(QGemmCudaTiles, UnpaddedRowsWouldConflictEightWays) {
  // What the padding fixes: rows of exactly kWords words.
  EXPECT_EQ(worst_bank_ways(0, [](int tid) { return (tid % kTile) * kWords; }), 8);
}

TEST(QGemmCudaTiles, StagingWritesStayInsideTheirRows) {
  std::set<int> written;
  for (int tid = 0; tid < kTile * kTile; ++tid) {
    const int c = tid / kTile, part = tid % kTile;
    // 8-bit codes: one word per thread; 4-bit codes: bytes 2 part, 2 part + 1, 32 + 2 part, 33 + 2 part.
    EXPECT_LT(w_word(c, part), w_word(c + 1, 0));
    for (int byte : {2 * part, 2 * part + 1, 32 + 2 * part, 33 + 2 * part}) {
      EXPECT_LT(byte, 4 * kWords);
      written.insert(4 * w_word(c, 0) + byte);
    }
  }
  EXPECT_EQ(written.size(), static_cast<size_t>(kTile * 4 * kWords));  // every code of every row, once
  // Staging writes of w_tile (one word per thread): at most 2-way (lane 16's row starts one bank on).
  for (int warp = 0; warp < kTile * kTile / 32; ++warp)
    EXPECT_LE(worst_bank_ways(warp, [](int tid) { return w_word(tid / kTile, tid % kTile); }), 2);
}

}  // namespace
}  // namespace qdm::cuda_tiles
