// LibTorch's intra-op thread count. Debian's LibTorch starts with one thread; qdm uses every
// core unless QDM_THREADS or a --threads option says otherwise.
#pragma once

#include "engine/util/omp_wait.h"  // ensure_passive_omp_wait

namespace qdm {

// threads <= 0: $QDM_THREADS if set, else the number of hardware threads. Also pins OpenBLAS
// to one thread (see threads.cpp).
void set_compute_threads(int threads = 0);
int compute_threads();


}  // namespace qdm
