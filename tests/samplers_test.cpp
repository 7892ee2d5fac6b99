#include <gtest/gtest.h>
#include <torch/utils.h>

#include "engine/model/unet_2d.h"
#include "engine/runtime/loaded_model.h"
#include <ATen/core/PhiloxRNGEngine.h>

#include "engine/sampling/noise.h"
#include "engine/sampling/tensor_sampling.h"
#include "tests/test_models.h"

namespace qdm {
namespace {

// The exact noise predictor when the data is a point mass at `c`.
Denoiser point_mass(const NoiseSchedule& s, double c) {
  return [&s, c](const at::Tensor& x, int t, int) {
    const double a = s.alphas_cumprod[static_cast<size_t>(t)];
    return (x - std::sqrt(a) * c) / std::sqrt(1 - a);
  };
}

// The exact noise predictor when the data is N(0, sigma^2 I).
Denoiser gaussian(const NoiseSchedule& s, double sigma) {
  return [&s, sigma](const at::Tensor& x, int t, int) {
    const double a = s.alphas_cumprod[static_cast<size_t>(t)];
    return x * (std::sqrt(1 - a) / (a * sigma * sigma + 1 - a));
  };
}

// Philox4x32-10 against LibTorch's own implementation (ATen's philox_engine, its CUDA
// generator's CPU twin): the counter is (block, draw), the key the seed.
TEST(Noise, PhiloxEqualsLibTorchsEngine) {
  for (uint64_t seed : {uint64_t{0}, uint64_t{7}, uint64_t{0xDEADBEEFCAFEF00D}})
    for (uint32_t draw : {0u, 1u, 57u})
      for (uint64_t block : {uint64_t{0}, uint64_t{1}, uint64_t{1234567}, uint64_t{0x100000003}}) {
        at::philox_engine reference(seed, draw, block);  // subsequence = counter words 2-3, offset = words 0-1
        const auto got = philox4x32_10({static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), draw, 0},
                                       {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
        for (int i = 0; i < 4; ++i) ASSERT_EQ(got[static_cast<size_t>(i)], reference()) << seed << " " << draw << " " << block;
      }
}

// Standard normal values, a pure function of (seed, draw, position): any prefix is the start
// of a longer request, other seeds and draws give other values.
TEST(Noise, GaussianAndAFunctionOfSeedDrawAndPosition) {
  std::vector<float> a(100003), b(37), c(100003), d(100003);
  gaussian_noise(11, 0, a.data(), static_cast<int64_t>(a.size()));
  gaussian_noise(11, 0, b.data(), static_cast<int64_t>(b.size()));
  gaussian_noise(12, 0, c.data(), static_cast<int64_t>(c.size()));
  gaussian_noise(11, 1, d.data(), static_cast<int64_t>(d.size()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), a.begin()));
  double mean = 0, var = 0, cov_seed = 0, cov_draw = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    mean += a[i];
    var += a[i] * a[i];
    cov_seed += a[i] * c[i];
    cov_draw += a[i] * d[i];
  }
  const double n = static_cast<double>(a.size());
  EXPECT_NEAR(mean / n, 0.0, 0.01);
  EXPECT_NEAR(var / n, 1.0, 0.015);
  EXPECT_NEAR(cov_seed / n, 0.0, 0.015);
  EXPECT_NEAR(cov_draw / n, 0.0, 0.015);
  EXPECT_LT(*std::min_element(a.begin(), a.end()), -3.5f);  // tails as a normal's
  EXPECT_GT(*std::max_element(a.begin(), a.end()), 3.5f);
}

TEST(Timesteps, Spacings) {
  EXPECT_EQ(make_timesteps(1000, 10, TimestepSpacing::kLeading),
            (std::vector<int>{900, 800, 700, 600, 500, 400, 300, 200, 100, 0}));
  EXPECT_EQ(make_timesteps(1000, 10, TimestepSpacing::kLeading, 1).front(), 901);
  EXPECT_EQ(make_timesteps(1000, 4, TimestepSpacing::kTrailing), (std::vector<int>{999, 749, 499, 249}));
  EXPECT_EQ(make_timesteps(1000, 300, TimestepSpacing::kUniform).size(), 334u);  // range(0, 1000, 3)
  EXPECT_EQ(make_timesteps(1000, 1000, TimestepSpacing::kLeading).size(), 1000u);
  const auto quad = make_timesteps(1000, 5, TimestepSpacing::kQuad);
  EXPECT_EQ(quad.back(), 0);
  EXPECT_EQ(quad.front(), 800);
  EXPECT_THROW(make_timesteps(1000, 0, TimestepSpacing::kLeading), std::invalid_argument);
  EXPECT_THROW(make_timesteps(1000, 1001, TimestepSpacing::kLeading), std::invalid_argument);
  EXPECT_THROW(parse_spacing("linspace2"), std::invalid_argument);
}

TEST(Samplers, DdimAndDdpmRecoverAPointMass) {
  const NoiseSchedule s(SchedulerConfig{});
  for (auto kind : {SamplerKind::kDDIM, SamplerKind::kDDPM, SamplerKind::kDpmSolver2M}) {
    for (int steps : {1, 2, 10, 100}) {
      SamplerOptions o;
      o.kind = kind;
      o.steps = steps;
      at::Tensor x = run_sampler(s, o, point_mass(s, 0.3), {5, 6, 7}, 1, 4, 4);
      EXPECT_LT((x - 0.3).abs().max().item<double>(), 1e-4) << sampler_name(kind) << " " << steps;
    }
  }
}

// On Gaussian data N(0, s^2) every update is linear in x plus fresh noise, so the variance of the
// samples follows an exact recurrence over the schedule (near s^2: 0.486^2 for DDIM eta 0 and
// 0.468^2 for eta 1 at 100 steps, the discretisation's own error). The samplers' statistics must
// match it to sampling error (16k values: a standard error of 0.003 on the deviation).
TEST(Samplers, ReachTheVarianceTheirUpdatesImplyOnAGaussian) {
  SchedulerConfig cfg;
  cfg.clip_sample = false;
  const NoiseSchedule s(cfg);
  const double sigma = 0.5;
  for (auto [kind, eta] : {std::pair{SamplerKind::kDDIM, 0.0}, std::pair{SamplerKind::kDDIM, 1.0},
                           std::pair{SamplerKind::kDDPM, 0.0}}) {
    SamplerOptions o;
    o.kind = kind;
    o.eta = eta;
    o.steps = kind == SamplerKind::kDDPM ? 1000 : 100;
    const std::vector<int> ts = sampler_timesteps(s, o);
    double var = 1.0;
    for (size_t i = 0; i < ts.size(); ++i) {
      const double a = s.alphas_cumprod[static_cast<size_t>(ts[i])];
      const double ap = i + 1 < ts.size() ? s.alphas_cumprod[static_cast<size_t>(ts[i + 1])] : 1.0;
      const double k = std::sqrt(1 - a) / (a * sigma * sigma + 1 - a);  // eps = k x
      const double x0 = (1 - std::sqrt(1 - a) * k) / std::sqrt(a);       // x0 = x0 * x
      double gain, noise;
      if (kind == SamplerKind::kDDIM) {
        const double sd = eta * std::sqrt((1 - ap) / (1 - a) * (1 - a / ap));
        gain = std::sqrt(ap) * x0 + std::sqrt(std::max(1 - ap - sd * sd, 0.0)) * k;
        noise = sd * sd;
      } else {
        const double alpha = a / ap, beta = 1 - alpha;
        gain = std::sqrt(ap) * beta / (1 - a) * x0 + std::sqrt(alpha) * (1 - ap) / (1 - a);
        noise = ts[i] > 0 ? (1 - ap) / (1 - a) * beta : 0.0;
      }
      var = gain * gain * var + noise;
    }
    EXPECT_NEAR(std::sqrt(var), sigma, 0.04) << "the recurrence itself, " << sampler_name(kind) << " eta " << eta;
    std::vector<uint64_t> seeds(256);
    for (size_t i = 0; i < seeds.size(); ++i) seeds[i] = i;
    at::Tensor x = run_sampler(s, o, gaussian(s, sigma), seeds, 1, 8, 8);  // 16k values
    EXPECT_NEAR(x.std().item<double>(), std::sqrt(var), 0.012) << sampler_name(kind) << " eta " << eta;
    EXPECT_NEAR(x.mean().item<double>(), 0.0, 0.012);
  }
}

// On Gaussian data N(0, s^2) the probability-flow ODE is linear: from timestep T it maps x_T to
// x_T * s / sqrt(a_T s^2 + 1 - a_T). DPM-Solver++(2M) lands closer to it than DDIM with as many
// steps (3x closer from 20 steps; a toy this stiff gains least at 10, where one first-order step
// into t = 0 spans most of the log-SNR range), and equals a scalar transcription of the paper's
// update (Lu et al. 2022, multistep second order, data prediction x0 = x sqrt(a) s^2 / (a s^2 +
// 1 - a); first order on the first step and into t = 0).
TEST(Samplers, DpmSolverFollowsTheOdeInFewSteps) {
  SchedulerConfig cfg;
  cfg.clip_sample = false;
  const NoiseSchedule s(cfg);
  const double sd = 0.5;
  auto gain = [&](SamplerKind kind, int steps) {
    SamplerOptions o;
    o.kind = kind;
    o.steps = steps;
    std::vector<float> start(2 * 16);
    gaussian_noise(7, 0, start.data(), 16);  // each image's draw 0: where the sampler starts
    gaussian_noise(8, 0, start.data() + 16, 16);
    const at::Tensor x_t = image_tensor(start, 1, 4, 4);
    const at::Tensor x = run_sampler(s, o, gaussian(s, sd), {7, 8}, 1, 4, 4);
    return (x / x_t).mean().item<double>();
  };
  for (int steps : {10, 20, 50}) {
    const std::vector<int> ts = make_timesteps(1000, steps, TimestepSpacing::kLeading);
    auto a = [&](int t) { return s.alphas_cumprod[static_cast<size_t>(t)]; };
    const double exact = sd / std::sqrt(a(ts[0]) * sd * sd + 1 - a(ts[0]));
    // The scalar transcription: x = k x_T.
    double k = 1, previous = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
      const double at = a(ts[i]), x0 = k * std::sqrt(at) * sd * sd / (at * sd * sd + 1 - at);
      if (i + 1 == ts.size()) {
        k = x0;
        break;
      }
      const double an = a(ts[i + 1]);
      const double lam_s = std::log(std::sqrt(at) / std::sqrt(1 - at)), lam_n = std::log(std::sqrt(an) / std::sqrt(1 - an));
      const double h = lam_n - lam_s;
      double d = x0;
      if (i > 0 && ts[i + 1] > 0) {
        const double ap = a(ts[i - 1]), lam_p = std::log(std::sqrt(ap) / std::sqrt(1 - ap));
        d = x0 + 0.5 * (x0 - previous) * h / (lam_s - lam_p);
      }
      k = std::sqrt((1 - an) / (1 - at)) * k - std::sqrt(an) * (std::exp(-h) - 1) * d;
      previous = x0;
    }
    const double dpm = gain(SamplerKind::kDpmSolver2M, steps), ddim = gain(SamplerKind::kDDIM, steps);
    EXPECT_NEAR(dpm, k, 1e-5) << steps << " steps";
    EXPECT_LT(std::abs(dpm - exact), std::abs(ddim - exact) / (steps >= 20 ? 3 : 1.2)) << steps << " steps: DPM-Solver++ " << dpm << ", DDIM " << ddim
                                                                 << ", exact " << exact;
    std::printf("%d steps: exact %.5f, DPM-Solver++(2M) %.5f, DDIM %.5f\n", steps, exact, dpm, ddim);
  }
}

