#include "engine/quant/reconstruction.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include <cmath>

#include "engine/quant/recipe.h"

namespace qdm {
namespace {

// BRECQ's reconstruction loss: squared error summed over channels, averaged over the rest.
at::Tensor rec_loss(const at::Tensor& out, const at::Tensor& target) {
  return (out - target).pow(2).sum(1).mean();
}

struct Block {
  std::string name;
  bool resnet = false;
  int resnet_index = -1;  // its temporal feature's index (resnets)
};

// The model's resnet, attention and transformer blocks, in model order (its description's).
std::vector<Block> blocks_in_order(const QuantizedUNet& q) {
  std::vector<Block> out;
  int resnets = 0;
  for (const graph::Block& gb : q.unet->graph().blocks) {
    Block b;
    b.name = gb.name;
    b.resnet = gb.kind == "resnet";
    if (!b.resnet && gb.kind != "attention" && gb.kind != "transformer") continue;
    if (b.resnet) b.resnet_index = resnets++;
    out.push_back(b);
  }
  return out;
}

// Thrown by a tap to end a forward pass once the tapped block has run: collecting one block's
// calibration pair needs neither the rest of the UNet nor its output (halves the passes'
// cost on average).
struct BlockReached {};

template <typename Forward>
void run_until_tap(Forward&& forward) {
  try {
    forward();
  } catch (const BlockReached&) {
  }
}

// Adam over `params` for `iters` steps of `loss_fn(iter)`; cosine-decayed lr when `cosine`.
template <typename LossFn>
double optimise(std::vector<at::Tensor> params, int iters, double lr, bool cosine, LossFn loss_fn,
                const std::function<bool(int, double)>& tick) {
  if (params.empty() || iters <= 0) return 0;
  torch::optim::Adam opt(params, torch::optim::AdamOptions(lr));
  double last = 0;
  for (int i = 0; i < iters; ++i) {
    if (cosine)
      for (auto& group : opt.param_groups())
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr * 0.5 * (1 + std::cos(M_PI * i / iters)));
    opt.zero_grad();
    at::Tensor loss = loss_fn(i);
    loss.backward();
    opt.step();
    last = loss.item<double>();
    if (tick && (i % 50 == 0 || i + 1 == iters) && !tick(i, last)) throw QuantizeCancelled();
  }
  return last;
}

}  // namespace

std::vector<std::string> temporal_block_layers(const QuantizedUNet& q) {
  std::vector<std::string> names;
  for (const auto& l : q.layers)
    if (is_temporal_layer(l->name)) names.push_back(l->name);
  return names;
}

void reconstruct_temporal_block(QuantizedUNet& q, UNet2DModel fp, const std::vector<int>& timesteps,
                                const ReconOptions& o, const ReconProgress& progress) {
  std::vector<std::shared_ptr<QuantLayer>> tib;
  for (auto& l : q.layers)
    if (is_temporal_layer(l->name)) tib.push_back(l);
  if (tib.empty()) return;
  // Every (t, class) pair of a conditional model: its temporal features are f(t, class).
  const at::Tensor labels = every_class_label(fp->config());
  const int64_t rows = labels.defined() ? labels.size(0) : 1;
  std::vector<std::vector<at::Tensor>> targets;
  {
    torch::NoGradGuard no_grad;
    for (int t : timesteps) targets.push_back(fp->temporal_features(at::full({rows}, static_cast<float>(t)), labels));
  }
  std::vector<at::Tensor> params;
  for (auto& l : tib) {
    l->begin_adaround();
    params.push_back(l->adaround->alpha);
  }
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  const int steps = static_cast<int>(timesteps.size());
  const int per_iter = std::min(steps, 8);
  optimise(params, o.iters, o.lr, false, [&](int iter) {
    const double beta = adaround_beta(iter, o.iters, o.warmup);
    at::Tensor loss = at::zeros({});
    const at::Tensor picks = at::randint(steps, {per_iter}, gen, at::kLong);
    for (int j = 0; j < per_iter; ++j) {
      const int s = static_cast<int>(picks[j].item<int64_t>());
      q.step->step = s;
      const auto got = q.unet->temporal_features(at::full({rows}, static_cast<float>(timesteps[static_cast<size_t>(s)])), labels);
      for (size_t k = 0; k < got.size(); ++k) loss = loss + rec_loss(got[k], targets[static_cast<size_t>(s)][k]);
    }
    loss = loss / per_iter;
    if (beta > 0)
      for (auto& l : tib) loss = loss + o.lambda * l->adaround->regularizer(beta);
    return loss;
  }, [&](int i, double loss) { return !progress || progress("temporal information block", i, o.iters, loss); });
  for (auto& l : tib) l->finish_adaround();
}

