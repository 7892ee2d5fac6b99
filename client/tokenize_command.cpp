// qdm tokenize: a pipeline's CLIP token ids for prompts, as transformers' CLIPTokenizer gives
// them (begin and end tokens, padded to model_max_length unless --no-padding).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "format/clip_tokenizer.h"

namespace qdm::cli {

void add_tokenize_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto prompts = std::make_shared<std::vector<std::string>>();
  auto json = std::make_shared<bool>(false);
  auto no_padding = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of prompts (a pipeline folder's tokenizer)");
  cmd->add_option("--model", *dir, "Pipeline folder (its tokenizer/), or a tokenizer folder")->required();
  cmd->add_option("--prompt", *prompts, "A prompt; repeat for several")->required();
  cmd->add_flag("--json", *json, "Print a JSON list of id lists");
  cmd->add_flag("--no-padding", *no_padding, "Stop at the end token instead of padding to model_max_length");
  cmd->callback([=] {
    const bool nested = std::filesystem::exists(*dir + "/tokenizer/vocab.json");
    const ClipTokenizer tok = ClipTokenizer::load(nested ? *dir + "/tokenizer" : *dir);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : *prompts) {
      TokenizedPrompt t = tok.encode_padded(p);
      if (*no_padding) t.ids.resize(static_cast<size_t>(t.tokens));
      out.push_back(t.ids);
      if (t.truncated) std::fprintf(stderr, "note: a prompt was truncated to %d tokens\n", tok.max_length());
    }
    if (*json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      for (const auto& ids : out) {
        std::string line;
        for (const auto& id : ids) line += (line.empty() ? "" : " ") + std::to_string(id.get<int64_t>());
        std::printf("%s\n", line.c_str());
      }
    }
  });
}

}  // namespace qdm::cli
