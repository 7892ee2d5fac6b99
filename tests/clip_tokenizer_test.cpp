// The CLIP tokenizer against CLIP's own vocabulary: ids published by others for that vocabulary,
// and an independent reference (tests/reference/clip_tokenizer_reference.py, Python's `regex`
// module) on awkward prompts: case, punctuation, digits, non-ASCII, over-long.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "format/clip_tokenizer.h"
#include "format/json_fields.h"

namespace qdm {
namespace {

namespace fs = std::filesystem;

std::string gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  return out;
}

// transformers' tokenizer folder for CLIP (openai/clip-vit-large-patch14, as Stable Diffusion
// 1.x ships it), made from CLIP's merges: vocab = 256 byte symbols, the same with "</w>", one
// token per merge, then the two special tokens.
std::string clip_folder(int max_length = 77, const std::string& pad = "<|endoftext|>") {
  static int counter = 0;
  const std::string dir = (fs::temp_directory_path() / ("qdm_clip_tok_" + std::to_string(::getpid()) + "_" + std::to_string(counter++))).string();
  fs::create_directories(dir);
  std::istringstream lines(gunzip(std::string(QDM_SOURCE_DIR) + "/tests/data/clip_bpe_simple_vocab_16e6.txt.gz"));
  std::string line;
  std::getline(lines, line);  // the file's own header
  std::vector<std::string> merges;
  while (merges.size() < 49152 - 256 - 2 && std::getline(lines, line)) merges.push_back(line);
  nlohmann::json vocab = nlohmann::json::object();
  int64_t id = 0;
  for (const auto& s : clip_base_vocab()) vocab[s] = id++;
  std::ofstream m(dir + "/merges.txt");
  m << "#version: 0.2\n";
  for (const auto& merge : merges) {
    m << merge << "\n";
    const auto space = merge.find(' ');
    vocab[merge.substr(0, space) + merge.substr(space + 1)] = id++;
  }
  vocab["<|startoftext|>"] = id++;
  vocab["<|endoftext|>"] = id++;
  std::ofstream(dir + "/vocab.json") << vocab.dump();
  nlohmann::json config = {{"model_max_length", max_length},
                           {"bos_token", {{"content", "<|startoftext|>"}, {"lstrip", false}}},
                           {"eos_token", "<|endoftext|>"},
                           {"pad_token", pad},
                           {"unk_token", "<|endoftext|>"}};
  std::ofstream(dir + "/tokenizer_config.json") << config.dump();
  return dir;
}

class ClipVocab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(clip_folder());
    tok_ = new ClipTokenizer(ClipTokenizer::load(*dir_));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete tok_;
    delete dir_;
  }
  std::vector<int64_t> padded_prefix(const std::string& text) {
    const TokenizedPrompt p = tok_->encode_padded(text);
    return {p.ids.begin(), p.ids.begin() + p.tokens};
  }
  static std::string* dir_;
  static ClipTokenizer* tok_;
};
std::string* ClipVocab::dir_ = nullptr;
ClipTokenizer* ClipVocab::tok_ = nullptr;

// Ids other projects publish for CLIP's vocabulary (from transformers / open_clip).
TEST_F(ClipVocab, GivesPublishedIds) {
  EXPECT_EQ(tok_->vocab_size(), 49408u);
  EXPECT_EQ(tok_->bos_id(), 49406);
  EXPECT_EQ(tok_->eos_id(), 49407);
  using V = std::vector<int64_t>;
  EXPECT_EQ(padded_prefix("a photo of a cat"), (V{49406, 320, 1125, 539, 320, 2368, 49407}));
  EXPECT_EQ(padded_prefix("a photo of a dog"), (V{49406, 320, 1125, 539, 320, 1929, 49407}));
  EXPECT_EQ(padded_prefix("A Photo of a TREE!"), (V{49406, 320, 1125, 539, 320, 2677, 256, 49407}));
  EXPECT_EQ(padded_prefix("it's a cat's toy, running   fast"), (V{49406, 585, 568, 320, 2368, 568, 5988, 267, 2761, 1953, 49407}));
  EXPECT_EQ(padded_prefix("2 dogs and 3 cats"), (V{49406, 273, 3255, 537, 274, 3989, 49407}));
  EXPECT_EQ(padded_prefix("dog on a beach"), (V{49406, 1929, 525, 320, 2117, 49407}));
  EXPECT_EQ(padded_prefix("sunset over mountains"), (V{49406, 3424, 962, 5873, 49407}));
}

