#include "engine/kernels/vq_decode.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace qdm {
namespace {

// Byte-wise a + b mod 256 in a 64-bit word: no carry crosses a byte.
inline uint64_t add_bytes(uint64_t a, uint64_t b) {
  constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7Full, kHigh = 0x8080808080808080ull;
  return ((a & kLow7) + (b & kLow7)) ^ ((a ^ b) & kHigh);
}

}  // namespace

VqWeights make_vq_weights(int n, int k, int codebooks, int bits, int group, std::vector<uint8_t> codes,
                          std::vector<int8_t> codewords, std::vector<float> scale, WeightLayout layout) {
  if (n < 1 || k < 1 || codebooks < 1 || bits < 1 || bits > 8 || (group != 4 && group != 8 && group != 16) || k % group != 0)
    throw std::invalid_argument("vq weights: n, k >= 1, 1..8 bits, group 4, 8 or 16 dividing k");
  if (k > kMaxK) throw std::invalid_argument("vq weights: K = " + std::to_string(k) + " is over " + std::to_string(kMaxK));
  const size_t entries = size_t{1} << bits;
  if (codes.size() != static_cast<size_t>(n) * static_cast<size_t>(k / group) * static_cast<size_t>(codebooks) ||
      codewords.size() != static_cast<size_t>(codebooks) * entries * static_cast<size_t>(group) ||
      scale.size() != static_cast<size_t>(n))
    throw std::invalid_argument("vq weights: codes, codewords or scales have the wrong size");
  int bound = 0;
  for (int m = 0; m < codebooks; ++m) {
    int largest = 0;
    for (size_t i = 0; i < entries * static_cast<size_t>(group); ++i)
      largest = std::max(largest, std::abs(static_cast<int>(codewords[static_cast<size_t>(m) * entries * group + i])));
    bound += largest;
  }
  if (bound > 127) throw std::invalid_argument("vq weights: the codebooks' sums can leave int8");
  for (uint8_t c : codes)
    if (c >= entries) throw std::invalid_argument("vq weights: a code beyond its codebook");
  VqWeights w;
  w.n = n, w.k = k, w.codebooks = codebooks, w.bits = bits, w.group = group;
  w.codes = std::move(codes);
  w.codewords = std::move(codewords);
  w.scale = std::move(scale);
  PackedWeights& c = w.columns;
  c.n = n, c.k = k, c.k_padded = padded_k(k), c.bits = 8, c.layout = layout;
  c.scale = w.scale;
  c.zero.assign(static_cast<size_t>(n), 0);
  c.col_sum.assign(static_cast<size_t>(n), 0);
  std::vector<int8_t> row(static_cast<size_t>(k));
  for (int r = 0; r < n; ++r) {
    vq_decode_rows_reference(w, r, r + 1, row.data(), row.size());
    int32_t sum = 0;
    for (int8_t v : row) sum += v;
    c.col_sum[static_cast<size_t>(r)] = sum;
  }
  return w;
}

void vq_decode_rows_reference(const VqWeights& w, int n0, int n1, int8_t* out, size_t ld) {
  const int groups = w.k / w.group, m = w.codebooks;
  const size_t entries = size_t{1} << w.bits;
  for (int r = n0; r < n1; ++r) {
    int8_t* dst = out + static_cast<size_t>(r - n0) * ld;
    for (int g = 0; g < groups; ++g) {
      const uint8_t* code = w.codes.data() + (static_cast<size_t>(r) * groups + g) * m;
      for (int i = 0; i < w.group; ++i) {
        int sum = 0;
        for (int j = 0; j < m; ++j) sum += w.codewords[(j * entries + code[j]) * w.group + i];
        dst[g * w.group + i] = static_cast<int8_t>(sum);
      }
    }
  }
}

void vq_decode_rows(const VqWeights& w, int n0, int n1, int8_t* out, size_t ld) {
  if (w.group == 4) return vq_decode_rows_reference(w, n0, n1, out, ld);  // half a word: not worth a path
  const int groups = w.k / w.group, m = w.codebooks, words = w.group / 8;
  const size_t entries = size_t{1} << w.bits;
  const int8_t* books = w.codewords.data();
  for (int r = n0; r < n1; ++r) {
    int8_t* dst = out + static_cast<size_t>(r - n0) * ld;
    const uint8_t* code = w.codes.data() + static_cast<size_t>(r) * groups * m;
    for (int g = 0; g < groups; ++g, code += m) {
      for (int h = 0; h < words; ++h) {
        uint64_t sum = 0;
        for (int j = 0; j < m; ++j) {
          uint64_t word;
          std::memcpy(&word, books + (j * entries + code[j]) * w.group + 8 * h, 8);
          sum = add_bytes(sum, word);
        }
        std::memcpy(dst + g * w.group + 8 * h, &sum, 8);
      }
    }
  }
}

void vq_decode_tile(const VqWeights& w, int n0, int n1, PackedWeights& tile) {
  const int rows = n1 - n0;
  tile.n = rows;
  tile.k = w.k;
  tile.k_padded = w.columns.k_padded;
  tile.bits = 8;
  tile.layout = w.columns.layout;
  const size_t kp = static_cast<size_t>(tile.k_padded);
  if (tile.layout == WeightLayout::kRows) {
    tile.data.resize(static_cast<size_t>(rows) * kp);
    int8_t* dst = reinterpret_cast<int8_t*>(tile.data.data());
    vq_decode_rows(w, n0, n1, dst, kp);
    if (kp > static_cast<size_t>(w.k))
      for (int r = 0; r < rows; ++r) std::memset(dst + r * kp + w.k, 0, kp - static_cast<size_t>(w.k));
    return;
  }
  // kPanels16: per panel of 16 rows and group of 4 K, 64 bytes with byte 4 j + i = w'[16 p + j, 4 g + i].
  thread_local std::vector<int8_t> rows16;
  rows16.assign(16 * kp, 0);  // decoding writes K values per row: the padding stays zero
  const int panels = (rows + 15) / 16;
  tile.data.resize(static_cast<size_t>(panels) * 16 * kp);
  for (int p = 0; p < panels; ++p) {
    const int r0 = n0 + 16 * p, r1 = std::min(n1, r0 + 16);
    vq_decode_rows(w, r0, r1, rows16.data(), kp);
    if (r1 - r0 < 16) std::memset(rows16.data() + static_cast<size_t>(r1 - r0) * kp, 0, static_cast<size_t>(16 - (r1 - r0)) * kp);
    uint8_t* panel = tile.data.data() + static_cast<size_t>(p) * 16 * kp;
    for (size_t g = 0; g < kp / 4; ++g)
      for (int j = 0; j < 16; ++j) {
        const int8_t* src = rows16.data() + static_cast<size_t>(j) * kp + 4 * g;
        std::memcpy(panel + g * 64 + 4 * static_cast<size_t>(j), src, 4);
      }
  }
}

}  // namespace qdm
