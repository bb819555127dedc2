"""Freed memory handed back to the system after a large network is built.

Building a network of millions of synapses makes NumPy and XLA temporaries of tens of
MiB each. glibc's allocator serves blocks of that size from fresh mappings at first,
but each block it unmaps raises its threshold for mapping (up to 32 MiB), so later
blocks come from its heap, and when they are freed it keeps the pages. CUBA at
N = 64 000 (5.1 M synapses, 99 MiB of arrays) left about 70-85 MiB so kept after
`Network` was built, and the process's peak, reached later while the run compiled and
ran, was that much higher. `malloc_trim(0)` hands such free pages back (a one-time
call, not a setting: the allocator's parameters stay as they are). Elsewhere than with
glibc it is not called.
"""

import ctypes
import functools
import sys

# Connection entries (synapses and padding) from which a built network is worth it.
RELEASE_ENTRIES = 1 << 20


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc's; absent from musl
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Hands the allocator's free pages back to the system where it can (glibc);
    whether it could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
