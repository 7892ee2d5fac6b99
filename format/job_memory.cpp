#include "format/job_memory.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "format/graph/autoencoder_kl.h"
#include "format/graph/unet_2d.h"
#include "format/quantized_component.h"
#include "format/recipes.h"

namespace qdm {
namespace {

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t floats(const graph::ValueInfo& v) { return static_cast<int64_t>(v.c) * v.h * v.w; }

}  // namespace

MemoryEstimate estimate_job_memory(const RecipeOptions& o, const UNetConfig& config, const AutoencoderKLConfig* vae) {
  const graph::Graph g = graph::describe_unet_2d(config);
  const RecipeInfo& recipe = recipe_info(o.recipe);
  // The model: parameters, one image, every value of one image's forward pass (what a backward
  // pass keeps; attention adds its score matrices), the largest block's input plus output, and
  // the layers' X^T X (vq).
  int64_t params = 0;
  for (const auto& t : g.tensors) params += numel(t.shape);
  const int64_t image = static_cast<int64_t>(config.in_channels) * config.sample_size * config.sample_size;
  int64_t activations = 0, block_io = 0, block_activations = 0, xtx = 0;
  for (const auto& v : g.values) activations += floats(v);
  for (const auto& n : g.nodes) {
    if (n.op == graph::Op::kAttention) {
      const int64_t length = g.values.at(static_cast<size_t>(n.inputs.at(0))).length();
      activations += static_cast<int64_t>(n.attrs.heads) * length * length;
    }
    if ((n.op == graph::Op::kConv2d || n.op == graph::Op::kLinear) && !n.params.empty()) {
      const auto& shape = g.tensor(n.params[0]).shape;
      const int64_t k = numel(shape) / std::max<int64_t>(1, shape.at(0));
      xtx += k * k;
    }
  }
  // Reconstruction's backward pass holds one block's values.
  for (const auto& b : g.blocks) {
    const int64_t out = floats(g.values.at(static_cast<size_t>(b.output)));
    block_io = std::max(block_io, floats(g.values.at(static_cast<size_t>(b.input))) + out);
    int64_t inside = 0;
    for (int n = b.first_node; n <= b.last_node; ++n) inside += floats(g.values.at(static_cast<size_t>(g.nodes.at(static_cast<size_t>(n)).output)));
    block_activations = std::max(block_activations, inside);
  }

  const int64_t samples = o.calib_samples;
  const int64_t steps = recipe.searches_schedule() ? o.search.base_steps : o.sampler.steps;  // calibration trajectories' steps
  const int64_t artifact_steps = recipe.searches_schedule() ? o.search.steps : o.sampler.steps;
  const FinetuneOptions f = o.finetune_options();
  const bool learns = recipe.reconstruction || f.iters > 0 || o.recon.iters > 0;

  MemoryEstimate m;
  // The worker's own pages (LibTorch, oneDNN, gRPC, the plan's buffers): measured 210 MiB.
  m.parts.push_back({"process", int64_t{224} << 20});
  // fp32 model and quantized model; learning weights adds fake weights, rounding variables and
  // Adam's two moments.
  m.parts.push_back({"model copies", (learns ? 6 : 2) * 4 * params});
  m.parts.push_back({"calibration set", samples * steps * 2 * image * 4});
  // A batch of LibTorch forward passes (observing activation ranges): the allocator keeps every
  // value's pages, so every value of an image counts.
  m.parts.push_back({"sampling batch", std::min<int64_t>(o.batch, samples) * activations * 4});
  if (recipe.reconstruction) {
    const int64_t pairs = samples * ((steps + o.recon_step_stride - 1) / o.recon_step_stride);
    m.parts.push_back({"reconstruction pairs", pairs * block_io * 4});
    m.parts.push_back({"reconstruction batch", 2 * static_cast<int64_t>(o.recon.batch) * block_activations * 4});
  }
  if (recipe.searches_schedule())
    m.parts.push_back({"quantizer bank", static_cast<int64_t>(o.search.weight_bits.size()) * params * 4});
  if (recipe.section == RecipeSection::kVq) m.parts.push_back({"vq statistics", xtx * 4});
  if (f.iters > 0) {
    m.parts.push_back({"fine-tuning trajectories", static_cast<int64_t>(f.samples + f.holdout) * artifact_steps * 2 * image * 4});
    m.parts.push_back({"fine-tuning batch", 3 * static_cast<int64_t>(f.batch) * activations * 4});
  }
  if (o.bias_samples > 0) m.parts.push_back({"eps bias trajectories", static_cast<int64_t>(o.bias_samples) * artifact_steps * 2 * image * 4});
  if (vae && o.quantizes("vae_decoder")) {
    const graph::Graph d = graph::describe_vae_decoder(*vae, config.sample_size, config.sample_size);
    int64_t values = 0, sampled = 0;
    for (const auto& v : d.values) values += floats(v);
    const int64_t batches = (samples + kComponentDecodeBatch - 1) / kComponentDecodeBatch;
    for (const int n : d.layers())
      sampled += batches * std::min(kComponentSampledValues,
                                    kComponentDecodeBatch * floats(d.values.at(static_cast<size_t>(d.nodes.at(static_cast<size_t>(n)).inputs.at(0)))));
    m.parts.push_back({"VAE decoder calibration", (samples * image + kComponentDecodeBatch * values + sampled) * 4});
  }
  return m;
}

}  // namespace qdm
