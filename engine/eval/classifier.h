// A small Fashion-MNIST CNN whose penultimate layer (128 features) is the feature space of
// the FID-FMNIST metric. Input: (N, 1, 32, 32) in [-1, 1], the diffusion model's own space.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <string>

namespace qdm {

class FashionClassifierImpl : public torch::nn::Module {
 public:
  static constexpr int kFeatures = 128;
  FashionClassifierImpl();
  at::Tensor features(const at::Tensor& x);  // (N, 1, 32, 32) -> (N, 128)
  at::Tensor forward(const at::Tensor& x);   // (N, 1, 32, 32) -> logits (N, 10)

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(FashionClassifier);

struct ClassifierTrainOptions {
  std::string data_dir;
  std::string out_dir;
  int epochs = 3;
  int batch_size = 128;
  double lr = 1e-3;
  uint64_t seed = 0;
};

// Trains, writes out_dir/{config.json, model.safetensors}, returns test accuracy.
double train_classifier(const ClassifierTrainOptions& options,
                        const std::function<void(int epoch, int step, int steps, double loss)>& on_log = nullptr);
FashionClassifier load_classifier(const std::string& dir);  // eval mode
// Accuracy on (N, 1, 32, 32) images in [-1, 1] with labels (N).
double classifier_accuracy(FashionClassifier& model, const at::Tensor& images, const at::Tensor& labels);

}  // namespace qdm
