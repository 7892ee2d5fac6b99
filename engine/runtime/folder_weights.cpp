#include "engine/runtime/folder_weights.h"

#include <stdexcept>

#include "format/unet_tensors.h"

namespace qdm {

FolderWeights::FolderWeights(std::shared_ptr<const SafeTensors> file, const UNetConfig& config) : FolderWeights(std::move(file)) {
  check_unet_weights(config, *file_);
}

FolderWeights::FolderWeights(std::shared_ptr<const SafeTensors> file, const graph::Graph& description, const std::string& config_name,
                             const std::function<bool(const std::string&)>& ignored, const std::set<std::string>& optional)
    : FolderWeights(std::move(file)) {
  check_weights(tensor_specs(description), *file_, config_name, ignored, optional);
}

FolderWeights::FolderWeights(std::shared_ptr<const SafeTensors> file) : file_(std::move(file)) {
  for (const TensorInfo& t : file_->tensors()) {
    by_name_[canonical_tensor_name(t.name)] = &t;
    dtype_ = dtype_name(t.dtype);
  }
}

std::vector<float> FolderWeights::tensor(const std::string& name) const {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) throw std::invalid_argument("the model has no tensor '" + name + "'");
  return file_->floats(*it->second);
}

plan::LayerSource FolderWeights::layer(const std::string& name, int n, int k) const {
  plan::LayerSource out;
  out.n = n;
  out.k = k;
  out.f32 = tensor(name + ".weight");
  if (out.f32.size() != static_cast<size_t>(n) * static_cast<size_t>(k))
    throw std::invalid_argument("layer '" + name + "' does not have " + std::to_string(n) + " x " + std::to_string(k) + " weights");
  if (by_name_.count(name + ".bias")) out.bias = tensor(name + ".bias");
  return out;
}

}  // namespace qdm
