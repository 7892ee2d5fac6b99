#include "engine/runtime/plan/plan_ops.h"

#include "engine/kernels/attention.h"
#include "engine/kernels/conv_f32_dnnl.h"
#include "engine/kernels/scratch.h"
#include "engine/kernels/upsample_fold.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <stdexcept>
#include <type_traits>

#include "format/half.h"

namespace qdm::plan {
namespace {

constexpr float kNoResidualFactor = 1.0f;

// Pixel blocks per image so that a run has a few tasks per thread (blocks of whole 64-pixel
// lane blocks, at most the image).
int64_t block_pixels(int64_t pixels, int images, int threads) {
  const int64_t want_tasks = 4 * static_cast<int64_t>(threads);
  int64_t b = (pixels * images + want_tasks - 1) / want_tasks;
  b = (b + 63) / 64 * 64;
  return std::clamp<int64_t>(b, 64, pixels);
}

// fp32 convolutions on oneDNN where the build has it; QDM_FP32_CONV=gemm keeps them on gemm_f32
// (comparisons: bench/peer_speed.sh).
bool use_dnnl() {
  static const bool on = [] {
    const char* env = std::getenv("QDM_FP32_CONV");
    return DnnlConvF32::available() && !(env && std::string(env) == "gemm");
  }();
  return on;
}

// y = float(acc - z'_w rowsum + term) * scale + bias, written with separate roundings (as
// dequantize_output), then the epilogue.
void dequantize_rows(const int32_t* acc, int rows, const PackedWeights& w, const int32_t* row_sums,
                     const int32_t* term, const float* scale, const float* bias, float* out, int64_t ld) {
  for (int r = 0; r < rows; ++r) {
    const int32_t* a = acc + static_cast<int64_t>(r) * w.n;
    float* o = out + r * ld;
    for (int j = 0; j < w.n; ++j) {
      const int32_t exact = a[j] - w.zero[static_cast<size_t>(j)] * row_sums[r] + term[j];
      o[j] = static_cast<float>(exact) * scale[j] + (bias ? bias[j] : 0.0f);  // -ffp-contract=off: two roundings
    }
  }
}

// The epilogue on output columns [n0, n1) only.
void apply_epilogue_columns(const Context& ctx, const Epilogue& e, int image, int64_t p0, int64_t rows, float* out,
                            int64_t ld, int n0, int n1) {
  if (e.feature.buffer >= 0) add_rows(out + n0, ld, ctx.at(e.feature, image) + n0, 0, rows, n1 - n0);
  if (e.residual.buffer >= 0) {
    const float* res = ctx.at(e.residual, image) + p0 * e.residual.ld;
    for (int64_t r = 0; r < rows; ++r)
      for (int j = n0; j < n1; ++j) out[r * ld + j] = res[r * e.residual.ld + j] + out[r * ld + j];
    if (e.factor != kNoResidualFactor)
      for (int64_t r = 0; r < rows; ++r)
        for (int j = n0; j < n1; ++j) out[r * ld + j] = out[r * ld + j] / e.factor;
  }
}

void apply_epilogue(const Context& ctx, const Epilogue& e, int image, int64_t p0, int64_t rows, float* out,
                    int64_t ld, int n) {
  if (e.feature.buffer >= 0) add_rows(out, ld, ctx.at(e.feature, image), 0, rows, n);
  if (e.residual.buffer >= 0) {
    const float* res = ctx.at(e.residual, image) + p0 * e.residual.ld;
    // (residual + out) / factor, in that order as the model computes skip + h.
    for (int64_t r = 0; r < rows; ++r) {
      float* o = out + r * ld;
      const float* s = res + r * e.residual.ld;
      for (int j = 0; j < n; ++j) o[j] = s[j] + o[j];
    }
    if (e.factor != kNoResidualFactor)
      for (int64_t r = 0; r < rows; ++r)
        for (int j = 0; j < n; ++j) out[r * ld + j] = out[r * ld + j] / e.factor;
  }
}

class GroupNormOp final : public Op {
 public:
  GroupNormOp(Value in, int groups, double eps, std::vector<float> gamma, std::vector<float> beta, bool silu,
              Value out, CodesTarget codes, QGemmIsa isa)
      : in_(in), groups_(groups), eps_(eps), gamma_(std::move(gamma)), beta_(std::move(beta)), silu_(silu), out_(out),
        codes_(codes), isa_(isa) {}
  const char* kind() const override { return codes_.buffer >= 0 ? "group_norm+quantize" : "group_norm"; }
  void run(Context& ctx) override {
    const int64_t pix = in_.pixels();
    const int64_t block = block_pixels(pix, ctx.n, ctx.pool->threads());
    const int blocks = static_cast<int>((pix + block - 1) / block);
    const int tasks = ctx.n * blocks;
    double* sums = scratch(sums_, static_cast<size_t>(tasks) * 2 * groups_);
    std::fill(sums, sums + static_cast<size_t>(tasks) * 2 * groups_, 0.0);
    ctx.pool->run(tasks, [&](int task, int) {
      const int image = task / blocks;
      const int64_t p0 = (task % blocks) * block, p1 = std::min(pix, p0 + block);
      group_norm_sums(ctx.at(in_, image), in_.ld, p0, p1, in_.c, groups_, sums + static_cast<size_t>(task) * 2 * groups_);
    });
    float* mean = scratch(mean_, static_cast<size_t>(ctx.n) * groups_);
    float* rstd = scratch(rstd_, static_cast<size_t>(ctx.n) * groups_);
    std::vector<double>& total = total_;
    total.assign(static_cast<size_t>(2 * groups_), 0.0);
    for (int image = 0; image < ctx.n; ++image) {
      std::fill(total.begin(), total.end(), 0.0);
      for (int b = 0; b < blocks; ++b)
        for (int i = 0; i < 2 * groups_; ++i) total[static_cast<size_t>(i)] += sums[(static_cast<size_t>(image) * blocks + b) * 2 * groups_ + i];
      group_norm_moments(total.data(), groups_, in_.c / groups_, pix, eps_, mean + image * groups_, rstd + image * groups_);
    }
    const ActQuant q = codes_.table ? codes_.table->at(ctx.step) : ActQuant{};
    ctx.pool->run(tasks, [&](int task, int) {
      const int image = task / blocks;
      const int64_t p0 = (task % blocks) * block, p1 = std::min(pix, p0 + block);
      GroupNormApply g{in_.c, groups_, mean + image * groups_, rstd + image * groups_,
                       gamma_.empty() ? nullptr : gamma_.data(), beta_.empty() ? nullptr : beta_.data(), silu_};
      if (codes_.buffer >= 0) {
        uint8_t* dst = ctx.codes[static_cast<size_t>(codes_.buffer)] + image * codes_.shape.bytes();
        if (p0 == 0) fill_border(codes_.shape, static_cast<uint8_t>(q.zero), dst);
        group_norm_to_padded(isa_, ctx.at(in_, image), in_.ld, p0, p1, g, q, codes_.shape, dst);
      } else {
        group_norm_to_f32(ctx.at(in_, image), in_.ld, p0, p1, g, ctx.at(out_, image), out_.ld);
      }
    });
  }