TEST(Samplers, ImagesDependOnlyOnTheirOwnSeed) {
  torch::manual_seed(0);
  UNet2DModel unet(testing::tiny_config());
  const NoiseSchedule s(SchedulerConfig{});
  for (auto kind : {SamplerKind::kDDIM, SamplerKind::kDDPM, SamplerKind::kDpmSolver2M}) {
    SampleRequest req;
    req.num_images = 5;
    req.seed = 100;
    req.sampler.kind = kind;
    req.sampler.steps = 8;
    req.sampler.eta = kind == SamplerKind::kDDIM ? 0.5 : 0.0;
    req.batch_size = 5;
    const at::Tensor together = sample_images(s, fp32_denoiser(unet), 1, 8, req);
    req.batch_size = 2;
    const at::Tensor chunked = sample_images(s, fp32_denoiser(unet), 1, 8, req);
    EXPECT_LT((together - chunked).abs().max().item<double>(), 1e-4);
    // Image 3 alone, requested with seed 103, is image 3 of the batch.
    req.num_images = 1;
    req.seed = 103;
    const at::Tensor alone = sample_images(s, fp32_denoiser(unet), 1, 8, req);
    EXPECT_LT((alone[0] - together[3]).abs().max().item<double>(), 1e-4);
    EXPECT_GT((together[0] - together[1]).abs().max().item<double>(), 1e-2);
  }
}

