#include "format/pipeline_folder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "format/clip_tokenizer.h"
#include "format/graph/autoencoder_kl.h"
#include "format/graph/clip_text.h"
#include "format/quantized_component.h"
#include "format/safetensors.h"

namespace qdm {
namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const PipelineSource& src, const std::string& name) {
  const std::optional<std::string> text = src.read(name);
  if (!text) throw ConfigError(name + ": missing or unreadable");
  try {
    return nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception&) {
    throw ConfigError(name + ": not valid JSON");
  }
}

void check_index(const PipelineSource& src) {
  const nlohmann::json j = read_json(src, "model_index.json");
  if (!j.is_object()) throw ConfigError("model_index.json: not a JSON object");
  const std::string cls = j.value("_class_name", "");
  if (cls != "StableDiffusionPipeline")
    JsonFields::fail("model_index.json", "_class_name", "is '" + cls.substr(0, 64) + "'; supported: StableDiffusionPipeline");
  const std::pair<const char*, const char*> parts[] = {{"unet", "UNet2DConditionModel"}, {"vae", "AutoencoderKL"},
                                                       {"text_encoder", "CLIPTextModel"}, {"tokenizer", "CLIPTokenizer"}};
  for (const auto& [key, want] : parts) {
    const auto& v = j.contains(key) ? j[key] : nlohmann::json();
    const bool ok = v.is_array() && v.size() == 2 && v[1].is_string() &&
                    (v[1] == want || (std::string(key) == "tokenizer" && v[1] == "CLIPTokenizerFast") ||
                     (std::string(key) == "text_encoder" && v[1] == "CLIPTextModelWithProjection"));
    if (!ok) JsonFields::fail("model_index.json", key, std::string("must name ") + want);
  }
}

// A component's config errors name the component's file.
template <typename F>
auto in_component(const std::string& label, F&& f) {
  try {
    return f();
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    throw ConfigError(what.rfind(label, 0) == 0 ? what : label + ": " + what);
  }
}

}  // namespace

const std::vector<std::string>& pipeline_file_names() {
  static const std::vector<std::string> names = {
      "model_index.json",          "scheduler/scheduler_config.json",         "unet/config.json",
      "unet/diffusion_pytorch_model.safetensors",                             "vae/config.json",
      "vae/diffusion_pytorch_model.safetensors",                              "text_encoder/config.json",
      "text_encoder/model.safetensors",                                       "text_encoder/diffusion_pytorch_model.safetensors",
      "tokenizer/vocab.json",      "tokenizer/merges.txt",                    "tokenizer/tokenizer_config.json",
      "tokenizer/special_tokens_map.json", "calibration_prompts.txt"};
  return names;
}

std::vector<std::string> pipeline_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& f : pipeline_file_names())
    if (fs::is_regular_file(fs::path(dir) / f)) out.push_back(f);
  return out;
}

bool is_pipeline_dir(const std::string& dir) { return fs::is_regular_file(fs::path(dir) / "model_index.json"); }

bool ignored_text_encoder_tensor(const std::string& name) {
  return name == "text_model.embeddings.position_ids" || name.rfind("text_projection.", 0) == 0;
}

bool FolderSource::has(const std::string& name) const { return fs::is_regular_file(fs::path(dir_) / name); }

