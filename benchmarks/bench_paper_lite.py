"""CPU run time of the ``paper-lite`` profile, per experiment (issue #18).

Every registered experiment runs through the same code ``curvlib run all --profile paper-lite``
uses (``runner.run``), on the paper's four timm models with random-init weights at 224 px, on a
synthetic folder of ImageNet-named class folders (random photos-sized RGB images; no download),
at reduced sizes (``--sizes``), each (experiment, call, model) timed once, into an empty cache.
The time at the paper-lite sizes is projected linearly from the experiment's work units (the
product of its image / direction / step counts), which is how its loops scale; the model's load
time (timm build + the weights' sha256, measured separately) is counted once, not scaled.

Caveats (printed too): random-init networks are not the pretrained ones — travel and the random
jump stop after a number of search passes that depends on where the boundary is, so their
projected times are indicative only; JPEG decoding of real photos adds a little to calibration.
Run: python benchmarks/bench_paper_lite.py [--threads 2] [--sizes n_calibration=64,n_travel=8]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from curvlib import config, experiments, models, runner  # noqa: E402

UNIT_KEYS = ("n", "n_images", "n_directions", "n_steps")
SMALL = "n_calibration=64,n_travel=8,n_theta_images=1,n_directions=1,n_steps=6,batch_size=32"


def units(params: dict, n_images: float = float("inf")) -> float:
    """Work units of one experiment call: the product of its size parameters, the image count capped
    at the ``n_images`` the folder has (None = all of them)."""
    u = 1.0
    for k in UNIT_KEYS:
        if k == "n_directions" and params.get("kind") == "fgsm":
            continue  # one FGSM direction per image whatever the count
        if k in params:
            v = params[k]
            u *= min(n_images if v is None else v, n_images) if k in ("n", "n_images") else v
    return u


def synthetic_folder(root: Path, n: int, seed: int = 0) -> Path:
    from PIL import Image

    wnids = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079")
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / wnids[i % len(wnids)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (256, 320, 3), dtype=np.uint8)).save(d / f"{i}.jpg", quality=90)
    return root


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    ap.add_argument("--sizes", default=SMALL, help="reduced sizes to measure at (CURVLIB_SIZES syntax)")
    ap.add_argument("--images", type=int, default=80, help="synthetic images in the folder")
    ap.add_argument("--experiments", default="", help="comma-separated subset (default: all)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_lite_"))
    folder = synthetic_folder(tmp / "val", a.images)
    base = dict(env={}, data_dir=folder, cache_dir=tmp / "cache", device="cpu", weights="random",
                check_accuracy=False)
    lite = config.get_profile("paper-lite", **base)
    small = config.get_profile("paper-lite", **base, **config.parse_sizes(a.sizes))
    exps = experiments.registry()
    chosen = [e for e in exps if not a.experiments or e in a.experiments.split(",")]
    print(f"paper-lite on CPU ({a.threads} thread(s), torch {torch.__version__}), random-init weights, "
          f"{a.images} synthetic 256×320 JPEGs → 224 px; measured at {a.sizes}")
    print(f"{'experiment':<12} {'call':<16} {'model':<30} {'measured s':>10} {'units':>12} {'paper-lite s':>12}")
    total, per_exp = 0.0, {}
    t_all = time.perf_counter()
    load = {}  # a fixed cost of every call (timm build + weights' sha256), not scaled with the sizes
    for model in lite.models:
        models.load(model, small)
        t = time.perf_counter()
        models.load(model, small)
        load[model] = time.perf_counter() - t
    print("model load (per call, not scaled): " + ", ".join(f"{m} {s:.1f} s" for m, s in load.items()))
    for name in chosen:
        exp = exps[name]
        for call in exp.calls:
            for model in lite.models:
                p_small = runner.params_for(name, small, **call)
                p_lite = runner.params_for(name, lite, **call)
                u_s, u_l = units(p_small, a.images), units(p_lite)
                t = time.perf_counter()
                runner.run(name, model, small, **call)
                dt = time.perf_counter() - t
                proj = load[model] + max(0.0, dt - load[model]) * u_l / u_s
                total += proj
                per_exp[name] = per_exp.get(name, 0.0) + proj
                label = ",".join(f"{k}={v}" for k, v in call.items()) or "-"
                print(f"{name:<12} {label:<16} {model:<30} {dt:10.1f} {u_s:>5.0f}→{u_l:<6.0f} {proj:12.0f}", flush=True)
    print("\nprojected paper-lite CPU time per experiment (all four models):")
    for name, s in per_exp.items():
        print(f"  {name:<12} {s / 60:7.1f} min")
    print(f"  {'total':<12} {total / 60:7.1f} min  (measured wall time of this benchmark "
          f"{(time.perf_counter() - t_all) / 60:.1f} min)")
    print("caveat: random-init weights; travel / random-jump pass counts on pretrained models differ, so those "
          "two lines are indicative; the accuracy check adds one forward pass over 256 images per model.")


if __name__ == "__main__":
    main()
