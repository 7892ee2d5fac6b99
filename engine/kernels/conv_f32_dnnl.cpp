#include "engine/kernels/conv_f32_dnnl.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#ifdef QDM_HAVE_DNNL
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace qdm {

#ifdef QDM_HAVE_DNNL

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// oneDNN's OpenMP team for this thread held to one thread while in scope (the ICV is per thread).
class OneThread {
 public:
  OneThread() : previous_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(previous_); }

 private:
  int previous_;
};

}  // namespace

struct DnnlConvF32::Band {
  int out0 = 0, out1 = 0;  // output rows
  int in0 = 0, in_rows = 0;  // input rows read
  dnnl::convolution_forward conv;
  dnnl::memory::desc src, dst, scratchpad;
  dnnl::memory weights, bias;
  std::string impl;
};

bool DnnlConvF32::available() { return true; }

DnnlConvF32::DnnlConvF32(int c, int h, int w, int kernel, int stride, int pad, const float* weights, int n,
                         const float* bias, int bands)
    : c_(c), w_(w), n_(n) {
  using dnnl::memory;
  const OneThread one;
  const int ho = (h + 2 * pad - kernel) / stride + 1;
  wo_ = (w + 2 * pad - kernel) / stride + 1;
  bands = std::max(1, std::min(bands, ho));
  // (K, N) in (ky, kx, c) order -> oihw, the user layout reordered into each primitive's own.
  std::vector<float> oihw(static_cast<size_t>(n) * c * kernel * kernel);
  for (int o = 0; o < n; ++o)
    for (int ch = 0; ch < c; ++ch)
      for (int t = 0; t < kernel * kernel; ++t)
        oihw[(static_cast<size_t>(o) * c + ch) * kernel * kernel + t] = weights[(static_cast<size_t>(t) * c + ch) * n + o];
  const memory::desc user_md({n, c, kernel, kernel}, memory::data_type::f32, memory::format_tag::oihw);
  const memory user(user_md, cpu_engine(), oihw.data());
  const memory::desc bias_md({n}, memory::data_type::f32, memory::format_tag::a);
  dnnl::stream s(cpu_engine());
  auto make_bands = [&](int count) {
    std::vector<Band> list;
    for (int b = 0; b < count; ++b) {
      Band band;
      band.out0 = ho * b / count;
      band.out1 = ho * (b + 1) / count;
      // Input rows the band reads, and the padding its edges need.
      const int first = band.out0 * stride - pad, last = (band.out1 - 1) * stride - pad + kernel;  // [first, last)
      band.in0 = std::max(first, 0);
      band.in_rows = std::min(last, h) - band.in0;
      const int pad_top = band.in0 - first, pad_bottom = last - std::min(last, h);
      band.src = memory::desc({1, c, band.in_rows, w}, memory::data_type::f32, memory::format_tag::nhwc);
      band.dst = memory::desc({1, n, band.out1 - band.out0, wo_}, memory::data_type::f32, memory::format_tag::nhwc);
      const memory::desc wei_any({n, c, kernel, kernel}, memory::data_type::f32, memory::format_tag::any);
      const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                              band.src, wei_any, bias_md, band.dst, {stride, stride}, {pad_top, pad},
                                              {pad_bottom, pad});
      // The scratchpad passed per call (a thread's own): the library's is shared by every
      // primitive and not safe for calls from several threads at once.
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const dnnl::convolution_forward::primitive_desc pd(d, attr, cpu_engine());
      band.conv = dnnl::convolution_forward(pd);
      band.scratchpad = pd.scratchpad_desc();
      band.impl = pd.impl_info_str();
      // One copy of the weights in the primitives' layout, shared where the layouts agree.
      if (!whole_.empty() && whole_.front().weights.get_desc() == pd.weights_desc()) {
        band.weights = whole_.front().weights;
        band.bias = whole_.front().bias;
      } else {
        band.weights = memory(pd.weights_desc(), cpu_engine());
        dnnl::reorder(user, band.weights).execute(s, const_cast<memory&>(user), band.weights);
        band.bias = memory(bias_md, cpu_engine());
        float* bp = static_cast<float*>(band.bias.get_data_handle());
        for (int o = 0; o < n; ++o) bp[o] = bias ? bias[o] : 0.0f;
      }
      list.push_back(std::move(band));
    }
    return list;
  };
  whole_ = make_bands(1);
  if (bands > 1) bands_ = make_bands(bands);
  s.wait();
}

