#include "engine/util/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "engine/runtime/thread_pool.h"

namespace qdm {

namespace {

// OpenBLAS (Debian's libopenblas0-pthread behind LibTorch's BLAS) keeps its own worker threads
// that spin in sched_yield between calls; next to LibTorch's intra-op threads on few cores they
// steal most of the CPU (training ran 2.5x slower here). LibTorch already parallelises across
// operators' outer loops, so BLAS calls run single-threaded.
void pin_openblas_to_one_thread() {
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(1);
}

}  // namespace

void set_compute_threads(int threads) {
  pin_openblas_to_one_thread();
  if (threads <= 0) {
    const char* env = std::getenv("QDM_THREADS");
    threads = env && *env ? std::atoi(env) : static_cast<int>(std::thread::hardware_concurrency());
  }
  at::set_num_threads(threads > 0 ? threads : 1);
  set_pool_threads(threads);
}

int compute_threads() { return at::get_num_threads(); }


}  // namespace qdm
