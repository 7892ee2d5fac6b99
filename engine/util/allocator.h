// glibc's allocator settings for a process that allocates and frees tensors of megabytes every
// sampling step.
#pragma once

namespace qdm {

// By default glibc returns a freed multi-megabyte tensor to the kernel (munmap, or trimming the
// heap top), so the next step's tensor of the same size is page-faulted in again: measured
// here, 13% of a W4A8 step at batch 64 went to page faults, and the faults serialize threads.
// This keeps up to 512 MiB of freed memory for reuse (allocations up to 32 MiB from the heap,
// 64 MiB of top padding). Peak RSS is unchanged; RSS no longer drops between requests.
// Call it first thing in main(); QDM_MALLOC_DEFAULTS=1 leaves glibc's defaults.
void keep_freed_tensor_memory();

}  // namespace qdm