int DnnlConvF32::bands() const { return bands_.empty() ? 1 : static_cast<int>(bands_.size()); }
std::pair<int, int> DnnlConvF32::rows(int bands, int band) const {
  const Band& b = (bands == 1 ? whole_ : bands_)[static_cast<size_t>(band)];
  return {b.out0, b.out1};
}
const char* DnnlConvF32::implementation() const { return whole_.front().impl.c_str(); }

void DnnlConvF32::run(int bands, int index, const float* in, int64_t ld_in, float* out, int64_t ld_out) const {
  const OneThread one;
  const Band& b = (bands == 1 ? whole_ : bands_)[static_cast<size_t>(index)];
  thread_local dnnl::stream s(cpu_engine());
  thread_local std::vector<float> in_dense, out_dense;
  thread_local std::vector<uint8_t> scratch;
  // Dense rows: a slice of a wider buffer is gathered first and scattered after.
  const float* src = in + static_cast<int64_t>(b.in0) * w_ * ld_in;
  if (ld_in != c_) {
    const int64_t pixels = static_cast<int64_t>(b.in_rows) * w_;
    in_dense.resize(static_cast<size_t>(pixels) * c_);
    for (int64_t p = 0; p < pixels; ++p) std::memcpy(in_dense.data() + p * c_, src + p * ld_in, sizeof(float) * c_);
    src = in_dense.data();
  }
  const int64_t out_pixels = static_cast<int64_t>(b.out1 - b.out0) * wo_;
  float* dst = out + static_cast<int64_t>(b.out0) * wo_ * ld_out;
  float* target = dst;
  if (ld_out != n_) {
    out_dense.resize(static_cast<size_t>(out_pixels) * n_);
    target = out_dense.data();
  }
  // This thread's memory objects for this band, made once (only their pointers change per call).
  struct Bound {
    dnnl::memory src, dst, scratch;
  };
  thread_local std::unordered_map<const Band*, Bound> bound;
  auto it = bound.find(&b);
  if (it == bound.end()) {
    scratch.resize(std::max(scratch.size(), b.scratchpad.get_size()));
    it = bound.emplace(&b, Bound{dnnl::memory(b.src, cpu_engine(), DNNL_MEMORY_NONE), dnnl::memory(b.dst, cpu_engine(), DNNL_MEMORY_NONE),
                                 dnnl::memory(b.scratchpad, cpu_engine(), DNNL_MEMORY_NONE)})
             .first;
  }
  if (scratch.size() < b.scratchpad.get_size()) scratch.resize(b.scratchpad.get_size());
  it->second.src.set_data_handle(const_cast<float*>(src));
  it->second.dst.set_data_handle(target);
  it->second.scratch.set_data_handle(scratch.data());
  b.conv.execute(s, {{DNNL_ARG_SRC, it->second.src}, {DNNL_ARG_WEIGHTS, b.weights}, {DNNL_ARG_BIAS, b.bias},
                     {DNNL_ARG_DST, it->second.dst}, {DNNL_ARG_SCRATCHPAD, it->second.scratch}});
  s.wait();
  if (target != dst)
    for (int64_t p = 0; p < out_pixels; ++p) std::memcpy(dst + p * ld_out, target + p * n_, sizeof(float) * n_);
}

#else

struct DnnlConvF32::Band {};
bool DnnlConvF32::available() { return false; }
DnnlConvF32::DnnlConvF32(int, int, int, int, int, int, const float*, int, const float*, int) {
  throw std::logic_error("DnnlConvF32: this build has no oneDNN");
}
int DnnlConvF32::bands() const { return 0; }
std::pair<int, int> DnnlConvF32::rows(int, int) const { return {0, 0}; }
void DnnlConvF32::run(int, int, const float*, int64_t, float*, int64_t) const {}
const char* DnnlConvF32::implementation() const { return "none"; }

#endif

DnnlConvF32::~DnnlConvF32() = default;
DnnlConvF32::DnnlConvF32(DnnlConvF32&&) noexcept = default;

}  // namespace qdm
