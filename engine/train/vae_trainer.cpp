#include "engine/train/vae_trainer.h"

#include <torch/utils.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/data/fashion_mnist.h"
#include "engine/util/threads.h"

namespace qdm {

AutoencoderKLConfig fmnist_vae_config() {
  AutoencoderKLConfig c;
  c.in_channels = c.out_channels = 1;
  c.block_out_channels = {32, 64, 64};
  c.layers_per_block = 1;
  c.latent_channels = 4;
  c.norm_num_groups = 16;
  c.sample_size = 32;
  c.scaling_factor = 1.0;
  return c;
}

double reconstruction_psnr(AutoencoderKLImpl& vae, const at::Tensor& images, int batch) {
  torch::NoGradGuard no_grad;
  const bool was_training = vae.is_training();
  vae.eval();
  double total = 0;
  for (int64_t i = 0; i < images.size(0); i += batch) {
    const at::Tensor x = images.narrow(0, i, std::min<int64_t>(batch, images.size(0) - i));
    const at::Tensor y = vae.decode(vae.encode_mean(x)).clamp(-1, 1);
    const at::Tensor mse = ((y - x) / 2).pow(2).mean({1, 2, 3}).clamp_min(1e-12);  // on [0, 1]
    total += (-10.0 * at::log10(mse)).sum().item<double>();
  }
  if (was_training) vae.train();
  return total / static_cast<double>(images.size(0));
}

int64_t train_vae(const VaeTrainOptions& o, const std::function<bool(const TrainingStep&)>& on_log) {
  set_compute_threads(o.threads);
  if (o.config.in_channels != 1 || o.config.out_channels != 1)
    throw std::invalid_argument("Fashion-MNIST training needs in_channels = out_channels = 1");
  const at::Tensor images = to_model_range(FashionMnist::load(o.data_dir, "train").images, o.config.sample_size);
  const at::Tensor test = to_model_range(FashionMnist::load(o.data_dir, "test").images, o.config.sample_size)
                              .narrow(0, 0, std::min<int64_t>(o.eval_images, 10000));
  torch::manual_seed(o.loop.seed);
  AutoencoderKL model(o.config);
  AutoencoderKL ema(o.config);
  const int64_t n = images.size(0);
  const int lat = o.config.latent_channels;

  auto loss = [&](at::Generator& gen, std::map<std::string, double>& extras) {
    const at::Tensor idx = at::randint(n, {o.batch_size}, gen, at::kLong);
    at::Tensor x = images.index_select(0, idx);
    if (o.hflip) x = at::where(at::rand({o.batch_size, 1, 1, 1}, gen) < 0.5, x.flip({3}), x);
    const at::Tensor m = model->moments(x);
    const at::Tensor mean = m.narrow(1, 0, lat), logvar = m.narrow(1, lat, lat).clamp(-30, 20);
    const at::Tensor z = mean + at::exp(0.5 * logvar) * at::randn(mean.sizes(), gen);
    const at::Tensor rec = (model->decode(z) - x).pow(2).mean();
    const at::Tensor kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean();
    extras["reconstruction"] = rec.item<double>();
    extras["kl"] = kl.item<double>();
    return rec + o.kl_weight * kl;
  };
  auto write = [&](torch::nn::Module& m) {
    auto& vae = *m.as<AutoencoderKLImpl>();
    torch::NoGradGuard no_grad;
    vae.eval();
    const at::Tensor latents = vae.encode_mean(images.narrow(0, 0, 2000));
    vae.set_scaling_factor(1.0 / latents.std().item<double>());
    save_vae(o.loop.out_dir, vae);
    const double psnr = reconstruction_psnr(vae, test);
    std::ofstream(o.loop.out_dir + "/report.json")
        << nlohmann::json{{"test_psnr_db", psnr}, {"test_images", test.size(0)}, {"scaling_factor", vae.config().scaling_factor}}.dump(2)
        << "\n";
    vae.train();
  };
  return run_training_loop(*model, o.loop.ema_decay > 0 ? ema.ptr().get() : nullptr, o.loop, loss, write, on_log);
}

}  // namespace qdm
