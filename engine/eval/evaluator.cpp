#include "engine/eval/evaluator.h"

#include <torch/utils.h>

#include <nlohmann/json.hpp>

#include "engine/data/fashion_mnist.h"

namespace qdm {

nlohmann::json QualityReport::to_json() const {
  nlohmann::json hist = nlohmann::json::object();
  for (int c = 0; c < kFashionMnistClasses; ++c) hist[fashion_mnist_class_name(c)] = class_histogram[c];
  nlohmann::json j = {{"num_images", num_images}, {"fid_fmnist", fid}, {"class_histogram", hist}, {"mean_confidence", mean_confidence}};
  if (class_accuracy >= 0) {
    j["class_accuracy"] = class_accuracy;
    nlohmann::json per = nlohmann::json::object();
    for (int c = 0; c < kFashionMnistClasses; ++c) {
      const PerClassQuality& q = per_class[static_cast<size_t>(c)];
      if (q.count == 0) continue;
      per[fashion_mnist_class_name(c)] = {{"images", q.count}, {"accuracy", q.accuracy},
                                          {"fid_fmnist", q.fid < 0 ? nlohmann::json() : nlohmann::json(q.fid)}};
    }
    j["per_class"] = per;
  }
  return j;
}

FmnistEvaluator::FmnistEvaluator(const std::string& classifier_dir, const std::string& data_dir)
    : classifier_(load_classifier(classifier_dir)), data_dir_(data_dir) {}

at::Tensor FmnistEvaluator::features(const at::Tensor& images) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < images.size(0); i += 500)
    out.push_back(classifier_->features(images.narrow(0, i, std::min<int64_t>(500, images.size(0) - i))));
  return at::cat(out, 0);
}

const GaussianStats& FmnistEvaluator::test_stats() {
  if (!have_test_stats_) {
    const FashionMnist test = FashionMnist::load(data_dir_, "test");
    test_stats_ = feature_stats(features(to_model_range(test.images, 32)));
    have_test_stats_ = true;
  }
  return test_stats_;
}

const GaussianStats& FmnistEvaluator::class_stats(int label) {
  GaussianStats& s = class_stats_.at(static_cast<size_t>(label));
  if (s.count == 0) {
    const FashionMnist test = FashionMnist::load(data_dir_, "test");
    const at::Tensor idx = test.labels.eq(label).nonzero().reshape({-1});
    s = feature_stats(features(to_model_range(test.images.index_select(0, idx), 32)));
  }
  return s;
}

QualityReport FmnistEvaluator::evaluate(const at::Tensor& images, const at::Tensor& labels) {
  torch::NoGradGuard no_grad;
  const at::Tensor x = images.clamp(-1, 1);
  const at::Tensor f = features(x);
  const at::Tensor probs = at::softmax(classifier_->fc2->forward(f), 1);
  QualityReport r;
  r.num_images = x.size(0);
  r.fid = frechet_distance(feature_stats(f), test_stats());
  const at::Tensor counts = at::bincount(probs.argmax(1), {}, kFashionMnistClasses);
  for (int c = 0; c < kFashionMnistClasses; ++c) r.class_histogram[c] = counts[c].item<int64_t>();
  r.mean_confidence = std::get<0>(probs.max(1)).mean().item<double>();
  if (labels.defined()) {
    if (labels.numel() != x.size(0)) throw std::invalid_argument("evaluate: one label per image");
    const at::Tensor l = labels.reshape({-1}).to(at::kLong).cpu();
    const at::Tensor hit = probs.argmax(1).eq(l);
    r.class_accuracy = hit.to(at::kDouble).mean().item<double>();
    for (int c = 0; c < kFashionMnistClasses; ++c) {
      const at::Tensor idx = l.eq(c).nonzero().reshape({-1});
      PerClassQuality& q = r.per_class[static_cast<size_t>(c)];
      q.count = idx.numel();
      if (q.count == 0) continue;
      q.accuracy = hit.index_select(0, idx).to(at::kDouble).mean().item<double>();
      if (q.count >= 2) q.fid = frechet_distance(feature_stats(f.index_select(0, idx)), class_stats(c));
    }
  }
  return r;
}

double FmnistEvaluator::train_vs_test_fid(int64_t count) {
  const FashionMnist train = FashionMnist::load(data_dir_, "train");
  const at::Tensor x = to_model_range(train.images.narrow(0, 0, std::min<int64_t>(count, train.images.size(0))), 32);
  return frechet_distance(feature_stats(features(x)), test_stats());
}

}  // namespace qdm
