#include "engine/train/bpe_learner.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "format/clip_tokenizer.h"

namespace qdm {

std::vector<std::pair<std::string, std::string>> learn_bpe_merges(const std::vector<std::string>& corpus, int merges) {
  const auto& symbols = bytes_to_symbols();
  std::map<std::vector<std::string>, long> words;
  for (const auto& text : corpus)
    for (const auto& piece : ClipTokenizer::pre_tokenize(ClipTokenizer::normalize(text))) {
      std::vector<std::string> w;
      for (unsigned char b : piece) w.push_back(symbols[b]);
      if (w.empty()) continue;
      w.back() += "</w>";
      ++words[w];
    }
  std::vector<std::pair<std::vector<std::string>, long>> ws(words.begin(), words.end());
  std::vector<std::pair<std::string, std::string>> out;
  while (static_cast<int>(out.size()) < merges) {
    std::map<std::pair<std::string, std::string>, long> counts;
    for (const auto& [w, n] : ws)
      for (size_t i = 0; i + 1 < w.size(); ++i) counts[{w[i], w[i + 1]}] += n;
    const std::pair<std::string, std::string>* best = nullptr;
    long best_n = 1;
    for (const auto& [pair, n] : counts)
      if (n > best_n) {  // map order: ties keep the smaller pair
        best_n = n;
        best = &pair;
      }
    if (!best) break;
    const auto merge = *best;
    out.push_back(merge);
    for (auto& [w, n] : ws) {
      std::vector<std::string> merged;
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == merge.first && w[i + 1] == merge.second) {
          merged.push_back(merge.first + merge.second);
          i += 2;
        } else {
          merged.push_back(w[i++]);
        }
      }
      w.swap(merged);
    }
  }
  return out;
}

void write_clip_tokenizer(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& merges,
                          int model_max_length) {
  std::filesystem::create_directories(dir);
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  int64_t id = 0;
  for (const auto& s : clip_base_vocab()) vocab[s] = id++;
  for (const auto& [a, b] : merges)
    if (!vocab.contains(a + b)) vocab[a + b] = id++;
  vocab["<|startoftext|>"] = id++;
  vocab["<|endoftext|>"] = id++;
  std::ofstream(dir + "/vocab.json") << vocab.dump() << "\n";
  std::ofstream m(dir + "/merges.txt");
  m << "#version: 0.2\n";
  for (const auto& [a, b] : merges) m << a << " " << b << "\n";
  const nlohmann::ordered_json specials = {{"bos_token", "<|startoftext|>"},
                                           {"eos_token", "<|endoftext|>"},
                                           {"pad_token", "<|endoftext|>"},
                                           {"unk_token", "<|endoftext|>"}};
  std::ofstream(dir + "/special_tokens_map.json") << specials.dump(2) << "\n";
  nlohmann::ordered_json config = specials;
  config["tokenizer_class"] = "CLIPTokenizer";
  config["model_max_length"] = model_max_length;
  config["do_lower_case"] = true;
  config["add_prefix_space"] = false;
  std::ofstream(dir + "/tokenizer_config.json") << config.dump(2) << "\n";
}

}  // namespace qdm
