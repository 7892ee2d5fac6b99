#include "engine/util/threads.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <thread>

namespace qdm {

void set_compute_threads(int threads) {
  if (threads <= 0) {
    const char* env = std::getenv("QDM_THREADS");
    threads = env && *env ? std::atoi(env) : static_cast<int>(std::thread::hardware_concurrency());
  }
  at::set_num_threads(threads > 0 ? threads : 1);
}

int compute_threads() { return at::get_num_threads(); }

}  // namespace qdm
