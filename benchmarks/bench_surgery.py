"""Cost of a surgered forward (issue #26 targets: ≤ 3× the raw forward's time for "attention" and "all"
on CPU, ≤ 2× its peak memory).

Both sides evaluate the same points clip(x + ε d) (images × random directions × ε) in one batch: the raw
side ``model.features``, the surgered side ``surgery.linearized(model, x, (kind,)).features`` with each
point's anchor image (``index=``), both under inference mode.

- Time: each repeat times the raw and the surgered forward back to back (after a warm-up); the ratio is
  the median of the repeats' ratios (the CPU may be shared with other work).
- Peak memory: each side runs alone in a fresh child process; its peak resident memory during the
  forward (Linux VmHWM, reset through /proc/self/clear_refs just before it) less the resident memory
  just before (model, anchors and points built; allocations above 64 KiB mmapped, so freed tensors
  leave the resident set).

Prints one line per model and kind with both ratios, and the memory the anchors themselves hold
(stored once per linearised model, not per forward).

Run: python benchmarks/bench_surgery.py [--models vit,swin] [--kinds attention,all] [--images 16] [--steps 8]
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from _timing import median_time

from curvlib import data, models
from curvlib.config import EMBEDDED_MODELS, get_profile
from curvlib.measure import surgery
from curvlib.measure.probe import line_points

KINDS = ("attention", "norm", "activation", "all")


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def setup(name: str, kind: str | None, images: int, steps: int):
    """(forward function, points, index, anchor bytes) for one model and kind (None: the raw model)."""
    prof = get_profile("embedded", env={}, device="cpu")
    model = models.load(name, prof, device="cpu")
    model.check_inputs = False
    x, _ = data.test_set(prof, n=images)
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * x[0].numel() ** 0.5
    eps = torch.linspace(0, 0.05, steps)
    pts = line_points(x, d[None], eps).reshape(-1, *x.shape[1:])
    index = torch.arange(images).repeat_interleave(steps)
    if kind is None:
        return (lambda: model.features(pts)), 0
    lin = surgery.linearized(model, x, (kind,))
    held = sum(b.numel() * b.element_size() for m in lin.model.modules() if isinstance(m, surgery._Expanded)
               for b in m.buffers(recurse=False))
    return (lambda: lin.features(pts, index=index)), held


def child(name: str, kind: str, images: int, steps: int) -> None:
    """Peak extra resident memory (KiB) of one forward, printed as JSON. Allocations above 64 KiB are
    mmapped and given back when freed (a fixed glibc threshold), so resident memory follows the live
    tensors instead of what the allocator keeps from earlier passes."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: fixed, no dynamic growth
    torch.set_num_threads(1)
    fn, _ = setup(name, None if kind == "raw" else kind, images, steps)
    with torch.inference_mode():
        fn()  # warm-up: lazy initialisation
        libc.malloc_trim(0)
        before = _kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        fn()
        peak = _kib("VmHWM")
    print(json.dumps({"extra_kib": max(peak - before, 1)}))


def peak_kib(name: str, kind: str, images: int, steps: int) -> int:
    out = subprocess.run([sys.executable, __file__, "--child", name, kind, "--images", str(images), "--steps",
                          str(steps)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_kib"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join(EMBEDDED_MODELS))
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", nargs=2, metavar=("MODEL", "KIND"))
    a = p.parse_args()
    if a.child:
        return child(*a.child, a.images, a.steps)
    torch.set_num_threads(a.threads)
    print(f"{a.images} images × {a.steps} ε = {a.images * a.steps} points in one batch, {a.threads} thread(s), CPU; "
          f"time: medians of {a.repeats}; memory: peak extra RSS of one forward, fresh process each")
    print(f"{'model':<12} {'kind':<11} {'modules':>7} {'raw ms':>8} {'surg ms':>8} {'time ×':>7} {'mem ×':>6} "
          f"{'anchors MiB':>11}")
    for name in a.models.split(","):
        raw, _ = setup(name, None, a.images, a.steps)
        m_raw = peak_kib(name, "raw", a.images, a.steps)
        for kind in a.kinds.split(","):
            model = models.load(name, get_profile("embedded", env={}, device="cpu"), device="cpu")
            n_mod = len(surgery.targets(model, (kind,)))
            if not n_mod:
                print(f"{name:<12} {kind:<11} {0:>7}   (no module of this kind)")
                continue
            fn, held = setup(name, kind, a.images, a.steps)
            with torch.inference_mode():  # raw and surgered back to back: the ratio of each pair, then the median
                pairs = [(median_time(raw, 1), median_time(fn, 1)) for _ in range(a.repeats)]
            t_raw, t = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
            ratio = statistics.median(s / r for r, s in pairs)
            m = peak_kib(name, kind, a.images, a.steps)
            print(f"{name:<12} {kind:<11} {n_mod:>7} {1e3 * t_raw:>8.1f} {1e3 * t:>8.1f} {ratio:>7.2f} "
                  f"{m / m_raw:>6.2f} {held / 2 ** 20:>11.1f}", flush=True)


if __name__ == "__main__":
    main()
