// A memory estimate made before work starts, as named parts (what holds the bytes), with the
// byte sizes' text forms the service's flags and messages use. Torch-free: the scheduler refuses
// quantize jobs (format/job_memory.h) and sample requests (format/sample_memory.h) over its limits
// with these, naming the estimate and the limit.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace qdm {

struct MemoryEstimate {
  std::vector<std::pair<std::string, int64_t>> parts;  // what holds the bytes, in work order
  int64_t total() const;
  // "8.4 GiB (calibration set 8.4 GiB, ...)", the largest parts first (at most four).
  std::string summary() const;
};

// "1.5 GiB", "320 MiB", "12 KiB".
std::string format_bytes(int64_t bytes);
// Bytes from "1073741824", Kubernetes quantities ("8Gi", "512Mi", "2G") or "1.5GiB"; throws
// std::invalid_argument saying what is accepted.
int64_t parse_bytes(const std::string& text);

}  // namespace qdm
