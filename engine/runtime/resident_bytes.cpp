#include "engine/runtime/resident_bytes.h"

#include <algorithm>
#include <vector>

namespace qdm {
namespace {

std::string grouped(size_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

void ResidentBytes::add(const std::string& what, size_t bytes) {
  if (bytes > 0) parts[what] += bytes;
}

void ResidentBytes::remove(const std::string& what, size_t bytes) {
  auto it = parts.find(what);
  if (it == parts.end()) return;
  it->second -= std::min(it->second, bytes);
  if (it->second == 0) parts.erase(it);
}

size_t ResidentBytes::total() const {
  size_t sum = 0;
  for (const auto& [_, bytes] : parts) sum += bytes;
  return sum;
}

std::string ResidentBytes::summary() const {
  std::vector<std::pair<std::string, size_t>> sorted(parts.begin(), parts.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out = grouped(total()) + " B";
  for (size_t i = 0; i < sorted.size(); ++i)
    out += (i == 0 ? " (" : "; ") + sorted[i].first + " " + grouped(sorted[i].second) + (i + 1 == sorted.size() ? ")" : "");
  return out;
}

}  // namespace qdm
