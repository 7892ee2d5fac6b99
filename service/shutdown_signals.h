// SIGTERM/SIGINT for the service processes: blocked at construction (call it before any thread
// starts, so every thread inherits the mask) and taken synchronously by wait().
#pragma once

#include <chrono>
#include <csignal>
#include <ctime>

namespace qdm::service {

class ShutdownSignals {
 public:
  ShutdownSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  // Blocks until SIGTERM or SIGINT arrives; returns it.
  int wait() {
    int sig = 0;
    sigwait(&set_, &sig);
    return sig;
  }
  // Waits up to `timeout` for SIGTERM or SIGINT; returns it, or 0 when none came.
  int wait_for(std::chrono::milliseconds timeout) {
    timespec ts{static_cast<time_t>(timeout.count() / 1000), static_cast<long>(timeout.count() % 1000) * 1000000L};
    const int sig = sigtimedwait(&set_, nullptr, &ts);
    return sig > 0 ? sig : 0;
  }

 private:
  sigset_t set_;
};

}  // namespace qdm::service
