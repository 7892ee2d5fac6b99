// How the timestep enters the UNet: a projection of t (sinusoidal, Gaussian Fourier or a learned
// table) followed by TimestepEmbedding (linear_1 -> SiLU -> linear_2), as in diffusers.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "engine/model/layers.h"

namespace qdm {

// t: (N) -> (N, dim). diffusers' get_timestep_embedding with scale 1 and max_period 10000.
at::Tensor sinusoidal_embedding(const at::Tensor& t, int dim, bool flip_sin_to_cos, double freq_shift);

class TimestepEmbeddingImpl : public torch::nn::Module {
 public:
  TimestepEmbeddingImpl(int in_dim, int time_embed_dim);
  at::Tensor forward(const at::Tensor& x);  // (N, in_dim) -> (N, time_embed_dim)
  LinearLayer linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

// time_embedding_type "fourier": fixed random frequencies, stored as `time_proj.weight`.
class GaussianFourierProjectionImpl : public torch::nn::Module {
 public:
  GaussianFourierProjectionImpl(int embedding_size, double scale);
  at::Tensor forward(const at::Tensor& t);  // (N) -> (N, 2 * embedding_size)
  at::Tensor weight;                        // (embedding_size)
};
TORCH_MODULE(GaussianFourierProjection);

}  // namespace qdm
