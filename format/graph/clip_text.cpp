#include "format/graph/clip_text.h"

#include <stdexcept>
#include <string>

namespace qdm::graph {

Graph describe_clip_text(const ClipTextConfig& c, int length) {
  c.validate();
  const int len = length > 0 ? length : c.max_position_embeddings;
  if (len > c.max_position_embeddings)
    throw std::invalid_argument("CLIPTextModel: " + std::to_string(len) + " tokens, more than max_position_embeddings");
  const int d = c.hidden_size;
  Builder b("CLIPTextModel");
  const int ids = b.input(Input::kTokenIds, Layout::kSequence, 1, 1, len);
  int x = b.embedding("text_model.embeddings.token_embedding", ids, c.vocab_size, d);
  x = b.position_embedding("text_model.embeddings.position_embedding", x, c.max_position_embeddings);
  int chosen = -1;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "text_model.encoder.layers." + std::to_string(i);
    b.begin_block(p, "transformer_layer", x);
    int h = b.layer_norm(p + ".layer_norm1", x, c.layer_norm_eps);
    const int q = b.linear(p + ".self_attn.q_proj", h, d), k = b.linear(p + ".self_attn.k_proj", h, d),
              v = b.linear(p + ".self_attn.v_proj", h, d);
    const int a = b.attention(p + ".self_attn", q, k, v, c.num_attention_heads, /*causal=*/true);
    x = b.add(x, b.linear(p + ".self_attn.out_proj", a, d));
    h = b.layer_norm(p + ".layer_norm2", x, c.layer_norm_eps);
    h = b.linear(p + ".mlp.fc1", h, c.intermediate_size);
    h = c.hidden_act == "gelu" ? b.gelu(h) : b.quick_gelu(h);
    x = b.add(x, b.linear(p + ".mlp.fc2", h, d));
    b.end_block(x);
    if (i == c.num_hidden_layers - 1 - c.clip_skip) chosen = x;
  }
  return b.finish(b.layer_norm("text_model.final_layer_norm", chosen, c.layer_norm_eps));
}

}  // namespace qdm::graph
