"""runner.allocator: glibc keeps freed large buffers, so a second batch of the same size does not page-fault."""
import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import resource, sys, torch
    from curvlib.runner import keep_freed_memory
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
    print(on, faults() - before)
""")


def _probe(mode: str, **env) -> tuple[str, int]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    r = subprocess.run([sys.executable, "-c", PROBE, mode], env={**e, **env}, capture_output=True, text=True,
                       timeout=120, check=True)
    on, n = r.stdout.split()
    return on, int(n)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_large_buffers_are_reused_without_page_faults():
    pages = 48 * 2**20 // 4096
    on, faults_on = _probe("on")
    off, faults_off = _probe("off")
    assert on == "True" and off == "None"
    assert faults_off > pages // 2  # glibc's default: the 48 MiB product is mapped afresh and faulted in
    assert faults_on < pages // 20  # kept: reused from the heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_an_environment_that_sets_glibc_malloc_keeps_its_settings():
    on, _ = _probe("on", MALLOC_TRIM_THRESHOLD_="131072")
    assert on == "False"
