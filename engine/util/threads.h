// LibTorch's intra-op thread count. Debian's LibTorch starts with one thread; qdm uses every
// core unless QDM_THREADS or a --threads option says otherwise.
#pragma once

namespace qdm {

// threads <= 0: $QDM_THREADS if set, else the number of hardware threads. Also pins OpenBLAS
// to one thread (see threads.cpp).
void set_compute_threads(int threads = 0);
int compute_threads();

// LibTorch's OpenMP threads spin between parallel regions by default. On a loaded machine (a
// worker sampling while it quantizes, or anything else sharing the cores) that spinning starves
// the thread doing the work: measured here, 7.8x slower W4A8 steps and 2.5x slower fp32 steps.
// libgomp reads OMP_WAIT_POLICY only when it loads, so when the variable is unset this sets it to
// PASSIVE and re-executes the program (argv unchanged); call it first thing in main().
void ensure_passive_omp_wait(char** argv);

}  // namespace qdm