 private:
  Value in_;
  int groups_;
  double eps_;
  std::vector<float> gamma_, beta_;
  bool silu_;
  Value out_;
  CodesTarget codes_;
  QGemmIsa isa_;
  std::vector<double> sums_, total_;
  std::vector<float> mean_, rstd_;
};

class QuantizeOp final : public Op {
 public:
  QuantizeOp(Value in, bool upsample, CodesTarget out) : in_(in), upsample_(upsample), out_(out) {}
  const char* kind() const override { return upsample_ ? "upsample+quantize" : "quantize"; }
  void run(Context& ctx) override {
    const ActQuant q = out_.table->at(ctx.step);
    const int rows_per_task = std::max(1, static_cast<int>(block_pixels(in_.pixels(), ctx.n, ctx.pool->threads()) / in_.w));
    const int blocks = (in_.h + rows_per_task - 1) / rows_per_task;
    ctx.pool->run(ctx.n * blocks, [&](int task, int) {
      const int image = task / blocks, y0 = (task % blocks) * rows_per_task, y1 = std::min(in_.h, y0 + rows_per_task);
      uint8_t* dst = ctx.codes[static_cast<size_t>(out_.buffer)] + image * out_.shape.bytes();
      if (y0 == 0) fill_border(out_.shape, static_cast<uint8_t>(q.zero), dst);
      quantize_to_padded(ctx.at(in_, image), in_.ld, in_.w, y0, y1, q, upsample_, out_.shape, dst);
    });
  }

 private:
  Value in_;
  bool upsample_;
  CodesTarget out_;
};

// y[:, n0:n1] from acc (rows, n1 - n0) of a weight tile: dequantize_rows' formula on those columns.
void dequantize_columns(const int32_t* acc, int rows, const PackedWeights& w, const int32_t* row_sums, const int32_t* term,
                        const float* scale, const float* bias, float* out, int64_t ld, int n0, int n1) {
  const int tn = n1 - n0;
  for (int r = 0; r < rows; ++r) {
    const int32_t* a = acc + static_cast<int64_t>(r) * tn;
    float* o = out + r * ld;
    for (int j = n0; j < n1; ++j) {
      const int32_t exact = a[j - n0] - w.zero[static_cast<size_t>(j)] * row_sums[r] + term[j];
      o[j] = static_cast<float>(exact) * scale[j] + (bias ? bias[j] : 0.0f);
    }
  }
}

// Vector-quantized weights: tasks over tiles of output channels, each tile decoded once per
// task (cache-resident) and run over a share of the call's pixel blocks. With pixel blocks
// enough for every thread, a tile is up to kVqWideTile rows (the lane convolution gathers a
// block's activations once per tile); with few (small batches at 8 x 8), 64-row tiles give the
// threads channels to split.
constexpr int kVqTile = 64, kVqWideTile = 256;
struct VqSchedule {
  int rows, tiles, chunks, units;
  VqSchedule(int n, int units_total, int threads)
      : rows(units_total >= 2 * threads ? kVqWideTile : kVqTile), tiles((n + rows - 1) / rows),
        chunks(std::clamp((2 * threads + tiles - 1) / tiles, 1, units_total)), units(units_total) {}
  int tasks() const { return tiles * chunks; }
  // Task t: channels [n0, n1) of tile t / chunks, units [u0, u1).
  void of(int t, int n, int& n0, int& n1, int& u0, int& u1) const {
    const int tile = t / chunks, chunk = t % chunks;
    n0 = tile * rows, n1 = std::min(n, n0 + rows);
    u0 = static_cast<int>(static_cast<int64_t>(units) * chunk / chunks);
    u1 = static_cast<int>(static_cast<int64_t>(units) * (chunk + 1) / chunks);
  }
};

// One parallel region over a vq layer's call: pixel blocks of `block` of `pix` per image, each
// task's tile of output channels decoded once, then body(image, p0, rows, n0, n1, tile) for each
// of the task's blocks.
template <typename Body>
void run_vq_tiles(Context& ctx, const VqWeights& w, int64_t pix, int64_t block, Body body) {
  const int blocks = static_cast<int>((pix + block - 1) / block);
  const VqSchedule plan(w.n, ctx.n * blocks, ctx.pool->threads());
  ctx.pool->run(plan.tasks(), [&](int task, int) {
    int n0, n1, u0, u1;
    plan.of(task, w.n, n0, n1, u0, u1);
    thread_local PackedWeights tile;
    vq_decode_tile(w, n0, n1, tile);
    for (int u = u0; u < u1; ++u) {
      const int64_t p0 = (u % blocks) * block;
      body(u / blocks, p0, std::min(pix - p0, block), n0, n1, tile);
    }
  });
}

class IntConvOp final : public Op {
 public:
  IntConvOp(CodesTarget in, int kernel, int stride, PackedWeights w, std::vector<float> bias, QGemmIsa isa, bool lanes,
            Value out, Epilogue e, std::shared_ptr<const VqWeights> vq = nullptr)
      : in_(in), kernel_(kernel), stride_(stride), w_(std::move(w)), bias_(std::move(bias)), isa_(isa), lanes_(lanes),
        out_(out), e_(e), term_(static_cast<size_t>(w_.n)), scale_(static_cast<size_t>(w_.n)), vq_(std::move(vq)) {
    if (lanes_) {
      const QConvShape s{in.shape.c, in.shape.hp(), in.shape.wp(), kernel, stride, 0};
      lane_plan_ = qconv_resident_plan(isa_, s, w_, bias_.empty() ? nullptr : bias_.data());
    }
  }
  const char* kind() const override {
    if (vq_) return lanes_ ? "vq conv (lanes)" : "vq conv (gemm)";
    return lanes_ ? "int conv (lanes)" : "int conv (gemm)";
  }
  void run(Context& ctx) override {
    const ActQuant q = in_.table->at(ctx.step);
    if (lanes_) qconv_set_table(lane_plan_, q);
    else output_columns(w_, q, term_.data(), scale_.data());
    if (vq_) return run_vq(ctx);
    const int64_t pix = out_.pixels();
    const int64_t block = block_pixels(pix, ctx.n, ctx.pool->threads());
    const int blocks = static_cast<int>((pix + block - 1) / block);
    // Few pixel blocks (small batches at 8 x 8): the lane convolution splits output channels too.
    int splits = 1;
    if (lanes_)
      while (ctx.n * blocks * splits < 2 * ctx.pool->threads() && w_.n / (splits * 2) >= 16) splits *= 2;
    const int per_split = (w_.n / splits + 3) / 4 * 4;
    ctx.pool->run(ctx.n * blocks * splits, [&](int task, int) {
      const int split = task % splits, image = task / splits / blocks;
      const int64_t p0 = (task / splits % blocks) * block, rows = std::min(pix - p0, block);
      const uint8_t* codes = ctx.codes[static_cast<size_t>(in_.buffer)] + image * in_.shape.bytes();
      float* out = ctx.at(out_, image) + p0 * out_.ld;
      if (lanes_) {
        const int n0 = split * per_split, n1 = std::min(w_.n, n0 + per_split);
        qconv_pixels_rows(lane_plan_, codes, static_cast<int>(p0), static_cast<int>(rows), out - p0 * out_.ld, out_.ld, n0, n1);
        if (splits > 1) {
          apply_epilogue_columns(ctx, e_, image, p0, rows, out, out_.ld, n0, n1);
          return;
        }
      } else {
        thread_local std::vector<uint8_t> a;
        thread_local std::vector<int32_t> sums, acc;
        uint8_t* ap = scratch(a, static_cast<size_t>(rows) * w_.k_padded);
        int32_t* sp = scratch(sums, static_cast<size_t>(rows));
        int32_t* cp = scratch(acc, static_cast<size_t>(rows) * w_.n);
        im2col_u8(codes, in_.shape, kernel_, stride_, p0, p0 + rows, w_.k_padded, ap, sp);
        qgemm_s32(isa_, ap, static_cast<int>(rows), w_, cp);
        dequantize_rows(cp, static_cast<int>(rows), w_, sp, term_.data(), scale_.data(), bias_.empty() ? nullptr : bias_.data(),
                        out, out_.ld);
      }
      apply_epilogue(ctx, e_, image, p0, rows, out, out_.ld, w_.n);
    });
  }

