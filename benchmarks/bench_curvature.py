"""Step-free curvature speed (issue #27 target: ≥ 0.3 × the raw batched forward throughput on the
same points).

Both sides evaluate the same points clip(x + ε d) (images × FGSM directions × ε on the one-way grid)
in batches of the same size, with freed large buffers kept as the runner keeps them
(:mod:`curvlib.runner.allocator`): the forward side runs ``model.features`` under inference mode, the
curvature side :func:`curvlib.measure.curvature.curvature` (f, f', f''; per-block ω off) with the jet
(``method="jet"``: three streams in one pass) and with nested forward-mode AD (``method="jvp"``, the
reference). Prints, per model, points/s of each, the ratios to the forward and the jet's speed-up over
nested AD (medians of repeats, one run), and two bounds:

- the FLOP bound: the forward's matrix-product FLOPs ÷ the jet's on the same batch (``torch.utils.flop_counter``;
  convolutions, linear layers and attention products). The jet carries two streams through piecewise-linear
  networks and three otherwise, and attention's bilinear scores and value mixing need six products per forward
  product (S, S′, S″; A v, A′ v, A″ v and the cross terms), so this is about 1/2, 1/3 or less. It would bound the
  ratio if both sides spent all their time in products; the forward does not, so the ratio can exceed it;
- the jet's time share in matrix products (``torch.profiler``, median of the repeats) and the ratio the jet would
  reach if everything else (element-wise kernels, copies, concatenations, reductions) cost nothing: forward time ÷
  the jet's time in products, what removing or fusing that work could gain at most, the products as they are.
Run: python benchmarks/bench_curvature.py [--models resnet,vit] [--images 10] [--steps 40]
"""
import argparse
import os
import statistics
import sys

import torch
from _timing import median_time

from curvlib import data, models
from curvlib.config import EMBEDDED_MODELS, get_profile
from curvlib.measure.curvature import curvature, unfused
from curvlib.measure.direction import direction
from curvlib.measure.probe import eps_grid, line_points
from curvlib.runner import keep_freed_memory


def flop_bound(model, x, d, eps) -> float:
    """Matrix-product FLOPs of the forward ÷ those of the jet, on the same points clip(x + ε d)."""
    from torch.utils.flop_counter import FlopCounterMode

    from curvlib.measure import jet

    pts = (x + eps.view(-1, 1, 1, 1) * d).clamp(0, 1)
    with torch.inference_mode(), unfused(model), FlopCounterMode(display=False) as fwd:
        model.features(pts)
    with FlopCounterMode(display=False) as jf:
        jet.jet_features(model, x, d, eps)
    return fwd.get_total_flops() / jf.get_total_flops()


#: Profiler names of the matrix products (linear layers, convolutions, attention's batched products).
PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
            "aten::_nnpack_spatial_convolution", "aten::_slow_conv2d_forward", "aten::slow_conv_dilated2d",
            "aten::_conv_depthwise2d", "aten::cudnn_convolution")


def product_share(fn, repeats: int = 3) -> float:
    """Median over ``repeats`` profiled calls of ``fn`` of the share of its self CPU time spent in matrix products
    (after :func:`median_time`'s warm-up)."""
    from torch.profiler import ProfilerActivity, profile

    shares = []
    for _ in range(repeats):
        sys.stderr.flush()
        saved = os.dup(2)  # the profiler's C++ side logs its start and stop on stderr: keep the table readable
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        shares.append(sum(e.self_cpu_time_total for e in events if e.key in PRODUCTS) / total)
    return statistics.median(shares)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join(EMBEDDED_MODELS))
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    keep_freed_memory()  # as every experiment runs (curvlib.runner.allocator): no page faults per batch on either side
    prof = get_profile("embedded", device="cpu")
    x, y = data.test_set(prof, n=a.images)
    eps = eps_grid("oneway", 0.1, a.steps)
    print(f"{a.images} images × FGSM × {a.steps + 1} ε = {a.images * (a.steps + 1)} points, batch {a.batch_size}, "
          f"{a.threads} thread(s); medians of {a.repeats}")
    for name in a.models.split(","):
        model = models.load(name, prof, device="cpu")
        d = direction(model, x, y, "fgsm")
        pts = line_points(x, d[None], eps).reshape(-1, *x.shape[1:])

        def forward():
            with torch.inference_mode(), unfused(model):  # the same attention kernel on both sides
                for i in range(0, len(pts), a.batch_size):
                    model.features(pts[i:i + a.batch_size])

        t_fwd = median_time(forward, a.repeats)
        bound = flop_bound(model, x[:2], d[:2], eps[1:2].expand(2))
        t = {m: median_time(lambda m=m: curvature(model, x, d, eps, batch_size=a.batch_size, method=m), a.repeats)
             for m in ("jet", "jvp")}
        share = product_share(lambda: curvature(model, x, d, eps, batch_size=a.batch_size, method="jet"), a.repeats)
        n, ratio = len(pts), t_fwd / t["jet"]
        print(f"{name:12s} forward {n / t_fwd:6.0f} points/s   jet {n / t['jet']:6.0f} (ratio {ratio:.2f}, "
              f"target ≥ 0.3)   nested AD {n / t['jvp']:5.0f} (ratio {t_fwd / t['jvp']:.2f})   "
              f"jet ÷ nested AD time {t['jet'] / t['jvp']:.2f}   FLOP bound {bound:.2f}   jet time in products "
              f"{share:.0%}, ratio if the rest were free {ratio / share:.2f}", flush=True)


if __name__ == "__main__":
    main()
