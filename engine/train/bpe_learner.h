// Learns a CLIP-style byte-level BPE vocabulary from a corpus (the text-to-image model's
// captions) and writes transformers' tokenizer/ folder for it, which ClipTokenizer and
// transformers' CLIPTokenizer read alike. Torch-free.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace qdm {

// Up to `merges` merges, most frequent pair first (ties: the smaller pair), over the words the
// CLIP pre-tokenizer cuts the normalised texts into; stops when no pair occurs twice.
std::vector<std::pair<std::string, std::string>> learn_bpe_merges(const std::vector<std::string>& corpus, int merges);

// vocab.json (base vocabulary, merged symbols, <|startoftext|>, <|endoftext|>), merges.txt with
// its version line, tokenizer_config.json and special_tokens_map.json (pad = <|endoftext|>).
void write_clip_tokenizer(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& merges,
                          int model_max_length);

}  // namespace qdm
