// SIGTERM/SIGINT for the service processes: blocked at construction (call it before any thread
// starts, so every thread inherits the mask) and taken synchronously by wait().
#pragma once

#include <csignal>

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

 private:
  sigset_t set_;
};

}  // namespace qdm::service
