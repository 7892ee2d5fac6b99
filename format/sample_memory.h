// What a sample request will hold in memory at its peak on a worker, estimated before it is
// queued from its size and the model's description (format/graph): the scheduler and the worker
// refuse a request whose estimate is over --max-sample-memory (RESOURCE_EXHAUSTED naming both).
// Torch-free. Upper bounds, as if the request's images ran as one batch (a worker batches at
// most its --max-batch): every UNet value of every image (twice with guidance: the null
// condition's pass), the attention score matrices the threads hold at once (one per image and
// head, up to kSampleEstimateThreads), the sampler's latents, the VAE decoder's values and its
// attention, and the images in fp32. Attention grows with the square of the latent's pixels, so
// this bounds what the pixel count alone does not: one large image.
#pragma once

#include "format/autoencoder_kl_config.h"
#include "format/memory_estimate.h"
#include "format/unet_config.h"

namespace qdm {

// Score matrices the estimate counts at once: the worker's threads, one (image, head) each.
inline constexpr int kSampleEstimateThreads = 16;

struct SampleSize {
  int num_images = 1;
  int height = 0, width = 0;  // image pixels; 0: the model's own size
  bool guided = false;        // guidance: a second UNet pass per step (the null condition)
};

// `vae`: a text-to-image pipeline's (latents are its factor smaller than the image); null for a
// pixel-space UNet, which samples at its sample_size. Throws std::invalid_argument (ConfigError)
// for a config the description refuses, or a size that is not a multiple of the VAE's factor.
MemoryEstimate estimate_sample_memory(const UNetConfig& unet, const AutoencoderKLConfig* vae, const SampleSize& size);

}  // namespace qdm
