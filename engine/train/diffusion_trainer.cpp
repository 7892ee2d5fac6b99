#include "engine/train/diffusion_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <chrono>
#include <map>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/data/fashion_mnist.h"
#include "engine/model/model_folder.h"
#include "engine/model/unet_2d.h"
#include "engine/model_io/tensor_io.h"
#include "engine/train/adamw.h"
#include "engine/util/threads.h"

namespace qdm {
namespace fs = std::filesystem;

namespace {

std::vector<std::pair<std::string, at::Tensor>> named_params(UNet2DModelImpl& unet) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : unet.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

// Copies the weights of a model folder into `unet`; parameters the folder lacks must be new
// class-embedding parameters, which start at zero.
void warm_start(UNet2DModelImpl& unet, const std::string& dir) {
  const DiffusionModel init = load_model_folder(dir);
  std::map<std::string, at::Tensor> source;
  for (const auto& p : init.unet->named_parameters()) source[p.key()] = p.value();
  torch::NoGradGuard no_grad;
  for (auto& p : unet.named_parameters()) {
    auto it = source.find(p.key());
    if (it != source.end() && it->second.sizes() == p.value().sizes()) {
      p.value().copy_(it->second);
    } else if (p.key().rfind("class_embedding.", 0) == 0) {
      p.value().zero_();
    } else {
      throw std::invalid_argument("--init " + dir + ": no tensor '" + p.key() + "' of shape " +
                                  c10::str(p.value().sizes()) + " (the architectures differ)");
    }
  }
}

}  // namespace

double scheduled_lr(const DiffusionTrainOptions& o, int64_t step) {
  if (step <= o.warmup) return o.lr * static_cast<double>(step) / std::max(1, o.warmup);
  if (o.lr_schedule == "constant") return o.lr;
  if (o.lr_schedule != "cosine") throw std::invalid_argument("lr schedule must be constant or cosine");
  const double span = std::max<int64_t>(1, o.iterations - o.warmup);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + std::cos(M_PI * progress));
}

at::Tensor min_snr_weights(const at::Tensor& alphas_cumprod, const at::Tensor& t, double gamma) {
  if (gamma <= 0) return at::ones({t.size(0)});
  const at::Tensor a = alphas_cumprod.index_select(0, t);
  const at::Tensor snr = a / (1 - a);
  return at::clamp_max(snr, gamma) / snr;
}

at::Tensor apply_label_dropout(const at::Tensor& labels, double rate, int null_class, at::Generator& gen) {
  const at::Tensor drop = at::rand({labels.size(0)}, gen) < rate;
  return at::where(drop, at::full_like(labels, null_class), labels);
}

