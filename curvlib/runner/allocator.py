"""The C allocator's handling of large tensors while experiments run (glibc only).

glibc serves a request above its mmap threshold with fresh pages from the kernel and gives them back on
free; the threshold adapts to freed blocks, but only up to 32 MiB. A forward pass whose activations are
larger (MobileNetV2 at batch 500 on 32 px: 49 MB) therefore page-faults through every batch, and freed
memory at the top of the heap is trimmed and faulted in again. :func:`keep_freed_memory` raises both
limits, so large buffers are reused from the process's own heap: measured 2.4× the forward throughput on
MobileNetV2 and 1.3× on ResNet at batch 500 (``benchmarks/results/measurements.md``). The arithmetic is
the same (PyTorch aligns every CPU buffer to 64 bytes either way), so results do not change. The cost is
memory: up to :data:`LIMIT` bytes freed at the top of the heap stay with the process.

An environment that sets glibc's own malloc settings (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_`` or ``GLIBC_TUNABLES``) keeps them.
"""
from __future__ import annotations

import ctypes
import os
import sys

#: The byte limit set for both glibc thresholds: above the largest activation of the embedded models at batch 500.
LIMIT = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_OWN = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES")
_done: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to :data:`LIMIT` bytes, once per process; True when they are set
    (now or before), False where there is nothing to set: not Linux with glibc, or the environment sets
    glibc's malloc itself."""
    if "set" in _done:
        return _done["set"]
    ok = False
    if sys.platform.startswith("linux") and not any(v in os.environ for v in _OWN):
        try:
            libc = ctypes.CDLL("libc.so.6")
            ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, LIMIT)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, LIMIT))
        except (OSError, AttributeError):  # musl or another C library: no mallopt
            ok = False
    _done["set"] = ok
    return ok