 private:
  void run_vq(Context& ctx) {
    const int64_t pix = out_.pixels();
    const int64_t block = lanes_ ? std::min<int64_t>(pix, 256) : std::min<int64_t>(pix, 64);
    run_vq_tiles(ctx, *vq_, pix, block, [&](int image, int64_t p0, int64_t rows, int n0, int n1, const PackedWeights& tile) {
      const uint8_t* codes = ctx.codes[static_cast<size_t>(in_.buffer)] + image * in_.shape.bytes();
      float* out = ctx.at(out_, image) + p0 * out_.ld;
      if (lanes_) {
        qconv_pixels_rows(lane_plan_, codes, static_cast<int>(p0), static_cast<int>(rows), out - p0 * out_.ld, out_.ld, n0, n1,
                          reinterpret_cast<const int8_t*>(tile.data.data()));
      } else {
        thread_local std::vector<uint8_t> a;
        thread_local std::vector<int32_t> sums, acc;
        uint8_t* ap = scratch(a, static_cast<size_t>(rows) * w_.k_padded);
        int32_t* sp = scratch(sums, static_cast<size_t>(rows));
        int32_t* cp = scratch(acc, static_cast<size_t>(rows) * (n1 - n0));
        im2col_u8(codes, in_.shape, kernel_, stride_, p0, p0 + rows, w_.k_padded, ap, sp);
        qgemm_s32(isa_, ap, static_cast<int>(rows), tile, cp);
        dequantize_columns(cp, static_cast<int>(rows), w_, sp, term_.data(), scale_.data(),
                           bias_.empty() ? nullptr : bias_.data(), out, out_.ld, n0, n1);
      }
      apply_epilogue_columns(ctx, e_, image, p0, rows, out, out_.ld, n0, n1);
    });
  }

  CodesTarget in_;
  int kernel_, stride_;
  PackedWeights w_;
  std::vector<float> bias_;
  QGemmIsa isa_;
  bool lanes_;
  Value out_;
  Epilogue e_;
  QConvPlan lane_plan_;
  std::vector<int32_t> term_;
  std::vector<float> scale_;
  std::shared_ptr<const VqWeights> vq_;
};

class UpsampledConvOp final : public Op {
 public:
  UpsampledConvOp(CodesTarget in, PackedWeights w, std::vector<float> bias, QGemmIsa isa, Value out)
      : in_(in), w_(std::move(w)), bias_(std::move(bias)), out_(out) {
    const PaddedShape& s = in_.shape;
    if (s.pad != 1 || out_.h != 2 * s.h || out_.w != 2 * s.w)
      throw std::invalid_argument("upsampled_conv_op: needs the low-resolution input with padding 1");
    const QConvShape grid{s.c, s.hp(), s.wp(), 2, 1, 0};  // (h + 1) x (w + 1) outputs of a 2x2 kernel
    for (int p = 0; p < 4; ++p) {
      phase_[p] = upsample_fold_header(w_, s.c, p);
      plan_[p] = qconv_resident_plan(isa, grid, phase_[p], bias_.empty() ? nullptr : bias_.data());
      plan_[p].small_tile = w_.bits <= 4;  // sums of four 4-bit weights: |w| <= 60
      // Phase (py, px)'s output (i, j) is grid pixel (i + py, j + px); it lands on (2i + py, 2j + px).
      const int py = p / 2, px = p % 2;
      dest_[p].assign(static_cast<size_t>(grid.ho()) * grid.wo(), -1);
      for (int i = 0; i < s.h; ++i)
        for (int j = 0; j < s.w; ++j)
          dest_[p][static_cast<size_t>((i + py) * grid.wo() + j + px)] = (2 * i + py) * out_.w + 2 * j + px;
    }
  }
  const char* kind() const override { return "int conv (upsample folded)"; }
  void run(Context& ctx) override {
    const ActQuant q = in_.table->at(ctx.step);
    for (auto& plan : plan_) qconv_set_table(plan, q);
    const PaddedShape& s = in_.shape;
    // Each phase computes grid rows py .. py + h - 1 whole: one column of each is dropped.
    const int grid_w = s.w + 1, span = s.h * grid_w;
    const int64_t block = block_pixels(span, ctx.n * 4, ctx.pool->threads());
    const int blocks = static_cast<int>((span + block - 1) / block), units = ctx.n * blocks;
    // Tasks: per phase, chunks of (image, block) units; each task folds its phase's rows once.
    const int chunks = std::clamp((2 * ctx.pool->threads() + 3) / 4, 1, units);
    const int kp = phase_[0].k_padded;
    ctx.pool->run(4 * chunks, [&](int task, int) {
      const int p = task / chunks, chunk = task % chunks;
      thread_local std::vector<int8_t> rows;
      int8_t* tile = scratch(rows, static_cast<size_t>(w_.n) * kp);
      upsample_fold_rows(w_, s.c, p, 0, w_.n, tile);
      const int u0 = static_cast<int>(static_cast<int64_t>(units) * chunk / chunks);
      const int u1 = static_cast<int>(static_cast<int64_t>(units) * (chunk + 1) / chunks);
      for (int u = u0; u < u1; ++u) {
        const int image = u / blocks;
        const int64_t b0 = (u % blocks) * block, count = std::min<int64_t>(span - b0, block);
        const uint8_t* codes = ctx.codes[static_cast<size_t>(in_.buffer)] + image * s.bytes();
        qconv_pixels_rows(plan_[p], codes, static_cast<int>(p / 2 * grid_w + b0), static_cast<int>(count), ctx.at(out_, image),
                          out_.ld, 0, w_.n, tile, dest_[p].data());
      }
    });
  }

 private:
  CodesTarget in_;
  PackedWeights w_;  // the 3x3 weights, resident as packed
  std::vector<float> bias_;
  Value out_;
  PackedWeights phase_[4];  // headers: column sums, zero points, scales
  QConvPlan plan_[4];
  std::vector<int32_t> dest_[4];
};

class IntLinearOp final : public Op {
 public:
  IntLinearOp(Value in, const Table* table, PackedWeights w, std::vector<float> bias, QGemmIsa isa, Value out, Epilogue e,
              std::shared_ptr<const VqWeights> vq = nullptr)
      : in_(in), table_(table), w_(std::move(w)), bias_(std::move(bias)), isa_(isa), out_(out), e_(e),
        term_(static_cast<size_t>(w_.n)), scale_(static_cast<size_t>(w_.n)), vq_(std::move(vq)) {}
  const char* kind() const override { return vq_ ? "vq linear" : "int linear"; }
  void run(Context& ctx) override {
    const ActQuant q = table_->at(ctx.step);
    output_columns(w_, q, term_.data(), scale_.data());
    if (vq_) return run_vq(ctx, q);
    const int64_t pix = in_.pixels();
    int64_t block = std::min<int64_t>(pix, 64);
    while (block > 16 && ctx.n * ((pix + block - 1) / block) < 2 * ctx.pool->threads()) block /= 2;
    const int blocks = static_cast<int>((pix + block - 1) / block);
    ctx.pool->run(ctx.n * blocks, [&](int task, int) {
      const int image = task / blocks;
      const int64_t p0 = (task % blocks) * block, rows = std::min(pix - p0, block);
      thread_local std::vector<uint8_t> a;
      thread_local std::vector<int32_t> sums, acc;
      uint8_t* ap = scratch(a, static_cast<size_t>(rows) * w_.k_padded);
      int32_t* sp = scratch(sums, static_cast<size_t>(rows));
      int32_t* cp = scratch(acc, static_cast<size_t>(rows) * w_.n);
      quantize_rows_ld(ctx.at(in_, image) + p0 * in_.ld, in_.ld, 0, rows, in_.c, q, ap, sp);
      qgemm_s32(isa_, ap, static_cast<int>(rows), w_, cp);
      float* out = ctx.at(out_, image) + p0 * out_.ld;
      dequantize_rows(cp, static_cast<int>(rows), w_, sp, term_.data(), scale_.data(), bias_.empty() ? nullptr : bias_.data(),
                      out, out_.ld);
      apply_epilogue(ctx, e_, image, p0, rows, out, out_.ld, w_.n);
    });
  }

