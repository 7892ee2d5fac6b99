// Integer GEMM vs LibTorch FP32 at the GEMM shapes of the shipped model's convolutions
// (im2col: M = batch * H * W, K = C_in * 9, N = C_out), in one run.
//
//   build/bin/qdm_qgemm_bench --benchmark_counters_tabular=true
//
// Labels: "kernel|shape". Counters: GOPS = 2 M N K / time. The int paths include quantizing the fp32 input and
// dequantizing the output (what a layer pays), with every kernel path this CPU has.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <random>

#include "engine/kernels/qconv.h"
#include "engine/kernels/qgemm.h"
#include "engine/util/threads.h"

namespace {

struct Shape {
  int m, k, n;
};
// batch 64 at 32x32 (conv 32->32), 16x16 (64->64), 8x8 (128->128), and an up-block concat conv.
const Shape kShapes[] = {{65536, 288, 32}, {16384, 576, 64}, {4096, 1152, 128}, {4096, 2304, 128}};

void BM_Fp32Torch(benchmark::State& state) {
  const Shape s = kShapes[state.range(0)];
  torch::NoGradGuard g;
  const at::Tensor a = torch::randn({s.m, s.k}), w = torch::randn({s.n, s.k}), bias = torch::randn({s.n});
  for (auto _ : state) benchmark::DoNotOptimize(at::addmm(bias, a, w.t()));
  state.counters["GOPS"] = benchmark::Counter(2.0 * s.m * s.n * s.k, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
  state.SetLabel("fp32 addmm|M" + std::to_string(s.m) + " K" + std::to_string(s.k) + " N" + std::to_string(s.n));
}

void BM_IntGemm(benchmark::State& state) {
  const Shape s = kShapes[state.range(0)];
  const int bits = static_cast<int>(state.range(1));
  const auto isa = static_cast<qdm::QGemmIsa>(state.range(2));
  std::mt19937 rng(0);
  std::vector<float> x(static_cast<size_t>(s.m) * s.k), scale(static_cast<size_t>(s.n), 0.01f),
      zero(static_cast<size_t>(s.n), static_cast<float>((1 << bits) / 2)), bias(static_cast<size_t>(s.n), 0.1f);
  std::normal_distribution<float> normal;
  for (auto& v : x) v = normal(rng);
  std::vector<uint8_t> codes(static_cast<size_t>(s.n) * s.k);
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % (1 << bits));
  const qdm::PackedWeights w = qdm::pack_weights(codes.data(), s.n, s.k, bits, scale.data(), zero.data(), qdm::layout_for(isa));
  std::vector<uint8_t> a(static_cast<size_t>(s.m) * w.k_padded);
  std::vector<int32_t> sums(static_cast<size_t>(s.m)), acc(static_cast<size_t>(s.m) * s.n);
  std::vector<float> y(acc.size());
  const qdm::ActQuant q{0.05f, 128};
  for (auto _ : state) {
    qdm::quantize_rows(isa, x.data(), s.m, s.k, q, a.data(), sums.data());
    qdm::qgemm_s32(isa, a.data(), s.m, w, acc.data());
    qdm::dequantize_output(acc.data(), s.m, w, q, sums.data(), bias.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GOPS"] = benchmark::Counter(2.0 * s.m * s.n * s.k, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
  state.SetLabel(std::string("W") + std::to_string(bits) + "A8 gemm " + qdm::isa_name(isa) + "|M" + std::to_string(s.m) +
                 " K" + std::to_string(s.k) + " N" + std::to_string(s.n));
}

// The same layers as 3x3 convolutions, padding 1, on a batch of 64 NCHW images: LibTorch's
// conv2d (mkldnn) vs the lane convolution (qconv.h), which quantizes the input, convolves and
// writes NCHW fp32 with bias, as the W4A8 sampler runs it.
struct ConvShape {
  int c, hw, n;
};
const ConvShape kConvs[] = {{32, 32, 32}, {64, 16, 64}, {128, 8, 128}, {256, 8, 128}};
constexpr int kConvBatch = 64;

std::string conv_label(const ConvShape& s) {
  return "B" + std::to_string(kConvBatch) + " C" + std::to_string(s.c) + " " + std::to_string(s.hw) + "x" +
         std::to_string(s.hw) + " N" + std::to_string(s.n);
}

void set_conv_gops(benchmark::State& state, const ConvShape& s) {
  state.counters["GOPS"] = benchmark::Counter(2.0 * kConvBatch * s.hw * s.hw * s.n * s.c * 9,
                                              benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_Fp32Conv(benchmark::State& state) {
  const ConvShape s = kConvs[state.range(0)];
  torch::NoGradGuard g;
  const at::Tensor x = torch::randn({kConvBatch, s.c, s.hw, s.hw}), w = torch::randn({s.n, s.c, 3, 3}),
                   bias = torch::randn({s.n});
  for (auto _ : state) benchmark::DoNotOptimize(at::conv2d(x, w, bias, 1, 1));
  set_conv_gops(state, s);
  state.SetLabel("fp32 conv2d|" + conv_label(s));
}

void BM_IntLaneConv(benchmark::State& state) {
  const ConvShape s = kConvs[state.range(0)];
  const int bits = static_cast<int>(state.range(1));
  const auto isa = static_cast<qdm::QGemmIsa>(state.range(2));
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(kConvBatch) * s.c * s.hw * s.hw), bias(static_cast<size_t>(s.n), 0.1f);
  for (auto& v : x) v = normal(rng);
  const int k = s.c * 9;
  std::vector<uint8_t> codes(static_cast<size_t>(s.n) * k);
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % (1 << bits));
  std::vector<float> scale(static_cast<size_t>(s.n), 0.01f), zero(static_cast<size_t>(s.n), static_cast<float>((1 << bits) / 2));
  const qdm::PackedWeights w = qdm::pack_weights(codes.data(), s.n, k, bits, scale.data(), zero.data(), qdm::WeightLayout::kRows);
  const qdm::QConvShape shape{s.c, s.hw, s.hw, 3, 1, 1};
  std::vector<uint8_t> image(shape.padded_bytes());
  const size_t in_numel = static_cast<size_t>(s.c) * s.hw * s.hw, out_numel = static_cast<size_t>(s.n) * s.hw * s.hw;
  std::vector<float> y(kConvBatch * out_numel);
  const qdm::ActQuant q{0.05f, 128};
  for (auto _ : state) {
    const qdm::QConvPlan plan = qdm::qconv_plan(isa, shape, w, q, bias.data());
    for (int i = 0; i < kConvBatch; ++i) {
      qdm::qconv_quantize_image(isa, x.data() + i * in_numel, shape, q, image.data());
      qdm::qconv_pixels(plan, image.data(), 0, s.hw * s.hw, y.data() + i * out_numel);
    }
    benchmark::DoNotOptimize(y.data());
  }
  set_conv_gops(state, s);
  state.SetLabel("W" + std::to_string(bits) + "A8 lane conv " + qdm::isa_name(isa) + "|" + conv_label(s));
}

void register_all() {
  for (int i = 0; i < 4; ++i) {
    benchmark::RegisterBenchmark("fp32_conv", BM_Fp32Conv)->Arg(i)->Unit(benchmark::kMillisecond);
    for (qdm::QGemmIsa isa : qdm::supported_isas()) {
      if (!qdm::qconv_available(isa, 4)) continue;
      for (int bits : {4, 8})
        benchmark::RegisterBenchmark("int_lane_conv", BM_IntLaneConv)
            ->Args({i, bits, static_cast<int>(isa)})
            ->Unit(benchmark::kMillisecond);
    }
  }
  for (int i = 0; i < 4; ++i) {
    benchmark::RegisterBenchmark("fp32_torch", BM_Fp32Torch)->Arg(i)->Unit(benchmark::kMillisecond);
    for (qdm::QGemmIsa isa : qdm::supported_isas()) {
      if (isa == qdm::QGemmIsa::kScalar) continue;  // the reference is for tests, not speed
      for (int bits : {4, 8})
        benchmark::RegisterBenchmark("int_gemm", BM_IntGemm)->Args({i, bits, static_cast<int>(isa)})->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  qdm::set_compute_threads(1);  // single-thread comparison of the kernels themselves
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
