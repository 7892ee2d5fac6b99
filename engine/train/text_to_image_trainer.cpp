#include "engine/train/text_to_image_trainer.h"

#include <torch/utils.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "engine/data/captions.h"
#include "engine/data/fashion_mnist.h"
#include "engine/model/autoencoder_kl.h"
#include "engine/model/clip_text_model.h"
#include "engine/model/model_folder.h"
#include "engine/model/unet_2d.h"
#include "engine/model_io/tensor_io.h"
#include "engine/sampling/text_to_image.h"  // prompt_token_ids
#include "engine/train/diffusion_trainer.h"  // min_snr_weights
#include "engine/util/threads.h"
#include "format/clip_tokenizer.h"

namespace qdm {
namespace fs = std::filesystem;

UNetConfig fmnist_text_unet_config(int latent_channels, int latent_size, int cross_attention_dim) {
  UNetConfig c;
  c.class_name = "UNet2DConditionModel";
  c.sample_size = latent_size;
  c.in_channels = c.out_channels = latent_channels;
  c.block_out_channels = {64, 128};
  c.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
  c.up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  c.layers_per_block = 1;
  c.attention_head_dim.reset();
  c.heads_per_block = {4, 4};
  c.transformer_layers_per_block = {1, 1};
  c.cross_attention_dim = cross_attention_dim;
  c.mid_cross_attention = true;
  c.norm_num_groups = 32;
  c.norm_eps = 1e-5;
  c.flip_sin_to_cos = true;
  c.freq_shift = 0;
  c.validate();
  return c;
}

SchedulerConfig stable_diffusion_scheduler() {
  SchedulerConfig s;
  s.num_train_timesteps = 1000;
  s.beta_start = 0.00085;
  s.beta_end = 0.012;
  s.beta_schedule = "scaled_linear";
  s.clip_sample = false;
  s.set_alpha_to_one = false;
  s.steps_offset = 1;
  return s;
}

void write_model_index(const std::string& dir) {
  const nlohmann::ordered_json index = {
      {"_class_name", "StableDiffusionPipeline"},
      {"_diffusers_version", "0.30.0"},
      {"feature_extractor", {nullptr, nullptr}},
      {"image_encoder", {nullptr, nullptr}},
      {"requires_safety_checker", false},
      {"safety_checker", {nullptr, nullptr}},
      {"scheduler", {"diffusers", "DDIMScheduler"}},
      {"text_encoder", {"transformers", "CLIPTextModel"}},
      {"tokenizer", {"transformers", "CLIPTokenizer"}},
      {"unet", {"diffusers", "UNet2DConditionModel"}},
      {"vae", {"diffusers", "AutoencoderKL"}},
  };
  std::ofstream(dir + "/model_index.json") << index.dump(2) << "\n";
}

namespace {

// Posterior means times scaling_factor of every training image, with the images' labels,
// cached beside the checkpoint.
TensorMap training_latents(const TextToImageTrainOptions& o, AutoencoderKLImpl& vae) {
  const std::string cache = o.loop.out_dir + "/unet/latents.safetensors";
  if (fs::exists(cache)) return load_tensors(cache);
  const FashionMnist data = FashionMnist::load(o.data_dir, "train");
  const at::Tensor images = to_model_range(data.images, vae.config().sample_size);
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < images.size(0); i += 500) parts.push_back(vae.encode_mean(images.narrow(0, i, std::min<int64_t>(500, images.size(0) - i))));
  const at::Tensor latents = at::cat(parts) * vae.config().scaling_factor;
  TensorMap out{{"latents", latents}, {"labels", data.labels}};
  save_tensors(cache, out);
  return out;
}

}  // namespace

