// transformers CLIPTextModel, described once (modeling_clip.py's text model): token and
// position embeddings, pre-norm transformer layers (layer_norm1 -> causal self-attention ->
// residual, layer_norm2 -> fc1 -> quick_gelu/gelu -> fc2 -> residual), final_layer_norm.
// Node and tensor names are transformers' ("text_model.encoder.layers.0.self_attn.q_proj").
// Every layer is declared (the weights file holds them all); with clip_skip the output is
// final_layer_norm of an earlier layer's states, and the later layers are never run.
#pragma once

#include "format/clip_text_config.h"
#include "format/graph/graph.h"

namespace qdm::graph {

// The graph over `length` tokens (0: max_position_embeddings); input kTokenIds, output the
// hidden states (length, hidden_size) a denoiser's cross-attention reads.
Graph describe_clip_text(const ClipTextConfig& config, int length = 0);

}  // namespace qdm::graph
