#include "engine/eval/classifier.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/pooling.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/data/fashion_mnist.h"
#include "engine/model_io/tensor_io.h"

namespace qdm {

FashionClassifierImpl::FashionClassifierImpl() {
  using torch::nn::Conv2dOptions;
  conv1 = register_module("conv1", torch::nn::Conv2d(Conv2dOptions(1, 32, 3).padding(1)));
  conv2 = register_module("conv2", torch::nn::Conv2d(Conv2dOptions(32, 32, 3).padding(1)));
  conv3 = register_module("conv3", torch::nn::Conv2d(Conv2dOptions(32, 64, 3).padding(1)));
  conv4 = register_module("conv4", torch::nn::Conv2d(Conv2dOptions(64, 64, 3).padding(1)));
  fc1 = register_module("fc1", torch::nn::Linear(64 * 8 * 8, kFeatures));
  fc2 = register_module("fc2", torch::nn::Linear(kFeatures, 10));
}

at::Tensor FashionClassifierImpl::features(const at::Tensor& x) {
  at::Tensor h = at::relu(conv2->forward(at::relu(conv1->forward(x))));
  h = at::max_pool2d(h, {2, 2});  // 16x16
  h = at::relu(conv4->forward(at::relu(conv3->forward(h))));
  h = at::max_pool2d(h, {2, 2});  // 8x8
  return at::relu(fc1->forward(h.flatten(1)));
}

at::Tensor FashionClassifierImpl::forward(const at::Tensor& x) {
  at::Tensor f = features(x);
  if (is_training()) f = at::dropout(f, 0.3, true);
  return fc2->forward(f);
}

double classifier_accuracy(FashionClassifier& model, const at::Tensor& images, const at::Tensor& labels) {
  torch::NoGradGuard no_grad;
  int64_t correct = 0;
  for (int64_t i = 0; i < images.size(0); i += 500) {
    const int64_t n = std::min<int64_t>(500, images.size(0) - i);
    correct += model->forward(images.narrow(0, i, n)).argmax(1).eq(labels.narrow(0, i, n)).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(images.size(0));
}

double train_classifier(const ClassifierTrainOptions& o,
                        const std::function<void(int, int, int, double)>& on_log) {
  torch::manual_seed(o.seed);
  const FashionMnist train = FashionMnist::load(o.data_dir, "train");
  const FashionMnist test = FashionMnist::load(o.data_dir, "test");
  const at::Tensor x_train = to_model_range(train.images, 32);
  const at::Tensor x_test = to_model_range(test.images, 32);
  FashionClassifier model;
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(o.lr));
  at::Generator gen = at::detail::createCPUGenerator(o.seed + 7);
  const int64_t n = x_train.size(0);
  const int steps = static_cast<int>(n / o.batch_size);
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    model->train();
    const at::Tensor perm = at::randperm(n, gen, at::kLong);
    for (int s = 0; s < steps; ++s) {
      const at::Tensor idx = perm.narrow(0, static_cast<int64_t>(s) * o.batch_size, o.batch_size);
      at::Tensor x = x_train.index_select(0, idx);
      const at::Tensor flip = at::rand({o.batch_size, 1, 1, 1}, gen) < 0.5;
      x = at::where(flip, x.flip({3}), x);
      const at::Tensor loss = at::cross_entropy_loss(model->forward(x), train.labels.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
      if (on_log && (s % 100 == 0 || s == steps - 1)) on_log(epoch, s, steps, loss.item<double>());
    }
  }
  model->eval();
  const double acc = classifier_accuracy(model, x_test, test.labels);
  std::filesystem::create_directories(o.out_dir);
  TensorMap tensors;
  for (const auto& p : model->named_parameters()) tensors[p.key()] = p.value();
  save_tensors(o.out_dir + "/model.safetensors", tensors, {{"test_accuracy", std::to_string(acc)}});
  std::ofstream(o.out_dir + "/config.json")
      << nlohmann::json{{"_class_name", "FashionClassifier"},
                        {"input", "(N, 1, 32, 32) in [-1, 1], Fashion-MNIST padded by 2 with -1"},
                        {"feature_dim", FashionClassifierImpl::kFeatures},
                        {"epochs", o.epochs},
                        {"batch_size", o.batch_size},
                        {"lr", o.lr},
                        {"seed", o.seed},
                        {"test_accuracy", acc}}
             .dump(2)
      << "\n";
  return acc;
}

FashionClassifier load_classifier(const std::string& dir) {
  FashionClassifier model;
  const TensorMap tensors = load_tensors(dir + "/model.safetensors");
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    auto it = tensors.find(p.key());
    if (it == tensors.end()) throw std::runtime_error(dir + "/model.safetensors: missing tensor '" + p.key() + "'");
    if (it->second.sizes() != p.value().sizes())
      throw std::runtime_error(dir + "/model.safetensors: tensor '" + p.key() + "' has the wrong shape");
    p.value().copy_(it->second);
  }
  model->eval();
  return model;
}

}  // namespace qdm
