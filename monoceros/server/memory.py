"""How a worker's memory is set up once the app has started: the C heap and the cyclic collector.

Both are about pauses and page faults that a server's traffic pattern meets and a script's does not.
glibc returns freed heap memory to the kernel once more than 128 KiB is free at the top of the heap.
A worker reading large request bodies frees that much after every loop iteration, so the next one
faults the same pages in again, zeroed by the kernel: POST 64 KiB spent most of its time there.
"""

from __future__ import annotations

import ctypes
import gc
import os

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)
_OPERATOR_TUNED = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


def retain_heap(mib: int) -> bool:
    """Keep up to ``mib`` MiB of freed heap for reuse (glibc's trim threshold), and serve allocations
    under half of it from the heap, as glibc's own dynamic rule would once it had seen them. True when
    set; nothing happens with 0, on another C library, or when the operator tuned malloc already."""
    if mib <= 0 or not glibc() or any(name in os.environ for name in _OPERATOR_TUNED):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    size = mib * 1024 * 1024
    # Setting either threshold turns glibc's dynamic adjustment off, so both are set.
    if not libc.mallopt(M_MMAP_THRESHOLD, min(size // 2, _MMAP_THRESHOLD_MAX)):
        return False
    return bool(libc.mallopt(M_TRIM_THRESHOLD, size))


def freeze_startup_objects() -> None:
    """Take what startup left alive out of the cyclic collector's generations. A full collection walks
    every tracked object: with a framework loaded that is tens of thousands, a pause of several
    milliseconds for every request in flight (docs/performance.md, "Memory", has the figures).
    Garbage is collected first, so only live objects are frozen."""
    gc.collect()
    gc.freeze()
