#include "engine/data/captions.h"

#include <stdexcept>

namespace qdm {
namespace {

const std::vector<ClassNouns>& nouns(CaptionSet set) {
  static const std::vector<ClassNouns> training = {
      {{"t-shirt", "tee", "top", "tshirt"}, {"t-shirts", "tees", "tops", "tshirts"}},
      {{"pair of trousers", "pair of pants", "pair of jeans", "trouser"}, {"trousers", "pants", "jeans", "slacks"}},
      {{"pullover", "sweater", "jumper"}, {"pullovers", "sweaters", "jumpers"}},
      {{"dress", "gown", "frock"}, {"dresses", "gowns", "frocks"}},
      {{"coat", "jacket", "overcoat"}, {"coats", "jackets", "overcoats"}},
      {{"sandal", "flip-flop", "strappy sandal"}, {"sandals", "flip-flops", "strappy sandals"}},
      {{"shirt", "blouse", "button-down shirt"}, {"shirts", "blouses", "button-down shirts"}},
      {{"sneaker", "running shoe", "trainer"}, {"sneakers", "running shoes", "trainers"}},
      {{"bag", "handbag", "purse"}, {"bags", "handbags", "purses"}},
      {{"ankle boot", "boot", "bootie"}, {"ankle boots", "boots", "booties"}},
  };
  // Held out: the same nouns (a class is named as users name it) in phrasing never trained on
  // (caption_templates(kHeldOut)).
  (void)set;
  return training;
}

std::string article(const std::string& noun) {
  const char c = noun.empty() ? 'x' : noun[0];
  return (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u') ? "an" : "a";
}

std::string fill(const std::string& tmpl, const std::string& singular, const std::string& plural) {
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl.compare(i, 3, "{s}") == 0) {
      // "a {s}" / "an {s}" written as "{a} {s}" in templates
      out += singular;
      i += 2;
    } else if (tmpl.compare(i, 3, "{a}") == 0) {
      out += article(singular);
      i += 2;
    } else if (tmpl.compare(i, 3, "{p}") == 0) {
      out += plural;
      i += 2;
    } else {
      out += tmpl[i];
    }
  }
  return out;
}

}  // namespace

const ClassNouns& class_nouns(int label, CaptionSet set) {
  const auto& all = nouns(set);
  if (label < 0 || label >= static_cast<int>(all.size())) throw std::out_of_range("caption: no class " + std::to_string(label));
  return all[static_cast<size_t>(label)];
}

const std::vector<std::string>& caption_templates(CaptionSet set) {
  static const std::vector<std::string> training = {
      "{a} {s}", "{s}", "{p}", "a photo of {a} {s}", "a picture of {a} {s}", "an image of {a} {s}",
      "a photo of {p}", "{a} {s} on white", "{p} on a white background", "a black and white photo of {a} {s}",
      "a grey {s}", "a product photo of {a} {s}", "a small {s}", "the {s}", "a low resolution photo of {a} {s}",
      "a centered {s}", "some {p}", "{a} {s} seen from the front", "a drawing of {a} {s}", "a cropped photo of the {s}",
  };
  static const std::vector<std::string> held_out = {
      "i would like to see {a} {s}", "show me {p}", "a catalog shot showing one {s}", "{s}, plain background",
      "an illustration of {a} {s}", "here is {a} {s} for sale", "my favourite {s}", "generate {a} {s} please",
  };
  return set == CaptionSet::kTraining ? training : held_out;
}

std::string make_caption(int label, std::mt19937_64& rng, CaptionSet set) {
  const ClassNouns& n = class_nouns(label, set);
  const auto& templates = caption_templates(set);
  const std::string& t = templates[std::uniform_int_distribution<size_t>(0, templates.size() - 1)(rng)];
  const size_t k = std::uniform_int_distribution<size_t>(0, n.singular.size() - 1)(rng);
  return fill(t, n.singular[k], n.plural[k]);
}

void evaluation_prompts(int n, CaptionSet set, uint64_t seed, std::vector<std::string>& prompts, std::vector<int64_t>& labels) {
  prompts.clear();
  labels.clear();
  for (int i = 0; i < n; ++i) {
    std::mt19937_64 rng(seed + static_cast<uint64_t>(i));
    labels.push_back(i % 10);
    prompts.push_back(make_caption(i % 10, rng, set));
  }
}

std::vector<std::string> all_captions(int label, CaptionSet set) {
  const ClassNouns& n = class_nouns(label, set);
  std::vector<std::string> out;
  for (const auto& t : caption_templates(set))
    for (size_t k = 0; k < n.singular.size(); ++k) out.push_back(fill(t, n.singular[k], n.plural[k]));
  return out;
}

}  // namespace qdm
