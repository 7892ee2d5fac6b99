// diffusers UNet2DModel, described once (its unet_2d.py modules and forward): the time
// projection (positional, Fourier or learned) and TimestepEmbedding, the class embedding
// (a table, "timestep" or "identity"), conv_in, the down blocks (ResnetBlock2D, optional
// self-attention, Downsample2D), the optional mid block, the up blocks (concatenated skips,
// Upsample2D) and conv_norm_out -> SiLU -> conv_out. Node and tensor names are diffusers'.
// UNet2DConditionModel is the same skeleton with Transformer2DModels (self-attention,
// cross-attention on the text states, GEGLU feed-forward) in its CrossAttn blocks and mid block.
#pragma once

#include <string>

#include "format/graph/graph.h"
#include "format/unet_config.h"

namespace qdm::graph {

// The graph for images of `height` x `width` (0: the config's sample_size) and, for a
// UNet2DConditionModel, text states of `text_length` tokens; the parameters depend on neither.
Graph describe_unet_2d(const UNetConfig& config, int height = 0, int width = 0, int text_length = 77);

// Whether a parameter or layer name belongs to the Temporal Information Block: the time
// embedding, the class embedding and every resnet's time_emb_proj (TFMQ-DM), the layers a
// tfmq+cache artifact replaces by its cached features.
bool is_temporal_layer(const std::string& name);

}  // namespace qdm::graph
