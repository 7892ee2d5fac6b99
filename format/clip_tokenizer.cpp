#include "format/clip_tokenizer.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "format/json_fields.h"

namespace qdm {
namespace {

const char* const kStart = "<|startoftext|>";
const char* const kEnd = "<|endoftext|>";
// transformers' CLIPTokenizer reads at most this many merges (after the version line).
constexpr size_t kMaxMerges = 49152 - 256 - 2;

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string utf8(const icu::UnicodeString& s) {
  std::string out;
  s.toUTF8String(out);
  return out;
}

// Code points with their byte ranges.
struct CodePoint {
  UChar32 c;
  int32_t begin, end;
};
std::vector<CodePoint> code_points(const std::string& s) {
  std::vector<CodePoint> out;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const int32_t n = static_cast<int32_t>(s.size());
  for (int32_t i = 0; i < n;) {
    const int32_t begin = i;
    UChar32 c;
    U8_NEXT(p, i, n, c);
    if (c < 0) c = 0xFFFD;  // ill-formed UTF-8: one replacement per bad sequence
    out.push_back({c, begin, i});
  }
  return out;
}

bool is_letter(UChar32 c) { return (U_GET_GC_MASK(c) & U_GC_L_MASK) != 0; }
bool is_number(UChar32 c) { return (U_GET_GC_MASK(c) & U_GC_N_MASK) != 0; }
bool is_space(UChar32 c) { return u_isUWhiteSpace(c) != 0; }

// A special token's content from tokenizer_config.json / special_tokens_map.json: a string or
// {"content": ...}.
void read_token(const nlohmann::json& j, const char* key, std::string& out) {
  if (!j.contains(key) || j[key].is_null()) return;
  const auto& v = j[key];
  if (v.is_string()) out = v.get<std::string>();
  else if (v.is_object() && v.contains("content") && v["content"].is_string()) out = v["content"].get<std::string>();
}

}  // namespace

const std::vector<std::string>& bytes_to_symbols() {
  static const std::vector<std::string> table = [] {
    std::vector<UChar32> cs(256, 0);
    std::vector<bool> printable(256, false);
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b) cs[b] = printable[b] ? b : 256 + n++;
    std::vector<std::string> out(256);
    for (int b = 0; b < 256; ++b) out[b] = utf8(icu::UnicodeString(cs[b]));
    return out;
  }();
  return table;
}

std::vector<std::string> clip_base_vocab() {
  std::vector<std::string> symbols;
  for (int pass = 0; pass < 2; ++pass)
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      if (printable == (pass == 0)) symbols.push_back(bytes_to_symbols()[static_cast<size_t>(b)]);
    }
  std::vector<std::string> out = symbols;
  for (const auto& s : symbols) out.push_back(s + "</w>");
  return out;
}

ClipTokenizer::ClipTokenizer(std::unordered_map<std::string, int64_t> vocab,
                             std::vector<std::pair<std::string, std::string>> merges, int max_length,
                             const std::string& bos, const std::string& eos, const std::string& pad, const std::string& unk)
    : vocab_(std::move(vocab)), max_length_(max_length) {
  if (max_length_ < 2) throw ConfigError("tokenizer: model_max_length must be at least 2");
  for (const auto& [token, id] : vocab_) inverse_.emplace(id, token);
  for (size_t i = 0; i < merges.size(); ++i) ranks_.emplace(merges[i], static_cast<int>(i));
  bos_ = id_of(bos, "bos_token");
  eos_ = id_of(eos, "eos_token");
  pad_ = id_of(pad, "pad_token");
  unk_ = id_of(unk, "unk_token");
}

int64_t ClipTokenizer::id_of(const std::string& token, const char* role) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) throw ConfigError(std::string("tokenizer: field '") + role + "' names a token vocab.json lacks");
  return it->second;
}

ClipTokenizer ClipTokenizer::load(const std::string& dir) {
  return from_files([&dir](const std::string& file) { return read_file(dir + "/" + file); });
}

