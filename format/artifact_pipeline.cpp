#include "format/artifact_pipeline.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>

#include "format/graph/autoencoder_kl.h"
#include "format/quantized_component.h"
#include "format/safetensors.h"
#include "format/unet_tensors.h"

namespace qdm {
namespace fs = std::filesystem;
namespace {

constexpr const char* kVaeWeights = "vae/diffusion_pytorch_model.safetensors";

// A weights file without the tensors `drop` names (stored names), each other tensor and the
// metadata as stored.
std::vector<uint8_t> without(std::vector<uint8_t> bytes, const std::function<bool(const std::string&)>& drop) {
  const SafeTensors file = SafeTensors::parse(std::move(bytes));
  SafeTensorsWriter w;
  for (const TensorInfo& t : file.tensors())
    if (!drop(t.name)) w.add(t.name, t.dtype, t.shape, file.data(t), t.nbytes());
  for (const auto& [key, value] : file.metadata()) w.set_metadata(key, value);
  return w.serialize();
}

}  // namespace

EmbeddedFiles pipeline_files_to_embed(const std::string& dir, EmbeddedFiles quantized) {
  // The fp32 weights each quantized component's codes replace, by the file that holds them.
  const FolderSource folder(dir);
  std::map<std::string, std::set<std::string>> replaced;
  for (const auto& [name, bytes] : quantized) {
    const QuantizedComponentInfo info = QuantizedComponentInfo::from_file(SafeTensors::parse(bytes));
    const std::string fp32 = info.component == "text_encoder" ? text_encoder_weights_name(folder) : kVaeWeights;
    for (const QuantizedComponentLayer& l : info.layers) replaced[fp32].insert(l.name + ".weight");
  }
  EmbeddedFiles out;
  for (const std::string& name : pipeline_files(dir)) {
    if (name == "unet/diffusion_pytorch_model.safetensors" || name == "calibration_prompts.txt") continue;
    std::ifstream in(fs::path(dir) / name, std::ios::binary);
    if (!in) throw SafeTensorsError(name + ": cannot be read");
    std::vector<uint8_t> bytes(std::istreambuf_iterator<char>(in), (std::istreambuf_iterator<char>()));
    const auto r = replaced.find(name);
    if (name == kVaeWeights || r != replaced.end())
      bytes = without(std::move(bytes), [&](const std::string& stored) {
        return (name == kVaeWeights && graph::vae_encoder_tensor(stored)) || (r != replaced.end() && r->second.count(canonical_tensor_name(stored)));
      });
    out.emplace_back(name, std::move(bytes));
  }
  for (auto& f : quantized) out.push_back(std::move(f));
  return out;
}

ArtifactPipelineSource::ArtifactPipelineSource(std::shared_ptr<const SafeTensors> artifact, std::vector<std::string> names)
    : file_(std::move(artifact)), names_(std::move(names)) {}

const TensorInfo* ArtifactPipelineSource::find(const std::string& name) const {
  if (std::find(names_.begin(), names_.end(), name) == names_.end()) return nullptr;
  const TensorInfo* t = file_->find(kPipelineTensorPrefix + name);
  return t && t->dtype == DType::U8 ? t : nullptr;
}

bool ArtifactPipelineSource::has(const std::string& name) const { return find(name) != nullptr; }

std::optional<std::string> ArtifactPipelineSource::read(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) return std::nullopt;
  const auto* p = reinterpret_cast<const char*>(file_->data(*t));
  return std::string(p, p + t->nbytes());
}

std::shared_ptr<const SafeTensors> ArtifactPipelineSource::weights(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw SafeTensorsError(name + ": missing from the artifact");
  try {
    const uint8_t* p = file_->data(*t);
    return std::make_shared<const SafeTensors>(SafeTensors::parse(std::vector<uint8_t>(p, p + t->nbytes())));
  } catch (const std::exception&) {
    throw SafeTensorsError(name + ": the artifact's copy cannot be read as safetensors");
  }
}

}  // namespace qdm
