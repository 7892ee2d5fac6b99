// An fp32 convolution on channels-last images through oneDNN's JIT kernels (Debian's libdnnl:
// brgemm convolutions, about 1.6x the register-blocked GEMM of gemm_f32.cpp per core here,
// bench/results/fp32_conv_kernels.md). Built once per layer: one image per call, the whole
// image or one band of its output rows, on the calling thread (oneDNN's OpenMP team held to one
// thread), so the plan's pool parallelizes over images (or, with fewer images than threads,
// over bands too). Every output pixel is computed the same way whatever the band it is in
// (kernels_test checks it), so an image's result does not depend on the batch it runs in. oneDNN's fast kernels want dense images: rows of exactly C floats; slices of wider
// buffers (concatenations) go through a scratch copy. Builds without oneDNN have none
// (available() is false) and the plan keeps gemm_f32.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace qdm {

class DnnlConvF32 {
 public:
  static bool available();
  // in: h x w pixels of c channels; weights (k*k*c, n) with K in (ky, kx, c) order (gemm_f32's B);
  // bands(1) is the whole image, bands(n) the output rows split in about equal bands.
  DnnlConvF32(int c, int h, int w, int kernel, int stride, int pad, const float* weights, int n, const float* bias, int bands);
  ~DnnlConvF32();
  DnnlConvF32(DnnlConvF32&&) noexcept;
  // How many bands a call can use: 1 and this (`bands` of the constructor, at most the rows).
  int bands() const;
  // The band's output rows [first, second) when the image runs in `bands` bands (1 or bands()).
  std::pair<int, int> rows(int bands, int band) const;
  // Band `band` of `bands` of one image: in and out at the image's first pixel, rows of ld_in / ld_out floats.
  void run(int bands, int band, const float* in, int64_t ld_in, float* out, int64_t ld_out) const;
  // The name of oneDNN's implementation (e.g. "brgconv:avx512_core"), for logs and tests.
  const char* implementation() const;

 private:
  struct Band;
  std::vector<Band> whole_, bands_;  // one band; bands()
  int c_ = 0, w_ = 0, n_ = 0, wo_ = 0;
};

}  // namespace qdm