ClipTokenizer ClipTokenizer::from_files(const std::function<std::optional<std::string>(const std::string& file)>& read) {
  auto required = [&read](const std::string& file) {
    std::optional<std::string> text = read(file);
    if (!text) throw ConfigError("tokenizer/" + file + ": missing or unreadable");
    return std::move(*text);
  };
  std::unordered_map<std::string, int64_t> vocab;
  {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(required("vocab.json"));
    } catch (const nlohmann::json::exception&) {
      throw ConfigError("tokenizer/vocab.json: not valid JSON");
    }
    if (!j.is_object()) throw ConfigError("tokenizer/vocab.json: not a JSON object of token -> id");
    for (const auto& [token, id] : j.items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) throw ConfigError("tokenizer/vocab.json: ids must be non-negative integers");
      vocab.emplace(token, id.get<int64_t>());
    }
  }
  std::vector<std::pair<std::string, std::string>> merges;
  {
    std::istringstream in(required("merges.txt"));
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (first) {  // transformers skips the first line (the "#version" header) whatever it holds
        first = false;
        continue;
      }
      if (line.empty()) continue;
      if (merges.size() == kMaxMerges) break;
      const auto space = line.find(' ');
      if (space == std::string::npos || space == 0 || line.find(' ', space + 1) != std::string::npos)
        throw ConfigError("tokenizer/merges.txt: line " + std::to_string(merges.size() + 2) + " is not two symbols");
      merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    }
  }
  int max_length = 77;
  std::string bos = kStart, eos = kEnd, pad = kEnd, unk = kEnd;
  for (const char* name : {"/special_tokens_map.json", "/tokenizer_config.json"}) {
    const std::optional<std::string> text = read(name + 1);
    if (!text) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(*text);
    } catch (const nlohmann::json::exception&) {
      throw ConfigError(std::string("tokenizer") + name + ": not valid JSON");
    }
    read_token(j, "bos_token", bos);
    read_token(j, "eos_token", eos);
    read_token(j, "pad_token", pad);
    read_token(j, "unk_token", unk);
    if (j.contains("model_max_length") && j["model_max_length"].is_number()) {
      const double m = j["model_max_length"].get<double>();
      if (m < 2 || m > 4096) JsonFields::fail(std::string("tokenizer") + name, "model_max_length", "must be in [2, 4096]");
      max_length = static_cast<int>(m);
    }
  }
  return ClipTokenizer(std::move(vocab), std::move(merges), max_length, bos, eos, pad, unk);
}

std::string ClipTokenizer::normalize(const std::string& text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  icu::UnicodeString s = icu::UnicodeString::fromUTF8(text);
  if (U_SUCCESS(status)) {
    icu::UnicodeString normalized = nfc->normalize(s, status);
    if (U_SUCCESS(status)) s = normalized;
  }
  // White-space runs to one space, then trimmed.
  icu::UnicodeString collapsed;
  bool pending_space = false;
  for (int32_t i = 0; i < s.length();) {
    const UChar32 c = s.char32At(i);
    i += U16_LENGTH(c);
    if (is_space(c)) {
      pending_space = collapsed.length() > 0;
      continue;
    }
    if (pending_space) collapsed.append(static_cast<UChar>(' '));
    pending_space = false;
    collapsed.append(c);
  }
  collapsed.toLower(icu::Locale::getRoot());
  return utf8(collapsed);
}

