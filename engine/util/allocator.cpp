#include "engine/util/allocator.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace qdm {

void keep_freed_tensor_memory() {
  if (const char* env = std::getenv("QDM_MALLOC_DEFAULTS"); env && std::strcmp(env, "1") == 0) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest; also stops the threshold's dynamic growth
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
}

}  // namespace qdm
