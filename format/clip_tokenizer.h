// The CLIP tokenizer of a diffusers pipeline's tokenizer/ folder: byte-level BPE over
// vocab.json + merges.txt, giving the ids of transformers' CLIPTokenizer(Fast) on the same files.
// Text is NFC-normalised, runs of white space become one space, and it is lower-cased (full
// Unicode case mapping); the pre-tokenizer splits it by CLIP's pattern
//   <|startoftext|> | <|endoftext|> | 's 't 're 've 'm 'll 'd | \p{L}+ | \p{N} | [^\s\p{L}\p{N}]+
// each piece's UTF-8 bytes map to printable symbols (GPT-2's byte-to-unicode table), the last
// symbol gets "</w>", and merges apply lowest rank first. HTML entities are kept as written (as
// the fast tokenizer does; the slow one without ftfy does not unescape them either).
// Torch-free: the scheduler validates uploads with it and the sampler encodes prompts.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace qdm {

struct TokenizedPrompt {
  std::vector<int64_t> ids;  // begin + tokens + end, padded to max_length
  int tokens = 0;            // ids before padding (begin and end included)
  bool truncated = false;    // the prompt had more than max_length - 2 tokens
};

class ClipTokenizer {
 public:
  // vocab: symbol string -> id; merges: pairs in rank order.
  ClipTokenizer(std::unordered_map<std::string, int64_t> vocab, std::vector<std::pair<std::string, std::string>> merges,
                int max_length = 77, const std::string& bos = "<|startoftext|>", const std::string& eos = "<|endoftext|>",
                const std::string& pad = "<|endoftext|>", const std::string& unk = "<|endoftext|>");

  // Reads DIR/vocab.json, DIR/merges.txt and, when present, tokenizer_config.json and
  // special_tokens_map.json (model_max_length, bos/eos/pad/unk tokens). Errors name the file.
  static ClipTokenizer load(const std::string& dir);
  // The same from any store of those files: `read(file)` gives a file's contents ("vocab.json",
  // "merges.txt", ...) or nullopt when absent. Errors name tokenizer/<file>.
  static ClipTokenizer from_files(const std::function<std::optional<std::string>(const std::string& file)>& read);

  // The BPE ids of the text, without begin/end tokens.
  std::vector<int64_t> encode(const std::string& text) const;
  // What a Stable Diffusion pipeline feeds its text encoder: padding="max_length",
  // truncation=True.
  TokenizedPrompt encode_padded(const std::string& text) const;
  // The text of ids (symbols joined, "</w>" read as a space), for messages and tests.
  std::string decode(const std::vector<int64_t>& ids) const;

  // The pieces the pre-tokenizer cuts the normalised text into (UTF-8).
  static std::vector<std::string> pre_tokenize(const std::string& text);
  // NFC, white space runs to one space, trimmed, lower-cased.
  static std::string normalize(const std::string& text);

  int max_length() const { return max_length_; }
  int64_t bos_id() const { return bos_; }
  int64_t eos_id() const { return eos_; }
  int64_t pad_id() const { return pad_; }
  size_t vocab_size() const { return vocab_.size(); }

 private:
  std::vector<std::string> bpe(const std::string& symbols_utf8) const;
  int64_t id_of(const std::string& token, const char* role) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<int64_t, std::string> inverse_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
  int max_length_;
  int64_t bos_, eos_, pad_, unk_;
};

// GPT-2's table: the printable symbol (UTF-8) standing for each byte.
const std::vector<std::string>& bytes_to_symbols();
// The first 512 entries of a CLIP vocabulary, in CLIP's order: the byte symbols (printable bytes
// first), then the same with "</w>". Merged symbols follow in merge order, then
// <|startoftext|> and <|endoftext|>.
std::vector<std::string> clip_base_vocab();

}  // namespace qdm
