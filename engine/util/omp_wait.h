// OpenMP's wait policy (LibTorch's and oneDNN's threads both come from libgomp). Torch-free.
#pragma once

namespace qdm {

// OpenMP threads (LibTorch's, oneDNN's) spin between parallel regions by default. On a loaded machine (a
// worker sampling while it quantizes, or anything else sharing the cores) that spinning starves
// the thread doing the work: measured here, 7.8x slower W4A8 steps and 2.5x slower fp32 steps.
// libgomp reads OMP_WAIT_POLICY only when it loads, so when the variable is unset this sets it to
// PASSIVE and re-executes the program (argv unchanged); call it first thing in main().
void ensure_passive_omp_wait(char** argv);

}  // namespace qdm
