// civetweb (the HTTP server behind prometheus-cpp's Exposer) starts its threads with a small
// fixed stack size. In a process that has LibTorch and its dependencies loaded, glibc needs
// more than that for the static TLS of those libraries, pthread_create fails with EINVAL and
// the /metrics endpoint cannot start ("null context when constructing CivetServer").
// This definition takes precedence over glibc's (the executable exports it) and raises any
// requested stack size to at least 2 MiB; larger requests pass through unchanged.
#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <cstddef>

extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t size) {
  using Fn = int (*)(pthread_attr_t*, size_t);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  constexpr size_t kFloor = size_t(2) << 20;
  return real(attr, std::max(size, kFloor));
}
