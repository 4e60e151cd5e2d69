"""The C allocator's handling of large tensors in a process that computes experiments (glibc only).

glibc serves a request above its mmap threshold with fresh pages from the kernel and gives them back on
free; the threshold adapts to freed blocks, but only up to 32 MiB. A forward pass whose activations are
larger (MobileNetV2 at batch 500 on 32 px) therefore page-faults through every batch, and freed memory at
the top of the heap is trimmed and faulted in again. Before the first experiment a process computes, the
runner raises both limits to :data:`LIMIT` for the rest of the process (:func:`keep_freed_memory`), so
buffers below it are reused from the process's own heap; after each experiment it hands free heap memory
back to the system (:func:`release_freed_memory`), so a long-lived process (a chapter's kernel,
``curvlib run all``) does not keep an experiment's peak. What it
is worth: ``benchmarks/bench_allocator.py`` and ``benchmarks/results/measurements.md``. The arithmetic is
the same (PyTorch aligns every CPU buffer to 64 bytes either way), so results do not change.

Where the C library is not glibc (musl, macOS) nothing is set; an allocator preloaded in glibc's place
(jemalloc, tcmalloc) ignores the settings.
"""
from __future__ import annotations

import ctypes
import functools
import platform

#: Bytes: glibc's mmap and trim thresholds from a process's first experiment on (above the embedded models'
#: largest activation at batch 500).
LIMIT = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


@functools.cache
def _glibc():
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to :data:`LIMIT` (once per process): freed buffers below it
    stay in the heap for the next batch. True when both are set; False where the C library is not glibc
    or refuses the value (an older glibc caps the mmap threshold at 32 MiB)."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, LIMIT)) & bool(libc.mallopt(_M_TRIM_THRESHOLD, LIMIT))


def release_freed_memory() -> None:
    """Hand the heap's free memory back to the system (glibc's ``malloc_trim``); nothing elsewhere."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
