"""What keeping freed large buffers is worth (``curvlib.runner.allocator``): the embedded models' forward
throughput at the book's batch size, in a process with glibc's default malloc and in one after
:func:`curvlib.runner.keep_freed_memory` (each model in two fresh processes, one thread; the setting is
process-wide and one-way). Prints images/s, minor page faults per batch, the process's peak resident
memory and the ratio kept ÷ default.
Run: python benchmarks/bench_allocator.py [--models resnet,vit] [--batch-size 500] [--images 2000]
"""
import argparse
import os
import subprocess
import sys

from curvlib.config import EMBEDDED_MODELS

PROBE = """
import resource, sys, torch
from _timing import median_time
from curvlib import data, models
from curvlib.config import get_profile
from curvlib.runner import keep_freed_memory
name, keep, bs, n = sys.argv[1], sys.argv[2] == "kept", int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
if keep and not keep_freed_memory():
    sys.exit("glibc's malloc settings could not be changed here")
prof = get_profile("embedded", device="cpu")
x, _ = data.test_set(prof, n=n)
model = models.load(name, prof, device="cpu")
def forward():
    with torch.inference_mode():
        for i in range(0, n, bs):
            model.features(x[i:i + bs])
forward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t = median_time(forward, 3)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4 / -(-n // bs)
print(n / t, faults, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10)
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join(EMBEDDED_MODELS))
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--images", type=int, default=2000)
    a = p.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    env["OMP_NUM_THREADS"] = "1"
    here = os.path.dirname(os.path.abspath(__file__))
    print(f"forward of {a.images} test images in batches of {a.batch_size}, one thread; medians of 3 per process")
    for name in a.models.split(","):
        got = {}
        for mode in ("default", "kept"):
            r = subprocess.run([sys.executable, "-c", PROBE, name, mode, str(a.batch_size), str(a.images)], env=env,
                               cwd=here, capture_output=True, text=True, check=True)
            got[mode] = [float(v) for v in r.stdout.split()[-3:]]
        (d, fd, md), (k, fk, mk) = got["default"], got["kept"]
        print(f"{name:12s} default {d:6.0f} images/s ({fd:6.0f} page faults per batch, peak {md:4.0f} MiB)   "
              f"kept {k:6.0f} images/s ({fk:4.0f}, peak {mk:4.0f} MiB)   ratio {k / d:.2f}", flush=True)


if __name__ == "__main__":
    main()
