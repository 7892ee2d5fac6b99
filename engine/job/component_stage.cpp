#include "engine/job/component_stage.h"

#include "engine/job/reference_images.h"
#include "engine/model/pipeline_folder.h"
#include "engine/quant/component_quant.h"
#include "engine/quant/recipe.h"
#include "format/quantized_component.h"

namespace qdm {

ComponentStageResult quantize_components(const DiffusionModel& model, const RecipeOptions& options,
                                         const std::function<bool(int, int)>& progress) {
  ComponentStageResult out;
  const bool text = options.quantizes("text_encoder"), vae = options.quantizes("vae_decoder");
  if (!text && !vae) return out;
  if (!model.pipeline) throw std::invalid_argument("components: this model is a UNet without a text encoder or VAE; quantize only its unet");
  const int total = (text ? 1 : 0) + (vae ? options.calib_samples : 0) + (vae ? 1 : 0);
  int done = 0;
  auto tick = [&](int n) {
    done += n;
    if (progress && !progress(done, total)) throw QuantizeCancelled();
  };
  auto add = [&out](ComponentQuantization q) {
    out.report[q.info.component] = q.info.report;
    out.files.emplace_back(quantized_component_file(q.info.component), std::move(q.file));
  };
  if (text) {
    add(quantize_text_encoder(*model.pipeline, model.prompts));
    tick(1);
  }
  if (vae) {
    SampleRequest req;
    req.num_images = options.calib_samples;
    req.seed = options.calib_seed + 3000000;
    req.sampler = options.sampler;
    const std::vector<int> labels = model.unet->user_labels();
    for (int i = 0; i < req.num_images && !labels.empty(); ++i) req.class_labels.push_back(labels[static_cast<size_t>(i) % labels.size()]);
    req.null_class = model.unet->null_label();
    const at::Tensor latents = reference_images(model, req, "", [&](const SampleProgress& p) {
      return !progress || progress(done + p.images_done, total);
    });
    tick(options.calib_samples);
    add(quantize_vae_decoder(*model.pipeline, latents));
    tick(1);
  }
  return out;
}

}  // namespace qdm
