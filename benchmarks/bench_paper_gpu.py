"""Paper-profile run time of every experiment of ``curvlib run all --profile paper``, on this device.

Every call ``curvlib run all`` makes (every registered experiment × its chapters' calls × each model)
runs through the same runner code (``runner.run``) at reduced sizes, is timed, and is projected to the
``paper`` profile's sizes (50,000 calibration images, ``n_travel`` = 5,000, θ on 10 images × 1,000
directions × 100 steps, …) from its work units — the approach of ``bench_paper_lite.py``, shared with
it in ``_paper_projection.py`` (its docstring: random-init timm weights, a synthetic ImageNet-named
class folder labelled with each model's own predictions so that every search runs, the fit of a fixed
part and a part proportional to the units). On CUDA the batch size is chosen per model as ``curvlib
run`` chooses it (``inference.auto_batch_size``).

Precision. The runner computes every result in strict float32 (TF32 off: ``runner.float32_exact``);
the experiments registered with ``autocast=True`` (forward-only: calibration, θ) may run under bf16
autocast (``curvlib run --bf16``). For those this benchmark also runs each call under bf16 (and, on
CUDA, with TF32 allowed — which the runner itself never does; the benchmark patches it for the
measurement only), times it, and compares the numbers the chapters print with the float32 ones on the
same images: calibration's accuracy, mean confidence, ECE, sECE, MCE and ACE with their 95 % intervals
(``claims.calibration.summary_table``, 4 decimals) and θ's mean per model, kind and ruler in degrees
(``claims.curvature.ruler_table`` shown by ``plots.curvature.ruler_pivot_style``, 2 decimals); also the
largest change of θ's quantile bands (a figure, not printed). The same comparison runs on the shipped
*trained* Fashion-MNIST models of the ``embedded`` profile (``--embedded-sizes``), where confidences and
margins are those of trained networks rather than random-init ones. The other experiments stay strict
float32 (the JSON says why for each). A precision is taken into the "policy" projection for an
experiment only where every comparison left every printed number unchanged.

The physical bound: the vendor's peak dense matmul rate of the GPU (a small table below, looked up
from ``torch.cuda.get_device_name``), against the measured forward rate of ViT-B/16 at 224 px with its
FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode``, in float32, TF32 and bf16.

Run on a GPU: ``python benchmarks/bench_paper_gpu.py --json out.json``; on a CPU it needs ``--cpu``
(slow: it uses ``_paper_projection.SMALL`` sizes; pick models with ``--models``).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the benchmark prints one line per timed call instead of progress bars
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _paper_projection import (  # noqa: E402
    IMAGENET_VAL,
    SMALL,
    book_calls,
    label,
    load_seconds,
    loads_per_call,
    minutes_table,
    own_label_folder,
    project,
    reuse_models,
    short,
    sync,
    synthetic_folder,
    timed_run,
    units,
)

from curvlib import config, experiments, models, runner  # noqa: E402
from curvlib.config import PAPER_MODELS  # noqa: E402
from curvlib.inference import auto_batch_size, predict  # noqa: E402

TARGET_MIN = 30.0  #: issue #27: every experiment of the paper profile in ≤ 30 min on one H100-class GPU
#: Measured sizes on a GPU, and the smaller ones of the two-point fit (CURVLIB_SIZES syntax; batch: auto).
GPU_SIZES = "n_calibration=1024,n_travel=24,n_theta_images=2,n_directions=16,n_steps=100"
GPU_SIZES_LO = "n_calibration=128,n_travel=4,n_theta_images=1,n_directions=2,n_steps=100"
EMBEDDED_SIZES = "n_calibration=all,n_theta_images=10,n_directions=8"

#: Vendor peak rates, TFLOP/s (NVIDIA datasheets). The datasheets print the tensor-core TF32 and BF16 figures
#: with 2:4 structured sparsity; dense matmuls get half of them (the values below). float32 = the CUDA cores'
#: FP32 rate (strict float32 matmuls do not use tensor cores).
PEAK_TFLOPS = {
    "H200 NVL": {"float32": 60.0, "tf32": 835 / 2, "bf16": 1671 / 2, "source": "NVIDIA H200 datasheet (NVL)"},
    "H200 SXM": {"float32": 67.0, "tf32": 989 / 2, "bf16": 1979 / 2, "source": "NVIDIA H200 datasheet (SXM)"},
    "H100 NVL": {"float32": 60.0, "tf32": 835 / 2, "bf16": 1671 / 2, "source": "NVIDIA H100 datasheet (NVL)"},
    "H100 PCIe": {"float32": 51.0, "tf32": 756 / 2, "bf16": 1513 / 2, "source": "NVIDIA H100 datasheet (PCIe)"},
    "H100 SXM5": {"float32": 67.0, "tf32": 989 / 2, "bf16": 1979 / 2, "source": "NVIDIA H100 datasheet (SXM5)"},
    "A100": {"float32": 19.5, "tf32": 312 / 2, "bf16": 624 / 2, "source": "NVIDIA A100 datasheet (SXM4 and PCIe)"},
}
_PEAK_MATCH = ((("H200", "NVL"), "H200 NVL"), (("H200",), "H200 SXM"), (("H100", "NVL"), "H100 NVL"),
               (("H100", "PCIE"), "H100 PCIe"), (("H100",), "H100 SXM5"), (("A100",), "A100"))

#: Why each experiment that the runner keeps out of autocast (registered ``autocast=False``) stays strict float32.
FLOAT32_WHY = {
    "robustness": "FGSM directions are gradient signs, and accuracy after steps of 1/255 counts flipped predictions",
    "travel": "ε* from a boundary search to tol = 1e-4 along FGSM directions: TF32 alone flipped 0.3–1.2 % of the "
              "FGSM signs and moved ε* beyond 2·tol (benchmarks/results/measurements.md)",
    "travel_check": "a dense scan at step 1e-3 that checks travel's ε*: it must use travel's arithmetic",
    "theta_step": "local θ at steps Δ down to 1e-4: feature differences that small are below bf16's resolution "
                  "(8-bit mantissa, relative 4e-3)",
    "curvature": "step-free κ and ω from derivatives along the path (and FGSM directions)",
    "random_jump": "ε* from the boundary search, as travel",
    "random_jump_relative": "ε* from the boundary search, as travel",
    "jump_path": "FGSM directions and step-free ω",
    "mesh": "not called by `curvlib run all` (its grid comes from the chapter)",
    "attention": "FGSM directions and additivity defects: differences of layer outputs at ε = 0.02",
    "surgery_path": "linearised models (first-order expansions), FGSM directions and step-free ω",
    "surgery_travel": "ε* from the boundary search on linearised models",
    "surgery_turning": "step-free ω integrated up to ε*",
}


# --- precision: what the chapters print ------------------------------------------------------------------

def calibration_numbers(df, model: str) -> dict[str, float]:
    """The numbers the calibration chapter prints for one model (its ``calibration_report`` call, 4 decimals)."""
    from curvlib.experiments.calibration import calibration_report

    r = calibration_report({model: df}, n_boot=1000, seed=0, mce_min_count=10).loc[model]
    return {k: float(r[k]) for k in ("accuracy", "accuracy_lo", "accuracy_hi", "confidence", "ece", "ece_lo",
                                     "ece_hi", "sece", "sece_lo", "sece_hi", "mce", "ace", "ace_lo", "ace_hi")}


def theta_numbers(result: dict, model: str, call: dict) -> tuple[dict[str, float], dict[str, float]]:
    """(printed, figure): mean θ in degrees per ruler row as the curvature chapter prints it (2 decimals),
    and θ's quantile bands per step in degrees (a figure)."""
    from curvlib.claims.curvature import ruler_table
    from curvlib.measure.angles import theta_summary

    key = (model, call.get("kind", "random"), call.get("protocol", "oneway"), call.get("saturation", False))
    printed = {f"mean θ° {r.kind} {r.ruler}": r.theta for r in ruler_table({key: result}).itertuples()}
    s = theta_summary(result["theta"])
    bands = {f"{c} step {int(st)}": float(np.degrees(v)) for c in ("min", "q1", "median", "q3", "max", "mean")
             for st, v in zip(s["step"], s[c])}
    return printed, bands