 private:
  void run_vq(Context& ctx, ActQuant q) {
    const int64_t pix = in_.pixels();
    run_vq_tiles(ctx, *vq_, pix, std::min<int64_t>(pix, 64),
                 [&](int image, int64_t p0, int64_t rows, int n0, int n1, const PackedWeights& tile) {
      thread_local std::vector<uint8_t> a;
      thread_local std::vector<int32_t> sums, acc;
      uint8_t* ap = scratch(a, static_cast<size_t>(rows) * w_.k_padded);
      int32_t* sp = scratch(sums, static_cast<size_t>(rows));
      int32_t* cp = scratch(acc, static_cast<size_t>(rows) * (n1 - n0));
      quantize_rows_ld(ctx.at(in_, image) + p0 * in_.ld, in_.ld, 0, rows, in_.c, q, ap, sp);
      qgemm_s32(isa_, ap, static_cast<int>(rows), tile, cp);
      float* out = ctx.at(out_, image) + p0 * out_.ld;
      dequantize_columns(cp, static_cast<int>(rows), w_, sp, term_.data(), scale_.data(),
                         bias_.empty() ? nullptr : bias_.data(), out, out_.ld, n0, n1);
      apply_epilogue_columns(ctx, e_, image, p0, rows, out, out_.ld, n0, n1);
    });
  }

  Value in_;
  const Table* table_;
  PackedWeights w_;
  std::vector<float> bias_;
  QGemmIsa isa_;
  Value out_;
  Epilogue e_;
  std::vector<int32_t> term_;
  std::vector<float> scale_;
  std::shared_ptr<const VqWeights> vq_;
};

class F32ConvOp final : public Op {
 public:
  F32ConvOp(Value in, int kernel, int stride, int pad, F32Weights w, std::vector<float> bias, Value out, Epilogue e, int parts)
      : in_(in), kernel_(kernel), stride_(stride), pad_(pad), w_(std::move(w)), bias_(std::move(bias)), out_(out), e_(e) {
    // conv_in / conv_out shapes: straight from the image (code - zero as floats, made once:
    // these layers are a few hundred weights).
    if (kernel_ > 1 && conv_f32_direct_pays(kernel_, in_.c, out_.c)) {
      if (w_.codes.empty()) {
        direct_ = w_.values;
      } else {
        direct_.resize(w_.codes.size());
        for (size_t i = 0; i < direct_.size(); ++i) direct_[i] = static_cast<float>(w_.codes[i]) - w_.zero[i % static_cast<size_t>(out_.c)];
      }
    } else if (w_.codes.empty() && use_dnnl()) {
      // oneDNN, per image and band of output rows (one band per thread).
      dnnl_ = std::make_unique<DnnlConvF32>(in_.c, in_.h, in_.w, kernel_, stride_, pad_, w_.values.data(), out_.c,
                                            bias_.empty() ? nullptr : bias_.data(), parts);
    }
  }
  const char* kind() const override { return "fp32 conv"; }
  void run(Context& ctx) override {
    const int64_t pix = out_.pixels();
    const int k = kernel_ * kernel_ * in_.c;
    if (dnnl_) {
      // Whole images when there are enough to go round, else bands of them (the same values).
      const int bands = ctx.n >= ctx.pool->threads() ? 1 : dnnl_->bands();
      ctx.pool->run(ctx.n * bands, [&](int task, int) {
        const int image = task / bands, band = task % bands;
        float* out = ctx.at(out_, image);
        dnnl_->run(bands, band, ctx.at(in_, image), in_.ld, out, out_.ld);
        const auto [r0, r1] = dnnl_->rows(bands, band);
        const int64_t p0 = static_cast<int64_t>(r0) * out_.w, rows = static_cast<int64_t>(r1 - r0) * out_.w;
        apply_epilogue(ctx, e_, image, p0, rows, out + p0 * out_.ld, out_.ld, out_.c);
      });
      return;
    }
    if (!direct_.empty()) {
      const int64_t block = std::min<int64_t>(pix, 256);
      const int blocks = static_cast<int>((pix + block - 1) / block);
      ctx.pool->run(ctx.n * blocks, [&](int task, int) {
        const int image = task / blocks;
        const int64_t p0 = (task % blocks) * block, rows = std::min(pix - p0, block);
        float* out = ctx.at(out_, image) + p0 * out_.ld;
        conv_f32_direct(ctx.at(in_, image), in_.ld, in_.h, in_.w, in_.c, kernel_, stride_, pad_, p0, p0 + rows, direct_.data(),
                        out_.c, w_.codes.empty() ? nullptr : w_.scale.data(), bias_.empty() ? nullptr : bias_.data(), out,
                        out_.ld);
        apply_epilogue(ctx, e_, image, p0, rows, out, out_.ld, out_.c);
      });
      return;
    }
    const bool direct = kernel_ == 1 && stride_ == 1 && pad_ == 0;  // the input rows are the patches
    const int64_t block = std::min<int64_t>(pix, direct ? 256 : 64);
    const int blocks = static_cast<int>((pix + block - 1) / block);
    ctx.pool->run(ctx.n * blocks, [&](int task, int) {
      const int image = task / blocks;
      const int64_t p0 = (task % blocks) * block, rows = std::min(pix - p0, block);
      const float* a;
      int64_t lda;
      thread_local std::vector<float> patches;
      if (direct) {
        a = ctx.at(in_, image) + p0 * in_.ld;
        lda = in_.ld;
      } else {
        float* pp = scratch(patches, static_cast<size_t>(rows) * k);
        im2col_f32(ctx.at(in_, image), in_.ld, in_.h, in_.w, in_.c, kernel_, stride_, pad_, p0, p0 + rows, pp);
        a = pp;
        lda = k;
      }
      float* out = ctx.at(out_, image) + p0 * out_.ld;
      const float* bias = bias_.empty() ? nullptr : bias_.data();
      if (w_.codes.empty()) gemm_f32(a, lda, static_cast<int>(rows), k, w_.values.data(), out_.c, bias, out, out_.ld);
      else gemm_f32_codes(a, lda, static_cast<int>(rows), k, w_.codes.data(), out_.c, w_.zero.data(), w_.scale.data(), bias, out, out_.ld);
      apply_epilogue(ctx, e_, image, p0, rows, out, out_.ld, out_.c);
    });
  }

