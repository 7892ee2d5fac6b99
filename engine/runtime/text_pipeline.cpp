#include "engine/runtime/text_pipeline.h"

#include <algorithm>
#include <stdexcept>

#include "engine/runtime/artifact_weights.h"
#include "engine/runtime/component_weights.h"
#include "engine/runtime/folder_weights.h"
#include "format/artifact_pipeline.h"
#include "engine/runtime/plan/execution_plan.h"
#include "format/graph/autoencoder_kl.h"
#include "format/graph/clip_text.h"
#include "format/graph/unet_2d.h"
#include "format/model_folder.h"
#include "format/safetensors.h"
#include "format/sha256.h"

namespace qdm {

TextPipeline::TextPipeline(PipelineFiles files, ClipTokenizer tokenizer, QGemmIsa isa)
    : files_(std::move(files)), tokenizer_(std::move(tokenizer)), isa_(isa) {}

TextPipeline::~TextPipeline() = default;

std::shared_ptr<TextPipeline> TextPipeline::load(const std::string& dir, QGemmIsa isa) {
  // Every check the scheduler runs on uploads; each weights file read once, here.
  PipelineFiles files = check_pipeline_folder(dir, {}, /*keep_files=*/true);
  ClipTokenizer tokenizer = [&] {
    try {
      return ClipTokenizer::load(dir + "/tokenizer");
    } catch (const std::exception& e) {
      throw ModelLoadError(std::string("tokenizer: ") + e.what());
    }
  }();
  std::shared_ptr<TextPipeline> p(new TextPipeline(std::move(files), std::move(tokenizer), isa));
  const PipelineFiles& f = p->files_;
  p->unet_weights_ = std::make_shared<FolderWeights>(f.unet_file, f.unet);
  auto digest = [](const SafeTensors& file) { return sha256_hex(file.file_contents().data(), file.file_contents().size()); };
  p->sha256_ = digest(*f.unet_file) + "," + digest(*f.vae_file) + "," + digest(*f.text_encoder_file);
  p->build_components();
  return p;
}

std::shared_ptr<TextPipeline> TextPipeline::from_artifact(std::shared_ptr<const SafeTensors> file,
                                                          std::shared_ptr<const ArtifactWeights> unet, QGemmIsa isa,
                                                          bool unet_plans) {
  const ArtifactInfo& info = unet->info();
  std::shared_ptr<TextPipeline> p;
  try {
    const ArtifactPipelineSource source(file, info.pipeline_files);
    PipelineFiles files = check_pipeline_files(source, {}, /*keep_files=*/true, /*unet_weights=*/false);
    if (files.unet.to_json() != info.config.to_json())
      throw ArtifactError("the embedded unet/config.json differs from the artifact's UNet config");
    p.reset(new TextPipeline(std::move(files), load_tokenizer(source), isa));
    if (source.has(quantized_component_file("text_encoder"))) p->quantized_text_file_ = source.weights(quantized_component_file("text_encoder"));
    if (source.has(quantized_component_file("vae_decoder"))) p->quantized_vae_file_ = source.weights(quantized_component_file("vae_decoder"));
  } catch (const ArtifactError&) {
    throw;
  } catch (const std::exception& e) {
    throw ArtifactError(std::string("its pipeline: ") + e.what());
  }
  p->unet_weights_ = unet;
  p->unet_plans_ = unet_plans;
  auto hash = [&info](const char* part) {
    auto it = info.pipeline_sha256.find(part);
    return it == info.pipeline_sha256.end() ? std::string() : it->second;
  };
  p->sha256_ = hash("unet") + "," + hash("vae") + "," + hash("text_encoder");
  p->build_components();
  return p;
}

void TextPipeline::build_components() {
  const PipelineFiles& f = files_;
  vae_weights_ = std::make_unique<FolderWeights>(f.vae_file, graph::describe_stored_vae(f.vae, f.vae_encoder), "vae/config.json", nullptr,
                                                 f.vae_replaced);
  const graph::Graph text = graph::describe_clip_text(f.text_encoder, text_length());
  text_weights_ = std::make_unique<FolderWeights>(f.text_encoder_file, text, "text_encoder/config.json", ignored_text_encoder_tensor,
                                                  f.text_encoder_replaced);
  if (quantized_text_file_) {
    text_quantized_ = std::make_unique<ComponentWeights>(quantized_text_file_, *text_weights_, text);
    if (text_quantized_->info().component != "text_encoder") throw ArtifactError("its quantized text encoder is not a text encoder");
    quantized_info_.push_back(text_quantized_->info());
  }
  if (quantized_vae_file_) {
    const int size = f.unet.sample_size;  // the decoder's layers do not depend on the image size
    vae_quantized_ = std::make_unique<ComponentWeights>(quantized_vae_file_, *vae_weights_, graph::describe_vae_decoder(f.vae, size, size));
    if (vae_quantized_->info().component != "vae_decoder") throw ArtifactError("its quantized VAE decoder is not a VAE decoder");
    quantized_info_.push_back(vae_quantized_->info());
  }
  text_encoder_ = std::make_shared<ExecutionPlan>(text, text_quantized_ ? static_cast<const plan::WeightSource&>(*text_quantized_) : *text_weights_, isa_);
  const int size = f.unet.sample_size;
  std::lock_guard<std::mutex> lock(mu_);
  sized(size, size);
}

std::vector<float> TextPipeline::encode(const std::vector<std::string>& prompts) const {
  std::vector<int64_t> ids;
  for (const auto& prompt : prompts) {
    const TokenizedPrompt t = tokenizer_.encode_padded(prompt);
    ids.insert(ids.end(), t.ids.begin(), t.ids.end());
  }
  std::vector<float> states(prompts.size() * static_cast<size_t>(text_length()) * static_cast<size_t>(files_.text_encoder.hidden_size));
  std::lock_guard<std::mutex> lock(mu_);
  text_encoder_->run_tokens(ids.data(), static_cast<int>(prompts.size()), states.data());
  return states;
}

const TextPipeline::Sized& TextPipeline::sized(int h, int w) const {
  for (auto it = sizes_.begin(); it != sizes_.end(); ++it)
    if (it->h == h && it->w == w) {
      sizes_.splice(sizes_.begin(), sizes_, it);
      return sizes_.front();
    }
  Sized s{h, w, nullptr, nullptr};
  if (unet_plans_)
    s.unet = std::make_shared<ExecutionPlan>(graph::describe_unet_2d(files_.unet, h, w, text_length()), *unet_weights_, isa_);
  const plan::WeightSource& vae = vae_quantized_ ? static_cast<const plan::WeightSource&>(*vae_quantized_) : *vae_weights_;
  s.decoder = std::make_shared<ExecutionPlan>(graph::describe_vae_decoder(files_.vae, h, w), vae, isa_);
  sizes_.push_front(std::move(s));
  if (static_cast<int>(sizes_.size()) > kMaxSizes) sizes_.pop_back();
  return sizes_.front();
}

std::shared_ptr<ExecutionPlan> TextPipeline::unet(int h, int w) const {
  std::lock_guard<std::mutex> lock(mu_);
  return sized(h, w).unet;
}

std::vector<float> TextPipeline::decode(const std::vector<float>& latents, int n, int h, int w) const {
  const size_t per = static_cast<size_t>(latent_channels()) * h * w;
  if (latents.size() != per * static_cast<size_t>(n)) throw std::invalid_argument("decode: latents of the wrong size");
  std::vector<float> z(latents.size());
  const float inv = static_cast<float>(1.0 / files_.vae.scaling_factor);
  std::transform(latents.begin(), latents.end(), z.begin(), [inv](float v) { return v * inv; });
  std::vector<float> images(static_cast<size_t>(n) * image_channels() * (h * factor()) * (w * factor()));
  std::lock_guard<std::mutex> lock(mu_);
  sized(h, w).decoder->run(z.data(), n, 0, 0, nullptr, images.data());
  for (float& v : images) v = std::clamp(v, -1.0f, 1.0f);
  return images;
}

ResidentBytes TextPipeline::resident() const {
  std::lock_guard<std::mutex> lock(mu_);
  ResidentBytes r;
  auto merge = [&r](const ExecutionPlan& p) {
    for (const auto& [what, bytes] : p.resident().parts) r.add(what, bytes);
  };
  merge(*text_encoder_);
  for (const Sized& s : sizes_) {
    if (s.unet) merge(*s.unet);
    merge(*s.decoder);
  }
  return r;
}

}  // namespace qdm
