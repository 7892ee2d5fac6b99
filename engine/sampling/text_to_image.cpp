#include "engine/sampling/text_to_image.h"

#include <torch/utils.h>

#include <map>
#include <stdexcept>

#include "engine/sampling/tensor_sampling.h"
#include "format/prompts.h"

namespace qdm {

at::Tensor prompt_token_ids(const ClipTokenizer& tokenizer, const std::vector<std::string>& prompts, std::vector<bool>* truncated) {
  const int64_t len = tokenizer.max_length();
  at::Tensor ids = at::empty({static_cast<int64_t>(prompts.size()), len}, at::kLong);
  auto a = ids.accessor<int64_t, 2>();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const TokenizedPrompt p = tokenizer.encode_padded(prompts[i]);
    if (truncated) truncated->push_back(p.truncated);
    for (int64_t j = 0; j < len; ++j) a[static_cast<int64_t>(i)][j] = p.ids[static_cast<size_t>(j)];
  }
  return ids;
}

at::Tensor encode_prompts(TextToImagePipeline& pipe, const std::vector<std::string>& prompts, std::vector<bool>* truncated) {
  const at::Tensor ids = prompt_token_ids(pipe.tokenizer, prompts, truncated);
  torch::NoGradGuard no_grad;
  return pipe.text_encoder->forward(ids);
}

PromptImages sample_from_prompts(TextToImagePipeline& pipe, const PromptRequest& r,
                                 const std::function<bool(const SampleProgress&)>& on_progress) {
  const int n = r.base.seeds.empty() ? r.base.num_images : static_cast<int>(r.base.seeds.size());
  if (r.prompts.empty()) throw std::invalid_argument("give a prompt (an empty one samples unconditionally)");
  if (r.prompts.size() != 1 && static_cast<int>(r.prompts.size()) != n)
    throw std::invalid_argument("give one prompt for all images or one per image (" + std::to_string(n) + ")");
  const int f = pipe.factor(), m = f * pipe.unet->config().size_multiple();
  const int h = r.height > 0 ? r.height : pipe.default_size(), w = r.width > 0 ? r.width : pipe.default_size();
  if (h % m != 0 || w % m != 0 || h > 4096 || w > 4096)
    throw std::invalid_argument("height and width must be multiples of " + std::to_string(m) + " up to 4096");

  const PromptTable table = prompt_table(r.prompts, n, r.guidance_scale != 1.0, r.negative_prompt);
  PromptImages out;
  std::vector<bool> truncated;
  const at::Tensor states = encode_prompts(pipe, table.entries, &truncated);
  for (int e : table.prompt_entry) out.truncated.push_back(truncated[static_cast<size_t>(e)]);
  for (int i = 0; i < n; ++i) out.prompt_of_image.push_back(static_cast<int>(prompt_of_image(r.prompts, i)));
  SampleRequest req = r.base;
  req.class_labels = table.image_entry;
  req.guidance_scale = r.guidance_scale;
  req.null_class = table.null_entry;
  const int lat = pipe.vae->config().latent_channels;
  const int64_t lh = h / f, lw = w / f;
  ModelDenoiser denoise = [&](const at::Tensor& x, int t, int, const at::Tensor& labels) {
    torch::NoGradGuard no_grad;
    return pipe.unet->forward(x, at::full({x.size(0)}, static_cast<float>(t)), {}, states.index_select(0, labels));
  };
  const NoiseSchedule schedule(pipe.scheduler);
  const std::vector<float> latents = generate_images(schedule, model_fn(denoise, lat, lh, lw), lat * lh * lw, req, on_progress);
  const at::Tensor z = image_tensor(latents, lat, lh, lw);
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> decoded;
  const double scale = pipe.vae->config().scaling_factor;
  for (int64_t i = 0; i < z.size(0); i += 64)
    decoded.push_back(pipe.vae->decode(z.narrow(0, i, std::min<int64_t>(64, z.size(0) - i)) / scale).clamp(-1, 1));
  out.images = at::cat(decoded);
  return out;
}

}  // namespace qdm