TEST(Samplers, CancellationStopsBetweenSteps) {
  const NoiseSchedule s(SchedulerConfig{});
  SampleRequest req;
  req.sampler.steps = 50;
  int calls = 0;
  auto denoise = [&](const at::Tensor& x, int t, int step) {
    ++calls;
    return point_mass(s, 0.0)(x, t, step);
  };
  const ModelDenoiser model = [&](const at::Tensor& x, int t, int step, const at::Tensor&) { return denoise(x, t, step); };
  EXPECT_THROW(sample_images(s, model, 1, 4, req, [](const SampleProgress& p) { return p.step < 3; }), SamplingCancelled);
  EXPECT_EQ(calls, 3);
}

// A label-dependent fake predictor: eps = 0.1 * x + label / 10; records the batch sizes.
struct LabelModel {
  std::vector<int64_t> batches;
  ModelDenoiser denoiser() {
    return [this](const at::Tensor& x, int, int, const at::Tensor& labels) {
      batches.push_back(x.size(0));
      return 0.1 * x + labels.to(at::kFloat).reshape({-1, 1, 1, 1}) / 10.0;
    };
  }
};

TEST(Guidance, MixesConditionalAndNullPredictionsInOneCall) {
  LabelModel m;
  const at::Tensor x = torch::randn({3, 1, 4, 4});
  const std::vector<int64_t> labels = {2, 5, 9};
  const at::Tensor cond = 0.1 * x + torch::tensor(labels, at::kLong).to(at::kFloat).reshape({-1, 1, 1, 1}) / 10.0;
  const at::Tensor uncond = 0.1 * x + 0.9;  // null class 9
  auto guided = [&](std::vector<int64_t> l, std::optional<int> null_class, double g) {
    const DenoiseFn d = guided_denoiser(model_fn(m.denoiser(), 1, 4, 4), std::move(l), null_class, g, 16);
    at::Tensor eps = at::empty_like(x);
    d(x.data_ptr<float>(), 3, 10, 0, eps.data_ptr<float>());
    return eps;
  };
  // Guidance 1 is the conditional prediction alone, from a call on N images.
  EXPECT_TRUE(torch::allclose(guided(labels, 9, 1.0), cond));
  EXPECT_EQ(m.batches, (std::vector<int64_t>{3}));
  // Guidance 3: uncond + 3 (cond - uncond), from one call on 2N.
  const at::Tensor g = guided(labels, 9, 3.0);
  EXPECT_TRUE(torch::allclose(g, uncond + 3.0 * (cond - uncond), 1e-5, 1e-6));
  EXPECT_EQ(m.batches, (std::vector<int64_t>{3, 6}));
  // The null class is unaffected by guidance.
  EXPECT_TRUE(torch::allclose(g[2], uncond[2], 1e-5, 1e-6));
  EXPECT_THROW(guided(labels, std::nullopt, 2.0), std::invalid_argument);
  EXPECT_THROW(guided({}, 9, 2.0), std::invalid_argument);
}