PRINTED = {"calibration": (4, "4 decimals: accuracy, mean confidence, ECE, sECE, MCE, ACE and the 95 % intervals "
                              "(claims.calibration.summary_table)"),
           "theta": (2, "2 decimals, degrees: mean θ per model, direction kind and ruler "
                        "(claims.curvature.ruler_table, plots.curvature.ruler_pivot_style)")}


def compare(pairs: list[tuple[str, float, float]], decimals: int) -> dict:
    """Reference (float32) against another precision: the largest |difference| and whether every number
    prints the same at ``decimals`` decimals (NaN = NaN)."""
    def same(a, b):
        return (math.isnan(a) and math.isnan(b)) or f"{a:.{decimals}f}" == f"{b:.{decimals}f}"

    diffs = [abs(b - a) for _, a, b in pairs if math.isfinite(a) and math.isfinite(b)]
    changed = [f"{k}: {a:.{decimals}f} → {b:.{decimals}f}" for k, a, b in pairs if not same(a, b)]
    worst = max(diffs, default=0.0)
    return {"n_numbers": len(pairs), "max_abs_diff": worst, "printed_decimals": decimals,
            "printed_precision": 10.0 ** -decimals, "printed_unchanged": not changed,
            "within_half_a_printed_unit": worst < 0.5 * 10.0 ** -decimals, "n_changed": len(changed),
            "changed": changed[:12]}


