// A TMPQ-DM candidate (genome): one timestep per group and each searched layer's weight and
// activation bits, with the evolution's operators. Genes hold values (timesteps, bit widths), so a
// candidate reads the same whatever the order of the option lists.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <random>
#include <string>
#include <vector>

namespace qdm::tmpq {

struct Candidate {
  std::vector<int> timesteps;  // descending: timesteps[i] from group N - 1 - i
  std::vector<int> wbits;      // per searched layer
  std::vector<int> abits;      // per searched layer (ignored where its input stays fp32)
  std::string key() const;     // identity, for the fitness cache
  nlohmann::json to_json() const;
  static Candidate from_json(const nlohmann::json& j);
};

// What genes may take: per group (ascending), its candidate timesteps; the bit lists.
struct GeneSpace {
  std::vector<std::vector<int>> group_timesteps;
  std::vector<int> weight_bits, act_bits;
  size_t layers = 0;
};

Candidate random_candidate(const GeneSpace& space, std::mt19937_64& rng);
// Each gene resampled with probability p: a timestep within its group, a bit width from its list.
Candidate mutate(const Candidate& c, const GeneSpace& space, double p, std::mt19937_64& rng);
// Uniform crossover: each gene from either parent.
Candidate crossover(const Candidate& a, const Candidate& b, std::mt19937_64& rng);
// Whether every timestep lies in its own group and every bit width in its list.
bool valid(const Candidate& c, const GeneSpace& space);

}  // namespace qdm::tmpq
