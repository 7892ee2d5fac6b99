// The quantization options' shared rules (torch-free): fine-tuning's recipe defaults, its JSON and
// its validation, as the command line, the service and the engine all see them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "format/quantize_options.h"
#include "format/recipes.h"

namespace qdm {
namespace {

TEST(FinetuneOptions, TheRecipesDefaultUnlessSet) {
  RecipeOptions o;
  for (const auto& r : recipes()) {
    o.recipe = r.name;
    const bool vq = r.section == RecipeSection::kVq;  // vq and vq+cache: VQDM fine-tunes
    EXPECT_EQ(o.finetune_options().iters, vq ? 600 : 0) << r.name;
    EXPECT_EQ(o.to_json().contains("finetune"), vq) << r.name;
  }
  o.recipe = "vq";
  o.finetune.iters = 0;  // asked for none
  EXPECT_EQ(o.finetune_options().iters, 0);
  EXPECT_FALSE(o.to_json().contains("finetune"));
  o.recipe = "rtn";
  o.finetune.iters = 25;
  const nlohmann::json j = o.to_json();
  ASSERT_TRUE(j.contains("finetune"));
  EXPECT_EQ(j["finetune"]["iters"].get<int>(), 25);
  EXPECT_EQ(j["finetune"]["samples"].get<int>(), FinetuneOptions{}.samples);
}

TEST(FinetuneOptions, ValidationNamesTheOption) {
  RecipeOptions o;
  o.finetune.iters = 10;
  o.validate();
  auto refused = [&](const std::string& fragment) {
    try {
      o.validate();
      ADD_FAILURE() << "accepted; wanted: " << fragment;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  o.finetune.batch = o.finetune.samples + 1;
  refused("finetune batch");
  o.finetune.batch = 4;
  o.finetune.lr = 0;
  refused("finetune lr");
  o.finetune.lr = 1e-3;
  o.finetune.holdout = 0;
  refused("finetune samples and holdout");
  o.finetune.holdout = 4;
  o.finetune.iters = -2;
  refused("finetune iters");
  o.finetune.iters = 0;  // none: the rest is not looked at
  o.finetune.batch = 100000;
  o.validate();
}

// TMPQ's search counts are bounded by the population (a Submit with 2^31 mutations once overflowed
// the search's retry count), and the messages name what to change.
TEST(SearchOptions, EveryCountIsBoundedByThePopulation) {
  SearchOptions s;
  s.validate();
  auto refused = [&](const std::string& fragment) {
    try {
      s.validate();
      ADD_FAILURE() << "accepted; wanted: " << fragment;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    s = SearchOptions{};
  };
  s.mutations = 2147483647;
  refused("mutations and crossovers");
  s.crossovers = s.population + 1;
  refused("mutations and crossovers");
  s.mutations = -1;
  refused("population >= 2");
  s.final_candidates = s.population + 1;
  refused("final_candidates in [1, population]");
  s.final_candidates = 0;
  refused("final_candidates in [1, population]");
  s.mutations = s.crossovers = s.final_candidates = s.population;  // the bounds themselves are legal
  s.validate();
}

}  // namespace
}  // namespace qdm