int64_t train_diffusion(const DiffusionTrainOptions& o, const std::function<bool(const TrainProgress&)>& on_log) {
  set_compute_threads(o.threads);
  fs::create_directories(o.out_dir);
  const std::string ckpt_path = o.out_dir + "/checkpoint.safetensors";
  const FashionMnist data = FashionMnist::load(o.data_dir, "train");
  const at::Tensor images = to_model_range(data.images, o.config.sample_size);  // (60000, 1, S, S)
  if (o.config.in_channels != 1 || o.config.out_channels != 1)
    throw std::invalid_argument("Fashion-MNIST training needs in_channels = out_channels = 1");
  const bool conditional = o.config.conditional();
  if (conditional && o.config.label_count() < kFashionMnistClasses)
    throw std::invalid_argument("a class-conditional Fashion-MNIST model needs labels 0..9 (num_class_embeds >= 10)");
  if (conditional && o.label_dropout > 0 && !o.config.null_class)
    throw std::invalid_argument("label dropout needs the config's null_class");
  scheduled_lr(o, o.warmup + 1);  // rejects an unknown schedule before any work

  torch::manual_seed(o.seed);
  UNet2DModel model(o.config);
  UNet2DModel ema(o.config);
  auto params = named_params(*model);
  auto ema_params = named_params(*ema);
  AdamW opt(params, {o.lr});
  if (conditional) opt.set_lr_scale("class_embedding.", o.class_lr_scale);
  at::Generator gen = at::detail::createCPUGenerator(o.seed + 1);

  int64_t step = 0;
  if (o.resume && fs::exists(ckpt_path)) {
    std::map<std::string, std::string> meta;
    const TensorMap state = load_tensors(ckpt_path, &meta);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      params[i].second.copy_(state.at("model." + params[i].first));
      ema_params[i].second.copy_(state.at("ema." + params[i].first));
    }
    step = std::stoll(meta.at("step"));
    opt.load_state(state, "adam.", step);
    // The data order, flips, timesteps and noise carry on where they stopped (checkpoints before
    // the generator was saved: a fresh stream per resumed step).
    if (const auto rng = state.find("rng"); rng != state.end()) gen.set_state(rng->second);
    else gen = at::detail::createCPUGenerator(o.seed + 1 + static_cast<uint64_t>(step));
  } else {
    if (!o.init_from.empty()) warm_start(*model, o.init_from);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) ema_params[i].second.copy_(params[i].second);
  }

  const NoiseSchedule schedule(o.scheduler);
  std::vector<float> ac(schedule.alphas_cumprod.begin(), schedule.alphas_cumprod.end());
  const at::Tensor alphas_cumprod = at::tensor(ac);
  const int64_t n = images.size(0);
  const auto start = std::chrono::steady_clock::now();
  double loss_sum = 0;
  int loss_count = 0;
  std::ofstream log(o.out_dir + "/train_log.jsonl", std::ios::app);

  auto checkpoint = [&]() {
    TensorMap state;
    for (const auto& [name, p] : params) state["model." + name] = p;
    for (const auto& [name, p] : ema_params) state["ema." + name] = p;
    opt.save_state(state, "adam.");
    state["rng"] = gen.get_state();
    save_tensors(ckpt_path, state, {{"step", std::to_string(step)}});
    save_model_folder(o.out_dir, *ema, o.scheduler);
  };

  model->train();
  bool stop = false;
  while (step < o.iterations && !stop) {
    const at::Tensor idx = at::randint(n, {o.batch_size}, gen, at::kLong);
    at::Tensor x0 = images.index_select(0, idx);
    if (o.hflip) {
      const at::Tensor flip = at::rand({o.batch_size, 1, 1, 1}, gen) < 0.5;
      x0 = at::where(flip, x0.flip({3}), x0);
    }
    const at::Tensor t = at::randint(o.scheduler.num_train_timesteps, {o.batch_size}, gen, at::kLong);
    const at::Tensor noise = at::randn(x0.sizes(), gen);
    const at::Tensor a = alphas_cumprod.index_select(0, t).reshape({-1, 1, 1, 1});
    const at::Tensor xt = a.sqrt() * x0 + (1 - a).sqrt() * noise;

    at::Tensor labels;
    if (conditional) {
      labels = data.labels.index_select(0, idx);
      if (o.label_dropout > 0) labels = apply_label_dropout(labels, o.label_dropout, *o.config.null_class, gen);
    }
    const at::Tensor pred = model->forward(xt, t.to(at::kFloat), labels);
    const at::Tensor weights = min_snr_weights(alphas_cumprod, t, o.min_snr_gamma);
    const at::Tensor loss = ((pred - noise).pow(2).mean({1, 2, 3}) * weights).mean();
    opt.zero_grad();
    loss.backward();
    ++step;
    const double lr = scheduled_lr(o, step);
    opt.step(lr);
    {
      torch::NoGradGuard no_grad;
      const double decay = std::min(o.ema_decay, (1.0 + step) / (10.0 + step));
      for (size_t i = 0; i < params.size(); ++i) ema_params[i].second.mul_(decay).add_(params[i].second, 1 - decay);
    }
    loss_sum += loss.item<double>();
    ++loss_count;
    if (step % o.log_every == 0 || step == o.iterations) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      TrainProgress p{step, o.iterations, loss_sum / loss_count, lr, secs};
      log << nlohmann::json{{"step", step}, {"loss", p.loss}, {"lr", lr}, {"seconds", secs}}.dump() << "\n";
      log.flush();
      loss_sum = 0;
      loss_count = 0;
      if (on_log && !on_log(p)) stop = true;
    }
    if (step % o.checkpoint_every == 0 || step == o.iterations || stop) checkpoint();
  }
  return step;
}

}  // namespace qdm
