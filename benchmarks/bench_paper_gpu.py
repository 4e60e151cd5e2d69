"""Paper-scale throughput: calibration + travel + θ for the four timm architectures at 224 px.

Random-init weights and synthetic images (no ImageNet, no download needed), on the best device
available (run it on a GPU: ``python benchmarks/bench_paper_gpu.py``; ``--n`` small on a CPU).
Prints images/s per experiment and the projected wall time of the paper profile on ImageNet val:
calibration on 50,000 images, travel (FGSM + random) on ``n_travel`` and on all 50,000, θ with
the profile's images × directions × steps. Issue #10 target: calibration + travel ≤ 30 min for
the four models on one H100.
"""
import argparse
import json
import time

import torch

from curvlib import models
from curvlib.config import PAPER_MODELS, get_profile
from curvlib.inference import auto_batch_size, predict
from curvlib.measure.direction import direction
from curvlib.measure.probe import probe_line
from curvlib.measure.travel import travel
from curvlib.runner import float32_exact


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev):
    fn()  # warm-up (cudnn autotuning, allocator)
    _sync(dev)
    t = time.perf_counter()
    out = fn()
    _sync(dev)
    return time.perf_counter() - t, out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=512, help="synthetic images per experiment")
    p.add_argument("--batch-size", type=int, help="default: per model from GPU memory, as `curvlib run` "
                   "chooses it (inference.auto_batch_size); 64 on a CPU")
    p.add_argument("--json", help="also write the measurements to this JSON file")
    p.add_argument("--models", default=",".join(PAPER_MODELS))
    p.add_argument("--steps", type=int, help="θ steps per line (default: the paper profile's)")
    p.add_argument("--cpu", action="store_true", help="run even without a GPU (slow: use a small --n)")
    a = p.parse_args()
    prof = get_profile("paper")
    if a.steps:
        prof = prof.replace(n_steps=a.steps)
    dev = torch.device(prof.device)
    if dev.type != "cuda" and not a.cpu:
        print("bench_paper_gpu: no GPU here; skipped (use --cpu --n 8 to try it on the CPU)")
        return
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device {dev} ({gpu}), {a.n} synthetic 224 px images, torch {torch.__version__}")
    rows = []
    g = torch.Generator().manual_seed(0)
    total_calib_travel = 0.0
    for name in a.models.split(","):
        m = models.load_paper(name, weights="random").to(dev)
        m.check_inputs = False
        bs = a.batch_size or (auto_batch_size(m) if dev.type == "cuda" else None) or 64
        x = torch.rand(a.n, *m.input_size, generator=g)
        y = predict(m, x, bs).argmax(-1)  # its own predictions: every sample starts correct
        t_cal, _ = timed(lambda: predict(m, x, bs), dev)
        t_dir, d = timed(lambda: direction(m, x.to(dev), y.to(dev), "fgsm", batch_size=bs), dev)
        t_tr, df = timed(lambda: travel(m, x, y, d.cpu(), batch_size=bs, progress=False), dev)
        k = 4  # θ: 4 images × 4 directions × (n_steps + 1) points
        xs = x[:k]
        dd = torch.stack([direction(None, xs, kind="random", seed=s) for s in range(4)])
        eps = torch.linspace(-0.1, 0.1, prof.n_steps + 1)
        t_th, _ = timed(lambda: probe_line(m, xs, dd, eps, bs), dev)
        cal_rate = a.n / t_cal
        tr_rate = a.n / (t_dir + t_tr)
        th_rate = 16 * (prof.n_steps + 1) / t_th
        proj_cal = 50_000 / cal_rate
        proj_tr = 2 * prof.n_travel / tr_rate  # FGSM + random directions
        proj_th = 2 * prof.n_theta_images * prof.n_directions * (prof.n_steps + 1) / th_rate
        total_calib_travel += proj_cal + proj_tr
        rows.append({"model": name, "batch_size": bs, "calibration_img_s": cal_rate, "travel_samples_s": tr_rate,
                     "travel_passes_mean": float(df.passes.mean()), "theta_points_s": th_rate,
                     "projected_min": {"calibration_50k": proj_cal / 60, f"travel_2x{prof.n_travel}": proj_tr / 60,
                                       "theta": proj_th / 60}})
        print(f"{name:30s} batch {bs} | calibration {cal_rate:8.0f} img/s | travel {tr_rate:7.1f} samples/s "
              f"({df.passes.mean():.1f} passes) | θ {th_rate:8.0f} points/s")
        print(f"{'':30s} projected: calibration 50k {proj_cal / 60:6.1f} min, travel 2×{prof.n_travel} "
              f"{proj_tr / 60:6.1f} min (2×50k: {proj_tr * 50_000 / prof.n_travel / 60:6.1f} min), "
              f"θ {proj_th / 60:6.1f} min")
        m = None  # free the model before the next one is loaded
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    print(f"calibration + travel, all models: {total_calib_travel / 60:.1f} min (target ≤ 30 min on one H100)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": gpu, "n": a.n, "n_steps": prof.n_steps, "models": rows,
                       "calibration_plus_travel_min": total_calib_travel / 60}, f, indent=1)


if __name__ == "__main__":
    with float32_exact():  # as every cached result is computed (no TF32: runner.float32_exact)
        main()
