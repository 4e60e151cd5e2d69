"""runner.allocator: glibc reuses freed large buffers, so a second product of the same size does not page-fault."""
import platform
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROBE = textwrap.dedent("""
    import resource, sys, torch
    from curvlib.runner import keep_freed_memory, release_freed_memory
    on = keep_freed_memory() if sys.argv[1] == "on" else None
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(48 * 2**20 // 4)  # 48 MiB: above glibc's own adaptive limit (32 MiB)
    for _ in range(2):
        y = x * 2
        del y
    before = faults()
    y = x * 2
    y.sum()
    del y
    n = faults() - before
    release_freed_memory()
    print(on, n)
""")


def _thp_always() -> bool:
    p = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return p.exists() and "[always]" in p.read_text()


needs_glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or _thp_always(),
                                 reason="glibc's mallopt, counted in base pages (transparent huge pages not 'always')")


def _probe(mode: str) -> tuple[str, int]:
    r = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120, check=True)
    on, n = r.stdout.split()
    return on, int(n)


@needs_glibc
def test_freed_large_buffers_are_reused_without_page_faults():
    pages = 48 * 2**20 // resource.getpagesize()
    on, faults_on = _probe("on")
    off, faults_off = _probe("off")
    assert on == "True" and off == "None"
    assert faults_off > pages // 2  # glibc's default: the 48 MiB product is mapped afresh and faulted in
    assert faults_on < pages // 20  # kept: reused from the heap
