"""Boundary travel speed, measured in one run (issue #5 targets):

1. forward passes per sample ≤ 20 for tol = 1e-4 on [0, 1];
2. throughput ≥ 0.7 × (raw batched forward images/s ÷ passes per sample);
3. ≥ 10× faster at equal precision than the authors' per-image stride-halving search
   (start ε = 1e-3, stride 1e-3, step back and halve the stride at each change, stop when
   stride < tol), which is implemented below; both must find the same ε* within tol.

Both methods get the same threads (default: all cores). Run:
python benchmarks/bench_travel.py [--model resnet] [--n 500] [--n-ref 25] [--threads 1]
"""
import argparse
import os
import time

import numpy as np
import torch
from _timing import median_time

from curvlib import data, models
from curvlib.config import get_profile
from curvlib.direction import direction
from curvlib.travel import travel


@torch.inference_mode()
def reference_search(model, x, y, d, tol=1e-4, eps_max=1.0, start=1e-3, max_iter=100_000):
    """The authors' procedure, one image at a time.

    Returns (first wrong ε or nan, last correct ε, forward passes)."""
    def wrong(eps):
        return model((x + eps * d).clamp(0, 1)[None]).argmax(-1).item() != y

    eps, stride, passes, first_wrong, last_ok = start, start, 0, float("nan"), 0.0
    while stride >= tol and passes < max_iter and eps <= eps_max + stride:
        passes += 1
        if wrong(eps):
            first_wrong = eps
            eps -= stride  # step back to the last correct point …
            stride /= 2  # … and go on with half the stride
        else:
            last_ok = eps
        eps += stride
    return first_wrong, last_ok, passes


@torch.inference_mode()
def raw_throughput(model, x, batch_size, repeats=5):
    def forward_all():
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size])

    return len(x) / median_time(forward_all, repeats)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--n-ref", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="torch threads for both methods (default: all cores; the batched search is what can "
                        "use them, so with 1 thread its advantage shrinks for models with small ε*)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = models.load(a.model, get_profile("embedded", device="cpu"), device="cpu")
    model.check_inputs = False
    x, y = data.fashion_mnist("test", n=a.n)
    d = direction(model, x, y, "fgsm")
    raw = raw_throughput(model, x, a.batch_size)

    def run():
        return travel(model, x, y, d, eps_max=1.0, tol=1e-4, batch_size=a.batch_size, progress=False)


    t_ours = median_time(run, 3)
    df = run()
    passes = df.passes.mean()
    thr = a.n / t_ours
    print(f"model {a.model}, {a.n} images, FGSM, tol 1e-4, {a.threads} thread(s)")
    print(f"passes per sample: mean {passes:.2f}, max {df.passes.max()} (target ≤ 20)")
    print(f"raw batched forward: {raw:,.0f} images/s; travel: {thr:,.0f} samples/s")
    print(f"throughput / (raw / passes) = {thr / (raw / passes):.2f} (target ≥ 0.7)")

    sel = np.flatnonzero(df.status.to_numpy() == "crossed")[: a.n_ref]
    t = time.perf_counter()
    ref = [reference_search(model, x[i], int(y[i]), d[i]) for i in sel]
    t_ref = (time.perf_counter() - t) / len(sel)
    ref_hi, ref_lo = np.array([r[0] for r in ref]), np.array([r[1] for r in ref])
    ours_hi, ours_lo = df.eps.to_numpy()[sel], df.eps_lo.to_numpy()[sel]
    # same crossing = the two brackets [last correct, first wrong] overlap (each is < tol wide,
    # or, for the reference, < 2·tol: it stops once its stride falls below tol)
    agree = np.maximum(ours_lo, ref_lo) <= np.minimum(ours_hi, ref_hi) + 1e-9
    print(f"reference (per image, stride halving): {t_ref * 1e3:.1f} ms/sample, "
          f"{np.mean([r[2] for r in ref]):.0f} passes/sample on {len(sel)} crossed samples")
    print(f"speed-up at equal precision: {t_ref / (t_ours / a.n):.1f}x (target ≥ 10x)")
    print(f"same crossing (brackets overlap): {agree.sum()}/{len(sel)} samples")
    if not agree.all():
        # where they differ: is the reference's ε* a real crossing our coarse grid stepped over?
        bad = sel[~agree]
        with torch.inference_mode():
            at_ref = model((x[bad] + torch.tensor(ref_hi[~agree], dtype=torch.float32).view(-1, 1, 1, 1) * d[bad])
                           .clamp(0, 1)).argmax(-1)
        island = (at_ref != y[bad]).numpy() & (ref_hi[~agree] < ours_lo[~agree])
        print(f"  of the {len(bad)} others, {island.sum()} are a wrong-class island before our bracket that the "
              f"coarse grid stepped over (reference ε* {np.round(ref_hi[~agree], 4).tolist()} vs ours "
              f"{np.round(ours_hi[~agree], 4).tolist()})")

if __name__ == "__main__":
    main()
