#include "engine/runtime/thread_pool.h"

#include <immintrin.h>

#include <cstdlib>


namespace qdm {
namespace {
std::atomic<int> g_pool_threads{0};
}  // namespace

void set_pool_threads(int threads) { g_pool_threads.store(threads > 0 ? threads : 0); }

int pool_threads() {
  if (const int n = g_pool_threads.load(); n > 0) return n;
  const char* env = std::getenv("QDM_THREADS");
  const int n = env && *env ? std::atoi(env) : static_cast<int>(std::thread::hardware_concurrency());
  return n > 0 ? n : 1;
}

ThreadPool::ThreadPool(int threads, std::chrono::microseconds spin) : spin_(spin) {
  if (spin_.count() < 0) {
    const char* env = std::getenv("QDM_POOL_SPIN_US");
    spin_ = std::chrono::microseconds(env && *env ? std::atoi(env) : 1000);
  }
  if (threads <= 0) threads = pool_threads();
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { work(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::take_tasks(int thread) {
  for (int task; (task = next_.fetch_add(1, std::memory_order_relaxed)) < tasks_;) (*fn_)(task, thread);
}

void ThreadPool::run(int tasks, const std::function<void(int, int)>& fn) {
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1) {
    for (int t = 0; t < tasks; ++t) fn(t, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    tasks_ = tasks;
    next_.store(0, std::memory_order_relaxed);
    busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  take_tasks(0);
  // Spin for the workers as they spin for regions, then sleep: on cores shared with another busy
  // process a worker may be descheduled, and a caller spinning for it would burn the time slice
  // the worker needs (measured: two test processes on 2 cores, 15x slower without this).
  const auto until = std::chrono::steady_clock::now() + spin_;
  for (int i = 0; busy_.load(std::memory_order_acquire) != 0; ++i) {
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [&] { return busy_.load(std::memory_order_acquire) == 0; });
      break;
    }
    _mm_pause();
  }
}

void ThreadPool::work(int thread) {
  uint64_t seen = 0;
  while (true) {
    // Spin a little for the next region, then sleep until one starts.
    const auto until = std::chrono::steady_clock::now() + spin_;
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) _mm_pause();
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    {
      std::lock_guard<std::mutex> lock(mu_);  // the region's fields are published under the lock
      seen = generation_.load(std::memory_order_acquire);
      if (stop_) return;
    }
    take_tasks(thread);
    if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller checks busy_ under the lock before it sleeps
      done_.notify_one();
    }
  }
}

}  // namespace qdm
