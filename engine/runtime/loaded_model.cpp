#include "engine/runtime/loaded_model.h"

#include "engine/model/unet_denoiser.h"

namespace qdm {

LoadedModel LoadedModel::from_folder(const std::string& dir) {
  LoadedModel m;
  m.fp = std::make_shared<DiffusionModel>(load_model_folder(dir));
  m.path_ = dir;
  m.sha256_ = m.fp->weights_sha256;
  m.schedule_ = std::make_shared<NoiseSchedule>(m.fp->scheduler);
  m.denoiser_ = unet_denoiser(m.fp->unet);
  return m;
}

LoadedModel LoadedModel::from_artifact(const std::string& path) {
  LoadedModel m;
  m.artifact_ = std::make_shared<LoadedArtifact>(load_artifact(path));
  m.path_ = path;
  m.sha256_ = m.artifact_->sha256;
  m.schedule_ = std::make_shared<NoiseSchedule>(m.artifact_->info.scheduler);
  m.denoiser_ = artifact_denoiser(*m.artifact_);
  return m;
}

const UNetConfig& LoadedModel::config() const { return artifact_ ? artifact_->info.config : fp->config; }

SamplerOptions LoadedModel::default_sampler() const { return artifact_ ? artifact_->info.sampler : SamplerOptions{}; }

void LoadedModel::check(const SamplerOptions& options) const {
  sampler_timesteps(*schedule_, options);  // throws for steps outside [1, T]
  if (artifact_) check_schedule(*artifact_, *schedule_, options);
}

at::Tensor LoadedModel::sample(const SampleRequest& request,
                               const std::function<bool(const SampleProgress&)>& on_progress) {
  check(request.sampler);
  return sample_images(*schedule_, denoiser_, config().in_channels, config().sample_size, request, on_progress);
}

PngText LoadedModel::png_text(const SampleRequest& r, int i) const {
  PngText text = {{"Software", "qdm 0.1.0"},
                  {artifact_ ? "qdm:artifact" : "qdm:model", path_},
                  {"qdm:sha256", sha256_},
                  {"qdm:sampler", sampler_name(r.sampler.kind)},
                  {"qdm:steps", std::to_string(r.sampler.steps)},
                  {"qdm:eta", std::to_string(r.sampler.eta)},
                  {"qdm:spacing", spacing_name(r.sampler.spacing)},
                  {"qdm:seed", std::to_string(r.seed + static_cast<uint64_t>(i))}};
  if (artifact_) text.emplace_back("qdm:recipe", artifact_->info.recipe.value("recipe", ""));
  return text;
}

}  // namespace qdm
