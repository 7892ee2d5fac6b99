#include "service/limits.h"

#include <algorithm>

#include "service/file_transfer.h"

namespace qdm::service {
namespace {

grpc::Status invalid(const std::string& message) { return {grpc::INVALID_ARGUMENT, message}; }

}  // namespace

const std::vector<std::string>& recipe_names() {
  static const std::vector<std::string> names = {"rtn", "qdiffusion", "tfmq", "tfmq+cache"};
  return names;
}

grpc::Status check_sampler(const v1::SamplerSpec& s, const Limits& limits) {
  if (s.steps() < 0 || s.steps() > limits.max_steps)
    return invalid("sampler.steps is " + std::to_string(s.steps()) + "; use 1.." + std::to_string(limits.max_steps) +
                   " (0 for the model's default)");
  if (!v1::SamplerSpec::Kind_IsValid(s.kind()))
    return invalid("sampler.kind " + std::to_string(s.kind()) + " is unknown; use DDIM or DDPM");
  if (s.eta() < 0 || s.eta() > 1) return invalid("sampler.eta must be within 0..1");
  if (s.eta() != 0 && s.kind() == v1::SamplerSpec::DDPM) return invalid("sampler.eta applies to DDIM only");
  static const char* spacings[] = {"", "leading", "trailing", "uniform", "quad"};
  if (std::find(std::begin(spacings), std::end(spacings), s.spacing()) == std::end(spacings))
    return invalid("sampler.spacing '" + s.spacing() + "' is unknown; use leading, trailing, uniform or quad");
  return grpc::Status::OK;
}

void apply_defaults(v1::QuantizeOptions& o) {
  if (o.recipe().empty()) o.set_recipe("tfmq");
  if (o.weight_bits() == 0) o.set_weight_bits(4);
  if (o.act_bits() == 0) o.set_act_bits(8);
  if (o.sampler().steps() == 0) o.mutable_sampler()->set_steps(100);
  if (o.calib_samples() == 0) o.set_calib_samples(32);
  if (o.calib_seed() == 0) o.set_calib_seed(1234);
  if (o.iters() == 0) o.set_iters(500);
  if (o.act_iters() == 0) o.set_act_iters(500);
}

grpc::Status check_quantize_options(const v1::QuantizeOptions& o, const Limits& limits) {
  const auto& names = recipe_names();
  if (std::find(names.begin(), names.end(), o.recipe()) == names.end())
    return invalid("options.recipe '" + o.recipe() + "' is unknown; use rtn, qdiffusion, tfmq or tfmq+cache");
  if (o.weight_bits() < 2 || o.weight_bits() > 8)
    return invalid("options.weight_bits is " + std::to_string(o.weight_bits()) + "; use 2..8");
  if (o.act_bits() != 32 && (o.act_bits() < 4 || o.act_bits() > 8))
    return invalid("options.act_bits is " + std::to_string(o.act_bits()) + "; use 4..8, or 32 for fp32 activations");
  if (auto s = check_sampler(o.sampler(), limits); !s.ok()) return s;
  if (o.calib_samples() < 1 || o.calib_samples() > limits.max_calib_samples)
    return invalid("options.calib_samples must be 1.." + std::to_string(limits.max_calib_samples));
  if (o.iters() < 0 || o.iters() > limits.max_iters || o.act_iters() < 0 || o.act_iters() > limits.max_iters)
    return invalid("options.iters and options.act_iters must be 0.." + std::to_string(limits.max_iters));
  if (o.report_samples() < 0 || o.report_samples() > limits.max_report_samples)
    return invalid("options.report_samples must be 0.." + std::to_string(limits.max_report_samples));
  for (const auto& k : o.keep_fp())
    if (k.empty()) return invalid("options.keep_fp has an empty layer name");
  return grpc::Status::OK;
}

grpc::Status check_sample_request(const v1::SampleRequest& r, const Limits& limits) {
  if (r.source_case() == v1::SampleRequest::SOURCE_NOT_SET)
    return invalid("set model (an fp32 model name) or artifact (a quantized artifact name)");
  const std::string& name = r.source_case() == v1::SampleRequest::kModel ? r.model() : r.artifact();
  if (!valid_name(name))
    return invalid("'" + name + "' is not a model or artifact name (1-128 of A-Z a-z 0-9 . _ + -); "
                   "paths are refused: models live in the service's store and model roots");
  if (r.num_images() < 1 || r.num_images() > limits.max_images)
    return invalid("num_images is " + std::to_string(r.num_images()) + "; use 1.." + std::to_string(limits.max_images) +
                   " per request");
  if (!v1::SampleRequest::Kernels_IsValid(r.kernels())) return invalid("kernels must be INT or SIM");
  if (r.source_case() == v1::SampleRequest::kModel && r.kernels() != v1::SampleRequest::KERNELS_UNSPECIFIED)
    return invalid("kernels applies to artifacts only; fp32 models run on LibTorch");
  return check_sampler(r.sampler(), limits);
}

}  // namespace qdm::service
