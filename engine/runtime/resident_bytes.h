// The bytes a served model keeps resident, by what holds them: the one figure `qdm inspect`,
// `qdm sample`, `qdm eval` and a node's model-load log report, with its breakdown. Torch-free.
#pragma once

#include <cstddef>
#include <map>
#include <string>

namespace qdm {

namespace resident {
inline constexpr const char* kIntWeights = "integer weights";      // packed codes and per-channel scales
inline constexpr const char* kVqWeights = "vq codes and codebooks";
inline constexpr const char* kFp32Weights = "fp32 layer weights";  // conv / linear weights kept in fp32
inline constexpr const char* kFp32Tensors = "biases, norms, embeddings";
inline constexpr const char* kFeatureCache = "temporal feature cache";
inline constexpr const char* kEpsBias = "eps bias maps";
inline constexpr const char* kOther = "weights";  // a model that keeps no breakdown (LibTorch paths)
}  // namespace resident

struct ResidentBytes {
  std::map<std::string, size_t> parts;  // category -> bytes (no zero entries)

  void add(const std::string& what, size_t bytes);
  void remove(const std::string& what, size_t bytes);
  size_t total() const;
  // "1,638,492 B (integer weights 1,512,000, biases, norms, embeddings 50,916, ...)", the
  // largest part first.
  std::string summary() const;
};

}  // namespace qdm