 private:
  Value in_;
  int kernel_, stride_, pad_;
  F32Weights w_;
  std::vector<float> bias_;
  Value out_;
  Epilogue e_;
  std::vector<float> direct_;  // (K, N) weights of the direct path (code - zero), or empty
  std::unique_ptr<DnnlConvF32> dnnl_;  // oneDNN per band of output rows, or null
};

class UpsampleOp final : public Op {
 public:
  UpsampleOp(Value in, Value out) : in_(in), out_(out) {}
  const char* kind() const override { return "upsample"; }
  void run(Context& ctx) override {
    ctx.pool->run(ctx.n, [&](int image, int) {
      const float* src = ctx.at(in_, image);
      float* dst = ctx.at(out_, image);
      for (int y = 0; y < out_.h; ++y)
        for (int x = 0; x < out_.w; ++x)
          std::memcpy(dst + (static_cast<int64_t>(y) * out_.w + x) * out_.ld,
                      src + (static_cast<int64_t>(y / 2) * in_.w + x / 2) * in_.ld, sizeof(float) * in_.c);
    });
  }

 private:
  Value in_, out_;
};

class SiluOp final : public Op {
 public:
  SiluOp(Value in, Value out) : in_(in), out_(out) {}
  const char* kind() const override { return "silu"; }
  void run(Context& ctx) override {
    for (int image = 0; image < ctx.n; ++image)
      for (int64_t p = 0; p < in_.pixels(); ++p) {
        const float* s = ctx.at(in_, image) + p * in_.ld;
        float* d = ctx.at(out_, image) + p * out_.ld;
        for (int j = 0; j < in_.c; ++j) d[j] = s[j] / (1.0f + std::exp(-s[j]));
      }
  }

 private:
  Value in_, out_;
};

class LayerNormOp final : public Op {
 public:
  LayerNormOp(Value in, std::vector<float> g, std::vector<float> b, double eps, Value out)
      : in_(in), g_(std::move(g)), b_(std::move(b)), eps_(eps), out_(out) {}
  const char* kind() const override { return "layer norm"; }
  void run(Context& ctx) override {
    ctx.pool->run(ctx.n, [&](int image, int) {
      for (int64_t p = 0; p < in_.pixels(); ++p) {
        const float* s = ctx.at(in_, image) + p * in_.ld;
        float* d = ctx.at(out_, image) + p * out_.ld;
        double mean = 0, var = 0;
        for (int j = 0; j < in_.c; ++j) mean += s[j];
        mean /= in_.c;
        for (int j = 0; j < in_.c; ++j) var += (s[j] - mean) * (s[j] - mean);
        const double inv = 1.0 / std::sqrt(var / in_.c + eps_);
        for (int j = 0; j < in_.c; ++j) d[j] = static_cast<float>((s[j] - mean) * inv) * g_[static_cast<size_t>(j)] + b_[static_cast<size_t>(j)];
      }
    });
  }

 private:
  Value in_;
  std::vector<float> g_, b_;
  double eps_;
  Value out_;
};

class GeluOp final : public Op {
 public:
  GeluOp(Value in, bool quick, Value out) : in_(in), quick_(quick), out_(out) {}
  const char* kind() const override { return quick_ ? "quick gelu" : "gelu"; }
  void run(Context& ctx) override {
    ctx.pool->run(ctx.n, [&](int image, int) {
      for (int64_t p = 0; p < in_.pixels(); ++p) {
        const float* s = ctx.at(in_, image) + p * in_.ld;
        float* d = ctx.at(out_, image) + p * out_.ld;
        if (quick_)
          for (int j = 0; j < in_.c; ++j) d[j] = s[j] / (1.0f + std::exp(-1.702f * s[j]));
        else
          for (int j = 0; j < in_.c; ++j) d[j] = 0.5f * s[j] * (1.0f + std::erf(s[j] * 0.70710678118654752f));
      }
    });
  }

 private:
  Value in_;
  bool quick_;
  Value out_;
};

class GegluOp final : public Op {
 public:
  GegluOp(Value in, Value out) : in_(in), out_(out) {}
  const char* kind() const override { return "geglu"; }
  void run(Context& ctx) override {
    ctx.pool->run(ctx.n, [&](int image, int) { geglu_rows(ctx.at(in_, image), in_.ld, in_.pixels(), out_.c, ctx.at(out_, image), out_.ld); });
  }

 private:
  Value in_, out_;
};

// out[image] = entry labels[image] of `table` (entries of out's pixels x channels rows).
void gather_text_entries(const Context& ctx, const float* table, const Value& out) {
  if (!ctx.text || !ctx.labels) throw std::invalid_argument("execution plan: a text model needs its text states");
  const int64_t entry = out.pixels() * out.c;
  for (int image = 0; image < ctx.n; ++image) {
    const int64_t e = ctx.labels[image];
    if (e < 0 || e >= ctx.text_entries) throw std::invalid_argument("execution plan: no text states entry " + std::to_string(e));
    for (int64_t p = 0; p < out.pixels(); ++p)
      std::memcpy(ctx.at(out, image) + p * out.ld, table + e * entry + p * out.c, sizeof(float) * out.c);
  }
}

class TextStatesOp final : public Op {
 public:
  explicit TextStatesOp(Value out) : out_(out) {}
  const char* kind() const override { return "text states"; }
  void run(Context& ctx) override { gather_text_entries(ctx, ctx.text, out_); }

 private:
  Value out_;
};

// A linear layer on the text states (cross-attention's to_k / to_v): its input does not depend
// on the timestep or the image, so each entry of the request's table is projected once, when the
// table changes (a new generation), and each image copies its entry's rows every step.
class TextProjectionOp final : public Op {
 public:
  TextProjectionOp(F32Weights w, std::vector<float> bias, Value out) : w_(std::move(w)), bias_(std::move(bias)), out_(out) {}
  const char* kind() const override { return "text projection"; }
  void run(Context& ctx) override {
    if (!ctx.text) throw std::invalid_argument("execution plan: a text model needs its text states");
    const int n = out_.c, k = static_cast<int>(w_.values.size() / static_cast<size_t>(n)), length = static_cast<int>(out_.pixels());
    if (generation_ != ctx.text_generation) {
      const int64_t rows = static_cast<int64_t>(length) * n;
      table_.resize(static_cast<size_t>(ctx.text_entries) * rows);
      ctx.pool->run(ctx.text_entries, [&](int e, int) {
        gemm_f32(ctx.text + static_cast<int64_t>(e) * length * k, k, length, k, w_.values.data(), n,
                 bias_.empty() ? nullptr : bias_.data(), table_.data() + e * rows, n);
      });
      generation_ = ctx.text_generation;
    }
    gather_text_entries(ctx, table_.data(), out_);
  }

 private:
  F32Weights w_;
  std::vector<float> bias_;
  Value out_;
  std::vector<float> table_;  // (entries, length, n) of the current generation
  uint64_t generation_ = 0;
};

class CopyOp final : public Op {
 public:
  CopyOp(Value in, Value out) : in_(in), out_(out) {}
  const char* kind() const override { return "copy"; }
  void run(Context& ctx) override {
    ctx.pool->run(ctx.n, [&](int image, int) {
      for (int64_t p = 0; p < in_.pixels(); ++p)
        std::memcpy(ctx.at(out_, image) + p * out_.ld, ctx.at(in_, image) + p * in_.ld, sizeof(float) * in_.c);
    });
  }

