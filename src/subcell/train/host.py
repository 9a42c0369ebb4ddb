"""Host (CPU) settings for deep-learning runs: how freed activation memory is returned to the system.

Written by hand because no library sets it for us: PyTorch allocates CPU tensors with the C library's
``malloc``. glibc serves every allocation above its mmap threshold (at most 32 MB by default) with a fresh
``mmap`` and unmaps it on ``free``, so each large activation of a 3D network is page-faulted in again on every
forward and backward pass: element-wise kernels (ReLU, batch norm, additions) then run 5-8x below memory
bandwidth and the kernel spends a third of a training step zeroing pages (exploratory measurements with
``resource.getrusage``; the before/after effect is in ``benchmarks/labelfree/results_speed.md``). Raising the mmap and trim thresholds keeps freed blocks in the heap
for the next step, which is what jemalloc/tcmalloc preloads achieve; ``mallopt`` does it from inside the process.
The cost is that the resident size no longer shrinks between steps: blocks of one size cannot serve requests
of another, so the peak grows (:data:`RETAINED`; memory budgets multiply by it). Set ``SUBCELL_MALLOC=system`` to keep the C library's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["RETAINED", "release_freed", "tune_allocator"]

# Peak resident memory of the activations grows by this factor while freed blocks are kept: measured +12 % for
# training steps and, for prediction (fnet, 64×512×512, 2 GB limit), +60 % in fp32 and +45 % in bf16
# (benchmarks/labelfree/results_speed.md); the largest is used so budgets hold.
RETAINED = 1.6

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done: bool | None = None
_libc: ctypes.CDLL | None = None


def tune_allocator() -> bool:
    """Keep freed large blocks for reuse (glibc only; once per process). Returns whether it is in effect."""
    global _done, _libc
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("SUBCELL_MALLOC", "").lower() == "system" or not sys.platform.startswith("linux"):
        return _done
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt: leave them alone
        return _done
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # glibc 2.36 accepts 1 GB; versions that refuse it still take their documented maximum, 32 MB
    mmap_ok = any(mallopt(_M_MMAP_THRESHOLD, v) == 1 for v in (1 << 30, 1 << 25))
    trim_ok = mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    _done = mmap_ok and trim_ok
    _libc = libc if _done else None
    return _done


def release_freed(above: float = 0.0) -> bool:
    """Give the pages of freed heap blocks back to the system (glibc's ``malloc_trim``) where
    :func:`tune_allocator` keeps them, if the resident size is over ``above`` bytes; a no-op otherwise. Returns
    whether any memory was released.

    Kept blocks are reused only by requests that fit them, so over a sequence of differently laid-out passes
    (the tiles of a prediction, each with its own input crop, output and blending weights around the network's
    activations) the heap fragments and the resident size creeps up by hundreds of MB past what one pass needs:
    32×512×512 in four tiles under a 2 GB limit peaked at 2.2-2.5 GB (benchmarks/labelfree/results.md). After a
    release the next pass faults its pages in again (once, not once per operation as with glibc's defaults),
    which costs time, hence ``above``: release only where the resident size comes near a budget."""
    if _libc is None:
        return False
    if above > 0:
        import psutil

        if psutil.Process().memory_info().rss <= above:
            return False
    return bool(_libc.malloc_trim(0))
