#include "format/artifact_metadata.h"

#include "format/safetensors.h"

namespace qdm {

nlohmann::json ArtifactInfo::to_json() const {
  nlohmann::json layer_list = nlohmann::json::array();
  for (const auto& l : layers) {
    nlohmann::json e = {{"name", l.name}, {"weight_bits", l.weight_bits}, {"act_bits", l.act_bits}, {"act_entries", l.act_entries}};
    if (l.vector_quantized())
      e["vq"] = {{"codebooks", l.vq_codebooks}, {"codebook_bits", l.vq_codebook_bits}, {"group", l.vq_group}};
    layer_list.push_back(e);
  }
  nlohmann::json j = {{"format", "qdm-artifact"},
                      {"format_version", kArtifactFormatVersion},
                      {"unet_config", config.to_json()},
                      {"scheduler_config", scheduler.to_json()},
                      {"timesteps", timesteps},
                      {"source_sha256", source_sha256},
                      {"source_name", source_name},
                      {"recipe", recipe},
                      {"spec", spec.to_json()},
                      {"layers", layer_list},
                      {"kept_fp", kept_fp},
                      {"attention_quantized", attention_quantized},
                      {"temporal_cache", temporal_cache},
                      {"timings", timings},
                      {"report", report},
                      {"qdm_version", "0.1.0"}};
  j.update(sampler.to_json());
  if (text_to_image()) j["pipeline"] = {{"files", pipeline_files}, {"sha256", pipeline_sha256}};
  return j;
}

ArtifactInfo ArtifactInfo::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ArtifactError("metadata is not a JSON object");
  if (j.value("format_version", 0) != kArtifactFormatVersion)
    throw ArtifactError("format_version " + j.value("format_version", nlohmann::json()).dump() +
                        " is not supported (this build reads " + std::to_string(kArtifactFormatVersion) + ")");
  ArtifactInfo a;
  try {
    a.config = UNetConfig::from_json(j.at("unet_config"));
    a.scheduler = SchedulerConfig::from_json(j.at("scheduler_config"));
    a.sampler = SamplerOptions::from_json(j);
    a.timesteps = j.at("timesteps").get<std::vector<int>>();
    a.source_sha256 = j.value("source_sha256", "");
    a.source_name = j.value("source_name", "");
    a.recipe = j.value("recipe", nlohmann::json::object());
    a.timings = j.value("timings", nlohmann::json::object());
    a.report = j.contains("report") ? j["report"] : nlohmann::json();
    if (a.report.is_object() && a.report.empty()) a.report = nullptr;
    a.spec = QuantSpec::from_json(j.at("spec"));
    for (const auto& l : j.value("layers", nlohmann::json::array())) {
      ArtifactLayer e{l.at("name").get<std::string>(), l.at("weight_bits").get<int>(), l.at("act_bits").get<int>(),
                      l.at("act_entries").get<int>()};
      if (l.contains("vq")) {
        const auto& v = l.at("vq");
        e.vq_codebooks = v.at("codebooks").get<int>();
        e.vq_codebook_bits = v.at("codebook_bits").get<int>();
        e.vq_group = v.at("group").get<int>();
        if (e.vq_codebooks < 1 || e.vq_codebooks > 8 || e.vq_codebook_bits < 1 || e.vq_codebook_bits > 8 || e.vq_group < 1)
          throw ArtifactError("layer '" + e.name + "': vq codebooks must be 1..8, codebook_bits 1..8, group >= 1");
      }
      a.layers.push_back(e);
    }
    a.kept_fp = j.value("kept_fp", std::vector<std::string>{});
    a.attention_quantized = j.value("attention_quantized", 0);
    a.temporal_cache = j.value("temporal_cache", false);
    if (j.contains("pipeline")) {
      const auto& p = j.at("pipeline");
      a.pipeline_files = p.at("files").get<std::vector<std::string>>();
      a.pipeline_sha256 = p.value("sha256", std::map<std::string, std::string>{});
      if (a.pipeline_files.empty()) throw ArtifactError("pipeline: no files");
      if (!a.config.text_conditioned()) throw ArtifactError("pipeline: its UNet config is not a UNet2DConditionModel");
    }
  } catch (const nlohmann::json::exception& e) {
    throw ArtifactError(std::string("metadata is incomplete: ") + e.what());
  } catch (const ArtifactError&) {
    throw;
  } catch (const std::exception& e) {
    throw ArtifactError(e.what());
  }
  return a;
}

ArtifactInfo read_artifact_info(const SafeTensors& file) {
  auto it = file.metadata().find("qdm");
  if (it == file.metadata().end())
    throw ArtifactError("not a qdm artifact (no 'qdm' metadata; is this a model's weights file?)");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw ArtifactError(std::string("metadata is not valid JSON: ") + e.what());
  }
  return ArtifactInfo::from_json(meta);
}

}  // namespace qdm
