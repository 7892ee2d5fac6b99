#include "format/sample_memory.h"

#include <algorithm>
#include <stdexcept>

#include "format/graph/autoencoder_kl.h"
#include "format/graph/unet_2d.h"

namespace qdm {
namespace {

struct GraphBytes {
  int64_t values = 0;  // floats of every value of one image
  int64_t scores = 0;  // floats of the largest attention score matrix (one head, one image)
  int heads = 1;       // that attention's heads
};

GraphBytes measure(const graph::Graph& g) {
  GraphBytes b;
  for (const auto& v : g.values) b.values += v.size();
  for (const auto& n : g.nodes)
    if (n.op == graph::Op::kAttention) {
      const int64_t len = g.values.at(static_cast<size_t>(n.inputs.at(0))).length();
      const int64_t len_kv = g.values.at(static_cast<size_t>(n.inputs.at(1))).length();
      if (len * len_kv > b.scores) {
        b.scores = len * len_kv;
        b.heads = n.attrs.heads;
      }
    }
  return b;
}

// Score matrices held at once: one per (image, head) task, as many as the threads run.
int64_t held_scores(const GraphBytes& b, int64_t images) {
  return b.scores * std::min<int64_t>(images * b.heads, kSampleEstimateThreads);
}

}  // namespace

MemoryEstimate estimate_sample_memory(const UNetConfig& unet, const AutoencoderKLConfig* vae, const SampleSize& size) {
  if (size.num_images < 1) throw std::invalid_argument("a sample request has at least one image");
  int latent_h = unet.sample_size, latent_w = unet.sample_size;
  int image_c = unet.out_channels, image_h = unet.sample_size, image_w = unet.sample_size;
  if (vae) {
    const int f = vae->factor(), m = f * unet.size_multiple();
    if (size.height % m != 0 || size.width % m != 0)
      throw std::invalid_argument("height and width must be multiples of " + std::to_string(m) + " (0: the model's size)");
    if (size.height > 0) latent_h = size.height / f;
    if (size.width > 0) latent_w = size.width / f;
    image_c = vae->out_channels;
    image_h = latent_h * f;
    image_w = latent_w * f;
  }
  const int64_t images = size.num_images;
  const int64_t calls = images * (size.guided ? 2 : 1);  // images per UNet step
  const GraphBytes u = measure(graph::describe_unet_2d(unet, latent_h, latent_w));
  const int64_t latent = static_cast<int64_t>(unet.in_channels) * latent_h * latent_w;

  MemoryEstimate m;
  m.parts.push_back({"UNet values", calls * u.values * 4});
  m.parts.push_back({"UNet attention scores", held_scores(u, calls) * 4});
  // x_t, the noise, the prediction (both passes with guidance), x_0.
  m.parts.push_back({"sampler latents", (4 + calls) * latent * 4});
  if (vae) {
    const GraphBytes d = measure(graph::describe_vae_decoder(*vae, latent_h, latent_w));
    m.parts.push_back({"VAE decoder values", images * d.values * 4});
    if (d.scores > 0) m.parts.push_back({"VAE decoder attention scores", held_scores(d, images) * 4});
  }
  // The fp32 images and their PNGs (at most their raw bytes).
  m.parts.push_back({"images", images * image_c * image_h * image_w * (4 + 1)});
  return m;
}

}  // namespace qdm
