#include "format/memory_estimate.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace qdm {

int64_t MemoryEstimate::total() const {
  int64_t sum = 0;
  for (const auto& [_, bytes] : parts) sum += bytes;
  return sum;
}

std::string format_bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

int64_t parse_bytes(const std::string& text) {
  static const std::pair<const char*, double> units[] = {
      {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
      {"Ki", 1024.0},  {"Mi", 1048576.0},  {"Gi", 1073741824.0},  {"Ti", 1099511627776.0},
      {"KB", 1e3},     {"MB", 1e6},        {"GB", 1e9},           {"TB", 1e12},
      {"k", 1e3},      {"K", 1e3},         {"M", 1e6},            {"G", 1e9}, {"T", 1e12}, {"B", 1.0}};
  const std::string what = "a size in bytes: a number with an optional unit (Ki, Mi, Gi, Ti, KiB..., K, M, G, T)";
  size_t end = 0;
  double value = 0;
  try {
    value = std::stod(text, &end);
  } catch (const std::exception&) {
    throw std::invalid_argument("want " + what);
  }
  const std::string unit = text.substr(end);
  double scale = unit.empty() ? 1.0 : 0.0;
  for (const auto& [name, s] : units)
    if (unit == name) scale = s;
  if (scale == 0.0 || !(value >= 0) || value * scale > 9.0e18) throw std::invalid_argument("want " + what);
  return static_cast<int64_t>(value * scale);
}

std::string MemoryEstimate::summary() const {
  std::vector<std::pair<std::string, int64_t>> sorted = parts;
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out = format_bytes(total());
  for (size_t i = 0; i < sorted.size() && i < 4; ++i)
    out += (i == 0 ? " (" : ", ") + sorted[i].first + " " + format_bytes(sorted[i].second);
  return sorted.empty() ? out : out + ")";
}

}  // namespace qdm
