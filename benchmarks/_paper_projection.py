"""Shared by ``bench_paper_lite.py`` and ``bench_paper_gpu.py``: every call ``curvlib run all`` makes,
timed through the same runner code (``runner.run``) at reduced sizes, and projected to a profile's sizes
from the call's work units.

The models are the paper's timm architectures with random-init weights (no download) and the data a
synthetic folder of ImageNet-named class folders holding random JPEGs. A random-init model classifies
almost none of them correctly, and travel, its dense check, the random jumps and the surgeries' travel
search only images classified correctly at ε = 0, so on the synthetic labels they would time next to
nothing. Each model therefore gets its own copy of the folder (hard links) in which every image sits in
the class folder of the class that model predicts for it (:func:`own_label_folder`): every image starts
correct, as most do for a pretrained model, and every search runs. Where the boundary lies still differs
between random-init and pretrained weights, so the search experiments' times remain indicative.

Projection (:func:`project`): a call's time is a fixed part (the model's load, once per ``runner.run``,
twice where the experiment first reads another one's result) plus a part proportional to its work units
(:func:`units`: the product of its image / direction / step counts, which is how its loops scale). With
one measured size the fixed part is the load time alone; with two sizes (a small and a larger one) it is
fitted, which also takes in data-loader start-up and other per-call costs that do not grow with the sizes.
:func:`reuse_models` lets a benchmark build each model once and add its measured load time per load instead.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from curvlib import data, experiments, models, runner

UNIT_KEYS = ("n", "n_images", "n_directions", "n_steps")
#: The reduced sizes the CPU measurements use (CURVLIB_SIZES syntax).
SMALL = "n_calibration=64,n_travel=8,n_theta_images=1,n_directions=1,n_steps=6,batch_size=32"
#: Images of ImageNet val: the paper profile's calibration (``n_calibration=None``) reads all of them.
IMAGENET_VAL = 50_000
WNIDS = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079")


def units(params: dict, n_images: float = math.inf) -> float:
    """Work units of one experiment call: the product of its size parameters, the image count capped
    at the ``n_images`` the folder has (None = all of them) and, for the travel check, at the
    ``n_check`` rows its dense scan re-checks (its cost; the travel it checks is read from the cache)."""
    u = 1.0
    for k in UNIT_KEYS:
        if k == "n_directions" and params.get("kind") == "fgsm":
            continue  # one FGSM direction per image whatever the count
        if k in params:
            v = params[k]
            if k in ("n", "n_images"):
                v = min(n_images if v is None else v, n_images)
                if "n_check" in params:
                    v = min(v, params["n_check"])
            u *= v
    return u


def synthetic_folder(root: Path, n: int, seed: int = 0, size: tuple[int, int] = (256, 320)) -> Path:
    """``n`` random RGB JPEGs of ``size`` (height, width) in five ImageNet-named class folders under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / WNIDS[i % len(WNIDS)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(d / f"{i}.jpg", quality=90)
    return root


def own_label_folder(src: Path, dst: Path, model_name: str, device: str = "cpu", batch_size: int = 32) -> Path:
    """The images of ``src`` under ``dst``, each in the class folder (WordNet id) of the class that
    ``model_name`` with random-init weights predicts for it in float32 (hard links where possible), so that
    every image starts correctly classified for that model (module docstring)."""
    from timm.data import ImageNetInfo

    wnids = ImageNetInfo("imagenet-1k").label_names()
    ds = data.imagefolder(src, model_name=model_name)
    model = models.load_paper(model_name, weights="random").to(device)
    preds = []
    workers = min(8, os.cpu_count() or 1) if str(device).startswith("cuda") else 0  # JPEG decoding, as data.test_set
    with runner.float32_exact(), torch.inference_mode():
        for x, _ in torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers):
            preds.append(model(x.to(device)).argmax(-1).cpu())
    for (path, _), c in zip(ds.samples, torch.cat(preds).tolist()):
        out = dst / wnids[c]
        out.mkdir(parents=True, exist_ok=True)
        target = out / Path(path).name
        try:
            os.link(path, target)
        except OSError:
            shutil.copy(path, target)
    return dst


def book_calls(chosen=None) -> list[tuple[str, dict]]:
    """(experiment, call) of every call ``curvlib run all`` makes per model, in its order (``chosen``:
    a subset of experiment names)."""
    return [(name, call) for name, exp in experiments.registry().items()
            if not chosen or name in chosen for call in exp.calls]


