// TMPQ-DM's evolutionary search over a quantizer bank: candidates within the budget (BitOPs and,
// optionally, the measured time of qdm's kernels), fitness = the distance of the candidate's
// images (its schedule, on the integer kernels' execution plan when it supports the model, else
// the simulation) to the fp32 model's on fixed seeds — in the evaluator's classifier features
// when the classifier is there, else in pixels — the best few re-ranked by FID-FMNIST at the
// end. Seeded and reproducible; each finished generation is saved to the state folder and a
// rerun resumes from it.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/quant/tmpq/latency_table.h"
#include "engine/quant/tmpq/quantizer_bank.h"

namespace qdm::tmpq {

struct SearchOutcome {
  Candidate best;
  double fitness = 0;  // its proxy
  std::string proxy;   // "classifier features" or "pixels"
  double fid = -1;     // its FID-FMNIST when ranked by it
  nlohmann::json history = nlohmann::json::array();  // per generation: best, median, budget of the best
  std::vector<std::pair<Candidate, double>> final_population;  // sorted by fitness
  int resumed_from = 0;  // the generation a saved state resumed at (0: fresh)
};

using SearchProgress = std::function<bool(const std::string& stage, int done, int total, double loss)>;

SearchOutcome search(const DiffusionModel& model, const QuantizerBank& bank, QuantizedUNet& q, const LatencyTable& latency,
                     const RecipeOptions& options, const RecipeEnvironment& env, const SearchProgress& progress);

// A scatter plot (RGB PNG) of the final population's fitness against BitOPs relative to the
// all-6-bit model, the best in red; axis ranges in the PNG's text chunks.
std::vector<uint8_t> plot_population(const SearchOutcome& outcome, const QuantizerBank& bank);

}  // namespace qdm::tmpq
