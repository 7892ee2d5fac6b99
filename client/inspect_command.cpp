// qdm inspect: what an artifact holds, offline: recipe, per-layer bits, schedule, bits per weight
// with every byte counted, resident bytes on the kernels, the quality report and (tmpq) the
// search; --json for scripts, --figure to extract the recipe's figure.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "engine/artifact/artifact.h"
#include "engine/quant/bitops.h"
#include "format/artifact_metadata.h"
#include "format/artifact_pipeline.h"
#include "format/graph/autoencoder_kl.h"
#include "format/quantized_component.h"
#include "format/safetensors.h"
#include "format/sha256.h"
#include "format/unet_tensors.h"

namespace qdm::cli {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

nlohmann::json describe(const std::string& path) {
  const auto shared_file = std::make_shared<const SafeTensors>(SafeTensors::read_file(path));
  const SafeTensors& file = *shared_file;
  const ArtifactInfo info = read_artifact_info(file);
  // Bits per weight over the conv and linear weights the artifact stores, counting all their
  // bytes: packed codes, per-channel scales and zero points, codebooks, and weights stored in
  // fp32. Layers it does not store (the temporal block an artifact replaces by its feature
  // cache) are in neither count.
  std::set<std::string> stored;
  for (const auto& t : file.tensors()) stored.insert(t.name);
  int64_t weights = 0;
  for (const auto& t : expected_unet_tensors(info.config))
    if (ends_with(t.name, ".weight") && t.shape.size() >= 2) {
      const std::string layer = t.name.substr(0, t.name.size() - 7);
      if (!stored.count(t.name) && !stored.count(layer + ".qweight") && !stored.count(layer + ".vq_codes")) continue;
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      weights += n;
    }
  int64_t weight_bytes = 0;
  for (const auto& t : file.tensors()) {
    const bool packed = ends_with(t.name, ".qweight") || ends_with(t.name, ".wscale") || ends_with(t.name, ".wzero") ||
                        ends_with(t.name, ".vq_codes") || ends_with(t.name, ".vq_codebooks") || ends_with(t.name, ".vq_scales");
    const bool fp_weight = ends_with(t.name, ".weight") && t.shape.size() >= 2;
    if (packed || fp_weight) weight_bytes += static_cast<int64_t>(t.nbytes());
  }
  std::map<std::string, int> wbits;
  std::map<int, int> abits;
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : info.layers) {
    ++abits[l.act_bits];
    nlohmann::json e = {{"name", l.name}, {"weight_bits", l.weight_bits}, {"act_bits", l.act_bits == 0 ? 32 : l.act_bits}};
    if (l.vector_quantized()) {  // additive quantization: M codebooks of 2^B vectors per group
      e["vq"] = {{"codebooks", l.vq_codebooks}, {"codebook_bits", l.vq_codebook_bits}, {"group", l.vq_group}};
      ++wbits[fmt::format("vq {}x{}/{}", l.vq_codebooks, l.vq_codebook_bits, l.vq_group)];
    } else {
      ++wbits[std::to_string(l.weight_bits)];
    }
    layers.push_back(e);
  }
  nlohmann::json wb = nlohmann::json::object(), ab = nlohmann::json::object();
  for (const auto& [b, n] : wbits) wb[b] = n;
  for (auto [b, n] : abits) ab[b == 0 ? "fp32" : std::to_string(b)] = n;
  nlohmann::json j = {{"artifact", std::filesystem::path(path).filename().string()},
                      {"file_bytes", file.file_bytes()},
                      {"sha256", sha256_file(path)},
                      {"recipe", info.recipe.value("recipe", "")},
                      {"recipe_options", info.recipe},
                      {"source_model", info.source_name},
                      {"source_sha256", info.source_sha256},
                      {"pipeline_files", info.pipeline_files},
                      {"sampler", info.sampler.to_json()},
                      {"timesteps", info.timesteps},
                      {"layers", layers},
                      {"weight_bits_histogram", wb},
                      {"act_bits_histogram", ab},
                      {"kept_fp_inputs", info.kept_fp},
                      {"temporal_cache", info.temporal_cache},
                      {"conv_linear_weights", weights},
                      {"weight_bytes", weight_bytes},
                      {"bits_per_weight", weights > 0 ? 8.0 * static_cast<double>(weight_bytes) / static_cast<double>(weights) : 0.0},
                      {"report", info.report},
                      {"timings", info.timings},
                      {"figure_png_bytes", info.figure_png.size()}};
  // A pipeline's components quantized beside its UNet (format/quantized_component.h).
  nlohmann::json components = nlohmann::json::array();
  j["pipeline_bytes"] = 0;
  if (info.text_to_image()) {
    const ArtifactPipelineSource source(shared_file, info.pipeline_files);
    uint64_t embedded = 0;
    for (const std::string& name : info.pipeline_files)
      if (const TensorInfo* t = file.find(kPipelineTensorPrefix + name)) embedded += t->nbytes();
    j["pipeline_bytes"] = embedded;
    // Artifacts embed the VAE's decoder alone (older ones the whole VAE).
    j["pipeline_vae_encoder"] = graph::stores_vae_encoder(*source.weights("vae/diffusion_pytorch_model.safetensors"));
    for (const std::string& c : component_names()) {
      if (!is_extra_component(c) || !source.has(quantized_component_file(c))) continue;
      const QuantizedComponentInfo q = QuantizedComponentInfo::from_file(*source.weights(quantized_component_file(c)));
      const int wb = q.layers.empty() ? 0 : q.layers.front().weight_bits, ab = q.layers.empty() ? 0 : q.layers.front().act_bits;
      components.push_back({{"component", q.component}, {"layers", q.layers.size()}, {"weight_bits", wb}, {"act_bits", ab},
                            {"file", quantized_component_file(c)}, {"report", q.report}});
    }
  }
  j["quantized_components"] = components;
  // The eps bias correction's maps: trajectories measured on, bytes (null when absent).
  const TensorInfo* bias = file.find("eps_bias");
  j["eps_bias"] = bias ? nlohmann::json{{"samples", info.recipe.value("bias_samples", 0)}, {"bytes", bias->nbytes()}}
                       : nlohmann::json(nullptr);
  return j;
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  struct Args {
    std::string artifact, figure;
    bool json = false, resident = true;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("inspect", "What an artifact holds: recipe, per-layer bits, schedule, bits per weight, report");
  cmd->add_option("artifact", a->artifact, "artifact (.safetensors)")->required();
  cmd->add_flag("--json", a->json, "Everything as JSON");
  cmd->add_option("--figure", a->figure, "Write the recipe's figure (tmpq: fitness against BitOPs) to this PNG");
  cmd->add_flag("!--no-resident", a->resident, "Skip loading the artifact on the kernels to measure its resident bytes");
  cmd->callback([a] {
    nlohmann::json j = describe(a->artifact);
    if (a->resident) {
      const LoadedModel m = LoadedModel::from_artifact(a->artifact, KernelMode::kInt);
      j["resident_weight_bytes"] = m.weight_bytes();
      j["resident_breakdown"] = m.resident().parts;
      j["resident_summary"] = m.resident().summary();
      j["kernels"] = m.kernels();
      const auto& cfg = m.config();
      const double fp = 4.0 * static_cast<double>(parameter_count(expected_unet_tensors(cfg)));
      j["resident_vs_fp32"] = static_cast<double>(m.weight_bytes()) / fp;
    }
    {  // the cost of one image's UNet call, counted on the simulation
      LoadedArtifact sim = load_artifact(a->artifact);
      const CallCost cost = call_cost(*sim.model);
      j["macs_per_call"] = cost.macs;
      j["bitops_per_call"] = cost.bitops;
    }
    if (!a->figure.empty()) {
      const ArtifactInfo info = read_artifact_info(SafeTensors::read_file(a->artifact));
      if (info.figure_png.empty()) throw std::runtime_error("this artifact holds no figure (only tmpq artifacts do)");
      std::ofstream(a->figure, std::ios::binary).write(reinterpret_cast<const char*>(info.figure_png.data()),
                                                       static_cast<std::streamsize>(info.figure_png.size()));
    }
    if (a->json) {
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    const auto& s = j["sampler"];
    std::string sched = fmt::format("{}, {} steps", s.value("sampler", ""), s.value("steps", 0));
    sched += ": ";
    for (int t : j["timesteps"].get<std::vector<int>>()) sched += std::to_string(t) + " ";
    fmt::print("artifact    {} ({} bytes)\n", j["artifact"].get<std::string>(), j["file_bytes"].get<uint64_t>());
    fmt::print("recipe      {}\n", j["recipe"].get<std::string>());
    fmt::print("source      {} ({})\n", j["source_model"].get<std::string>(), j["source_sha256"].get<std::string>().substr(0, 16));
    if (!j["pipeline_files"].empty())  // a quantized pipeline carries its other components
      fmt::print("pipeline    {} files embedded, {} bytes (text encoder, {}, tokenizer, configs)\n", j["pipeline_files"].size(),
                 j["pipeline_bytes"].get<uint64_t>(), j.value("pipeline_vae_encoder", false) ? "VAE" : "VAE decoder");
    for (const auto& c : j["quantized_components"]) {
      const auto& r = c["report"];
      std::string fidelity;
      if (r.contains("relative_error_vs_fp")) fidelity = fmt::format(", {:.2f}% relative error", 100 * r["relative_error_vs_fp"].get<double>());
      if (r.contains("psnr_vs_fp")) fidelity = fmt::format(", {:.1f} dB PSNR", r["psnr_vs_fp"].get<double>());
      fmt::print("            {} quantized too: {} layers W{}A{}{} vs fp32 ({})\n", c["component"].get<std::string>(), c["layers"].get<size_t>(),
                 c["weight_bits"].get<int>(), c["act_bits"].get<int>(), fidelity, c["file"].get<std::string>());
    }
    fmt::print("schedule    {}\n", sched);
    fmt::print("layers      {} quantized; weight bits {}; activation bits {}\n", j["layers"].size(), j["weight_bits_histogram"].dump(),
               j["act_bits_histogram"].dump());
    fmt::print("            fp32 inputs: {}{}\n", j["kept_fp_inputs"].dump(), j["temporal_cache"].get<bool>() ? "; temporal features cached" : "");
    fmt::print("bits/weight {:.2f} over {} conv and linear weights, every byte counted (codes, codebooks, scales, zero points, fp32 weights)\n",
               j["bits_per_weight"].get<double>(), j["conv_linear_weights"].get<int64_t>());
    fmt::print("cost        {:.3g} multiply-adds, {:.3g} BitOPs per image and UNet call\n", j["macs_per_call"].get<double>(),
               j["bitops_per_call"].get<double>());
    if (j.contains("resident_weight_bytes"))
      fmt::print("resident    {} on {} ({:.3f}x of fp32)\n", j["resident_summary"].get<std::string>(), j["kernels"].get<std::string>(),
                 j["resident_vs_fp32"].get<double>());
    if (j["eps_bias"].is_object())
      fmt::print("eps bias    measured on {} fp32 trajectories, {} bytes; subtracted from unconditional predictions\n",
                 j["eps_bias"]["samples"].get<int>(), j["eps_bias"]["bytes"].get<uint64_t>());
    if (j["timings"].contains("total"))
      fmt::print("quantized   in {:.0f} s\n", j["timings"]["total"].get<double>());
    const auto& r = j["report"];
    if (r.is_object()) {
      if (r.contains("fid_fmnist")) fmt::print("report      FID-FMNIST {:.1f} (fp32 {:.1f}) on {} images\n", r.value("fid_fmnist", 0.0), r.value("fid_fmnist_fp", 0.0), r.value("images", 0));
      if (r.contains("psnr_vs_fp")) fmt::print("            PSNR vs fp32 {:.2f} dB\n", r.value("psnr_vs_fp", 0.0));
      if (r.contains("search")) {
        const auto& se = r["search"];
        fmt::print("search      {} generations; best fitness {:.5f}, BitOPs {:.3f}x all-6-bit, {:.2f} ms per image ({}){}\n",
                   se["history"].size(), se.value("fitness", 0.0), se.value("bitops_vs_6bit", 0.0), se.value("ms_per_image", 0.0),
                   se.value("latency_measured_on", ""), j["figure_png_bytes"].get<size_t>() ? "; figure stored (--figure)" : "");
      }
    } else {
      fmt::print("report      none\n");
    }
  });
}

}  // namespace qdm::cli
