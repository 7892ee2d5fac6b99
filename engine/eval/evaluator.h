// Quality of generated Fashion-MNIST images in the classifier's feature space: FID-FMNIST
// against the test set, the class histogram and the mean classifier confidence.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "engine/eval/classifier.h"
#include "engine/eval/fid.h"

namespace qdm {

struct PerClassQuality {
  int64_t count = 0;      // images asked for with this label
  double accuracy = 0;    // classified as that label
  double fid = -1;        // against the test images of that class (-1: under 2 images)
};

struct QualityReport {
  int64_t num_images = 0;
  double fid = 0;
  std::array<int64_t, 10> class_histogram{};
  double mean_confidence = 0;
  // With requested labels: the fraction classified as requested, and per class.
  double class_accuracy = -1;  // -1: no labels
  std::array<PerClassQuality, 10> per_class{};
  nlohmann::json to_json() const;
};

class FmnistEvaluator {
 public:
  // classifier_dir: models/fmnist-classifier; data_dir: Fashion-MNIST idx files.
  FmnistEvaluator(const std::string& classifier_dir, const std::string& data_dir);

  at::Tensor features(const at::Tensor& images);  // (N, 1, 32, 32) in [-1, 1] -> (N, 128)
  // labels (N) int64 0..9: the classes the images were generated for (undefined: none).
  QualityReport evaluate(const at::Tensor& images, const at::Tensor& labels = {});
  const GaussianStats& test_stats();
  // FID of `count` training images against the test set: the floor any model can reach.
  double train_vs_test_fid(int64_t count);

 private:
  FashionClassifier classifier_{nullptr};
  std::string data_dir_;
  const GaussianStats& class_stats(int label);
  GaussianStats test_stats_;
  bool have_test_stats_ = false;
  std::array<GaussianStats, 10> class_stats_;
};

}  // namespace qdm