def label(call: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in call.items()) or "-"


def loads_per_call(name: str) -> int:
    """Model loads in one ``runner.run`` of experiment ``name``: its own, and one more where it first
    reads another experiment's (cached) result through ``runner.run``."""
    return 1 + bool(experiments.registry()[name].prepare)


def sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def load_seconds(model: str, profile) -> float:
    """Wall time of ``models.load`` (timm build + the weights' sha256 + the move to the device), warm."""
    models.load(model, profile)
    sync(profile.device)
    t = time.perf_counter()
    models.load(model, profile)
    sync(profile.device)
    return time.perf_counter() - t


@contextlib.contextmanager
def reuse_models():
    """Inside: ``models.load`` hands back the model it built before for the same name, weights and device
    instead of building it again (timm build + the weights' sha256 + the move to the device). The runner
    still runs as it is; a projection adds the measured load time per load back (:func:`load_seconds`,
    :func:`loads_per_call`). Experiments that change a model work on a deep copy (surgery, attention) or
    restore it (curvature)."""
    memo, load = {}, models.load

    def reused(name, profile, checkpoint=None, device=None):
        key = (name, profile.dataset, profile.weights, str(profile.model_dir), profile.checkpoint_for(name),
               None if checkpoint is None else str(checkpoint), str(device or profile.device))
        if key not in memo:
            memo[key] = load(name, profile, checkpoint=checkpoint, device=device)
        return memo[key]

    models.load = reused
    try:
        yield
    finally:
        models.load = load


def timed_run(name: str, model: str, profile, call: dict) -> tuple[float, object]:
    """(wall time, result) of one ``runner.run`` (computed: the profile's cache must not hold it yet)."""
    sync(profile.device)
    t = time.perf_counter()
    value = runner.run(name, model, profile, **call)
    sync(profile.device)
    return time.perf_counter() - t, value


def project(fixed: float, u_target: float, points: list[tuple[float, float]]) -> dict:
    """Projected seconds at ``u_target`` work units from measured (units, seconds) ``points``.

    One point: ``fixed`` (the loads inside the measured time) + the rest of the time scaled by the
    units. Two points with different units: the line through them (intercept ≥ 0); where noise makes
    it fall (slope ≤ 0), as for one point from the larger. Returns ``seconds``, ``fixed``, ``per_unit`` and ``fit``."""
    pts = sorted(points)
    (u2, t2) = pts[-1]
    if len(pts) >= 2 and pts[0][0] < u2 and pts[-1][1] > pts[0][1]:
        (u1, t1) = pts[0]
        slope = (t2 - t1) / (u2 - u1)
        fixed, fit = max(0.0, t2 - slope * u2), "two points"
    else:
        slope, fit = max(0.0, t2 - fixed) / u2, "one point"
    return {"seconds": fixed + slope * u_target, "fixed": fixed, "per_unit": slope, "fit": fit}


def short(model: str) -> str:
    return model.split("_patch")[0]


def minutes_table(seconds: dict, names, model_names, extra: dict | None = None) -> list[str]:
    """Lines of a table: one row per experiment of ``names``, one column per model (projected minutes,
    ``seconds[(experiment, model)]``), then their sum; ``extra``: more columns, header → {experiment: text}."""
    extra = extra or {}
    w = [max(8, len(short(m))) for m in model_names]
    head = f"{'experiment':<21}" + "".join(f" {short(m):>{n}}" for m, n in zip(model_names, w)) + f" {'all':>8}"
    head += "".join(f"  {h}" for h in extra)
    lines = [head, "-" * len(head)]
    col = dict.fromkeys(model_names, 0.0)
    for name in names:
        row = [seconds.get((name, m), 0.0) for m in model_names]
        for m, s in zip(model_names, row):
            col[m] += s
        lines.append(f"{name:<21}" + "".join(f" {s / 60:>{n}.1f}" for s, n in zip(row, w)) + f" {sum(row) / 60:8.1f}"
                     + "".join(f"  {v.get(name, ''):<{len(h)}}" for h, v in extra.items()))
    lines.append("-" * len(head))
    lines.append(f"{'total':<21}" + "".join(f" {col[m] / 60:>{n}.1f}" for m, n in zip(model_names, w))
                 + f" {sum(col.values()) / 60:8.1f}")
    return lines
