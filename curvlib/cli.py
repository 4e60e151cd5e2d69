"""``python -m curvlib run EXPERIMENT ...``: fill the results cache the chapters read.

Also installed as the console script ``curvlib``. Examples::

    curvlib run all --profile paper --data /data/imagenet/val
    torchrun --nproc-per-node 8 -m curvlib run travel --profile paper --data /data/imagenet/val
    python -m curvlib run calibration --profile paper --data val --checkpoint resnet50=resnet50.safetensors

The experiments and their calls come from the registry (:mod:`curvlib.experiments`): each makes the
same cached calls, with the same parameters, as its chapter, so a later ``make book`` with the same
``CURVLIB_PROFILE`` / ``CURVLIB_DATA`` / ``CURVLIB_CACHE`` (on any machine, copying the cache
directory) builds from these results.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import cache, data, models, runner
from .config import SEARCH_NAMES, SIZES, get_profile, parse_checkpoints
from .experiments import registry
from .inference import auto_batch_size
from .runner import preflight


def parser(experiments) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curvlib", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="compute experiments into the results cache")
    r.add_argument("experiment", choices=(*experiments, "all"))
    r.add_argument("--profile", default=None,
                   help="embedded, smoke, paper-lite or paper (default: $CURVLIB_PROFILE, else embedded)")
    r.add_argument("--data", type=Path, help="ImageNet-labelled class folders (paper profiles): WordNet-id "
                   "folders (ImageNet val, Imagenette, …) or 0 … 999 (ImageNet-V2)")
    r.add_argument("--models", help="comma-separated model names (default: the profile's four)")
    r.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="local weights for a paper model (repeatable)")
    r.add_argument("--weights", choices=("pretrained", "random"), help="paper models: timm weights or random "
                   "init (tests and benchmarks only)")
    r.add_argument("--device", help="cpu, cuda, cuda:1 …")
    r.add_argument("--bf16", action="store_true", help="bf16 autocast for forward-only passes (calibration, θ); "
                   "travel and FGSM stay float32. Results are cached under their own key")
    r.add_argument("--cache", type=Path, help="results cache directory")
    r.add_argument("--search", choices=SEARCH_NAMES, help="boundary search setting for travel and the random "
                   "jump: default, or careful (more forward passes, fewer missed crossings; measured in "
                   "benchmarks/results/travel_frontier.txt)")
    r.add_argument("--no-accuracy-check", action="store_true", help="paper profiles: do not stop when a "
                   "pretrained model's top-1 on a seeded sample of 256 images is far below timm's published value")
    r.add_argument("--hash-data", action="store_true", help="paper profiles: identify the data folder by its "
                   "files' sha256 (survives a copy that loses modification times) instead of sizes and times")
    for f in SIZES:
        r.add_argument("--" + f.replace("_", "-"), type=int, help=f"override the profile's {f}")
    return p


def profile_from_args(a, error):
    """The profile the command line asks for: ``get_profile`` (the environment's settings) with the
    flags applied on top. Every torchrun rank parses the same flags, so nothing is passed through
    the environment."""

    changes = {f: getattr(a, f) for f in SIZES if getattr(a, f) is not None}
    if a.data is not None and a.data.expanduser().exists() and not a.data.expanduser().is_dir():
        error(f"--data {a.data} is a file, not a folder: give the folder holding one sub-folder per class")
    if a.hash_data:
        changes["hash_data"] = True
    for flag, field in (("device", "device"), ("cache", "cache_dir"), ("weights", "weights"), ("search", "search")):
        if getattr(a, flag) is not None:
            changes[field] = getattr(a, flag)
    if a.data is not None:  # the same absolute path as CURVLIB_DATA gives (and the same cache keys)
        changes["data_dir"] = a.data.expanduser().resolve()
    if a.bf16:
        changes["autocast"] = "bf16"
    if a.no_accuracy_check:
        changes["check_accuracy"] = False
    if a.models:
        changes["models"] = tuple(m.strip() for m in a.models.split(",") if m.strip())
    try:
        base = get_profile(a.profile)
        given_checkpoints = dict(parse_checkpoints(",".join(a.checkpoint)))  # malformed: that error first
        if base.dataset != "imagenet":  # flags the profile would ignore while the banner printed them
            given = [f for f, on in (("--data", a.data is not None), ("--weights", a.weights is not None),
                                     ("--checkpoint", bool(a.checkpoint)), ("--hash-data", a.hash_data),
                                     ("--no-accuracy-check", a.no_accuracy_check)) if on]
            if given:
                error(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} nothing on profile {base.name!r} "
                      f"(it reads the shipped Fashion-MNIST test set and the shipped models); they apply to the "
                      "ImageNet profiles paper-lite and paper")
        if a.checkpoint:
            changes["checkpoints"] = tuple(sorted({**dict(base.checkpoints), **given_checkpoints}.items()))
        profile = base.replace(**changes)
    except ValueError as e:
        error(str(e))
        return None
    check_device(profile.device, error)
    return profile


def check_device(name: str, error) -> None:
    """Call ``error`` with a clear message unless torch can run on device ``name`` here (``cpu``,
    ``cuda``, ``cuda:N`` with a GPU N, ``mps`` where available), before anything is loaded."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        error(f"device {name!r} (--device / CURVLIB_DEVICE) is not a device name; use cpu, cuda or cuda:N")
        return
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            error(f"device {name!r} (--device / CURVLIB_DEVICE): no CUDA GPU is available here (use cpu)")
        elif dev.index is not None and dev.index >= n:
            error(f"device {name!r} (--device / CURVLIB_DEVICE): only {n} CUDA GPU(s) here (cuda:0 … cuda:{n - 1})")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            error(f"device {name!r} (--device / CURVLIB_DEVICE): Apple's MPS is not available here (use cpu)")
    elif dev.type != "cpu":
        error(f"device {name!r} (--device / CURVLIB_DEVICE): curvlib runs on cpu, cuda or mps, not {dev.type}")


def main(argv=None) -> int:
    experiments = registry()
    p = parser(experiments)
    a = p.parse_args(argv)
    profile = profile_from_args(a, p.error)
    rank, size, profile = runner.init_distributed(profile)
    chosen = list(experiments) if a.experiment == "all" else [a.experiment]
    say = print if rank == 0 else (lambda *_, **__: None)
    say(f"{profile.summary()}; {size} process(es), cache {profile.cache_dir}")
    try:
        return _run(a, profile, experiments, chosen, size, say)
    except _stops() as e:  # a problem with the inputs, named by its message: no traceback
        print(f"curvlib: stopped: {e}", file=sys.stderr)
        return 2


def _stops() -> tuple:
    """Errors about the inputs (an unreadable image or folder, a cache that cannot be written) that
    stop ``curvlib run`` with their one-line message instead of a traceback."""

    return (data.ImageReadError, data.FolderError, cache.CacheNotWritable, PermissionError, FileNotFoundError,
            NotADirectoryError)


def _run(a, profile, experiments, chosen, size, say) -> int:
    cache.require_writable(profile.cache_dir / profile.name)  # before hours of work, not after
    batch = {name: profile for name in profile.models}
    if profile.device.startswith("cuda") and a.batch_size is None:  # size batches to the GPU's memory

        for name in profile.models:
            bs = auto_batch_size(models.load(name, profile))
            batch[name] = profile.replace(batch_size=bs)
            say(f"{name}: batch size {bs} (80 % of free GPU memory, FGSM forward + backward)")
    if profile.dataset == "imagenet":  # catch a wrong setup before any experiment runs

        try:
            for name in profile.models:
                r = preflight.require_accuracy(models.load(name, profile), profile)
                say(f"{name}: " + (f"top-1 {r['top1']:.1f} % on {r['n']} images (timm: {r['reference']:.1f} %), "
                                   "accuracy check passed" if r else preflight.why_unchecked(name, profile)))
        except preflight.SetupError as e:
            print(f"curvlib: stopped before any experiment: {e}", file=sys.stderr)
            return 2
    for exp in (experiments[e] for e in chosen):
        for name in profile.models:
            t = time.perf_counter()
            msg = "; ".join(exp.summary(runner.run(exp.name, name, batch[name], **call)) for call in exp.calls)
            say(f"{exp.name:12s} {name:32s} {time.perf_counter() - t:8.1f} s  {msg}", flush=True)
    if size > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
