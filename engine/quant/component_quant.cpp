#include "engine/quant/component_quant.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include "engine/model_io/tensor_io.h"
#include "engine/quant/quant_layers.h"
#include "engine/quant/uniform_quant.h"
#include "engine/sampling/text_to_image.h"

namespace qdm {
namespace {

// At most kComponentSampledValues of a layer's input values are kept per calibration batch
// (evenly strided): the range search needs the distribution, not every value, and an SD-sized
// decoder's layers see hundreds of MB per batch. The VAE decoder decodes kComponentDecodeBatch
// latents at once (its activations are at full image size).
constexpr int64_t kSampledValues = kComponentSampledValues;
constexpr int64_t kDecodeBatch = kComponentDecodeBatch;

at::Tensor strided_sample(const at::Tensor& x) {
  const at::Tensor flat = x.detach().reshape({-1});
  const int64_t stride = std::max<int64_t>(1, flat.numel() / kSampledValues);
  return flat.slice(0, 0, flat.numel(), stride).clone();
}

// The quantization of `module`'s conv and linear layers that `select` accepts: installs fake-
// quant overrides, calibrates them by running `run`, packs them, and removes the overrides
// (also when something throws).
class ComponentQuantizer {
 public:
  ComponentQuantizer(GraphModuleImpl& module, const std::function<bool(const std::string&)>& select, int bits)
      : bits_(bits), step_(std::make_shared<StepContext>()) {
    for (const graph::Node& node : module.graph().nodes) {
      Conv2dLayerImpl* conv = node.op == graph::Op::kConv2d ? module.conv(node.name) : nullptr;
      LinearLayerImpl* linear = node.op == graph::Op::kLinear ? module.linear(node.name) : nullptr;
      if ((!conv && !linear) || !select(node.name)) continue;
      auto layer = std::make_shared<QuantLayer>(node.name, conv, linear, bits, 1, step_, bits);
      layer->set_weight_quant(mse_weight_params(layer->fp_weight().detach(), bits));
      if (conv) conv->override_ = layer; else linear->override_ = layer;
      layers_.push_back(layer);
    }
  }
  ~ComponentQuantizer() {
    for (auto& l : layers_) {
      if (l->conv) l->conv->override_ = nullptr; else l->linear->override_ = nullptr;
    }
  }

  // The activation tables from every input each layer sees while `run` runs (weights already
  // on their grid, inputs fp32).
  void calibrate(const std::function<void()>& run) {
    std::map<std::string, std::vector<at::Tensor>> seen;
    for (auto& l : layers_) {
      l->act.mode = ActQuantizer::Mode::kOff;
      l->input_tap = [&seen, name = l->name](const at::Tensor& x) { seen[name].push_back(strided_sample(x)); };
    }
    run();
    for (auto& l : layers_) {
      l->input_tap = nullptr;
      const auto it = seen.find(l->name);
      if (it == seen.end()) throw std::logic_error("component quantization: layer " + l->name + " never ran");
      const auto [lo, hi] = mse_range(at::cat(it->second), bits_);
      const QuantParams p = params_from_range(at::full({1}, lo), at::full({1}, std::max(hi, lo + 1e-6f)), bits_);
      l->act.set_table({p.scale.item<float>()}, {p.zero_point.item<float>()});
      l->act.mode = ActQuantizer::Mode::kQuantize;
    }
  }

  ComponentQuantization pack(const std::string& component, nlohmann::json report) const {
    ComponentQuantization out;
    out.info.component = component;
    out.info.report = std::move(report);
    SafeTensorsWriter writer;
    for (const auto& l : layers_) {
      const at::Tensor w = l->fp_weight().detach();
      const at::Tensor codes = quantize_codes(w.reshape({w.size(0), -1}), l->weight_params).to(at::kByte).contiguous();
      add_tensor(writer, l->name + ".qweight", codes);
      add_tensor(writer, l->name + ".wscale", l->weight_params.scale.to(at::kFloat).reshape({-1}).contiguous());
      add_tensor(writer, l->name + ".wzero", l->weight_params.zero_point.to(at::kFloat).reshape({-1}).contiguous());
      add_tensor(writer, l->name + ".ascale", at::tensor(l->act.scale, at::kFloat));
      add_tensor(writer, l->name + ".azero", at::tensor(l->act.zero_point, at::kFloat));
      out.info.layers.push_back({l->name, bits_, bits_});
    }
    writer.set_metadata("qdm", out.info.to_json());
    writer.set_metadata("format", "qdm-component");
    out.file = writer.serialize();
    return out;
  }

  size_t size() const { return layers_.size(); }

 private:
  int bits_;
  std::shared_ptr<StepContext> step_;
  std::vector<std::shared_ptr<QuantLayer>> layers_;
};

}  // namespace

ComponentQuantization quantize_text_encoder(TextToImagePipeline& pipe, const std::vector<std::string>& prompts, int bits) {
  if (prompts.empty()) throw std::invalid_argument("quantizing the text encoder needs calibration prompts");
  at::NoGradGuard no_grad;
  const at::Tensor ids = prompt_token_ids(pipe.tokenizer, prompts);
  const at::Tensor fp = pipe.text_encoder->forward(ids);
  ComponentQuantizer q(*pipe.text_encoder, [](const std::string&) { return true; }, bits);
  q.calibrate([&] { pipe.text_encoder->forward(ids); });
  const at::Tensor out = pipe.text_encoder->forward(ids);
  const double rel = (out - fp).norm().item<double>() / std::max(fp.norm().item<double>(), 1e-12);
  return q.pack("text_encoder", {{"prompts", prompts.size()}, {"layers", q.size()}, {"relative_error_vs_fp", rel}});
}

ComponentQuantization quantize_vae_decoder(TextToImagePipeline& pipe, const at::Tensor& latents, int bits) {
  if (latents.dim() != 4 || latents.size(0) < 1) throw std::invalid_argument("quantizing the VAE decoder needs latents (N, C, h, w)");
  at::NoGradGuard no_grad;
  const at::Tensor z = latents.to(at::kFloat) / pipe.vae->config().scaling_factor;
  auto decode = [&] {
    std::vector<at::Tensor> out;
    for (int64_t i = 0; i < z.size(0); i += kDecodeBatch)
      out.push_back(pipe.vae->decode(z.narrow(0, i, std::min<int64_t>(kDecodeBatch, z.size(0) - i))));
    return at::cat(out).clamp(-1, 1);
  };
  const at::Tensor fp = decode();
  // The decoder's layers: post_quant_conv and decoder.* (the encoder's stay as they are).
  ComponentQuantizer q(*pipe.vae, [](const std::string& name) {
    return name == "post_quant_conv" || name.rfind("decoder.", 0) == 0;
  }, bits);
  q.calibrate([&] { decode(); });
  const at::Tensor out = decode();
  const double mse = (out - fp).pow(2).mean().item<double>();  // images in [-1, 1]: peak-to-peak 2
  const double psnr = mse > 0 ? 10.0 * std::log10(4.0 / mse) : 99.0;
  return q.pack("vae_decoder", {{"latents", z.size(0)}, {"layers", q.size()}, {"psnr_vs_fp", psnr}});
}

}  // namespace qdm
