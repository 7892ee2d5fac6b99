#include "engine/train/training_loop.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/model_io/tensor_io.h"
#include "engine/train/adamw.h"

namespace qdm {
namespace fs = std::filesystem;

namespace {

std::vector<std::pair<std::string, at::Tensor>> named(torch::nn::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

double lr_at(const TrainingLoopOptions& o, int64_t step) {
  if (step <= o.warmup) return o.lr * static_cast<double>(step) / std::max(1, o.warmup);
  if (!o.cosine) return o.lr;
  const double span = std::max<int64_t>(1, o.iterations - o.warmup);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + std::cos(M_PI * progress));
}

}  // namespace

int64_t run_training_loop(torch::nn::Module& model, torch::nn::Module* ema, const TrainingLoopOptions& o,
                          const std::function<at::Tensor(at::Generator&, std::map<std::string, double>&)>& loss_fn,
                          const std::function<void(torch::nn::Module&)>& write,
                          const std::function<bool(const TrainingStep&)>& on_log) {
  fs::create_directories(o.out_dir);
  const std::string ckpt_path = o.out_dir + "/checkpoint.safetensors";
  auto params = named(model);
  std::vector<std::pair<std::string, at::Tensor>> ema_params;
  const bool use_ema = ema && o.ema_decay > 0;
  if (use_ema) ema_params = named(*ema);
  AdamW opt(params, {o.lr});
  at::Generator gen = at::detail::createCPUGenerator(o.seed + 1);

  int64_t step = 0;
  if (o.resume && fs::exists(ckpt_path)) {
    std::map<std::string, std::string> meta;
    const TensorMap state = load_tensors(ckpt_path, &meta);
    torch::NoGradGuard no_grad;
    for (auto& [name, p] : params) p.copy_(state.at("model." + name));
    for (auto& [name, p] : ema_params) p.copy_(state.at("ema." + name));
    step = std::stoll(meta.at("step"));
    opt.load_state(state, "adam.", step);
    gen.set_state(state.at("rng"));
  } else if (use_ema) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) ema_params[i].second.copy_(params[i].second);
  }

  std::ofstream log(o.out_dir + "/train_log.jsonl", std::ios::app);
  auto checkpoint = [&] {
    TensorMap state;
    for (const auto& [name, p] : params) state["model." + name] = p;
    for (const auto& [name, p] : ema_params) state["ema." + name] = p;
    opt.save_state(state, "adam.");
    state["rng"] = gen.get_state();
    save_tensors(ckpt_path + ".tmp", state, {{"step", std::to_string(step)}});
    fs::rename(ckpt_path + ".tmp", ckpt_path);
    write(use_ema ? *ema : model);
  };

  const auto start = std::chrono::steady_clock::now();
  double loss_sum = 0;
  std::map<std::string, double> extra_sums;
  int count = 0;
  model.train();
  bool stop = false;
  while (step < o.iterations && !stop) {
    std::map<std::string, double> extras;
    const at::Tensor loss = loss_fn(gen, extras);
    opt.zero_grad();
    loss.backward();
    if (o.grad_clip > 0) {
      double sq = 0;
      for (const auto& [name, p] : params)
        if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
      const double norm = std::sqrt(sq);
      if (norm > o.grad_clip)
        for (auto& [name, p] : params)
          if (p.grad().defined()) p.grad().mul_(o.grad_clip / norm);
    }
    ++step;
    const double lr = lr_at(o, step);
    opt.step(lr);
    if (use_ema) {
      torch::NoGradGuard no_grad;
      const double decay = std::min(o.ema_decay, (1.0 + step) / (10.0 + step));
      for (size_t i = 0; i < params.size(); ++i) ema_params[i].second.mul_(decay).add_(params[i].second, 1 - decay);
    }
    loss_sum += loss.item<double>();
    for (const auto& [k, v] : extras) extra_sums[k] += v;
    ++count;
    if (step % o.log_every == 0 || step == o.iterations) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      TrainingStep s{step, o.iterations, loss_sum / count, {}, lr, secs};
      nlohmann::json line = {{"step", step}, {"loss", s.loss}, {"lr", lr}, {"seconds", secs}};
      for (const auto& [k, v] : extra_sums) {
        s.extras[k] = v / count;
        line[k] = v / count;
      }
      log << line.dump() << "\n";
      log.flush();
      loss_sum = 0;
      extra_sums.clear();
      count = 0;
      if (on_log && !on_log(s)) stop = true;
    }
    if (step % o.checkpoint_every == 0 || step == o.iterations || stop) checkpoint();
  }
  return step;
}

}  // namespace qdm
