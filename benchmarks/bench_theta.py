"""θ pipeline speed (issue #6 target): probing images × directions × steps and computing θ
reaches ≥ 0.8 × the model's raw batched forward throughput on the same inputs.

Both sides forward the same M·N·S points through ``model.features`` in batches of the same size;
the θ side also builds the points (broadcast + clip) and computes the angles. Medians of repeats.
Run: python benchmarks/bench_theta.py [--model vit] [--images 10] [--directions 20] [--steps 40]
"""
import argparse

import torch
from _timing import median_time

from curvlib import data, models
from curvlib.config import get_profile
from curvlib.measure.angles import theta
from curvlib.measure.direction import direction
from curvlib.measure.probe import probe_line


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="vit")
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--directions", type=int, default=20)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = models.load(a.model, get_profile("embedded", device="cpu"), device="cpu")
    x, _ = data.fashion_mnist("test", n=a.images)
    d = torch.stack([direction(None, x, kind="random", seed=s) for s in range(a.directions)])
    eps = torch.linspace(-0.1, 0.1, a.steps + 1)
    pts = (x[None, :, None] + eps.view(1, 1, -1, 1, 1, 1) * d[:, :, None]).clamp(0, 1).reshape(-1, *x.shape[1:])
    n = len(pts)

    @torch.inference_mode()
    def raw():
        for i in range(0, n, a.batch_size):
            model.features(pts[i:i + a.batch_size])

    def ours():
        return theta(probe_line(model, x, d, eps, batch_size=a.batch_size)["features"])

    t_raw, t_ours = median_time(raw, a.repeats), median_time(ours, a.repeats)
    print(f"model {a.model}: {a.directions} directions × {a.images} images × {a.steps + 1} points = {n:,} forwards")
    print(f"raw batched features: {n / t_raw:,.0f} points/s; probe + θ: {n / t_ours:,.0f} points/s")
    print(f"ratio = {t_raw / t_ours:.2f} (target ≥ 0.8)")


if __name__ == "__main__":
    main()
