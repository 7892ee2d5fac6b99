#include "engine/quant/tmpq/candidate.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace qdm::tmpq {
namespace {

template <typename T>
const T& pick(const std::vector<T>& v, std::mt19937_64& rng) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

bool coin(double p, std::mt19937_64& rng) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

}  // namespace

std::string Candidate::key() const { return to_json().dump(); }

nlohmann::json Candidate::to_json() const { return {{"timesteps", timesteps}, {"wbits", wbits}, {"abits", abits}}; }

Candidate Candidate::from_json(const nlohmann::json& j) {
  return {j.at("timesteps").get<std::vector<int>>(), j.at("wbits").get<std::vector<int>>(), j.at("abits").get<std::vector<int>>()};
}

Candidate random_candidate(const GeneSpace& s, std::mt19937_64& rng) {
  Candidate c;
  for (auto it = s.group_timesteps.rbegin(); it != s.group_timesteps.rend(); ++it) c.timesteps.push_back(pick(*it, rng));
  for (size_t i = 0; i < s.layers; ++i) {
    c.wbits.push_back(pick(s.weight_bits, rng));
    c.abits.push_back(pick(s.act_bits, rng));
  }
  return c;
}

Candidate mutate(const Candidate& c, const GeneSpace& s, double p, std::mt19937_64& rng) {
  Candidate m = c;
  const size_t groups = s.group_timesteps.size();
  for (size_t i = 0; i < m.timesteps.size(); ++i)
    if (coin(p, rng)) m.timesteps[i] = pick(s.group_timesteps[groups - 1 - i], rng);
  for (size_t i = 0; i < m.wbits.size(); ++i) {
    if (coin(p, rng)) m.wbits[i] = pick(s.weight_bits, rng);
    if (coin(p, rng)) m.abits[i] = pick(s.act_bits, rng);
  }
  return m;
}

Candidate crossover(const Candidate& a, const Candidate& b, std::mt19937_64& rng) {
  Candidate c = a;
  for (size_t i = 0; i < c.timesteps.size(); ++i)
    if (coin(0.5, rng)) c.timesteps[i] = b.timesteps[i];
  for (size_t i = 0; i < c.wbits.size(); ++i) {
    if (coin(0.5, rng)) c.wbits[i] = b.wbits[i];
    if (coin(0.5, rng)) c.abits[i] = b.abits[i];
  }
  return c;
}

bool valid(const Candidate& c, const GeneSpace& s) {
  const size_t groups = s.group_timesteps.size();
  if (c.timesteps.size() != groups || c.wbits.size() != s.layers || c.abits.size() != s.layers) return false;
  for (size_t i = 0; i < groups; ++i) {
    const auto& g = s.group_timesteps[groups - 1 - i];
    if (std::find(g.begin(), g.end(), c.timesteps[i]) == g.end()) return false;
  }
  for (size_t i = 0; i < s.layers; ++i)
    if (std::find(s.weight_bits.begin(), s.weight_bits.end(), c.wbits[i]) == s.weight_bits.end() ||
        std::find(s.act_bits.begin(), s.act_bits.end(), c.abits[i]) == s.act_bits.end())
      return false;
  return true;
}

}  // namespace qdm::tmpq