 private:
  Value in_, out_;
};

class AttentionOp final : public Op {
 public:
  AttentionOp(Value q, Value k, Value v, int heads, const Table* tq, const Table* tk, const Table* tv, const Table* tp,
              QGemmIsa isa, Value out)
      : q_(q), k_(k), v_(v), heads_(heads), tq_(tq), tk_(tk), tv_(tv), tp_(tp), isa_(isa), out_(out) {}
  const char* kind() const override { return "attention"; }
  void run(Context& ctx) override {
    // len queries against len_kv keys (a cross-attention's keys are the text tokens)
    const int len = static_cast<int>(q_.pixels()), len_kv = static_cast<int>(k_.pixels()), d = q_.c / heads_;
    const AttentionTables t{tq_->at(ctx.step), tk_->at(ctx.step), tv_->at(ctx.step), tp_->at(ctx.step)};
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
    const bool exact_pays = attention_exact_pays(len, len_kv, d);
    ctx.pool->run(ctx.n * heads_, [&](int task, int) {
      const int image = task / heads_, h = task % heads_;
      thread_local std::vector<float> qh, kh, vh;
      float* qp = scratch(qh, static_cast<size_t>(len) * d);
      float* kp = scratch(kh, static_cast<size_t>(len_kv) * d);
      float* vp = scratch(vh, static_cast<size_t>(len_kv) * d);
      const float* qs = ctx.at(q_, image) + h * d;
      const float* ks = ctx.at(k_, image) + h * d;
      const float* vs = ctx.at(v_, image) + h * d;
      for (int i = 0; i < len; ++i) std::memcpy(qp + i * d, qs + static_cast<int64_t>(i) * q_.ld, sizeof(float) * d);
      for (int i = 0; i < len_kv; ++i) {
        std::memcpy(kp + i * d, ks + static_cast<int64_t>(i) * k_.ld, sizeof(float) * d);
        std::memcpy(vp + i * d, vs + static_cast<int64_t>(i) * v_.ld, sizeof(float) * d);
      }
      // The integer products on fp32 GEMMs where that pays and they are exact there (the same
      // bits), else on the integer GEMMs (engine/kernels/attention.h).
      float* dst = ctx.at(out_, image) + h * d;
      if (!exact_pays || !attention_head_exact(isa_, qp, kp, vp, len, len_kv, d, t, scale, dst, out_.ld))
        attention_head_int(isa_, qp, kp, vp, len, len_kv, d, t, scale, dst, out_.ld);
    });
  }

 private:
  Value q_, k_, v_;
  int heads_;
  const Table *tq_, *tk_, *tv_, *tp_;
  QGemmIsa isa_;
  Value out_;
};

// softmax(q k^T * scale) v in fp32 per (image, head): the head's q, k and v gathered
// contiguous, both products through gemm_f32.
class AttentionF32Op final : public Op {
 public:
  AttentionF32Op(Value q, Value k, Value v, int heads, bool causal, QGemmIsa isa, Value out)
      : q_(q), k_(k), v_(v), heads_(heads), causal_(causal), isa_(isa), out_(out) {}
  const char* kind() const override { return "fp32 attention"; }
  void run(Context& ctx) override {
    const int len = static_cast<int>(q_.pixels()), len_kv = static_cast<int>(k_.pixels()), d = q_.c / heads_;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
    ctx.pool->run(ctx.n * heads_, [&](int task, int) {
      const int image = task / heads_, h = task % heads_;
      thread_local std::vector<float> qh, kt, vh, logits;
      float* qp = scratch(qh, static_cast<size_t>(len) * d);
      float* kp = scratch(kt, static_cast<size_t>(d) * len_kv);  // K^T: (d, len_kv)
      float* vp = scratch(vh, static_cast<size_t>(len_kv) * d);
      const float* qs = ctx.at(q_, image) + h * d;
      const float* ks = ctx.at(k_, image) + h * d;
      const float* vs = ctx.at(v_, image) + h * d;
      for (int i = 0; i < len; ++i) std::memcpy(qp + i * d, qs + static_cast<int64_t>(i) * q_.ld, sizeof(float) * d);
      for (int i = 0; i < len_kv; ++i) {
        std::memcpy(vp + i * d, vs + static_cast<int64_t>(i) * v_.ld, sizeof(float) * d);
        for (int j = 0; j < d; ++j) kp[j * len_kv + i] = ks[static_cast<int64_t>(i) * k_.ld + j];
      }
      float* lp = scratch(logits, static_cast<size_t>(len) * len_kv);
      gemm_f32(qp, d, len, d, kp, len_kv, nullptr, lp, len_kv);
      if (causal_)  // query i sees keys 0..i
        for (int i = 0; i < len; ++i)
          for (int j = i + 1; j < len_kv; ++j) lp[static_cast<int64_t>(i) * len_kv + j] = -std::numeric_limits<float>::infinity();
      softmax_rows(isa_, lp, len_kv, len, len_kv, scale);
      gemm_f32(lp, len_kv, len, len_kv, vp, d, nullptr, ctx.at(out_, image) + h * d, out_.ld);
    });
  }

 private:
  Value q_, k_, v_;
  int heads_;
  bool causal_;
  QGemmIsa isa_;
  Value out_;
};

// out = (x * alpha + beta) / divisor, each step only where it changes x (as the simulation).
class AffineOp final : public Op {
 public:
  AffineOp(Value in, float alpha, float beta, float divisor, Value out)
      : in_(in), alpha_(alpha), beta_(beta), divisor_(divisor), out_(out) {}
  const char* kind() const override { return "affine"; }
  void run(Context& ctx) override {
    for (int image = 0; image < ctx.n; ++image)
      for (int64_t p = 0; p < in_.pixels(); ++p) {
        const float* s = ctx.at(in_, image) + p * in_.ld;
        float* d = ctx.at(out_, image) + p * out_.ld;
        for (int j = 0; j < in_.c; ++j) {
          float y = s[j];
          if (alpha_ != 1.0f) y = y * alpha_;
          if (beta_ != 0.0f) y = y + beta_;
          if (divisor_ != 1.0f) y = y / divisor_;
          d[j] = y;
        }
      }
  }

 private:
  Value in_;
  float alpha_, beta_, divisor_;
  Value out_;
};

int64_t index_of(const Context& ctx, Index index, int image) {
  return index == Index::kTimestep ? ctx.t : ctx.labels[image];
}

// out[image][p] = table[token p of image] (a text encoder's token embedding).
class TokenEmbeddingOp final : public Op {
 public:
  TokenEmbeddingOp(std::vector<float> table, int dim, Value out) : table_(std::move(table)), dim_(dim), out_(out) {}
  const char* kind() const override { return "token embedding"; }
  void run(Context& ctx) override {
    const int64_t rows = static_cast<int64_t>(table_.size()) / dim_, len = out_.pixels();
    for (int image = 0; image < ctx.n; ++image)
      for (int64_t p = 0; p < len; ++p) {
        const int64_t i = ctx.tokens[image * len + p];
        if (i < 0 || i >= rows) throw std::out_of_range("token id " + std::to_string(i) + " outside the vocabulary");
        std::memcpy(ctx.at(out_, image) + p * out_.ld, table_.data() + i * dim_, sizeof(float) * dim_);
      }
  }

 private:
  std::vector<float> table_;
  int dim_;
  Value out_;
};

// out[p] = in[p] + table[p] (learned position embeddings, positions 0..L-1).
class PositionEmbeddingOp final : public Op {
 public:
  PositionEmbeddingOp(std::vector<float> table, Value in, Value out) : table_(std::move(table)), in_(in), out_(out) {}
  const char* kind() const override { return "position embedding"; }
  void run(Context& ctx) override {
    for (int image = 0; image < ctx.n; ++image)
      for (int64_t p = 0; p < in_.pixels(); ++p) {
        const float* x = ctx.at(in_, image) + p * in_.ld;
        const float* e = table_.data() + p * in_.c;
        float* o = ctx.at(out_, image) + p * out_.ld;
        for (int j = 0; j < in_.c; ++j) o[j] = x[j] + e[j];
      }
  }