void reconstruct_blocks(QuantizedUNet& q, UNet2DModel fp, const std::vector<ReconGroup>& data, const ReconOptions& o,
                        const ReconProgress& progress) {
  if (data.empty()) throw std::invalid_argument("reconstruct_blocks: no calibration data");
  const std::vector<Block> blocks = blocks_in_order(q);
  at::Generator gen = at::detail::createCPUGenerator(o.seed + 1);
  int index = 0;
  for (const Block& b : blocks) {
    ++index;
    std::vector<std::shared_ptr<QuantLayer>> layers;
    // Layers with vq codes keep them: only scalar weights have a rounding to learn.
    for (auto& l : q.layers)
      if (l->name.rfind(b.name + ".", 0) == 0 && (o.with_time_proj || !is_temporal_layer(l->name)) && !l->vq)
        layers.push_back(l);
    if (layers.empty()) continue;

    // Calibration pairs: the quantized prefix's block input, the fp32 block output, and the
    // quantized time embedding the block's temporal feature is computed from.
    std::vector<at::Tensor> inputs, targets, tembs;
    {
      torch::NoGradGuard no_grad;
      for (const auto& g : data) {
        const at::Tensor t = at::full({g.x.size(0)}, static_cast<float>(g.t));
        fp->set_tap(b.name, [&](const at::Tensor&, const at::Tensor& out) {
          targets.push_back(out.detach());
          throw BlockReached{};
        });
        run_until_tap([&] { fp->forward(g.x, t, g.labels); });
        fp->set_tap(b.name, nullptr);
        at::Tensor captured;
        q.unet->set_tap(b.name, [&](const at::Tensor& in, const at::Tensor&) {
          captured = in.detach();
          throw BlockReached{};
        });
        run_until_tap([&] { q.forward(g.x, g.t, g.step, g.labels); });
        q.unet->set_tap(b.name, nullptr);
        inputs.push_back(captured);
        if (b.resnet && !q.has_temporal_cache()) tembs.push_back(q.unet->time_embed(t, g.labels));
      }
    }

    auto block_loss = [&](int) {
      const int64_t g = at::randint(static_cast<int64_t>(data.size()), {1}, gen, at::kLong).item<int64_t>();
      const int64_t n = inputs[static_cast<size_t>(g)].size(0);
      const at::Tensor idx = at::randint(n, {std::min<int64_t>(o.batch, n)}, gen, at::kLong);
      q.step->step = data[static_cast<size_t>(g)].step;
      const at::Tensor in = inputs[static_cast<size_t>(g)].index_select(0, idx);
      const at::Tensor& labels = data[static_cast<size_t>(g)].labels;
      const at::Tensor batch_labels = labels.defined() ? labels.index_select(0, idx) : at::Tensor();
      at::Tensor out;
      if (b.resnet && q.has_temporal_cache()) {
        const at::Tensor& f = q.temporal_cache[static_cast<size_t>(q.step->step)][static_cast<size_t>(b.resnet_index)];
        // per-class features for a class-conditional model; a text model's depend on t alone
        out = q.unet->block_forward(b.name, in, {}, q.unet->config().conditional() ? f.index_select(0, batch_labels) : f.expand({in.size(0), -1}));
      } else if (b.resnet) {
        out = q.unet->block_forward(b.name, in, tembs[static_cast<size_t>(g)].index_select(0, idx));
      } else {
        out = q.unet->block_forward(b.name, in, {}, {}, batch_labels);  // a transformer reads its prompts' states
      }
      return rec_loss(out, targets[static_cast<size_t>(g)].index_select(0, idx));
    };
    auto tick = [&](int, double loss) { return !progress || progress(b.name, index, static_cast<int>(blocks.size()), loss); };

    std::vector<at::Tensor> alphas;
    for (auto& l : layers) {
      l->begin_adaround();
      alphas.push_back(l->adaround->alpha);
    }
    optimise(alphas, o.iters, o.lr, false, [&](int iter) {
      at::Tensor loss = block_loss(iter);
      const double beta = adaround_beta(iter, o.iters, o.warmup);
      if (beta > 0)
        for (auto& l : layers) loss = loss + o.lambda * l->adaround->regularizer(beta);
      return loss;
    }, tick);
    for (auto& l : layers) l->finish_adaround();

    if (o.act_iters > 0) {
      std::vector<ActQuantizer*> acts;
      for (auto& l : layers)
        if (l->quant_input) acts.push_back(&l->act);
      for (auto& a : q.attention)
        if (!b.resnet && (a->name == b.name || a->name.rfind(b.name + ".", 0) == 0)) acts.insert(acts.end(), {&a->q, &a->k, &a->v});
      std::vector<at::Tensor> scales;
      for (ActQuantizer* a : acts) {
        a->begin_lsq();
        if (a->learned_scale.defined()) scales.push_back(a->learned_scale);
      }
      optimise(scales, o.act_iters, o.act_lr, true, block_loss, tick);
      for (ActQuantizer* a : acts) a->finish_lsq();
    }
  }
}

}  // namespace qdm
