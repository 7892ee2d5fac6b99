// diffusers UNet2DModel, described once (its unet_2d.py modules and forward): the time
// projection (positional, Fourier or learned) and TimestepEmbedding, the class embedding
// (a table, "timestep" or "identity"), conv_in, the down blocks (ResnetBlock2D, optional
// self-attention, Downsample2D), the optional mid block, the up blocks (concatenated skips,
// Upsample2D) and conv_norm_out -> SiLU -> conv_out. Node and tensor names are diffusers'.
#pragma once

#include <string>

#include "format/graph/graph.h"
#include "format/unet_config.h"

namespace qdm::graph {

// The graph for images of `height` x `width` (0: the config's sample_size); the parameters do
// not depend on the size.
Graph describe_unet_2d(const UNetConfig& config, int height = 0, int width = 0);

// Whether a parameter or layer name belongs to the Temporal Information Block: the time
// embedding, the class embedding and every resnet's time_emb_proj (TFMQ-DM), the layers a
// tfmq+cache artifact replaces by its cached features.
bool is_temporal_layer(const std::string& name);

}  // namespace qdm::graph
