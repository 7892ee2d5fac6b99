#include "engine/runtime/component_weights.h"

#include <cstring>
#include <set>
#include <stdexcept>

#include "engine/runtime/quantized_checks.h"
#include "format/artifact_metadata.h"

namespace qdm {

ComponentWeights::ComponentWeights(std::shared_ptr<const SafeTensors> quantized, const plan::WeightSource& fp32,
                                   const graph::Graph& g)
    : file_(std::move(quantized)), fp32_(fp32), info_(QuantizedComponentInfo::from_file(*file_)) {
  const std::string what = "quantized " + info_.component + ": ";
  std::map<std::string, const graph::Node*> layer_nodes;
  for (const int n : g.layers()) layer_nodes[g.nodes[static_cast<size_t>(n)].name] = &g.nodes[static_cast<size_t>(n)];
  std::set<std::string> used;
  auto get = [&](const std::string& name, int64_t numel) -> const TensorInfo& {
    const TensorInfo* t = file_->find(name);
    if (!t) throw ArtifactError(what + "missing tensor '" + name + "'");
    if (t->numel() != numel || t->dtype != (name.size() > 8 && name.compare(name.size() - 8, 8, ".qweight") == 0 ? DType::U8 : DType::F32))
      throw ArtifactError(what + "tensor '" + name + "' has the wrong dtype or size (" + std::to_string(numel) + " values expected)");
    used.insert(name);
    return *t;
  };
  for (const QuantizedComponentLayer& l : info_.layers) {
    const auto node = layer_nodes.find(l.name);
    if (node == layer_nodes.end()) throw ArtifactError(what + "layer '" + l.name + "' is not a conv or linear layer of its config");
    const graph::TensorDecl& w = g.tensor(node->second->params.at(0));
    const int64_t rows = w.shape.at(0), k = w.numel() / rows;
    const std::string bias = node->second->params.size() > 1 ? g.tensor(node->second->params.at(1)).name : std::string();
    if (!layers_.emplace(l.name, Layer{l, rows, k, bias}).second) throw ArtifactError(what + "layer '" + l.name + "' is listed twice");
    const TensorInfo& codes = get(l.name + ".qweight", rows * k);
    const uint8_t* c = file_->data(codes);
    check_codes(c, rows * k, l.weight_bits, l.name + ".qweight", what);
    get(l.name + ".wzero", rows);
    get(l.name + ".azero", 1);
    for (const auto& [part, count] : {std::pair<const char*, int64_t>{".wscale", rows}, {".ascale", 1}})
      check_scales(file_->floats(get(l.name + part, count)), l.name + part, what);
  }
  for (const TensorInfo& t : file_->tensors())
    if (!used.count(t.name)) throw ArtifactError(what + "unexpected tensor '" + t.name + "'");
}

plan::LayerSource ComponentWeights::layer(const std::string& name, int n, int k) const {
  const auto it = layers_.find(name);
  if (it == layers_.end()) return fp32_.layer(name, n, k);
  const Layer& l = it->second;
  if (l.rows != n || l.k != k)
    throw std::invalid_argument("layer '" + name + "' does not have " + std::to_string(n) + " x " + std::to_string(k) + " weights");
  plan::LayerSource out;  // its codes; its fp32 weights are not read (the artifact leaves them out)
  out.n = n;
  out.k = k;
  if (!l.bias.empty()) out.bias = fp32_.tensor(l.bias);
  out.kind = plan::LayerSource::Kind::kCodes;
  out.bits = l.info.weight_bits;
  const TensorInfo& codes = file_->at(name + ".qweight");
  out.codes.assign(file_->data(codes), file_->data(codes) + codes.numel());
  out.scale = file_->floats(file_->at(name + ".wscale"));
  out.zero = file_->floats(file_->at(name + ".wzero"));
  out.act = plan::ActTable{file_->floats(file_->at(name + ".ascale")), file_->floats(file_->at(name + ".azero")), l.info.act_bits};
  return out;
}

}  // namespace qdm