 private:
  std::vector<float> table_;
  Value in_, out_;
};

class TimestepProjOp final : public Op {
 public:
  TimestepProjOp(int dim, bool flip, double shift, Index index, Value out)
      : dim_(dim), flip_(flip), shift_(shift), index_(index), out_(out) {}
  const char* kind() const override { return "timestep projection"; }
  void run(Context& ctx) override {
    const int half = dim_ / 2;
    for (int image = 0; image < ctx.n; ++image) {
      float* row = ctx.at(out_, image);
      if (image > 0 && index_ == Index::kTimestep) {  // one t for the whole call
        std::memcpy(row, ctx.at(out_, 0), sizeof(float) * dim_);
        continue;
      }
      const float t = static_cast<float>(index_of(ctx, index_, image));
      for (int i = 0; i < half; ++i) {
        // as sinusoidal_embedding: exp(i * -ln(10000) / (half - shift)) in float, times t
        const float e = static_cast<float>(i) * static_cast<float>(-std::log(10000.0) / (half - shift_));
        const float arg = t * std::exp(e);
        row[flip_ ? i : half + i] = std::cos(arg);
        row[flip_ ? half + i : i] = std::sin(arg);
      }
      if (dim_ % 2 == 1) row[dim_ - 1] = 0.0f;
    }
  }

 private:
  int dim_;
  bool flip_;
  double shift_;
  Index index_;
  Value out_;
};

// [sin, cos](2 pi log(index) w): a Gaussian Fourier projection.
class FourierProjOp final : public Op {
 public:
  FourierProjOp(std::vector<float> w, Index index, Value out) : w_(std::move(w)), index_(index), out_(out) {}
  const char* kind() const override { return "fourier projection"; }
  void run(Context& ctx) override {
    const int m = static_cast<int>(w_.size());
    for (int image = 0; image < ctx.n; ++image) {
      float* row = ctx.at(out_, image);
      const float lt = std::log(static_cast<float>(index_of(ctx, index_, image)));
      for (int i = 0; i < m; ++i) {
        const float p = lt * w_[static_cast<size_t>(i)] * static_cast<float>(2 * M_PI);
        row[i] = std::sin(p);
        row[m + i] = std::cos(p);
      }
    }
  }

 private:
  std::vector<float> w_;
  Index index_;
  Value out_;
};

// out = table[index] (a class embedding, or a learned time embedding).
class EmbeddingOp final : public Op {
 public:
  EmbeddingOp(std::vector<float> table, int dim, Index index, Value out)
      : table_(std::move(table)), dim_(dim), index_(index), out_(out) {}
  const char* kind() const override { return "embedding"; }
  void run(Context& ctx) override {
    const int64_t rows = static_cast<int64_t>(table_.size()) / dim_;
    for (int image = 0; image < ctx.n; ++image) {
      const int64_t i = index_of(ctx, index_, image);
      if (i < 0 || i >= rows) throw std::out_of_range("embedding index " + std::to_string(i) + " outside the table");
      std::memcpy(ctx.at(out_, image), table_.data() + i * dim_, sizeof(float) * dim_);
    }
  }

 private:
  std::vector<float> table_;
  int dim_;
  Index index_;
  Value out_;
};

// out = a + b: b of a's shape, or one row per image added to every pixel of a.
class AddOp final : public Op {
 public:
  AddOp(Value a, Value b, Value out) : a_(a), b_(b), out_(out) {}
  const char* kind() const override { return "add"; }
  void run(Context& ctx) override {
    const bool broadcast = b_.pixels() == 1 && a_.pixels() > 1;
    for (int image = 0; image < ctx.n; ++image)
      for (int64_t p = 0; p < a_.pixels(); ++p) {
        const float* x = ctx.at(a_, image) + p * a_.ld;
        const float* y = ctx.at(b_, image) + (broadcast ? 0 : p * b_.ld);
        float* o = ctx.at(out_, image) + p * out_.ld;
        for (int j = 0; j < a_.c; ++j) o[j] = x[j] + y[j];
      }
  }

 private:
  Value a_, b_, out_;
};

// h * (1 + f[:C]) + f[C:] with f one row of 2C per image (resnet_time_scale_shift).
class ScaleShiftOp final : public Op {
 public:
  ScaleShiftOp(Value h, Value f, Value out) : h_(h), f_(f), out_(out) {}
  const char* kind() const override { return "scale shift"; }
  void run(Context& ctx) override {
    for (int image = 0; image < ctx.n; ++image) {
      const float* f = ctx.at(f_, image);
      for (int64_t p = 0; p < h_.pixels(); ++p) {
        const float* x = ctx.at(h_, image) + p * h_.ld;
        float* o = ctx.at(out_, image) + p * out_.ld;
        for (int j = 0; j < h_.c; ++j) o[j] = x[j] * (1.0f + f[j]) + f[h_.c + j];
      }
    }
  }

 private:
  Value h_, f_, out_;
};

// out = in / t (every value, the call's timestep).
class DivideByTimestepOp final : public Op {
 public:
  DivideByTimestepOp(Value in, Value out) : in_(in), out_(out) {}
  const char* kind() const override { return "divide by t"; }
  void run(Context& ctx) override {
    const float t = static_cast<float>(ctx.t);
    for (int image = 0; image < ctx.n; ++image)
      for (int64_t p = 0; p < in_.pixels(); ++p) {
        const float* x = ctx.at(in_, image) + p * in_.ld;
        float* o = ctx.at(out_, image) + p * out_.ld;
        for (int j = 0; j < in_.c; ++j) o[j] = x[j] / t;
      }
  }

 private:
  Value in_, out_;
};

// The image with `amount` rows and columns of zeros added at the bottom and right.
class PadBottomRightOp final : public Op {
 public:
  PadBottomRightOp(Value in, Value out) : in_(in), out_(out) {}
  const char* kind() const override { return "pad"; }
  void run(Context& ctx) override {
    for (int image = 0; image < ctx.n; ++image)
      for (int y = 0; y < out_.h; ++y)
        for (int x = 0; x < out_.w; ++x) {
          float* o = ctx.at(out_, image) + (static_cast<int64_t>(y) * out_.w + x) * out_.ld;
          if (y < in_.h && x < in_.w) std::memcpy(o, ctx.at(in_, image) + (static_cast<int64_t>(y) * in_.w + x) * in_.ld, sizeof(float) * in_.c);
          else std::memset(o, 0, sizeof(float) * in_.c);
        }
  }

 private:
  Value in_, out_;
};

// Element: float (copied) or uint16_t (IEEE half bits, widened exactly).
template <typename Element>
class FeatureCacheOp final : public Op {
 public:
  FeatureCacheOp(std::vector<Element> cache, int rows, Value out) : cache_(std::move(cache)), rows_(rows), out_(out) {}
  const char* kind() const override { return "feature cache"; }
  void run(Context& ctx) override {
    for (int image = 0; image < ctx.n; ++image) {
      // One row per class label of a class-conditional model; a single row otherwise (a text
      // model's labels are rows of its text states, not of this cache).
      const int64_t label = rows_ > 1 && ctx.labels ? ctx.labels[image] : 0;
      if (label < 0 || label >= rows_) throw std::invalid_argument("execution plan: no feature cache row for label " + std::to_string(label));
      const int64_t row = static_cast<int64_t>(ctx.step) * rows_ + label;
      const Element* from = cache_.data() + row * out_.c;
      float* to = ctx.at(out_, image);
      if constexpr (std::is_same_v<Element, float>) {
        std::memcpy(to, from, sizeof(float) * out_.c);
      } else {
        for (int c = 0; c < out_.c; ++c) to[c] = half_to_float(from[c]);
      }
    }
  }

