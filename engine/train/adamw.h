// AdamW over a fixed list of named parameters, with state that round-trips through a
// TensorMap so a checkpoint is one safetensors file.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "engine/model_io/tensor_io.h"

namespace qdm {

class AdamW {
 public:
  struct Options {
    double lr = 2e-4;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    double weight_decay = 0.0;
  };
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, Options options);

  void step(double lr);  // one update from the parameters' .grad()
  // Parameters whose names start with `prefix` step with lr * scale (e.g. a new embedding
  // that must catch up with warm-started weights).
  void set_lr_scale(const std::string& prefix, double scale);
  void zero_grad();
  int64_t steps() const { return step_; }

  void save_state(TensorMap& out, const std::string& prefix) const;
  void load_state(const TensorMap& in, const std::string& prefix, int64_t step);

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<at::Tensor> m_, v_;
  std::vector<double> lr_scale_;
  Options options_;
  int64_t step_ = 0;
};

}  // namespace qdm
