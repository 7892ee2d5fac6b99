#include "engine/model/module_weights.h"

#include <torch/utils.h>

#include <map>
#include <set>

#include "engine/model_io/tensor_io.h"
#include "format/model_folder.h"  // ModelLoadError
#include "format/safetensors.h"

namespace qdm {

std::string load_module_weights(torch::nn::Module& module, const SafeTensors& file, const std::string& config_name,
                                const WeightNames& names) {
  std::map<std::string, at::Tensor> targets;
  for (const auto& p : module.named_parameters()) targets[p.key()] = p.value();
  for (const auto& b : module.named_buffers()) targets[b.key()] = b.value();

  std::set<std::string> loaded;
  std::string dtype;
  torch::NoGradGuard no_grad;
  for (const auto& info : file.tensors()) {
    if (names.ignored && names.ignored(info.name)) continue;
    const std::string name = names.canonical ? names.canonical(info.name) : info.name;
    auto it = targets.find(name);
    if (it == targets.end())
      throw ModelLoadError("unexpected tensor '" + info.name + "': this " + config_name +
                           " builds no such parameter (config and weights do not match)");
    if (!loaded.insert(name).second)
      throw ModelLoadError("tensor '" + name + "' is stored twice (old and new attention names)");
    if (info.dtype != DType::F32 && info.dtype != DType::F16 && info.dtype != DType::BF16)
      throw ModelLoadError("tensor '" + info.name + "' has dtype " + dtype_name(info.dtype) +
                           "; model weights must be F32, F16 or BF16");
    at::Tensor src = to_tensor(file, info);
    if (src.sizes() != it->second.sizes())
      throw ModelLoadError("tensor '" + info.name + "' has shape " + c10::str(src.sizes()) + " but " + config_name +
                           " implies " + c10::str(it->second.sizes()));
    it->second.copy_(src.to(at::kFloat));
    dtype = dtype_name(info.dtype);
  }
  for (const auto& [name, t] : targets)
    if (!loaded.count(name)) throw ModelLoadError("missing tensor '" + name + "' required by " + config_name);
  return dtype.empty() ? "F32" : dtype;
}

}  // namespace qdm
