// Fashion-MNIST from the idx .gz files that Debian's dataset-fashion-mnist installs.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace qdm {

struct FashionMnist {
  at::Tensor images;  // (N, 1, 28, 28) uint8
  at::Tensor labels;  // (N) int64, 0..9

  // split: "train" (60k) or "test" (10k). Throws std::runtime_error naming the file at fault.
  static FashionMnist load(const std::string& dir, const std::string& split);
};

// $QDM_FASHION_MNIST if set, else /usr/share/datasets/fashion-mnist.
std::string default_fashion_mnist_dir();
const char* fashion_mnist_class_name(int label);
constexpr int kFashionMnistClasses = 10;

// uint8 (N, 1, 28, 28) -> float (N, 1, size, size) in [-1, 1], centred, padded with -1.
at::Tensor to_model_range(const at::Tensor& images, int size);

}  // namespace qdm
