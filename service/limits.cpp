#include "service/limits.h"

#include "format/prompts.h"

#include <algorithm>
#include <cmath>

#include "format/echo.h"
#include "format/job_memory.h"
#include "format/sample_memory.h"
#include "format/recipes.h"
#include "service/convert.h"
#include "service/file_transfer.h"

namespace qdm::service {
namespace {

grpc::Status invalid(const std::string& message) { return {grpc::INVALID_ARGUMENT, message}; }

// NaN fails every comparison, so ranges are written as "not inside".
bool within(double v, double lo, double hi) { return v >= lo && v <= hi; }

}  // namespace

namespace {
grpc::Status check_enums_at(const google::protobuf::Message& m, const std::string& prefix) {
  const auto* reflection = m.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(m, &fields);
  for (const auto* f : fields) {
    const std::string path = prefix + f->name();
    if (f->type() == google::protobuf::FieldDescriptor::TYPE_ENUM) {
      const int n = f->is_repeated() ? reflection->FieldSize(m, f) : 1;
      for (int i = 0; i < n; ++i) {
        const int v = f->is_repeated() ? reflection->GetRepeatedEnumValue(m, f, i) : reflection->GetEnumValue(m, f);
        if (!f->enum_type()->FindValueByNumber(v)) {
          std::string names;
          for (int k = 0; k < f->enum_type()->value_count(); ++k)
            names += (k ? ", " : "") + f->enum_type()->value(k)->name();
          return invalid(path + " is " + std::to_string(v) + ", which the protocol does not define; use one of " + names);
        }
      }
    } else if (f->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
      const int n = f->is_repeated() ? reflection->FieldSize(m, f) : 1;
      for (int i = 0; i < n; ++i) {
        const auto& sub = f->is_repeated() ? reflection->GetRepeatedMessage(m, f, i) : reflection->GetMessage(m, f);
        if (auto s = check_enums_at(sub, path + "."); !s.ok()) return s;
      }
    }
  }
  return grpc::Status::OK;
}
}  // namespace

grpc::Status check_enum_values(const google::protobuf::Message& message) { return check_enums_at(message, ""); }

grpc::Status check_name(const std::string& field, const std::string& name) {
  if (name.empty()) return invalid(field + " is empty; name a model from qdm models list");
  if (!valid_name(name))
    return invalid(field + " " + echo(name) + " is not a model or artifact name (1-128 of A-Z a-z 0-9 . _ + -, not "
                   "starting with '.'); paths are refused: models live in the service's store and model roots");
  return grpc::Status::OK;
}

grpc::Status check_sampler(const v1::SamplerSpec& s, const Limits& limits) {
  if (s.steps() < 0 || s.steps() > limits.max_steps)
    return invalid("sampler.steps is " + std::to_string(s.steps()) + "; use 1.." + std::to_string(limits.max_steps) +
                   " (0 for the model's default)");
  if (!v1::SamplerSpec::Kind_IsValid(s.kind()))
    return invalid("sampler.kind " + std::to_string(s.kind()) + " is unknown; use DDIM or DDPM");
  if (!within(s.eta(), 0, 1)) return invalid("sampler.eta must be a number within 0..1");
  if (s.eta() != 0 && s.kind() == v1::SamplerSpec::DDPM) return invalid("sampler.eta applies to DDIM only");
  static const char* spacings[] = {"", "leading", "trailing", "uniform", "quad"};
  if (std::find(std::begin(spacings), std::end(spacings), s.spacing()) == std::end(spacings))
    return invalid("sampler.spacing " + echo(s.spacing()) + " is unknown; use leading, trailing, uniform or quad");
  return grpc::Status::OK;
}

namespace {
// Layer-name substrings (keep_fp, fp32_layers): at most 256, each 1 to 256 characters.
grpc::Status check_layer_names(const google::protobuf::RepeatedPtrField<std::string>& names, const std::string& field,
                               const std::string& noun) {
  if (names.size() > 256) return invalid(field + " has more than 256 " + noun);
  for (const auto& k : names)
    if (k.empty() || k.size() > 256) return invalid(field + " " + noun + " must be 1 to 256 characters");
  return grpc::Status::OK;
}
}  // namespace

grpc::Status check_quantize_options(const v1::QuantizeOptions& o, const Limits& limits) {
  if (!find_recipe(o.recipe())) return invalid("options.recipe " + echo(o.recipe()) + " is unknown; use " + recipe_list());
  if (o.weight_bits() < 2 || o.weight_bits() > 8)
    return invalid("options.weight_bits is " + std::to_string(o.weight_bits()) + "; use 2..8");
  if (o.act_bits() != 32 && (o.act_bits() < 4 || o.act_bits() > 8))
    return invalid("options.act_bits is " + std::to_string(o.act_bits()) + "; use 4..8, or 32 for fp32 activations");
  if (auto s = check_sampler(o.sampler(), limits); !s.ok()) return s;
  if (o.calib_samples() < 1 || o.calib_samples() > limits.max_calib_samples)
    return invalid("options.calib_samples must be 1.." + std::to_string(limits.max_calib_samples));
  if (o.bias_samples() < 0 || o.bias_samples() > limits.max_calib_samples * 16)
    return invalid("options.bias_samples must be 0.." + std::to_string(limits.max_calib_samples * 16) + " (0: no eps bias correction)");
  if (o.iters() < 0 || o.iters() > limits.max_iters || o.act_iters() < 0 || o.act_iters() > limits.max_iters)
    return invalid("options.iters and options.act_iters must be 0.." + std::to_string(limits.max_iters));
  if (o.report_samples() < 0 || o.report_samples() > limits.max_report_samples)
    return invalid("options.report_samples must be 0.." + std::to_string(limits.max_report_samples) +
                   " (0: no quality report; FID needs 2 or more)");
  if (auto st = check_layer_names(o.keep_fp(), "options.keep_fp", "entries"); !st.ok()) return st;
  if (auto st = check_layer_names(o.fp32_layers().names(), "options.fp32_layers", "names"); !st.ok()) return st;
  if (o.calibration_prompt_size() > RecipeOptions::kMaxPrompts)
    return invalid("options.calibration_prompt holds more than " + std::to_string(RecipeOptions::kMaxPrompts) + " prompts");
  for (const auto& p : o.calibration_prompt())
    if (p.size() > kMaxPromptBytes)
      return invalid("options.calibration_prompt: a prompt is longer than " + std::to_string(kMaxPromptBytes) + " bytes");
  if (o.components_size() > 3) return invalid("options.components lists at most unet, text_encoder and vae_decoder");
  const auto& s = o.search();
  if (s.population() > 1000 || s.generations() > 1000 || s.fitness_images() > limits.max_report_samples ||
      s.final_images() > limits.max_report_samples || s.base_steps() > limits.max_steps)
    return invalid("options.search is over this service's limits (population and generations 1000, images " +
                   std::to_string(limits.max_report_samples) + ", base_steps " + std::to_string(limits.max_steps) + ")");
  if (!std::isfinite(s.mutation_prob()) || !std::isfinite(s.bitops_cap()) || !std::isfinite(s.ms_cap()) || !std::isfinite(s.group_power()))
    return invalid("options.search: mutation_prob, bitops_cap, ms_cap and group_power must be finite numbers");
  const auto& v = o.vq();
  if (v.max_rounds() < 0 || v.max_rounds() > 100 || v.adam_steps() < 0 || v.adam_steps() > limits.max_iters ||
      v.step_stride() < 0 || v.step_stride() > limits.max_steps)
    return invalid("options.vq: max_rounds must be 0..100, adam_steps 0.." + std::to_string(limits.max_iters) +
                   ", step_stride 0.." + std::to_string(limits.max_steps) + " (0: the default)");
  const auto& f = o.finetune();
  if (f.iters() < 0 || f.iters() > limits.max_iters || f.samples() < 0 || f.samples() > limits.max_calib_samples ||
      f.holdout() < 0 || f.holdout() > limits.max_calib_samples || f.batch() < 0 || f.evals() < 0 || f.evals() > 1000 ||
      !std::isfinite(f.lr()))
    return invalid("options.finetune: iters must be 0.." + std::to_string(limits.max_iters) + ", samples and holdout 0.." +
                   std::to_string(limits.max_calib_samples) + ", evals 0..1000, lr finite (0: the default)");
  try {
    quantize_job_options(o);  // the engine's own checks, torch-free
  } catch (const std::exception& e) {
    return invalid(std::string("options: ") + e.what());
  }
  return grpc::Status::OK;
}

grpc::Status check_sample_request(const v1::SampleRequest& r, const Limits& limits) {
  if (auto s = check_enum_values(r); !s.ok()) return s;
  if (r.source_case() == v1::SampleRequest::SOURCE_NOT_SET)
    return invalid("set model (an fp32 model name) or artifact (a quantized artifact name)");
  if (auto s = check_name(r.source_case() == v1::SampleRequest::kModel ? "model" : "artifact",
                          r.source_case() == v1::SampleRequest::kModel ? r.model() : r.artifact());
      !s.ok())
    return s;
  if (r.num_images() < 1 || r.num_images() > limits.max_images)
    return invalid("num_images is " + std::to_string(r.num_images()) + "; use 1.." + std::to_string(limits.max_images) +
                   " per request");
  if (!v1::SampleRequest::Kernels_IsValid(r.kernels())) return invalid("kernels must be INT or SIM");
  if (r.source_case() == v1::SampleRequest::kModel && r.kernels() != v1::SampleRequest::KERNELS_UNSPECIFIED)
    return invalid("kernels applies to artifacts only; fp32 models run on their fp32 kernels");
  if (r.class_labels_size() > 1 && r.class_labels_size() != r.num_images())
    return invalid("class_labels has " + std::to_string(r.class_labels_size()) + " entries; give one for every image, one per image (" +
                   std::to_string(r.num_images()) + "), or \"all\"");
  for (const auto& l : r.class_labels())
    if (l.empty() || l.size() > 64) return invalid("class_labels entries must be 1 to 64 characters");
  if (r.has_guidance_scale() && !within(r.guidance_scale(), 0, 100))
    return invalid("guidance_scale must be a number within 0..100 (1: no guidance)");
  if (r.prompt_size() > 1 && r.prompt_size() != r.num_images())
    return invalid("prompt has " + std::to_string(r.prompt_size()) + " entries; give one for every image or one per image (" +
                   std::to_string(r.num_images()) + ")");
  for (const auto& p : r.prompt())
    if (p.size() > kMaxPromptBytes) return invalid("a prompt is longer than " + std::to_string(kMaxPromptBytes) + " bytes; shorten it");
  if (r.negative_prompt().size() > kMaxPromptBytes)
    return invalid("negative_prompt is longer than " + std::to_string(kMaxPromptBytes) + " bytes; shorten it");
  if (r.prompt_size() > 0 && r.class_labels_size() > 0) return invalid("give prompts or class_labels, not both");
  if (r.height() < 0 || r.width() < 0 || r.height() > kMaxImageSide || r.width() > kMaxImageSide)
    return invalid("height and width must be 0 (the model's size) or positive up to " + std::to_string(kMaxImageSide));
  // The request's cost before any work: its images' pixels (the sampling buffers grow with them).
  if (const int64_t pixels = static_cast<int64_t>(r.num_images()) * std::max(1, r.height()) * std::max(1, r.width());
      pixels > limits.max_request_pixels)
    return {grpc::RESOURCE_EXHAUSTED, "num_images x height x width is " + std::to_string(pixels) + " pixels (about " +
                                          format_bytes(pixels * 3 * 4) + " of RGB images in fp32), over the " +
                                          std::to_string(limits.max_request_pixels) +
                                          " pixels a request may ask for here; ask for fewer or smaller images"};
  return check_sampler(r.sampler(), limits);
}

grpc::Status check_sample_memory(const v1::SampleRequest& r, const UNetConfig& unet, const AutoencoderKLConfig* vae,
                                 const Limits& limits) {
  if (limits.max_sample_memory <= 0) return grpc::Status::OK;
  MemoryEstimate need;
  try {
    need = estimate_sample_memory(unet, vae,
                                  {r.num_images(), r.height(), r.width(), r.has_guidance_scale() && r.guidance_scale() != 1.0});
  } catch (const std::invalid_argument& e) {
    return invalid(e.what());
  }
  if (need.total() <= limits.max_sample_memory) return grpc::Status::OK;
  return {grpc::RESOURCE_EXHAUSTED, "this request needs about " + need.summary() + ", over the " +
                                        format_bytes(limits.max_sample_memory) +
                                        " a sample request may use here (--max-sample-memory); ask for fewer or smaller images"};
}

}  // namespace qdm::service
