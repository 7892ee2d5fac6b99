// A nearest 2x upsample followed by a 3x3 convolution (stride 1, padding 1) as four 2x2
// convolutions over the low-resolution image (padded by 1), one per output phase:
//
//   out(2i + py, 2j + px) = sum over ky, kx in {0, 1} of  F[py][px][ky][kx] . low_padded(i + py + ky, j + px + kx)
//
// where F sums the 3x3 taps that read the same low-resolution pixel: along each axis, phase 0
// takes {tap 0} and {taps 1, 2}, phase 1 takes {taps 0, 1} and {tap 2}. On integer weights the
// sums are exact, so the four phases give the upsampled convolution's int32 sums bit for bit
// with 16 instead of 36 taps per 2 x 2 output pixels (2.25x fewer multiply-adds).
//
// The folded weights are signed sums of (code - zero point), kept as 8-bit weights with zero
// point 0; they fit when every sum stays in [-128, 127] (4- and 5-bit weights always do; 8-bit
// weights usually do not, and run unfolded).
#pragma once

#include "engine/kernels/qgemm.h"

namespace qdm {

// Whether the folded weights of `w` (K = 9 C in (ky, kx, c) order, WeightLayout::kRows) fit int8.
bool upsample_fold_fits(const PackedWeights& w, int channels);

// Phase p = py * 2 + px's weights without their rows: n, K = 4 C, 8 bits, zero point 0, the
// column sums of the folded rows and w's scales, what the epilogue needs (output_columns). The
// rows themselves are folded per call into a cache-resident tile (upsample_fold_rows), so the
// resident weights stay w's. Throws when they do not fit.
PackedWeights upsample_fold_header(const PackedWeights& w, int channels, int phase);
// Folded rows [n0, n1) of phase p as int8 rows of padded_k(4 C) (the padding zero).
void upsample_fold_rows(const PackedWeights& w, int channels, int phase, int n0, int n1, int8_t* rows);

}  // namespace qdm