TEST(Guidance, PerImageLabelsAreBatchIndependent) {
  torch::manual_seed(1);
  UNetConfig c = testing::tiny_config();
  c.num_class_embeds = 4;
  c.null_class = 3;
  UNet2DModel unet(c);
  {
    torch::NoGradGuard g;  // a non-zero class embedding, so labels matter
    unet->class_table().normal_();
  }
  const NoiseSchedule s(SchedulerConfig{});
  SampleRequest req;
  req.num_images = 4;
  req.seed = 50;
  req.sampler.steps = 6;
  req.class_labels = {0, 1, 2, 3};
  req.null_class = 3;
  req.guidance_scale = 2.5;
  req.batch_size = 4;
  const at::Tensor together = sample_images(s, fp32_denoiser(unet), 1, 8, req);
  req.batch_size = 3;
  EXPECT_LT((sample_images(s, fp32_denoiser(unet), 1, 8, req) - together).abs().max().item<double>(), 1e-4);
  req.num_images = 1;
  req.seed = 52;
  req.class_labels = {2};
  EXPECT_LT((sample_images(s, fp32_denoiser(unet), 1, 8, req)[0] - together[2]).abs().max().item<double>(), 1e-4);
  req.class_labels = {1};  // same seed, another class: another image
  EXPECT_GT((sample_images(s, fp32_denoiser(unet), 1, 8, req)[0] - together[2]).abs().max().item<double>(), 1e-3);
}

}  // namespace
}  // namespace qdm
