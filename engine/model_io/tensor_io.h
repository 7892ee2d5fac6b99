// Conversion between safetensors files and at::Tensor.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "format/safetensors.h"

namespace qdm {

using TensorMap = std::map<std::string, at::Tensor>;

// A CPU tensor holding a copy of the stored data in its stored dtype.
at::Tensor to_tensor(const SafeTensors& file, const TensorInfo& info);
// Every tensor of a file, in its stored dtype.
TensorMap load_tensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);
void add_tensor(SafeTensorsWriter& writer, const std::string& name, const at::Tensor& tensor);
void save_tensors(const std::string& path, const TensorMap& tensors,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace qdm