TEST_F(ClipVocab, MatchesTheIndependentReferenceOnAwkwardPrompts) {
  std::ifstream f(std::string(QDM_SOURCE_DIR) + "/tests/data/clip_tokenizer_expected.json");
  const auto cases = nlohmann::json::parse(f);
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    const std::string prompt = c["prompt"];
    EXPECT_EQ(tok_->encode(prompt), c["ids"].get<std::vector<int64_t>>()) << "prompt: " << prompt;
  }
}

TEST_F(ClipVocab, PadsAndTruncatesLikeAPipeline) {
  const TokenizedPrompt empty = tok_->encode_padded("");
  ASSERT_EQ(empty.ids.size(), 77u);
  EXPECT_EQ(empty.tokens, 2);
  EXPECT_EQ(empty.ids[0], 49406);
  for (size_t i = 1; i < 77; ++i) EXPECT_EQ(empty.ids[i], 49407);  // the pad token is <|endoftext|> here
  EXPECT_FALSE(empty.truncated);

  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "sneaker ";
  const TokenizedPrompt t = tok_->encode_padded(long_prompt);
  ASSERT_EQ(t.ids.size(), 77u);
  EXPECT_TRUE(t.truncated);
  EXPECT_EQ(t.tokens, 77);
  EXPECT_EQ(t.ids.front(), 49406);
  EXPECT_EQ(t.ids.back(), 49407);
  // Exactly 75 fit: 75 words are not truncated, 76 are.
  std::string fits;
  for (int i = 0; i < 75; ++i) fits += "cat ";
  EXPECT_FALSE(tok_->encode_padded(fits).truncated);
  EXPECT_TRUE(tok_->encode_padded(fits + "cat").truncated);
}

TEST_F(ClipVocab, DecodesWhatItEncodes) {
  EXPECT_EQ(tok_->decode(tok_->encode("An Ankle Boot, on white!")), "an ankle boot , on white !");
  EXPECT_EQ(tok_->decode(tok_->encode("café 🎂")), "café 🎂");
}

TEST(ClipTokenizer, ReadsPaddingAndLengthFromTheConfig) {
  // Stable Diffusion 2.x pads with "!" (id 0) and some pipelines use shorter limits.
  const std::string dir = clip_folder(16, "!");
  const ClipTokenizer tok = ClipTokenizer::load(dir);
  fs::remove_all(dir);
  EXPECT_EQ(tok.max_length(), 16);
  EXPECT_EQ(tok.pad_id(), 0);
  const TokenizedPrompt p = tok.encode_padded("a photo of a cat");
  ASSERT_EQ(p.ids.size(), 16u);
  EXPECT_EQ(p.ids[6], 49407);
  EXPECT_EQ(p.ids[7], 0);
}

TEST(ClipTokenizer, PreTokenizerSplitsLikeClipsPattern) {
  using S = std::vector<std::string>;
  EXPECT_EQ(ClipTokenizer::pre_tokenize("it's 42!?"), (S{"it", "'s", "4", "2", "!?"}));
  EXPECT_EQ(ClipTokenizer::pre_tokenize("!!'s"), (S{"!!'", "s"}));  // the punctuation run takes the quote
  EXPECT_EQ(ClipTokenizer::pre_tokenize("naïve—x"), (S{"naïve", "—", "x"}));
  EXPECT_EQ(ClipTokenizer::normalize("  A\t\nB\u00a0C "), "a b c");
  EXPECT_EQ(ClipTokenizer::normalize("Cafe\u0301"), "caf\u00e9");  // NFC composes
}

TEST(ClipTokenizer, RefusesBrokenFilesNamingThem) {
  const std::string dir = clip_folder();
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\na b c\n";
  try {
    ClipTokenizer::load(dir);
    FAIL() << "accepted a bad merges.txt";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("merges.txt: line 2"), std::string::npos) << e.what();
  }
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\n";
  std::ofstream(dir + "/tokenizer_config.json") << R"({"pad_token": "<|nope|>"})";
  try {
    ClipTokenizer::load(dir);
    FAIL() << "accepted a pad token outside the vocabulary";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pad_token"), std::string::npos) << e.what();
  }
  fs::remove(dir + "/vocab.json");
  EXPECT_THROW(ClipTokenizer::load(dir), ConfigError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qdm
