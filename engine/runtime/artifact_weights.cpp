#include "engine/runtime/artifact_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/runtime/quantized_checks.h"
#include "format/artifact_pipeline.h"
#include "format/graph/unet_2d.h"

namespace qdm {
namespace {

int64_t qmax(int bits) { return (int64_t{1} << bits) - 1; }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool float_dtype(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }

// Unpacked codes (rows, k) of a .qweight: one byte per code above 4 bits, two per byte (low
// nibble first) at 4 bits and below.
std::vector<uint8_t> unpack(const uint8_t* packed, int64_t rows, int64_t k, int bits) {
  std::vector<uint8_t> codes(static_cast<size_t>(rows * k));
  if (bits > 4) {
    std::memcpy(codes.data(), packed, codes.size());
    return codes;
  }
  const int64_t width = (k + 1) / 2;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const uint8_t b = packed[r * width + j / 2];
      codes[static_cast<size_t>(r * k + j)] = j % 2 ? static_cast<uint8_t>(b >> 4) : static_cast<uint8_t>(b & 15);
    }
  return codes;
}

}  // namespace

ArtifactWeights::ArtifactWeights(std::shared_ptr<const SafeTensors> file, ArtifactInfo info, const graph::Graph& graph)
    : file_(std::move(file)), info_(std::move(info)) {
  attention_quantized_ = info_.spec.quantize_attention && info_.spec.act_bits > 0;
  validate(graph);
}

const ArtifactLayer* ArtifactWeights::listed(const std::string& layer) const {
  for (const auto& l : info_.layers)
    if (l.name == layer) return &l;
  return nullptr;
}

const TensorInfo& ArtifactWeights::get(const std::string& name) const {
  const TensorInfo* t = file_->find(name);
  if (!t) throw ArtifactError("missing tensor '" + name + "'");
  return *t;
}

