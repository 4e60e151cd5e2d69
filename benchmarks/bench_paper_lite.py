"""CPU run time of the ``paper-lite`` profile, per experiment (issue #18).

Every registered experiment runs through the same code ``curvlib run all --profile paper-lite``
uses (``runner.run``), on the paper's four timm models with random-init weights at 224 px, on a
synthetic folder of ImageNet-named class folders (random photo-sized RGB images; no download),
labelled per model with that model's own predictions so that every image starts correctly classified
and the boundary searches run (``_paper_projection.own_label_folder``), at reduced sizes (``--sizes``),
each (experiment, call, model) timed once, into an empty cache. The time at the paper-lite sizes is
projected linearly from the experiment's work units (``_paper_projection.units``: the product of its
image / direction / step counts, which is how its loops scale); the model's load time (timm build + the
weights' sha256, measured separately) is counted once per load, not scaled. ``bench_paper_gpu.py``
projects the ``paper`` profile the same way.

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _paper_projection import (  # noqa: E402
    SMALL,
    book_calls,
    label,
    load_seconds,
    loads_per_call,
    minutes_table,
    own_label_folder,
    project,
    synthetic_folder,
    timed_run,
    units,
)

from curvlib import config, runner  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    ap.add_argument("--sizes", default=SMALL, help="reduced sizes to measure at (CURVLIB_SIZES syntax)")
    ap.add_argument("--images", type=int, default=80, help="synthetic images in the folder")
    ap.add_argument("--experiments", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--models", default="", help="comma-separated subset of the profile's models (default: all)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_lite_"))
    src = synthetic_folder(tmp / "val", a.images)
    base = dict(env={}, cache_dir=tmp / "cache", device="cpu", weights="random", check_accuracy=False)
    lite = config.get_profile("paper-lite", **base, data_dir=src)
    chosen_models = [m for m in lite.models if not a.models or m in a.models.split(",")]
    small, target = {}, {}
    for model in chosen_models:
        folder = own_label_folder(src, tmp / f"val_{model}", model)
        small[model] = config.get_profile("paper-lite", **base, data_dir=folder, **config.parse_sizes(a.sizes))
        target[model] = lite.replace(data_dir=folder)
    calls = book_calls([e for e in a.experiments.split(",") if e])
    print(f"paper-lite on CPU ({a.threads} thread(s), torch {torch.__version__}), random-init weights, "
          f"{a.images} synthetic 256×320 JPEGs → 224 px, labelled with each model's own predictions; "
          f"measured at {a.sizes}")
    load = {m: load_seconds(m, small[m]) for m in chosen_models}  # fixed per load, not scaled with the sizes
    print("model load (per load, not scaled): " + ", ".join(f"{m} {s:.1f} s" for m, s in load.items()))
    print(f"{'experiment':<12} {'call':<16} {'model':<30} {'measured s':>10} {'units':>12} {'paper-lite s':>12}")
    total, per_cell = 0.0, {}
    t_all = time.perf_counter()
    for name, call in calls:
        for model in chosen_models:
            u_s = units(runner.params_for(name, small[model], **call), a.images)
            u_l = units(runner.params_for(name, target[model], **call))
            dt, _ = timed_run(name, model, small[model], call)
            proj = project(load[model] * loads_per_call(name), u_l, [(u_s, dt)])["seconds"]
            total += proj
            per_cell[(name, model)] = per_cell.get((name, model), 0.0) + proj
            print(f"{name:<12} {label(call):<16} {model:<30} {dt:10.1f} {u_s:>5.0f}→{u_l:<6.0f} {proj:12.0f}",
                  flush=True)
    print("\nprojected paper-lite CPU time, minutes:")
    print("\n".join(minutes_table(per_cell, dict.fromkeys(n for n, _ in calls), chosen_models)))
    print(f"(measured wall time of this benchmark {(time.perf_counter() - t_all) / 60:.1f} min)")
    print("caveat: random-init weights; travel / random-jump pass counts on pretrained models differ, so those "
          "lines are indicative; the accuracy check adds one forward pass over 256 images per model.")


if __name__ == "__main__":
    main()
