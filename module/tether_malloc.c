/*
 * tether_malloc.c: glibc's malloc, tuned for long-running threaded servers.
 *
 * glibc serves a large block (128 KiB and up) with mmap and gives it back
 * on free; but the first such free raises that threshold to the block's
 * size, and from then on large blocks come from the per-thread arenas,
 * where freed memory mostly stays.  Request bodies and responses come and
 * go in sizes around the threshold, so an Apache child or a daemon keeps
 * growing for a long while (8% over a 200,000-request soak; see
 * benchmarks/SOAK.md).  Pinning the threshold at its initial value keeps
 * the resident size flat.  An administrator's own setting (the
 * MALLOC_MMAP_THRESHOLD_ variable or a GLIBC_TUNABLES malloc tunable)
 * wins.
 */
#include "tether_private.h"

#include <stdlib.h>
#include <string.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#define MMAP_THRESHOLD (128 * 1024)

void tether_malloc_tune(void)
{
#ifdef __GLIBC__
    const char *tunables = getenv("GLIBC_TUNABLES");

    if (getenv("MALLOC_MMAP_THRESHOLD_")
        || (tunables && strstr(tunables, "glibc.malloc."))) {
        return;
    }
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
#endif
}
