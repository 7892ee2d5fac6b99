// A kernel's reusable working buffer: `v` grown to at least n elements (never shrunk), its data.
// Callers keep `v` (thread_local, or a member of an op run by one thread at a time).
#pragma once

#include <cstddef>
#include <vector>

namespace qdm {

template <typename T>
T* scratch(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace qdm