void ArtifactWeights::validate(const graph::Graph& g) {
  std::set<std::string> used;
  auto expect = [&](const std::string& name, DType dtype, const std::vector<int64_t>& shape) -> const TensorInfo& {
    const TensorInfo& t = get(name);
    if (t.dtype != dtype && !(dtype == DType::F32 && float_dtype(t.dtype)))
      throw ArtifactError("tensor '" + name + "' has dtype " + dtype_name(t.dtype) + "; expected " + dtype_name(dtype));
    if (t.shape != shape)
      throw ArtifactError("tensor '" + name + "' has shape " + shape_str(t.shape) + "; the config implies " + shape_str(shape));
    used.insert(name);
    return t;
  };
  const int64_t steps = static_cast<int64_t>(info_.timesteps.size());
  auto expect_table = [&](const std::string& prefix) {
    const TensorInfo* s = file_->find(prefix + ".ascale");
    const TensorInfo* z = file_->find(prefix + ".azero");
    if (!s || !z) throw ArtifactError("missing tensor '" + prefix + (s ? ".azero'" : ".ascale'"));
    const int64_t entries = s->numel();
    if ((entries != 1 && entries != steps) || z->numel() != entries || s->dtype != DType::F32 || z->dtype != DType::F32)
      throw ArtifactError("tensors '" + prefix + ".ascale' / '.azero' have " + std::to_string(entries) + " / " +
                          std::to_string(z->numel()) + " entries; expected 1 or one per step (" + std::to_string(steps) +
                          "), both the same, F32");
    check_scales(file_->floats(*s), prefix + ".ascale");
    if (entries > 1) per_step_ = true;
    used.insert(prefix + ".ascale");
    used.insert(prefix + ".azero");
  };

  // Layers (conv and linear nodes): packed codes for the listed ones, fp32 weights otherwise.
  std::set<std::string> layer_weights;
  for (const int n : g.layers()) {
    const graph::Node& node = g.nodes[static_cast<size_t>(n)];
    const ArtifactLayer* l = listed(node.name);
    if (!l) continue;
    const graph::TensorDecl& w = g.tensor(node.params.at(0));
    const int64_t rows = w.shape.at(0), k = w.numel() / rows;
    layer_weights.insert(w.name);
    kernel_area_[node.name] = w.shape.size() == 4 ? static_cast<int>(w.shape[2] * w.shape[3]) : 1;
    if (l->act_bits < 0 || l->act_bits > 16 || l->weight_bits < 1 || l->weight_bits > 8)
      throw ArtifactError("layer '" + node.name + "' lists " + std::to_string(l->weight_bits) + "-bit weights and " +
                          std::to_string(l->act_bits) + "-bit activations; weights take 1..8 bits");
    if (l->act_bits > 0) expect_table(node.name);
    if (l->vector_quantized()) {
      const int m = l->vq_codebooks, bits = l->vq_codebook_bits, group = l->vq_group;
      if (bits < 1 || bits > 8 || m > 16 || group < 1 || k % group != 0)
        throw ArtifactError("layer '" + node.name + "': codebooks of " + std::to_string(bits) + " bits over groups of " +
                            std::to_string(group) + " do not fit its " + std::to_string(k) + " weights per row");
      const int64_t words = int64_t{1} << bits;
      const TensorInfo& codes = expect(node.name + ".vq_codes", DType::U8, {rows, k / group, m});
      const TensorInfo& books = expect(node.name + ".vq_codebooks", DType::I8, {m, words, group});
      const TensorInfo& scales = expect(node.name + ".vq_scales", DType::F32, {rows});
      if (scales.dtype != DType::F32) throw ArtifactError("tensor '" + node.name + ".vq_scales' must be F32");
      const uint8_t* c = file_->data(codes);
      for (int64_t i = 0; i < codes.numel(); ++i)
        if (c[i] >= words) throw ArtifactError("tensor '" + node.name + ".vq_codes' holds indices beyond the " + std::to_string(words) + " codewords");
      // The kernels add M int8 codewords in int8: every codebook's largest magnitudes together fit.
      const auto* b = reinterpret_cast<const int8_t*>(file_->data(books));
      int64_t bound = 0;
      for (int i = 0; i < m; ++i) {
        int largest = 0;
        for (int64_t j = 0; j < words * group; ++j) largest = std::max(largest, std::abs(static_cast<int>(b[i * words * group + j])));
        bound += largest;
      }
      if (bound > 127) throw ArtifactError("tensor '" + node.name + ".vq_codebooks': the sum of the codebooks' largest magnitudes exceeds 127");
      for (const float v : file_->floats(scales))
        if (!std::isfinite(v)) throw ArtifactError("tensor '" + node.name + ".vq_scales' must be finite");
      continue;
    }
    const int bits = l->weight_bits;
    const TensorInfo& packed = expect(node.name + ".qweight", DType::U8, {rows, bits > 4 ? k : (k + 1) / 2});
    const std::vector<uint8_t> codes = unpack(file_->data(packed), rows, k, bits);
    check_codes(codes.data(), static_cast<int64_t>(codes.size()), bits, node.name + ".qweight");
    for (const char* part : {".wscale", ".wzero"}) {
      const TensorInfo& t = get(node.name + part);
      if (t.dtype != DType::F32 || t.numel() != rows)
        throw ArtifactError("tensor '" + node.name + part + "' must be F32 with one entry per output channel (" + std::to_string(rows) + ")");
      used.insert(t.name);
    }
  }
  // Every other tensor of the description, except the layers a feature cache replaces.
  for (const graph::TensorDecl& d : g.tensors) {
    if (layer_weights.count(d.name)) continue;
    if (info_.temporal_cache && graph::is_temporal_layer(d.name)) continue;
    expect(d.name, DType::F32, d.shape);
  }
  if (attention_quantized_)
    for (const graph::Node& node : g.nodes)
      if (node.op == graph::Op::kAttention)
        for (const char* part : {".q", ".k", ".v"}) expect_table(node.name + part);
  if (info_.temporal_cache) {
    const std::vector<int> features = g.temporal_features();
    const bool per_label = info_.config.conditional();
    for (size_t i = 0; i < features.size(); ++i) {
      const std::string name = "temporal_cache." + std::to_string(i);
      const TensorInfo& t = get(name);
      std::vector<int64_t> shape{steps};
      if (per_label) shape.push_back(info_.config.label_count());
      shape.push_back(g.values[static_cast<size_t>(features[i])].c);
      if (t.dtype != DType::F16) expect(name, DType::F32, shape);
      else expect(name, DType::F16, shape);
    }
  }
  if (const TensorInfo* bias = file_->find("eps_bias")) {
    const UNetConfig& c = info_.config;
    expect("eps_bias", DType::F32, {steps, c.in_channels, c.sample_size, c.sample_size});
    (void)bias;
  } else if (info_.recipe.value("bias_samples", 0) > 0) {
    throw ArtifactError("missing tensor 'eps_bias' (its recipe measured an eps bias)");
  }
  if (file_->find("report.figure_png")) used.insert("report.figure_png");
  for (const std::string& name : info_.pipeline_files)  // a pipeline's other files (TextPipeline reads them)
    if (file_->find(kPipelineTensorPrefix + name)) used.insert(kPipelineTensorPrefix + name);
  for (const TensorInfo& t : file_->tensors())
    if (!used.count(t.name)) throw ArtifactError("unexpected tensor '" + t.name + "'");
}