int64_t train_text_to_image(const TextToImageTrainOptions& o, const std::function<bool(const TrainingStep&)>& on_log) {
  set_compute_threads(o.threads);
  const std::string dir = o.loop.out_dir;
  LoadedVae vae = load_vae(dir + "/vae");
  LoadedTextEncoder text = load_text_encoder(dir + "/text_encoder");
  const ClipTokenizer tok = ClipTokenizer::load(dir + "/tokenizer");
  for (auto& p : text.model->parameters()) p.set_requires_grad(false);
  const auto& vc = vae.model->config();
  std::optional<DiffusionModel> init;
  if (!o.init_from.empty()) init = load_model_folder(o.init_from);
  const UNetConfig config = !o.default_config ? o.config
                            : init            ? init->config
                                              : fmnist_text_unet_config(vc.latent_channels, vc.sample_size / vc.factor(),
                                                                        text.model->config().hidden_size);
  if (init && init->config.to_json() != config.to_json())
    throw std::invalid_argument("--init " + o.init_from + ": its UNet config differs from --config's (train with its own config)");
  if (!config.text_conditioned()) throw std::invalid_argument("train-text-to-image needs a UNet2DConditionModel config");
  fs::create_directories(dir + "/unet");
  const TensorMap data = training_latents(o, *vae.model);
  const at::Tensor latents = data.at("latents"), labels = data.at("labels");
  torch::manual_seed(o.loop.seed);
  UNet2DModel model(config);
  UNet2DModel ema(config);
  if (init) {  // the same architecture: every parameter by name (the loop copies them to the EMA)
    torch::NoGradGuard no_grad;
    const auto source = init->unet->named_parameters();
    for (auto& p : model->named_parameters()) p.value().copy_(source[p.key()]);
  }
  const NoiseSchedule schedule(o.scheduler);
  std::vector<float> ac(schedule.alphas_cumprod.begin(), schedule.alphas_cumprod.end());
  const at::Tensor alphas_cumprod = at::tensor(ac);
  const int64_t n = latents.size(0);

  auto loss = [&](at::Generator& gen, std::map<std::string, double>&) {
    const at::Tensor idx = at::randint(n, {o.batch_size}, gen, at::kLong);
    const at::Tensor x0 = latents.index_select(0, idx);
    const at::Tensor drop = at::rand({o.batch_size}, gen) < o.text_dropout;
    const at::Tensor seeds = at::randint(1LL << 62, {o.batch_size}, gen, at::kLong);
    std::vector<std::string> prompts;
    for (int i = 0; i < o.batch_size; ++i) {
      if (drop[i].item<bool>()) {
        prompts.emplace_back();
        continue;
      }
      std::mt19937_64 rng(static_cast<uint64_t>(seeds[i].item<int64_t>()));
      prompts.push_back(make_caption(static_cast<int>(labels[idx[i].item<int64_t>()].item<int64_t>()), rng, CaptionSet::kTraining));
    }
    at::Tensor states;
    {
      torch::NoGradGuard no_grad;
      states = text.model->forward(prompt_token_ids(tok, prompts));
    }
    const at::Tensor t = at::randint(o.scheduler.num_train_timesteps, {o.batch_size}, gen, at::kLong);
    const at::Tensor noise = at::randn(x0.sizes(), gen);
    const at::Tensor a = alphas_cumprod.index_select(0, t).reshape({-1, 1, 1, 1});
    const at::Tensor xt = a.sqrt() * x0 + (1 - a).sqrt() * noise;
    const at::Tensor pred = model->forward(xt, t.to(at::kFloat), {}, states);
    const at::Tensor w = min_snr_weights(alphas_cumprod, t, o.min_snr_gamma);
    return ((pred - noise).pow(2).mean({1, 2, 3}) * w).mean();
  };
  auto write = [&](torch::nn::Module& m) {
    auto& unet = *m.as<UNet2DModelImpl>();
    fs::create_directories(dir + "/unet");
    fs::create_directories(dir + "/scheduler");
    TensorMap tensors;
    for (const auto& p : unet.named_parameters()) tensors[p.key()] = p.value().detach().contiguous();
    save_tensors(dir + "/unet/diffusion_pytorch_model.safetensors", tensors, {{"format", "pt"}});
    nlohmann::json cfg = unet.config().to_json();
    cfg["_diffusers_version"] = "0.30.0";
    std::ofstream(dir + "/unet/config.json") << cfg.dump(2) << "\n";
    nlohmann::json sched = o.scheduler.to_json();
    sched["_class_name"] = "DDIMScheduler";
    std::ofstream(dir + "/scheduler/scheduler_config.json") << sched.dump(2) << "\n";
    write_model_index(dir);
  };
  TrainingLoopOptions loop = o.loop;  // the checkpoint, log and latent cache live in unet/
  loop.out_dir = dir + "/unet";
  return run_training_loop(*model, ema.ptr().get(), loop, loss, write, on_log);
}

}  // namespace qdm
