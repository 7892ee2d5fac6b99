#include "engine/train/text_encoder_trainer.h"

#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/data/captions.h"
#include "engine/data/fashion_mnist.h"
#include "engine/model/clip_text_model.h"
#include "engine/train/bpe_learner.h"
#include "engine/util/threads.h"
#include "format/clip_tokenizer.h"

namespace qdm {
namespace fs = std::filesystem;

namespace {

// The encoder with its class head, trained together.
class TextClassifierImpl : public torch::nn::Module {
 public:
  TextClassifierImpl(const ClipTextConfig& c, int classes) {
    text = register_module("text", ClipTextModel(c));
    head = register_module("head", torch::nn::Linear(c.hidden_size, classes));
  }
  // ids (N, L), eos positions (N) -> logits (N, classes)
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& eos) {
    const at::Tensor states = text->forward(ids);
    const at::Tensor pooled = states.index({at::arange(ids.size(0)), eos});
    return head->forward(pooled);
  }
  ClipTextModel text{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(TextClassifier);

// Half the captions get one to three made-up words at random places: the encoder learns to find
// the class in phrasing it has not seen rather than memorise the templates.
std::string augment(const std::string& caption, std::mt19937_64& rng) {
  if (std::uniform_real_distribution<>(0, 1)(rng) < 0.5) return caption;
  std::vector<std::string> words;
  size_t start = 0;
  while (start <= caption.size()) {
    const size_t end = std::min(caption.find(' ', start), caption.size());
    words.push_back(caption.substr(start, end - start));
    start = end + 1;
  }
  const int extra = std::uniform_int_distribution<>(1, 3)(rng);
  for (int k = 0; k < extra; ++k) {
    std::string w;
    const int len = std::uniform_int_distribution<>(2, 8)(rng);
    for (int i = 0; i < len; ++i) w += static_cast<char>('a' + std::uniform_int_distribution<>(0, 25)(rng));
    words.insert(words.begin() + std::uniform_int_distribution<size_t>(0, words.size())(rng), w);
  }
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

struct Batch {
  at::Tensor ids, eos, labels;
};

Batch encode(const ClipTokenizer& tok, const std::vector<std::string>& captions, const std::vector<int64_t>& labels) {
  const int64_t n = static_cast<int64_t>(captions.size()), len = tok.max_length();
  Batch b{at::empty({n, len}, at::kLong), at::empty({n}, at::kLong), at::tensor(labels, at::kLong)};
  auto ids = b.ids.accessor<int64_t, 2>();
  auto eos = b.eos.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    const TokenizedPrompt p = tok.encode_padded(captions[static_cast<size_t>(i)]);
    for (int64_t j = 0; j < len; ++j) ids[i][j] = p.ids[static_cast<size_t>(j)];
    eos[i] = p.tokens - 1;
  }
  return b;
}

}  // namespace

ClipTextConfig fmnist_text_encoder_config(int vocab_size, int max_length) {
  ClipTextConfig c;
  c.vocab_size = vocab_size;
  c.hidden_size = 64;
  c.intermediate_size = 256;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.max_position_embeddings = max_length;
  c.hidden_act = "quick_gelu";
  return c;
}

int64_t train_text_encoder(const TextEncoderTrainOptions& o, const std::function<bool(const TrainingStep&)>& on_log) {
  set_compute_threads(o.threads);
  const std::string tok_dir = o.loop.out_dir + "/tokenizer", enc_dir = o.loop.out_dir + "/text_encoder";
  if (!fs::exists(tok_dir + "/vocab.json")) {
    std::vector<std::string> corpus;
    for (int label = 0; label < kFashionMnistClasses; ++label)
      for (auto& c : all_captions(label, CaptionSet::kTraining)) corpus.push_back(std::move(c));
    write_clip_tokenizer(tok_dir, learn_bpe_merges(corpus, o.merges), o.max_length);
  }
  const ClipTokenizer tok = ClipTokenizer::load(tok_dir);
  const ClipTextConfig config = fmnist_text_encoder_config(static_cast<int>(tok.vocab_size()), tok.max_length());
  torch::manual_seed(o.loop.seed);
  TextClassifier model(config, kFashionMnistClasses);

  // A fixed held-out set: every held-out phrasing of every class.
  std::vector<std::string> held_captions;
  std::vector<int64_t> held_labels;
  for (int label = 0; label < kFashionMnistClasses; ++label)
    for (auto& c : all_captions(label, CaptionSet::kHeldOut)) {
      held_captions.push_back(std::move(c));
      held_labels.push_back(label);
    }
  const Batch held = encode(tok, held_captions, held_labels);

  auto loss = [&](at::Generator& gen, std::map<std::string, double>& extras) {
    // Labels and caption choices come from the checkpointed generator.
    const at::Tensor labels = at::randint(kFashionMnistClasses, {o.batch_size}, gen, at::kLong);
    const at::Tensor seeds = at::randint(1LL << 62, {o.batch_size}, gen, at::kLong);
    std::vector<std::string> captions;
    std::vector<int64_t> ls;
    for (int i = 0; i < o.batch_size; ++i) {
      std::mt19937_64 rng(static_cast<uint64_t>(seeds[i].item<int64_t>()));
      ls.push_back(labels[i].item<int64_t>());
      captions.push_back(augment(make_caption(static_cast<int>(ls.back()), rng, CaptionSet::kTraining), rng));
    }
    const Batch b = encode(tok, captions, ls);
    const at::Tensor logits = model->forward(b.ids, b.eos);
    const at::Tensor l = at::cross_entropy_loss(logits, b.labels);
    extras["accuracy"] = (logits.argmax(1) == b.labels).to(at::kFloat).mean().item<double>();
    return l;
  };
  auto write = [&](torch::nn::Module&) {
    torch::NoGradGuard no_grad;
    model->eval();
    const double acc = (model->forward(held.ids, held.eos).argmax(1) == held.labels).to(at::kFloat).mean().item<double>();
    save_text_encoder(enc_dir, *model->text);
    std::ofstream(enc_dir + "/report.json")
        << nlohmann::json{{"held_out_class_accuracy", acc}, {"held_out_captions", held_captions.size()}}.dump(2) << "\n";
    model->train();
  };
  TrainingLoopOptions loop = o.loop;  // the checkpoint and log live in text_encoder/
  loop.out_dir = enc_dir;
  return run_training_loop(*model, nullptr, loop, loss, write, on_log);
}

}  // namespace qdm
