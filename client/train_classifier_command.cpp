// qdm train-classifier: the Fashion-MNIST CNN whose features FID-FMNIST uses.
#include <spdlog/spdlog.h>

#include "client/commands.h"
#include "engine/data/fashion_mnist.h"
#include "engine/eval/classifier.h"
#include "engine/util/threads.h"

namespace qdm::cli {

void add_train_classifier_command(CLI::App& app) {
  auto o = std::make_shared<ClassifierTrainOptions>();
  o->data_dir = default_fashion_mnist_dir();
  o->out_dir = "models/fmnist-classifier";
  auto* cmd = app.add_subcommand("train-classifier", "Train the Fashion-MNIST feature classifier used by qdm eval");
  cmd->add_option("--out", o->out_dir, "Output folder")->capture_default_str();
  cmd->add_option("--data", o->data_dir, "Fashion-MNIST folder")->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "Epochs")->capture_default_str();
  cmd->add_option("--batch", o->batch_size, "Batch size")->capture_default_str();
  cmd->add_option("--lr", o->lr, "Adam learning rate")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  cmd->callback([o] {
    set_compute_threads();
    const double acc = train_classifier(*o, [](int epoch, int step, int steps, double loss) {
      spdlog::info("epoch {} step {}/{} loss {:.4f}", epoch + 1, step, steps, loss);
    });
    spdlog::info("test accuracy {:.4f}; wrote {}", acc, o->out_dir);
  });
}

}  // namespace qdm::cli