 private:
  std::vector<Element> cache_;
  int rows_;
  Value out_;
};

}  // namespace

ActQuant Table::at(int step) const {
  const size_t i = scale.size() == 1 ? 0 : static_cast<size_t>(step);
  return {scale.at(i), static_cast<int32_t>(std::lround(zero.at(i))), (1 << bits) - 1};
}

std::unique_ptr<Op> group_norm_op(Value in, int groups, double eps, std::vector<float> gamma, std::vector<float> beta,
                                  bool silu, Value out_f32, CodesTarget out_codes, QGemmIsa isa) {
  return std::make_unique<GroupNormOp>(in, groups, eps, std::move(gamma), std::move(beta), silu, out_f32, out_codes, isa);
}
std::unique_ptr<Op> quantize_op(Value in, bool upsample, CodesTarget out) { return std::make_unique<QuantizeOp>(in, upsample, out); }
std::unique_ptr<Op> vq_conv_op(CodesTarget in, int kernel, int stride, std::shared_ptr<const VqWeights> weights,
                               std::vector<float> bias, QGemmIsa isa, bool lanes, Value out, Epilogue epilogue) {
  PackedWeights columns = weights->columns;
  return std::make_unique<IntConvOp>(in, kernel, stride, std::move(columns), std::move(bias), isa, lanes, out, epilogue,
                                     std::move(weights));
}

std::unique_ptr<Op> vq_linear_op(Value in, const Table* table, std::shared_ptr<const VqWeights> weights,
                                 std::vector<float> bias, QGemmIsa isa, Value out, Epilogue epilogue) {
  PackedWeights columns = weights->columns;
  return std::make_unique<IntLinearOp>(in, table, std::move(columns), std::move(bias), isa, out, epilogue, std::move(weights));
}

std::unique_ptr<Op> int_conv_op(CodesTarget in, int kernel, int stride, PackedWeights weights, std::vector<float> bias,
                                QGemmIsa isa, bool lanes, Value out, Epilogue epilogue) {
  return std::make_unique<IntConvOp>(in, kernel, stride, std::move(weights), std::move(bias), isa, lanes, out, epilogue);
}
std::unique_ptr<Op> upsampled_conv_op(CodesTarget in, PackedWeights weights, std::vector<float> bias, QGemmIsa isa, Value out) {
  return std::make_unique<UpsampledConvOp>(in, std::move(weights), std::move(bias), isa, out);
}

std::unique_ptr<Op> int_linear_op(Value in, const Table* table, PackedWeights weights, std::vector<float> bias,
                                  QGemmIsa isa, Value out, Epilogue epilogue) {
  return std::make_unique<IntLinearOp>(in, table, std::move(weights), std::move(bias), isa, out, epilogue);
}
std::unique_ptr<Op> f32_conv_op(Value in, int kernel, int stride, int pad, F32Weights weights,
                                std::vector<float> bias, Value out, Epilogue epilogue, int parts) {
  return std::make_unique<F32ConvOp>(in, kernel, stride, pad, std::move(weights), std::move(bias), out, epilogue, parts);
}
std::unique_ptr<Op> upsample_op(Value in, Value out) { return std::make_unique<UpsampleOp>(in, out); }
std::unique_ptr<Op> silu_op(Value in, Value out) { return std::make_unique<SiluOp>(in, out); }
std::unique_ptr<Op> copy_op(Value in, Value out) { return std::make_unique<CopyOp>(in, out); }
std::unique_ptr<Op> attention_op(Value q, Value k, Value v, int heads, const Table* tq, const Table* tk,
                                 const Table* tv, const Table* tp, QGemmIsa isa, Value out) {
  return std::make_unique<AttentionOp>(q, k, v, heads, tq, tk, tv, tp, isa, out);
}
std::unique_ptr<Op> attention_f32_op(Value q, Value k, Value v, int heads, bool causal, QGemmIsa isa, Value out) {
  return std::make_unique<AttentionF32Op>(q, k, v, heads, causal, isa, out);
}
std::unique_ptr<Op> token_embedding_op(std::vector<float> table, int dim, Value out) {
  return std::make_unique<TokenEmbeddingOp>(std::move(table), dim, out);
}
std::unique_ptr<Op> position_embedding_op(std::vector<float> table, Value in, Value out) {
  return std::make_unique<PositionEmbeddingOp>(std::move(table), in, out);
}
std::unique_ptr<Op> layer_norm_op(Value in, std::vector<float> gamma, std::vector<float> beta, double eps, Value out) {
  return std::make_unique<LayerNormOp>(in, std::move(gamma), std::move(beta), eps, out);
}
std::unique_ptr<Op> gelu_op(Value in, bool quick, Value out) { return std::make_unique<GeluOp>(in, quick, out); }
std::unique_ptr<Op> geglu_op(Value in, Value out) { return std::make_unique<GegluOp>(in, out); }
std::unique_ptr<Op> text_states_op(Value out) { return std::make_unique<TextStatesOp>(out); }
std::unique_ptr<Op> text_projection_op(F32Weights weights, std::vector<float> bias, Value out) {
  return std::make_unique<TextProjectionOp>(std::move(weights), std::move(bias), out);
}
std::unique_ptr<Op> affine_op(Value in, float alpha, float beta, float divisor, Value out) {
  return std::make_unique<AffineOp>(in, alpha, beta, divisor, out);
}
std::unique_ptr<Op> timestep_proj_op(int dim, bool flip, double shift, Index index, Value out) {
  return std::make_unique<TimestepProjOp>(dim, flip, shift, index, out);
}
std::unique_ptr<Op> fourier_proj_op(std::vector<float> w, Index index, Value out) {
  return std::make_unique<FourierProjOp>(std::move(w), index, out);
}
std::unique_ptr<Op> embedding_op(std::vector<float> table, int dim, Index index, Value out) {
  return std::make_unique<EmbeddingOp>(std::move(table), dim, index, out);
}
std::unique_ptr<Op> add_op(Value a, Value b, Value out) { return std::make_unique<AddOp>(a, b, out); }
std::unique_ptr<Op> scale_shift_op(Value h, Value f, Value out) { return std::make_unique<ScaleShiftOp>(h, f, out); }
std::unique_ptr<Op> divide_by_timestep_op(Value in, Value out) { return std::make_unique<DivideByTimestepOp>(in, out); }
std::unique_ptr<Op> pad_bottom_right_op(Value in, Value out) { return std::make_unique<PadBottomRightOp>(in, out); }
std::unique_ptr<Op> feature_cache_op(std::vector<float> cache, int rows_per_step, Value out) {
  return std::make_unique<FeatureCacheOp<float>>(std::move(cache), rows_per_step, out);
}
std::unique_ptr<Op> feature_cache_f16_op(std::vector<uint16_t> cache, int rows_per_step, Value out) {
  return std::make_unique<FeatureCacheOp<uint16_t>>(std::move(cache), rows_per_step, out);
}

}  // namespace qdm::plan