std::vector<std::string> ClipTokenizer::pre_tokenize(const std::string& text) {
  static const char* const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  std::vector<std::string> out;
  const std::vector<CodePoint> cps = code_points(text);
  const size_t n = cps.size();
  for (size_t i = 0; i < n;) {
    const UChar32 c = cps[i].c;
    const int32_t at = cps[i].begin;
    auto starts_with = [&](const char* s) { return text.compare(static_cast<size_t>(at), std::strlen(s), s) == 0; };
    auto take_bytes = [&](size_t bytes) {  // a piece of `bytes` bytes from here
      out.push_back(text.substr(static_cast<size_t>(at), bytes));
      const int32_t end = at + static_cast<int32_t>(bytes);
      while (i < n && cps[i].begin < end) ++i;
    };
    if (starts_with(kStart)) {
      take_bytes(std::strlen(kStart));
      continue;
    }
    if (starts_with(kEnd)) {
      take_bytes(std::strlen(kEnd));
      continue;
    }
    if (c == '\'') {
      const char* hit = nullptr;
      for (const char* k : contractions)
        if (starts_with(k)) {
          hit = k;
          break;
        }
      if (hit) {
        take_bytes(std::strlen(hit));
        continue;
      }
    }
    size_t j = i + 1;
    if (is_space(c)) {
      i = j;
      continue;
    }
    if (is_letter(c)) {
      while (j < n && is_letter(cps[j].c)) ++j;
    } else if (!is_number(c)) {
      while (j < n && !is_space(cps[j].c) && !is_letter(cps[j].c) && !is_number(cps[j].c)) ++j;
    }
    const int32_t end = j < n ? cps[j].begin : static_cast<int32_t>(text.size());
    out.push_back(text.substr(static_cast<size_t>(at), static_cast<size_t>(end - at)));
    i = j;
  }
  return out;
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& piece) const {
  const auto& symbols = bytes_to_symbols();
  std::vector<std::string> word;
  for (unsigned char b : piece) word.push_back(symbols[b]);
  if (word.empty()) return word;
  word.back() += "</w>";
  while (word.size() > 1) {
    int best = INT_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = ranks_.find({word[i], word[i + 1]});
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == INT_MAX) break;
    const std::string first = word[at], second = word[at + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i]);
        ++i;
      }
    }
    word.swap(merged);
  }
  return word;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  // Special tokens written in the text are cut out first, as transformers does.
  size_t start = 0;
  while (start <= text.size()) {
    size_t next = std::string::npos, len = 0;
    for (const char* special : {kStart, kEnd}) {
      const size_t at = text.find(special, start);
      if (at < next) {
        next = at;
        len = std::strlen(special);
      }
    }
    const std::string segment = text.substr(start, next == std::string::npos ? std::string::npos : next - start);
    for (const std::string& piece : pre_tokenize(normalize(segment))) {
      if (piece == kStart || piece == kEnd) {
        ids.push_back(id_of(piece, "special token"));
        continue;
      }
      for (const std::string& token : bpe(piece)) {
        const auto it = vocab_.find(token);
        ids.push_back(it == vocab_.end() ? unk_ : it->second);
      }
    }
    if (next == std::string::npos) break;
    ids.push_back(id_of(text.substr(next, len), "special token"));
    start = next + len;
  }
  return ids;
}

TokenizedPrompt ClipTokenizer::encode_padded(const std::string& text) const {
  TokenizedPrompt out;
  std::vector<int64_t> body = encode(text);
  const size_t room = static_cast<size_t>(max_length_ - 2);
  if (body.size() > room) {
    body.resize(room);
    out.truncated = true;
  }
  out.ids.reserve(static_cast<size_t>(max_length_));
  out.ids.push_back(bos_);
  out.ids.insert(out.ids.end(), body.begin(), body.end());
  out.ids.push_back(eos_);
  out.tokens = static_cast<int>(out.ids.size());
  out.ids.resize(static_cast<size_t>(max_length_), pad_);
  return out;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string symbols;
  for (int64_t id : ids) {
    const auto it = inverse_.find(id);
    if (it != inverse_.end()) symbols += it->second;
  }
  // Symbols back to bytes.
  static const std::map<std::string, unsigned char> back = [] {
    std::map<std::string, unsigned char> m;
    const auto& t = bytes_to_symbols();
    for (int b = 0; b < 256; ++b) m.emplace(t[b], static_cast<unsigned char>(b));
    return m;
  }();
  std::string out;
  const std::vector<CodePoint> cps = code_points(symbols);
  for (size_t i = 0; i < cps.size(); ++i) {
    if (symbols.compare(static_cast<size_t>(cps[i].begin), 4, "</w>") == 0) {
      out += ' ';
      i += 3;
      continue;
    }
    const std::string sym = symbols.substr(static_cast<size_t>(cps[i].begin), static_cast<size_t>(cps[i].end - cps[i].begin));
    const auto it = back.find(sym);
    if (it != back.end()) out += static_cast<char>(it->second);
    else out += sym;  // special tokens' characters pass through
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace qdm