def precision_report(results: dict, modes) -> dict:
    """Per autocast-able experiment and precision mode: the comparison with float32 over every model and call.
    ``results[(experiment, model, call label, mode)] = (call, value)``."""
    out = {}
    for name, (decimals, what) in PRINTED.items():
        keys = [k for k in results if k[0] == name and k[3] == "float32"]
        if not keys:
            continue
        entry = {"autocast": True, "printed_as": what}
        for mode in modes:
            pairs, per_model, extra = [], {}, {"bands_max_abs_diff_deg": 0.0} if name == "theta" else {}
            for (_, model, lab, _) in keys:
                other = results.get((name, model, lab, mode))
                if other is None:
                    continue
                call, ref = results[(name, model, lab, "float32")]
                val = other[1]
                if name == "calibration":
                    a, b = calibration_numbers(ref, model), calibration_numbers(val, model)
                    flips = float((ref["pred"].to_numpy() != val["pred"].to_numpy()).mean())
                    dconf = float(np.abs(ref["confidence"].to_numpy() - val["confidence"].to_numpy()).max())
                    extra["top1_changed_fraction"] = max(extra.get("top1_changed_fraction", 0.0), flips)
                    extra["max_abs_confidence_diff"] = max(extra.get("max_abs_confidence_diff", 0.0), dconf)
                else:
                    (a, fa), (b, fb) = theta_numbers(ref, model, call), theta_numbers(val, model, call)
                    d = [abs(fb[k] - fa[k]) for k in fa if math.isfinite(fa[k]) and math.isfinite(fb[k])]
                    extra["bands_max_abs_diff_deg"] = max(extra["bands_max_abs_diff_deg"], max(d, default=0.0))
                p = [(f"{model} {lab} {k}", a[k], b[k]) for k in a]
                pairs += p
                per_model.setdefault(model, []).extend(p)
            if pairs:
                entry[mode] = {**compare(pairs, decimals), **extra,
                               "per_model": {m: compare(p, decimals)["max_abs_diff"] for m, p in per_model.items()}}
        out[name] = entry
    return out


# --- precision modes of the runner -----------------------------------------------------------------------

def tf32_allowed():
    """TF32 on while inside (:func:`curvlib.runner.execute.tf32`)."""
    from curvlib.runner import execute

    return execute.tf32(True)


