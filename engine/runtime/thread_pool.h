// The execution plan's threads: one persistent pool, one parallel region per fused kernel.
// run(tasks, fn) executes fn(task, thread) for every task in [0, tasks) on the caller and the
// workers (tasks are taken from an atomic counter, so uneven tasks balance) and returns when all
// are done. Between regions a worker spins for `spin` before sleeping on a condition variable:
// back-to-back kernels of a step do not pay a futex wake-up each, and an idle pool (or one on a
// loaded machine, where spinning would starve the thread doing the work) costs no CPU.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qdm {

// The threads a pool takes by default: set_pool_threads(n > 0) if called, else $QDM_THREADS if
// set, else the hardware threads. set_compute_threads (engine/util/threads.h) sets it too.
void set_pool_threads(int threads);
int pool_threads();

class ThreadPool {
 public:
  // threads <= 0: pool_threads(). spin 0: sleep at once (OMP_WAIT_POLICY=PASSIVE-like);
  // negative: $QDM_POOL_SPIN_US if set, else 1 ms (measured: bench/results/peer_speed.md).
  explicit ThreadPool(int threads = 0, std::chrono::microseconds spin = std::chrono::microseconds(-1));
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  void run(int tasks, const std::function<void(int task, int thread)>& fn);

 private:
  void work(int thread);
  void take_tasks(int thread);

  std::vector<std::thread> workers_;
  std::chrono::microseconds spin_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;  // the caller sleeps on it once its spin is over
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0};
  std::atomic<int> busy_{0};  // workers still inside the current region
  int tasks_ = 0;
  const std::function<void(int, int)>* fn_ = nullptr;
  bool stop_ = false;
};

}  // namespace qdm
