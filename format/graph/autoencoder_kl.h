// diffusers AutoencoderKL, described once (autoencoder_kl.py / vae.py): the Encoder (conv_in,
// DownEncoderBlock2D: ResnetBlock2D without a time embedding, Downsample2D with padding 0; the
// mid block with one single-head attention; conv_norm_out -> SiLU -> conv_out) and quant_conv,
// and post_quant_conv with the Decoder (conv_in, mid block, UpDecoderBlock2D with
// layers_per_block + 1 resnets and Upsample2D, conv_norm_out -> SiLU -> conv_out). Norms use
// eps 1e-6. Node and tensor names are diffusers' ("decoder.up_blocks.0.resnets.1.conv2").
#pragma once

#include <string>

#include "format/autoencoder_kl_config.h"
#include "format/graph/graph.h"

namespace qdm {
class SafeTensors;
}

namespace qdm::graph {

// Image (in_channels, height, width) in [-1, 1] -> the posterior mean (latent_channels,
// height / factor, width / factor). 0: the config's sample_size.
Graph describe_vae_encoder(const AutoencoderKLConfig& config, int height = 0, int width = 0);
// Latent (already divided by scaling_factor) of height x width latent pixels -> the image in
// [-1, 1]. 0: sample_size / factor.
Graph describe_vae_decoder(const AutoencoderKLConfig& config, int height = 0, int width = 0);
// Both halves in one graph (every tensor of vae/diffusion_pytorch_model.safetensors): inputs
// kSample (the image, height x width) and kLatent; the value named "moments" is the encoder's
// output, the graph's output the decoded latent.
Graph describe_autoencoder_kl(const AutoencoderKLConfig& config, int height = 0, int width = 0);

// Whether a stored tensor belongs to the encoder half (encoder.*, quant_conv.*), which sampling
// never reads: a quantized pipeline's artifact embeds its VAE without them.
bool vae_encoder_tensor(const std::string& name);
// Whether a VAE weights file holds any of the encoder's tensors (a folder's does; today's
// artifacts embed the decoder alone).
bool stores_vae_encoder(const SafeTensors& weights);
// The tensors a VAE weights file holds: both halves, or the decoder alone (at the default sizes).
Graph describe_stored_vae(const AutoencoderKLConfig& config, bool with_encoder);

}  // namespace qdm::graph
