#include "format/quantized_component.h"

#include <algorithm>

#include "format/artifact_metadata.h"

namespace qdm {

const std::vector<std::string>& component_names() {
  static const std::vector<std::string> names = {"unet", "text_encoder", "vae_decoder"};
  return names;
}

bool is_extra_component(const std::string& name) { return name == "text_encoder" || name == "vae_decoder"; }

std::string quantized_component_file(const std::string& component) { return "quantized/" + component + ".safetensors"; }

std::string QuantizedComponentInfo::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& l : layers) list.push_back({{"name", l.name}, {"weight_bits", l.weight_bits}, {"act_bits", l.act_bits}});
  return nlohmann::json{{"component", component}, {"layers", list}, {"report", report}}.dump();
}

QuantizedComponentInfo QuantizedComponentInfo::from_file(const SafeTensors& file) {
  const auto it = file.metadata().find("qdm");
  if (it == file.metadata().end()) throw ArtifactError("a quantized component without its \"qdm\" metadata");
  QuantizedComponentInfo info;
  try {
    const nlohmann::json j = nlohmann::json::parse(it->second);
    info.component = j.at("component").get<std::string>();
    for (const auto& l : j.at("layers"))
      info.layers.push_back({l.at("name").get<std::string>(), l.at("weight_bits").get<int>(), l.at("act_bits").get<int>()});
    info.report = j.value("report", nlohmann::json::object());
  } catch (const nlohmann::json::exception&) {
    throw ArtifactError("a quantized component's metadata is not the expected JSON (component, layers)");
  }
  if (!is_extra_component(info.component)) throw ArtifactError("a quantized component of an unknown kind");
  for (const auto& l : info.layers)
    if (l.weight_bits < 2 || l.weight_bits > 8 || l.act_bits < 2 || l.act_bits > 8)
      throw ArtifactError("quantized " + info.component + " layer '" + l.name + "': weights and activations take 2..8 bits");
  return info;
}

}  // namespace qdm
