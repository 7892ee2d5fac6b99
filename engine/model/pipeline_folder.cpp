#include "engine/model/pipeline_folder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/model/model_folder.h"
#include "format/model_folder.h"
#include "format/safetensors.h"
#include "format/sha256.h"

namespace qdm {
namespace fs = std::filesystem;

bool is_pipeline_folder(const std::string& dir) { return fs::is_regular_file(fs::path(dir) / "model_index.json"); }

namespace {

void check_index(const std::string& dir) {
  std::ifstream in(dir + "/model_index.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    throw ConfigError("model_index.json: not valid JSON");
  }
  if (!j.is_object()) throw ConfigError("model_index.json: not a JSON object");
  const std::string cls = j.value("_class_name", "");
  if (cls != "StableDiffusionPipeline")
    JsonFields::fail("model_index.json", "_class_name", "is '" + cls.substr(0, 64) + "'; supported: StableDiffusionPipeline");
  const std::pair<const char*, const char*> parts[] = {{"unet", "UNet2DConditionModel"}, {"vae", "AutoencoderKL"},
                                                       {"text_encoder", "CLIPTextModel"}, {"tokenizer", "CLIPTokenizer"}};
  for (const auto& [key, want] : parts) {
    const auto& v = j.contains(key) ? j[key] : nlohmann::json();
    const bool ok = v.is_array() && v.size() == 2 && v[1].is_string() &&
                    (v[1] == want || (std::string(key) == "tokenizer" && v[1] == "CLIPTokenizerFast"));
    if (!ok) JsonFields::fail("model_index.json", key, std::string("must name ") + want);
  }
}

}  // namespace

TextToImagePipeline load_pipeline(const std::string& dir) {
  if (!is_pipeline_folder(dir)) throw ModelLoadError("not a pipeline folder: no model_index.json");
  check_index(dir);
  TextToImagePipeline p{dir, ClipTokenizer::load(dir + "/tokenizer")};
  LoadedTextEncoder text = load_text_encoder(dir + "/text_encoder");
  p.text_encoder = text.model;
  p.text_encoder_sha256 = text.weights_sha256;
  LoadedVae vae = load_vae(dir + "/vae");
  p.vae = vae.model;
  p.vae_sha256 = vae.weights_sha256;
  const UNetConfig config = UNetConfig::from_file(dir + "/unet/config.json");
  if (!config.text_conditioned()) throw ConfigError("unet/config.json: field '_class_name' must be UNet2DConditionModel in a pipeline");
  if (config.in_channels != p.vae->config().latent_channels || config.out_channels != p.vae->config().latent_channels)
    throw ConfigError("unet/config.json: field 'in_channels' must equal the VAE's latent_channels (" +
                      std::to_string(p.vae->config().latent_channels) + ")");
  if (*config.cross_attention_dim != p.text_encoder->config().hidden_size)
    throw ConfigError("unet/config.json: field 'cross_attention_dim' must equal the text encoder's hidden_size (" +
                      std::to_string(p.text_encoder->config().hidden_size) + ")");
  if (p.tokenizer.max_length() > p.text_encoder->config().max_position_embeddings)
    throw ConfigError("tokenizer/tokenizer_config.json: field 'model_max_length' exceeds the text encoder's max_position_embeddings");
  if (static_cast<int>(p.tokenizer.vocab_size()) > p.text_encoder->config().vocab_size)
    throw ConfigError("text_encoder/config.json: field 'vocab_size' is smaller than the tokenizer's vocabulary");
  const std::string weights = dir + "/unet/diffusion_pytorch_model.safetensors";
  if (!fs::exists(weights)) throw ModelLoadError("unet: no diffusion_pytorch_model.safetensors");
  p.unet = UNet2DModel(config);
  load_unet_weights(*p.unet, SafeTensors::read_file(weights));
  p.unet->eval();
  p.unet_sha256 = sha256_file(weights);
  const std::string sched = dir + "/scheduler/scheduler_config.json";
  if (fs::exists(sched)) p.scheduler = SchedulerConfig::from_file(sched);
  return p;
}

}  // namespace qdm