std::string ArtifactWeights::unsupported() const {
  for (const auto& l : info_.layers)
    if (l.act_bits > 8) return "activations over 8 bits";
  return "";
}

plan::ActTable ArtifactWeights::act_table(const std::string& prefix, int bits) const {
  return {file_->floats(get(prefix + ".ascale")), file_->floats(get(prefix + ".azero")), bits};
}

plan::LayerSource ArtifactWeights::layer(const std::string& name, int n, int k) const {
  plan::LayerSource out;
  out.n = n;
  out.k = k;
  if (file_->find(name + ".bias")) out.bias = tensor(name + ".bias");
  const ArtifactLayer* l = listed(name);
  if (!l) {  // left in fp32
    out.f32 = tensor(name + ".weight");
    return out;
  }
  if (l->act_bits > 0) out.act = act_table(name, l->act_bits);
  const std::vector<float> scales = tensor(name + (l->vector_quantized() ? ".vq_scales" : ".wscale"));
  if (l->vector_quantized()) {
    const TensorInfo& codes = get(name + ".vq_codes");
    const TensorInfo& books = get(name + ".vq_codebooks");
    const uint8_t* c = file_->data(codes);
    const auto* b = reinterpret_cast<const int8_t*>(file_->data(books));
    const int m = l->vq_codebooks, group = l->vq_group;
    if (l->act_bits > 0) {  // the vq kernels decode the codes themselves
      out.kind = plan::LayerSource::Kind::kVq;
      out.vq_codes.assign(c, c + codes.numel());
      out.vq_codewords.assign(b, b + books.numel());
      out.scale = scales;
      out.vq_codebooks = m;
      out.vq_bits = l->vq_codebook_bits;
      out.vq_group = group;
      return out;
    }
    // An fp32 input: the 8-bit grid the decode lies on (zero point 128), in the layer's own K
    // order ((c, ky, kx) for a conv; the codes are in (ky, kx, c) order).
    const int64_t words = int64_t{1} << l->vq_codebook_bits;
    const int kernel_area = kernel_area_.at(name), channels = k / kernel_area;
    out.kind = plan::LayerSource::Kind::kCodes;
    out.bits = 8;
    out.codes.resize(static_cast<size_t>(n) * static_cast<size_t>(k));
    for (int r = 0; r < n; ++r)
      for (int j = 0; j < k; ++j) {  // j in (ky, kx, c) order
        const int g = j / group, e = j % group;
        int sum = 0;
        for (int i = 0; i < m; ++i) sum += b[(i * words + c[(static_cast<int64_t>(r) * (k / group) + g) * m + i]) * group + e];
        const int pos = j / channels, ch = j % channels;  // (ky kx), c
        out.codes[static_cast<size_t>(r) * k + static_cast<size_t>(ch * kernel_area + pos)] = static_cast<uint8_t>(sum + 128);
      }
    out.scale = scales;
    out.zero.assign(static_cast<size_t>(n), 128.0f);
    return out;
  }
  out.kind = plan::LayerSource::Kind::kCodes;
  out.bits = l->weight_bits;
  out.codes = unpack(file_->data(get(name + ".qweight")), n, k, l->weight_bits);
  out.scale = scales;
  out.zero = tensor(name + ".wzero");
  return out;
}

std::vector<float> ArtifactWeights::tensor(const std::string& name) const { return file_->floats(get(name)); }

std::optional<std::vector<plan::ActTable>> ArtifactWeights::attention(const std::string& name) const {
  if (!attention_quantized_) return std::nullopt;
  const int bits = info_.spec.act_bits;
  return std::vector<plan::ActTable>{act_table(name + ".q", bits), act_table(name + ".k", bits), act_table(name + ".v", bits),
                                     {{1.0f / static_cast<float>(qmax(bits))}, {0.0f}, bits}};
}

std::optional<plan::FeatureCache> ArtifactWeights::temporal_cache(size_t i) const {
  if (!info_.temporal_cache) return std::nullopt;
  const TensorInfo& t = get("temporal_cache." + std::to_string(i));
  plan::FeatureCache c;
  c.rows = t.shape.size() == 3 ? static_cast<int>(t.shape[1]) : 1;
  c.channels = static_cast<int>(t.shape.back());
  if (t.dtype == DType::F16) {
    c.f16.resize(static_cast<size_t>(t.numel()));
    std::memcpy(c.f16.data(), file_->data(t), c.f16.size() * 2);
  } else {
    c.f32 = file_->floats(t);
  }
  return c;
}

}  // namespace qdm
