#include "engine/artifact/artifact.h"

#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>

#include "engine/artifact/weight_packing.h"
#include "engine/model/model_folder.h"
#include "engine/quant/vq/vq_layer.h"
#include "format/artifact_pipeline.h"
#include "format/safetensors.h"
#include "engine/model_io/tensor_io.h"
#include "format/sha256.h"

namespace qdm {
namespace {

at::Tensor table(const std::vector<float>& v) { return at::tensor(v, at::kFloat); }

std::vector<float> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void add_act_table(TensorMap& out, const std::string& prefix, const ActQuantizer& aq) {
  out[prefix + ".ascale"] = table(aq.scale);
  out[prefix + ".azero"] = table(aq.zero_point);
}

bool has_per_step_tables(const QuantizedUNet& m) {
  for (const auto& l : m.layers)
    if (l->quant_input && l->act.scale.size() > 1) return true;
  for (const auto& a : m.attention)
    if (a->q.scale.size() > 1) return true;
  return false;
}

// The eps bias as stored (F16), after checking it fits the artifact's schedule and image shape.
at::Tensor eps_bias_tensor(const EpsBias& bias, const std::vector<int>& timesteps, const UNetConfig& config) {
  if (bias.timesteps != timesteps) throw ArtifactError("the eps bias was measured on another schedule than the artifact's");
  return eps_bias_maps(bias, config.in_channels, config.sample_size, config.sample_size).to(at::kHalf).contiguous();
}

}  // namespace

void save_artifact(const std::string& path, QuantizedUNet& model, const ArtifactInfo& info, const EpsBias* eps_bias,
                   const EmbeddedFiles* pipeline) {
  at::NoGradGuard no_grad;
  TensorMap tensors;
  ArtifactInfo meta = info;
  meta.pipeline_files.clear();
  if (pipeline)
    for (const auto& [name, bytes] : *pipeline) {
      tensors[kPipelineTensorPrefix + name] = at::tensor(bytes, at::kByte);
      meta.pipeline_files.push_back(name);
    }
  if (eps_bias) tensors["eps_bias"] = eps_bias_tensor(*eps_bias, info.timesteps, model.unet->config());
  std::set<std::string> packed_weights;
  meta.layers.clear();
  const bool cached = model.has_temporal_cache();
  for (const auto& l : model.layers) {
    if (cached && is_temporal_layer(l->name)) continue;  // replaced by the feature cache
    if (!l->weight_params.scale.defined()) throw ArtifactError("layer '" + l->name + "' has no weight quantizer");
    const bool quant_input = l->quant_input;
    ArtifactLayer entry{l->name, l->weight_params.bits, quant_input ? l->act.bits : 0,
                        quant_input ? static_cast<int>(l->act.scale.size()) : 0};
    if (quant_input) add_act_table(tensors, l->name, l->act);
    packed_weights.insert(l->name + ".weight");
    if (l->vq) {  // additive-quantization codes instead of scalar codes
      vq::add_tensors(tensors, l->name, *l->vq);
      entry.vq_codebooks = static_cast<int>(l->vq->codebooks.size(0));
      entry.vq_codebook_bits = vq::codebook_bits(*l->vq);
      entry.vq_group = l->vq->group;
      meta.layers.push_back(entry);
      continue;
    }
    // fake_weight lies on the grid (nearest or learned rounding): its codes are exact.
    const at::Tensor w = l->fake_weight.defined() ? l->fake_weight : fake_quant(l->fp_weight().detach(), l->weight_params);
    const at::Tensor codes = quantize_codes(w.reshape({w.size(0), -1}), l->weight_params);
    tensors[l->name + ".qweight"] = pack_codes(codes, l->weight_params.bits);
    tensors[l->name + ".wscale"] = l->weight_params.scale.to(at::kFloat).contiguous();
    tensors[l->name + ".wzero"] = l->weight_params.zero_point.to(at::kFloat).contiguous();
    meta.layers.push_back(entry);
  }
  for (const auto& a : model.attention) {
    add_act_table(tensors, a->name + ".q", a->q);
    add_act_table(tensors, a->name + ".k", a->k);
    add_act_table(tensors, a->name + ".v", a->v);
  }
  for (const auto& p : model.unet->named_parameters())
    if (!packed_weights.count(p.key()) && !(cached && is_temporal_layer(p.key()))) tensors[p.key()] = p.value().to(at::kFloat);
  // tfmq+cache: temporal_cache.<k> = (steps, C_k), the fp32 model's feature of resnet k at every
  // step; (steps, labels, C_k) for a class-conditional model (the feature of every label). F16
  // when every value is one (a cache made by cache_temporal_features), else F32.
  if (cached) {
    const bool per_label = model.unet->config().conditional();
    for (size_t k = 0; k < model.temporal_cache.front().size(); ++k) {
      std::vector<at::Tensor> rows;
      for (const auto& step : model.temporal_cache) rows.push_back(step[k].cpu());
      at::Tensor table = (per_label ? at::stack(rows, 0) : at::cat(rows, 0)).contiguous();
      if (QuantizedUNet::holds_f16_values(table)) table = table.to(at::kHalf);
      tensors["temporal_cache." + std::to_string(k)] = table;
    }
  }
  for (const auto& b : model.unet->named_buffers()) tensors[b.key()] = b.value().to(at::kFloat);
  if (!info.figure_png.empty())
    tensors["report.figure_png"] = at::tensor(std::vector<uint8_t>(info.figure_png), at::kByte);

  meta.spec = model.spec;
  meta.kept_fp = model.kept_fp;
  meta.attention_quantized = static_cast<int>(model.attention.size());
  meta.temporal_cache = cached;
  save_tensors(path, tensors, {{"qdm", meta.to_json().dump()}, {"format", "qdm"}});
}

void add_eps_bias(const std::string& in_path, const std::string& out_path, const EpsBias& bias, int samples,
                  double seconds) {
  const SafeTensors file = SafeTensors::read_file(in_path);
  const ArtifactInfo info = read_artifact_info(file);
  TensorMap tensors;
  for (const auto& t : file.tensors())
    if (t.name != "eps_bias") tensors[t.name] = to_tensor(file, t);
  tensors["eps_bias"] = eps_bias_tensor(bias, info.timesteps, info.config);
  std::map<std::string, std::string> metadata = file.metadata();
  nlohmann::json meta = nlohmann::json::parse(metadata.at("qdm"));
  meta["recipe"]["bias_samples"] = samples;
  meta["timings"]["eps_bias"] = seconds;
  metadata["qdm"] = meta.dump();
  const std::string tmp = out_path + ".tmp";  // out_path may be in_path
  save_tensors(tmp, tensors, metadata);
  std::filesystem::rename(tmp, out_path);
}

LoadedArtifact load_artifact(const std::string& path) {
  const SafeTensors file = SafeTensors::read_file(path);
  LoadedArtifact out;
  try {
    out.info = read_artifact_info(file);
    out.model = std::make_unique<QuantizedUNet>(UNet2DModel(out.info.config), out.info.spec);
  } catch (const std::exception& e) {
    throw ArtifactError(path + ": " + e.what());
  }

  at::NoGradGuard no_grad;
  QuantizedUNet& q = *out.model;
  std::set<std::string> used;
  auto get = [&](const std::string& name) -> at::Tensor {
    const TensorInfo* t = file.find(name);
    if (!t) throw ArtifactError(path + ": missing tensor '" + name + "'");
    used.insert(name);
    return to_tensor(file, *t);
  };
  auto load_act = [&](ActQuantizer& aq, const std::string& prefix) {
    std::vector<float> scale = to_vector(get(prefix + ".ascale")), zero = to_vector(get(prefix + ".azero"));
    const size_t steps = out.info.timesteps.size();
    if ((scale.size() != 1 && scale.size() != steps) || zero.size() != scale.size())
      throw ArtifactError(path + ": tensors '" + prefix + ".ascale' / '.azero' have " + std::to_string(scale.size()) +
                          " / " + std::to_string(zero.size()) + " entries; expected 1 or one per step (" +
                          std::to_string(steps) + "), both the same");
    aq.set_table(std::move(scale), std::move(zero));
  };
  std::set<std::string> packed_weights;
  const bool cached = out.info.temporal_cache;
  if (cached) {
    const size_t resnets = q.unet->temporal_feature_layers().size();
    const int labels = out.info.config.label_count();
    const int64_t dims = out.info.config.conditional() ? 3 : 2;
    q.temporal_cache.assign(out.info.timesteps.size(), {});
    for (size_t k = 0; k < resnets; ++k) {
      const at::Tensor table = get("temporal_cache." + std::to_string(k));
      if (table.dim() != dims || table.size(0) != static_cast<int64_t>(out.info.timesteps.size()) ||
          (dims == 3 && table.size(1) != labels))
        throw ArtifactError(path + ": tensor 'temporal_cache." + std::to_string(k) + "' must have one row per step" +
                            (dims == 3 ? " and class label" : ""));
      for (size_t s = 0; s < out.info.timesteps.size(); ++s) {
        const at::Tensor row = table[static_cast<int64_t>(s)].to(at::kFloat);
        q.temporal_cache[s].push_back(dims == 3 ? row : row.unsqueeze(0));
      }
    }
  }
  for (auto& l : q.layers) {
    if (cached && is_temporal_layer(l->name)) {  // replaced by the feature cache: never runs
      packed_weights.insert(l->name + ".weight");
      l->quant_input = false;
      continue;
    }
    at::Tensor w = l->fp_weight();
    // Each layer's bits as the artifact lists them (mixed precision, kept layers at keep_bits).
    int bits = l->weight_bits;
    const ArtifactLayer* listed = nullptr;
    for (const auto& entry : out.info.layers)
      if (entry.name == l->name) listed = &entry, bits = entry.weight_bits;
    if (listed && listed->vector_quantized()) {
      try {
        vq::install(*l, vq::from_tensors(get(l->name + ".vq_codes"), get(l->name + ".vq_codebooks"), get(l->name + ".vq_scales"),
                                         listed->vq_codebooks, listed->vq_codebook_bits, listed->vq_group, w.size(0),
                                         w.numel() / w.size(0)));
      } catch (const std::invalid_argument& e) {
        throw ArtifactError(path + ": layer '" + l->name + "': " + e.what());
      }
      packed_weights.insert(l->name + ".weight");
      if (l->quant_input) load_act(l->act, l->name);
      continue;
    }
    l->weight_bits = bits;
    QuantParams params{get(l->name + ".wscale"), get(l->name + ".wzero"), bits};
    if (params.scale.numel() != w.size(0) || params.zero_point.numel() != w.size(0))
      throw ArtifactError(path + ": tensor '" + l->name + ".wscale' does not have one entry per output channel");
    const at::Tensor packed = get(l->name + ".qweight");
    const int64_t k = w.numel() / w.size(0);
    at::Tensor codes;
    try {
      if (packed.scalar_type() != at::kByte || packed.dim() != 2 || packed.size(0) != w.size(0)) throw std::invalid_argument("");
      codes = unpack_codes(packed, bits, k);
    } catch (const std::invalid_argument&) {
      throw ArtifactError(path + ": tensor '" + l->name + ".qweight' has shape " + c10::str(packed.sizes()) +
                          "; the config implies " + std::to_string(w.size(0)) + " rows of " + std::to_string(k) +
                          " " + std::to_string(bits) + "-bit codes");
    }
    if (codes.max().item<int64_t>() > qmax(bits))
      throw ArtifactError(path + ": tensor '" + l->name + ".qweight' holds codes above " + std::to_string(qmax(bits)));
    w.copy_(dequantize_codes(codes, params).reshape(w.sizes()));
    l->weight_params = params;
    // The parameter holds the grid weights already: the simulation's copy shares its storage
    // (an artifact is never trained), so sim keeps one fp32 copy of the weights, not two.
    l->fake_weight = w.detach();
    packed_weights.insert(l->name + ".weight");
    if (l->quant_input) load_act(l->act, l->name);
  }
  for (auto& a : q.attention) {
    load_act(a->q, a->name + ".q");
    load_act(a->k, a->name + ".k");
    load_act(a->v, a->name + ".v");
  }
  for (auto& p : q.unet->named_parameters()) {
    if (packed_weights.count(p.key()) || (cached && is_temporal_layer(p.key()))) continue;
    const at::Tensor t = get(p.key());
    if (t.sizes() != p.value().sizes())
      throw ArtifactError(path + ": tensor '" + p.key() + "' has shape " + c10::str(t.sizes()) + ", config implies " +
                          c10::str(p.value().sizes()));
    p.value().copy_(t);
  }
  for (auto& b : q.unet->named_buffers()) b.value().copy_(get(b.key()));
  if (const TensorInfo* fig = file.find("report.figure_png")) {
    const at::Tensor bytes = to_tensor(file, *fig).contiguous();
    out.info.figure_png.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
    used.insert(fig->name);
  }
  for (const std::string& name : out.info.pipeline_files) {
    const at::Tensor bytes = get(kPipelineTensorPrefix + name).contiguous();
    if (bytes.scalar_type() != at::kByte) throw ArtifactError(path + ": tensor '" + kPipelineTensorPrefix + name + "' must be U8");
    out.pipeline_files.emplace_back(name, std::vector<uint8_t>(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel()));
  }
  if (file.find("eps_bias")) {
    auto bias = std::make_shared<EpsBias>(make_eps_bias(out.info.timesteps, get("eps_bias")));
    try {
      bias->check(out.info.config.in_channels, out.info.config.sample_size, out.info.config.sample_size);
    } catch (const std::invalid_argument& e) {
      throw ArtifactError(path + ": tensor 'eps_bias': " + e.what());
    }
    out.eps_bias = std::move(bias);
  } else if (out.info.recipe.value("bias_samples", 0) > 0) {
    throw ArtifactError(path + ": missing tensor 'eps_bias' (its recipe measured an eps bias)");
  }
  for (const auto& t : file.tensors())
    if (!used.count(t.name)) throw ArtifactError(path + ": unexpected tensor '" + t.name + "'");
  q.unet->eval();
  q.set_act_mode(ActQuantizer::Mode::kQuantize);
  out.sha256 = sha256_file(path);
  out.per_step_tables = has_per_step_tables(q);
  out.file_bytes = static_cast<int64_t>(file.file_bytes());
  return out;
}

void check_schedule(const LoadedArtifact& artifact, const NoiseSchedule& schedule, const SamplerOptions& options) {
  if (!artifact.per_step_tables) return;
  if (sampler_timesteps(schedule, options) != artifact.info.timesteps)
    throw std::invalid_argument("this artifact's activation tables were calibrated per step for " +
                                std::to_string(artifact.info.sampler.steps) + " steps with " +
                                spacing_name(artifact.info.sampler.spacing) +
                                " spacing; sample with those steps and spacing");
}

void use_artifact_prompts(DiffusionModel& model, LoadedArtifact& artifact) {
  if (!model.pipeline) return;
  std::vector<std::string> prompts = artifact.info.recipe.value("prompts", std::vector<std::string>{});
  if (prompts.empty()) prompts = folder_calibration_prompts(model.dir);
  use_prompts(model, prompts);
  artifact.model->unet->set_prompt_states(model.unet->prompt_states(), model.unet->null_label());
}

ModelDenoiser artifact_denoiser(LoadedArtifact& artifact) {
  QuantizedUNet* model = artifact.model.get();
  std::unordered_map<int, int> index;
  for (size_t i = 0; i < artifact.info.timesteps.size(); ++i) index[artifact.info.timesteps[i]] = static_cast<int>(i);
  const bool per_step = artifact.per_step_tables;
  return [model, index, per_step](const at::Tensor& x, int t, int, const at::Tensor& labels) {
    auto it = index.find(t);
    if (it == index.end() && per_step)
      throw std::invalid_argument("timestep " + std::to_string(t) + " is not in the artifact's calibrated schedule");
    return model->forward(x, t, it == index.end() ? 0 : it->second, labels);
  };
}

}  // namespace qdm