std::optional<std::string> FolderSource::read(const std::string& name) const {
  std::ifstream f(fs::path(dir_) / name, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::shared_ptr<const SafeTensors> FolderSource::weights(const std::string& name) const {
  try {
    return std::make_shared<const SafeTensors>(SafeTensors::read_file((fs::path(dir_) / name).string()));
  } catch (const std::exception& e) {
    throw SafeTensorsError(name + ": cannot be read as safetensors");
  }
}

ClipTokenizer load_tokenizer(const PipelineSource& source) {
  return ClipTokenizer::from_files([&source](const std::string& file) { return source.read("tokenizer/" + file); });
}

std::string text_encoder_weights_name(const PipelineSource& source) {
  return source.has("text_encoder/model.safetensors") ? "text_encoder/model.safetensors"
                                                      : "text_encoder/diffusion_pytorch_model.safetensors";
}

std::set<std::string> replaced_weights(const PipelineSource& source, const std::string& component) {
  std::set<std::string> names;
  const std::string file = quantized_component_file(component);
  if (!source.has(file)) return names;
  for (const QuantizedComponentLayer& l : QuantizedComponentInfo::from_file(*source.weights(file)).layers) names.insert(l.name + ".weight");
  return names;
}

PipelineFiles check_pipeline_folder(const std::string& dir, const ModelLimits& limits, bool keep_files) {
  PipelineFiles p = check_pipeline_files(FolderSource(dir), limits, keep_files);
  p.dir = dir;
  return p;
}

PipelineFiles check_pipeline_files(const PipelineSource& src, const ModelLimits& limits, bool keep_files, bool unet_weights) {
  check_index(src);
  PipelineFiles p;
  const ClipTokenizer tok = load_tokenizer(src);

  // Configs first, then whether the parts fit, then each weights file against its config.
  p.text_encoder = ClipTextConfig::from_json(read_json(src, "text_encoder/config.json"));
  p.vae = AutoencoderKLConfig::from_json(read_json(src, "vae/config.json"));
  p.unet = in_component("unet/config.json", [&] { return UNetConfig::from_json(read_json(src, "unet/config.json")); });
  if (!p.unet.text_conditioned()) JsonFields::fail("unet/config.json", "_class_name", "must be UNet2DConditionModel in a pipeline");
  in_component("unet/config.json", [&] {
    check_model_limits(p.unet, limits);
    return 0;
  });
  if (p.unet.in_channels != p.vae.latent_channels || p.unet.out_channels != p.vae.latent_channels)
    JsonFields::fail("unet/config.json", "in_channels", "must equal the VAE's latent_channels (" + std::to_string(p.vae.latent_channels) + ")");
  if (*p.unet.cross_attention_dim != p.text_encoder.hidden_size)
    JsonFields::fail("unet/config.json", "cross_attention_dim",
                     "must equal the text encoder's hidden_size (" + std::to_string(p.text_encoder.hidden_size) + ")");
  if (tok.max_length() > p.text_encoder.max_position_embeddings)
    JsonFields::fail("tokenizer/tokenizer_config.json", "model_max_length", "exceeds the text encoder's max_position_embeddings");
  for (const int64_t id : {tok.bos_id(), tok.eos_id(), tok.pad_id()})
    if (id >= p.text_encoder.vocab_size)
      JsonFields::fail("text_encoder/config.json", "vocab_size", "is smaller than the tokenizer's special token ids");

  if (src.sampling_only()) {  // an artifact: the weights its quantized components replace
    p.text_encoder_replaced = replaced_weights(src, "text_encoder");
    p.vae_replaced = replaced_weights(src, "vae_decoder");
  }
  const std::string text_name = text_encoder_weights_name(src);
  p.text_encoder_weights = src.prefix() + text_name;
  in_component("text_encoder/model.safetensors", [&] {
    auto file = src.weights(text_name);
    check_weights(tensor_specs(graph::describe_clip_text(p.text_encoder)), *file, "text_encoder/config.json", ignored_text_encoder_tensor,
                  p.text_encoder_replaced);
    if (keep_files) p.text_encoder_file = std::move(file);
    return 0;
  });
  p.vae_weights = src.prefix() + "vae/diffusion_pytorch_model.safetensors";
  in_component("vae/diffusion_pytorch_model.safetensors", [&] {
    auto file = src.weights("vae/diffusion_pytorch_model.safetensors");
    // An artifact's VAE may hold the decoder alone: then every encoder tensor is absent.
    p.vae_encoder = !src.sampling_only() || graph::stores_vae_encoder(*file);
    check_weights(tensor_specs(graph::describe_stored_vae(p.vae, p.vae_encoder)), *file, "vae/config.json", nullptr, p.vae_replaced);
    if (keep_files) p.vae_file = std::move(file);
    return 0;
  });
  p.unet_weights = src.prefix() + "unet/diffusion_pytorch_model.safetensors";
  if (unet_weights) in_component("unet/diffusion_pytorch_model.safetensors", [&] {
    auto file = src.weights("unet/diffusion_pytorch_model.safetensors");
    check_weights(expected_unet_tensors(p.unet), *file, "unet/config.json");
    if (keep_files) p.unet_file = std::move(file);
    return 0;
  });
  if (src.has("scheduler/scheduler_config.json"))
    p.scheduler = in_component("scheduler/scheduler_config.json", [&] { return SchedulerConfig::from_json(read_json(src, "scheduler/scheduler_config.json")); });
  return p;
}

}  // namespace qdm
