"""Freed memory handed back to the system after a large network is built, and after
each long compilation.

Building a network of millions of synapses makes NumPy and XLA temporaries of tens of
MiB each. glibc's allocator serves blocks of that size from fresh mappings at first,
but each block it unmaps raises its threshold for mapping (up to 32 MiB), so later
blocks come from its heap, and when they are freed it keeps the pages. CUBA at
N = 64 000 (5.1 M synapses, 99 MiB of arrays) left about 70-85 MiB so kept after
`Network` was built, and the process's peak, reached later while the run compiled and
ran, was that much higher. `malloc_trim(0)` hands such free pages back (a one-time
call, not a setting: the allocator's parameters stay as they are). Elsewhere than with
glibc it is not called.

XLA's compiler frees most of what it takes: compiling CUBA's event loop raised the
resident memory by about 185 MiB at N = 1000 and at N = 64 000, of which about 165 MiB
were free once it returned, yet kept by the allocator. The run's buffers then came on
top, and the process's peak was the run's (64 000 neurons: 714 MiB, against 635 with
those pages handed back after compiling). `simulate` therefore registers, once, a
listener of JAX's monitoring events that calls `malloc_trim(0)` after every backend
compilation of `COMPILE_SECONDS` or more (10-75 ms measured, against seconds of
compilation); shorter ones are left alone.
"""

import ctypes
import functools
import sys

# Connection entries (synapses and padding) from which a built network is worth it.
RELEASE_ENTRIES = 1 << 20
# Backend compilations (s) after which free memory is handed back.
COMPILE_SECONDS = 1.0
# JAX's monitoring event for a backend compilation (`jax._src.dispatch`); should it be
# renamed, the listener never fires and nothing else changes.
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


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


def _after_compile(event: str, duration: float, **kwargs) -> None:
    if event == COMPILE_EVENT and duration >= COMPILE_SECONDS:
        release_free_memory()


@functools.cache
def release_after_compiling() -> bool:
    """Registers (once per process) the listener that hands free memory back after
    each long compilation; whether it could (glibc only)."""
    if _malloc_trim() is None:
        return False
    import jax.monitoring

    jax.monitoring.register_event_duration_secs_listener(_after_compile)
    return True
