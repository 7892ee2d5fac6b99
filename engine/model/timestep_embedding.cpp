#include "engine/model/timestep_embedding.h"

#include <cmath>

namespace qdm {

at::Tensor sinusoidal_embedding(const at::Tensor& t, int dim, bool flip_sin_to_cos, double freq_shift) {
  const int half = dim / 2;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(t.device());
  at::Tensor exponent = at::arange(half, f32) * (-std::log(10000.0) / (half - freq_shift));
  at::Tensor args = t.to(at::kFloat).reshape({-1, 1}) * at::exp(exponent).reshape({1, -1});
  at::Tensor emb = flip_sin_to_cos ? at::cat({at::cos(args), at::sin(args)}, -1)
                                   : at::cat({at::sin(args), at::cos(args)}, -1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1, 0, 0});
  return emb;
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int in_dim, int time_embed_dim) {
  linear_1 = register_module("linear_1", LinearLayer(in_dim, time_embed_dim));
  linear_2 = register_module("linear_2", LinearLayer(time_embed_dim, time_embed_dim));
}

at::Tensor TimestepEmbeddingImpl::forward(const at::Tensor& x) {
  return linear_2->forward(at::silu(linear_1->forward(x)));
}

GaussianFourierProjectionImpl::GaussianFourierProjectionImpl(int embedding_size, double scale) {
  weight = register_buffer("weight", at::randn({embedding_size}) * scale);
}

at::Tensor GaussianFourierProjectionImpl::forward(const at::Tensor& t) {
  at::Tensor proj = at::log(t.to(at::kFloat)).reshape({-1, 1}) * weight.reshape({1, -1}) * (2 * M_PI);
  return at::cat({at::sin(proj), at::cos(proj)}, -1);
}

}  // namespace qdm