@contextlib.contextmanager
def runner_precision(mode: str):
    """Inside: ``runner.run`` computes with TF32 allowed (mode "tf32"; a benchmark-only patch of the runner's
    float32_exact, which otherwise turns it off); other modes leave the runner as it is."""
    from curvlib.runner import execute

    saved = execute.float32_exact
    if mode == "tf32":
        execute.float32_exact = tf32_allowed
    try:
        yield
    finally:
        execute.float32_exact = saved


def variant(profile, mode: str, cache_dir: Path):
    return profile.replace(autocast="bf16" if mode == "bf16" else None, cache_dir=cache_dir)


# --- the physical bound ----------------------------------------------------------------------------------

def peak_for(device_name: str) -> tuple[str, dict] | None:
    up = device_name.upper()
    for words, key in _PEAK_MATCH:
        if all(w in up for w in words):
            return key, PEAK_TFLOPS[key]
    return None


def flops_per_image(model) -> int:
    """FLOPs of one forward pass of ``model`` on one image (torch.utils.flop_counter.FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    p = next(model.parameters())
    x = torch.rand(1, *model.input_size, device=p.device)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(x)
    return fc.get_total_flops()


def forward_bounds(model_names, target: dict, flops: dict, peak) -> dict:
    """Per model: the forward passes θ and calibration make at the paper sizes (θ: every call's images ×
    directions × grid points; calibration: every ImageNet val image), their FLOPs, and the minutes they take
    at least at the vendor peak of each precision (no other experiment: their backward passes and searches vary)."""
    out = {}
    for model in model_names:
        pts = 0
        for name, call in book_calls(["theta"]):
            q = runner.params_for(name, target[model], **call)
            pts += q["n_images"] * (1 if q["kind"] == "fgsm" else q["n_directions"]) * (q["n_steps"] + 1)
        n_cal = runner.params_for("calibration", target[model])["n"] or IMAGENET_VAL
        row = {"flops_per_image": flops[model], "theta_points": pts, "calibration_images": n_cal,
               "pflop": (pts + n_cal) * flops[model] / 1e15}
        if peak:
            row["min_minutes_at_peak"] = {m: {"theta": pts * flops[model] / (peak[1][m] * 1e12) / 60,
                                              "calibration": n_cal * flops[model] / (peak[1][m] * 1e12) / 60}
                                          for m in ("float32", "tf32", "bf16")}
        out[model] = row
    return out


def roofline(model_name: str, device: torch.device, n: int, batch: int, modes, device_name: str) -> dict:
    """Forward rate of ``model_name`` (random init) at its input size per precision, its FLOPs per image, and
    the vendor peak of this GPU it compares with."""
    m = models.load_paper(model_name, weights="random").to(device)
    m.check_inputs = False
    x = torch.rand(n, *m.input_size, generator=torch.Generator().manual_seed(0)).to(device)
    flops = flops_per_image(m)
    peak = peak_for(device_name) if device.type == "cuda" else None
    out = {"model": model_name, "input_size": list(m.input_size), "flops_per_image": flops, "images": n,
           "batch_size": batch, "flops_counted_by": "torch.utils.flop_counter.FlopCounterMode (forward, 1 image)",
           "peak_source": (f"{peak[1]['source']} ({peak[0]}): vendor figures, dense" if peak else
                           "no vendor peak for this device in PEAK_TFLOPS"), "modes": {}}
    for mode in modes:
        ctx = tf32_allowed() if mode == "tf32" else runner.float32_exact()
        with ctx:
            predict(m, x, batch, bf16=mode == "bf16")  # warm-up
            sync(device)
            t = time.perf_counter()
            predict(m, x, batch, bf16=mode == "bf16")
            sync(device)
            dt = time.perf_counter() - t
        rate = n / dt
        row = {"images_per_s": rate, "tflops_per_s": rate * flops / 1e12}
        if peak:
            row.update(peak_tflops=peak[1][mode], fraction_of_peak=row["tflops_per_s"] / peak[1][mode],
                       peak_bound_images_per_s=peak[1][mode] * 1e12 / flops)
        out["modes"][mode] = row
    return out


# --- the run ---------------------------------------------------------------------------------------------

def measure(calls, model_names, profiles: dict, levels: dict, modes, folder_images: int, tmp: Path,
            results: dict | None, reuse: bool) -> list[dict]:
    """Time every (experiment, call) for every model at every size level and precision mode; the
    autocast-able ones only in the modes besides float32. Fills ``results`` (values at level "hi")."""
    exps = experiments.registry()
    rows = []
    for model in model_names:
        with reuse_models() if reuse else contextlib.nullcontext():
            for level, sizes in levels.items():
                for mode in modes:
                    prof = variant(profiles[model].replace(**sizes), mode, tmp / f"cache_{model}_{level}_{mode}")
                    for name, call in calls:
                        if mode != "float32" and not exps[name].autocast:
                            continue
                        with runner_precision(mode):
                            dt, value = timed_run(name, model, prof, call)
                        u = units(runner.params_for(name, prof, **call), folder_images)
                        rows.append({"experiment": name, "call": label(call), "model": model, "precision": mode,
                                     "level": level, "seconds": dt, "units": u})
                        print(f"  {name:<21} {label(call):<40} {short(model):<16} {mode:<8} {level:<3} "
                              f"{dt:8.2f} s {u:>9.0f} units", flush=True)
                        if results is not None and level == "hi" and exps[name].autocast:
                            results[(name, model, label(call), mode)] = (call, value)
                        value = None
    return rows


def projections(rows, calls, model_names, target, load, reuse: bool) -> dict:
    """(experiment, call, model, mode) → projection dict, from the rows' (units, seconds) per level; the
    model loads are in the measured times, or (``reuse``) added to the projection."""
    out = {}
    for name, call in calls:
        for model in model_names:
            u_t = units(runner.params_for(name, target[model], **call), IMAGENET_VAL)
            for mode in ("float32", "bf16", "tf32"):
                pts = [(r["units"], r["seconds"]) for r in rows if r["experiment"] == name and r["model"] == model
                       and r["call"] == label(call) and r["precision"] == mode]
                if pts:
                    loads = load[model] * loads_per_call(name)
                    p = project(0.0 if reuse else loads, u_t, pts)
                    if reuse:
                        p.update(seconds=p["seconds"] + loads, fixed=p["fixed"] + loads)
                    out[(name, label(call), model, mode)] = {**p, "target_units": u_t, "loads_s": loads}
    return out


def embedded_check(sizes: str, modes, tmp: Path) -> dict:
    """The precision comparison on the shipped trained embedded models (Fashion-MNIST test set)."""
    base = config.get_profile("embedded", env={}, cache_dir=tmp / "cache_embedded", device=_device_name(),
                              **config.parse_sizes(sizes))
    calls = book_calls(["calibration", "theta"])
    results, seconds = {}, {}
    for model in base.models:
        for mode in modes:
            prof = variant(base, mode, tmp / f"cache_embedded_{mode}")
            for name, call in calls:
                with runner_precision(mode):
                    dt, value = timed_run(name, model, prof, call)
                results[(name, model, label(call), mode)] = (call, value)
                seconds[mode] = seconds.get(mode, 0.0) + dt
    rep = precision_report(results, [m for m in modes if m != "float32"])
    print(f"embedded (trained) models, {sizes}: " + ", ".join(f"{m} {s:.0f} s" for m, s in seconds.items())
          )
    return {"profile": "embedded", "models": list(base.models), "sizes": sizes, "seconds": seconds, **rep}


def _device_name() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu", action="store_true", help="run even without a GPU (slow: small sizes, few models)")
    p.add_argument("--models", default=",".join(PAPER_MODELS), help="comma-separated timm names")
    p.add_argument("--experiments", default="", help="comma-separated subset of the registry (default: every "
                   "experiment; a subset that leaves out an experiment another reads times that one inside it)")
    p.add_argument("--sizes", help=f"reduced sizes to measure at (CURVLIB_SIZES syntax; default on a GPU "
                   f"{GPU_SIZES}, on a CPU {SMALL})")
    p.add_argument("--fit", choices=("one", "two"), help="one measured size (fixed part = the model loads) or two "
                   "(--sizes-lo and --sizes: fixed part fitted); default: two on a GPU, one on a CPU")
    p.add_argument("--sizes-lo", default=GPU_SIZES_LO, help="the smaller sizes of --fit two")
    p.add_argument("--reload-models", action="store_true", help="let every runner.run build its model anew, as "
                   "`curvlib run` does (default: build each once and add the measured load time per load to the "
                   "projection: _paper_projection.reuse_models)")
    p.add_argument("--batch-size", type=int, help="default: per model from GPU memory as `curvlib run` chooses it "
                   "(inference.auto_batch_size); on a CPU the sizes' batch_size")
    p.add_argument("--images", type=int, help="synthetic images in the folder (default: the largest image count "
                   "of the sizes)")
    p.add_argument("--image-size", default="", help="HxW of the synthetic JPEGs (default 375x500, ImageNet val's "
                   "most common size, on a GPU; 256x320 on a CPU)")
    p.add_argument("--no-precision", action="store_true", help="time float32 only: no bf16 / TF32 comparison")
    p.add_argument("--embedded-sizes", default=EMBEDDED_SIZES, help="sizes of the precision comparison on the "
                   "trained embedded models ('none': skip it)")
    p.add_argument("--roofline-model", default="vit_base_patch16_224")
    p.add_argument("--roofline-n", type=int, help="images of the forward-rate measurement (default 2048 on a GPU, "
                   "8 on a CPU; 0 skips it)")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--json", help="also write the measurements and projections to this JSON file")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(_device_name())
    if dev.type != "cuda" and not a.cpu:
        print("bench_paper_gpu: no GPU here; skipped (use --cpu to run it on the CPU at small sizes)")
        return
    cuda = dev.type == "cuda"
    gpu = torch.cuda.get_device_name(dev) if cuda else "cpu"
    model_names = [m.strip() for m in a.models.split(",") if m.strip()]
    calls = book_calls([e for e in a.experiments.split(",") if e])
    sizes_hi = a.sizes or (GPU_SIZES if cuda else SMALL)
    fit = a.fit or ("two" if cuda else "one")
    levels = {"hi": config.parse_sizes(sizes_hi)}  # the larger first: one-time costs fall on it, not on the slope
    if fit == "two":
        levels["lo"] = config.parse_sizes(a.sizes_lo)
    modes = ["float32"] + ([] if a.no_precision else ["bf16"] + (["tf32"] if cuda else []))
    counts = [v for lv in levels.values() for k, v in lv.items() if k in ("n_calibration", "n_travel",
                                                                         "n_theta_images") and v]
    n_img = a.images or max(10, *counts)
    h, w = (int(v) for v in (a.image_size or ("375x500" if cuda else "256x320")).lower().split("x"))
    t_all = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench_paper_gpu_"))
    print(f"device {dev} ({gpu}), torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s); "
          f"{n_img} synthetic {h}×{w} JPEGs; fit: {fit}; measured at {sizes_hi}"
          + (f" and {a.sizes_lo}" if fit == "two" else ""))
    src = synthetic_folder(tmp / "val", n_img, size=(h, w))
    base = dict(env={}, device=str(dev), weights="random", check_accuracy=False)
    profiles, target, load, batch, flops = {}, {}, {}, {}, {}
    for model in model_names:
        folder = own_label_folder(src, tmp / f"val_{model}", model, str(dev), 32)
        prof = config.get_profile("paper", **base, data_dir=folder, cache_dir=tmp / "cache")
        bs = a.batch_size or (auto_batch_size(models.load(model, prof)) if cuda else None) or \
            levels["hi"].get("batch_size") or prof.batch_size
        batch[model] = bs
        profiles[model] = prof.replace(batch_size=bs)
        target[model] = profiles[model]  # the paper profile's sizes, this batch size
        load[model] = load_seconds(model, profiles[model])
        m = models.load(model, profiles[model])
        with runner.float32_exact():  # warm-up (CUDA context, kernels) before anything is timed
            predict(m, torch.rand(min(bs, 8), *m.input_size), bs)
        flops[model] = flops_per_image(m)
        m = None
        print(f"{model}: batch {bs}, load {load[model]:.2f} s, {flops[model] / 1e9:.2f} GFLOP per forward image")
    results = {}
    rows = measure(calls, model_names, profiles, levels, modes, n_img, tmp, results, not a.reload_models)
    proj = projections(rows, calls, model_names, target, load, not a.reload_models)

    names = list(dict.fromkeys(n for n, _ in calls))
    exps = experiments.registry()
    prec = precision_report(results, modes[1:]) if len(modes) > 1 else {}
    embedded = None
    if len(modes) > 1 and a.embedded_sizes.lower() != "none":
        embedded = embedded_check(a.embedded_sizes, modes, tmp)
    policy = {}
    for name in names:
        if not exps[name].autocast:
            prec[name] = {"autocast": False, "policy": "float32 (strict, TF32 off)",
                          "why": FLOAT32_WHY.get(name, "registered with autocast=False: the runner computes it in "
                                                       "strict float32 whatever the profile's autocast")}
            policy[name] = "float32"
            continue
        ok = [m for m in modes[1:] if prec.get(name, {}).get(m, {}).get("printed_unchanged")
              and (embedded is None or embedded.get(name, {}).get(m, {}).get("printed_unchanged", True))]
        fastest = min(ok, key=lambda m: sum(v["seconds"] for k, v in proj.items() if k[0] == name and k[3] == m),
                      default="float32")
        policy[name] = fastest
        prec.setdefault(name, {"autocast": True})["policy"] = fastest
    cells = {"float32": {}, "policy": {}}
    for (name, _, model, mode), v in proj.items():
        if mode == "float32":
            cells["float32"][(name, model)] = cells["float32"].get((name, model), 0.0) + v["seconds"]
        if mode == policy[name]:
            cells["policy"][(name, model)] = cells["policy"].get((name, model), 0.0) + v["seconds"]
    total = {k: sum(c.values()) / 60 for k, c in cells.items()}

    print(f"\nprojected `curvlib run all --profile paper` on {gpu}, minutes (strict float32; "
          f"random-init weights, synthetic data):")
    pol_txt = {n: policy[n] + (f" {sum(v for (e, _), v in cells['policy'].items() if e == n) / 60:.1f}"
                               if policy[n] != "float32" else "") for n in names}
    print("\n".join(minutes_table(cells["float32"], names, model_names, {"policy (min, all models)": pol_txt})))
    print(f"total strict float32 {total['float32']:.1f} min, with the precision policy {total['policy']:.1f} min "
          f"(target ≤ {TARGET_MIN:.0f} min on one H100-class GPU)")
    for name in names:
        e = prec.get(name, {})
        for m in modes[1:]:
            if m in e:
                c = e[m]
                print(f"  {name} {m}: printed numbers {'unchanged' if c['printed_unchanged'] else 'CHANGED'} "
                      f"({c['n_numbers']} numbers at {c['printed_decimals']} decimals, max |Δ| {c['max_abs_diff']:.2g}"
                      + (f"; {c['n_changed']} changed, e.g. {c['changed'][0]}" if c["changed"] else "") + ")")
    if embedded:
        for name in ("calibration", "theta"):
            for m in modes[1:]:
                c = embedded.get(name, {}).get(m)
                if c:
                    print(f"  embedded (trained) {name} {m}: printed numbers "
                          f"{'unchanged' if c['printed_unchanged'] else 'CHANGED'} ({c['n_numbers']} numbers, "
                          f"max |Δ| {c['max_abs_diff']:.2g}" + (f"; e.g. {c['changed'][0]}" if c["changed"] else "")
                          + ")")

    peak = peak_for(gpu) if cuda else None
    bounds = forward_bounds(model_names, target, flops, peak)
    print(f"\nforward FLOPs at the paper sizes: θ {next(iter(bounds.values()))['theta_points']:,} grid points and "
          f"calibration {IMAGENET_VAL:,} images per model, {sum(b['pflop'] for b in bounds.values()):.1f} PFLOP in all"
          + ("; at the vendor peak they take at least " + ", ".join(
              f"{m} {sum(sum(b['min_minutes_at_peak'][m].values()) for b in bounds.values()):.1f} min"
              for m in ("float32", "tf32", "bf16")) if peak else ""))
    roof = None
    n_roof = a.roofline_n if a.roofline_n is not None else (2048 if cuda else 8)
    if n_roof:
        rb = a.batch_size or (auto_batch_size(models.load_paper(a.roofline_model, weights="random").to(dev))
                              if cuda else None) or min(n_roof, 32)
        roof = roofline(a.roofline_model, dev, n_roof, rb, ["float32", "bf16"] + (["tf32"] if cuda else []), gpu)
        th = [r for r in rows if r["experiment"] == "theta" and r["model"] == a.roofline_model
              and r["call"] == "kind=random,protocol=oneway,saturation=False" and r["level"] == "hi"]
        for r in th:  # θ's rate: grid points per second of the whole call, beside the bare forward rate
            prm = runner.params_for("theta", profiles[r["model"]].replace(**levels["hi"]), kind="random")
            pts = prm["n_images"] * prm["n_directions"] * (prm["n_steps"] + 1)
            roof["modes"].get(r["precision"], {})["theta_points_per_s_whole_call"] = pts / r["seconds"]
        print(f"\nphysical bound: {roof['peak_source']}; {a.roofline_model} forward "
              f"{roof['flops_per_image'] / 1e9:.1f} GFLOP/image ({roof['flops_counted_by']}), batch {rb}:")
        for m, r in roof["modes"].items():
            print(f"  {m:<8} {r['images_per_s']:9.1f} images/s = {r['tflops_per_s']:7.2f} TFLOP/s"
                  + (f" = {100 * r['fraction_of_peak']:.0f} % of the {r['peak_tflops']:.1f} TFLOP/s peak "
                     f"(bound {r['peak_bound_images_per_s']:.0f} images/s)" if "peak_tflops" in r else "")
                  + (f"; θ {r['theta_points_per_s_whole_call']:.1f} points/s (whole call)"
                     if "theta_points_per_s_whole_call" in r else ""))
    wall = (time.perf_counter() - t_all) / 60
    print(f"\n(wall time of this benchmark {wall:.1f} min) caveats: random-init weights — travel, its check, the "
          "random jumps and the surgeries' searches stop where a random-init model's boundary lies, so those lines "
          "are indicative; synthetic noise JPEGs decode slower than photos; the accuracy pre-flight of pretrained "
          "weights (256 images per model, once) is not included; the precision comparison is on reduced sizes.")
    if a.json:
        out = {"device": gpu, "device_type": dev.type, "torch": torch.__version__,
               "cpu_threads": torch.get_num_threads(), "date": datetime.date.today().isoformat(),
               "target_profile": "paper", "target_min": TARGET_MIN, "fit": fit,
               "measured_sizes": {k: {f: "all" if v is None else v for f, v in lv.items()}
                                  for k, lv in levels.items()},
               "folder_images": n_img, "image_size": [h, w], "imagenet_val_images": IMAGENET_VAL,
               "models": model_names, "batch_size": batch, "load_s": load,
               "models_reused": not a.reload_models, "precision_modes": modes,
               "rows": rows,
               "projections": [{"experiment": k[0], "call": k[1], "model": k[2], "precision": k[3], **v}
                               for k, v in proj.items()],
               "projected_min": {k: {m: {n: c.get((n, m), 0.0) / 60 for n in names} for m in model_names}
                                 for k, c in cells.items()},
               "total_min": total, "policy": policy, "precision": prec, "precision_embedded": embedded,
               "forward_bounds": bounds, "roofline": roof, "wall_min": wall}
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
