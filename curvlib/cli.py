"""``python -m curvlib run EXPERIMENT ...``: fill the results cache the chapters read.

Examples::

    python -m curvlib run all --profile paper --data /data/imagenet/val
    torchrun --nproc-per-node 8 -m curvlib run travel --profile paper --data /data/imagenet/val
    python -m curvlib run calibration --profile paper --data val --checkpoint resnet50=resnet50.safetensors

Every experiment calls the same cached function, with the same parameters, as its chapter, so
a later ``make book`` with the same ``CURVLIB_PROFILE`` / ``CURVLIB_DATA`` / ``CURVLIB_CACHE``
(on any machine, copying the cache directory) builds from these results.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

#: experiment → what it runs (the chapter's calls)
EXPERIMENTS = ("calibration", "travel", "theta", "random_jump", "attention")


def _run_one(experiment: str, name: str, profile) -> str:
    from . import calibration, random_jump, trajectory, travel

    if experiment == "calibration":
        df = calibration.predictions(name, profile)
        return f"{len(df)} predictions, accuracy {df.correct.mean():.4f}"
    if experiment == "travel":
        frames = {kind: travel.travel_experiment(name, kind, profile) for kind in ("fgsm", "random")}
        return ", ".join(f"{k}: {int((df.status == 'crossed').sum())}/{len(df)} crossed" for k, df in frames.items())
    if experiment == "theta":
        shapes = {kind: tuple(trajectory.theta_experiment(name, kind, profile)["theta"].shape)
                  for kind in ("random", "fgsm")}
        return ", ".join(f"{k}: θ {shape}" for k, shape in shapes.items())
    if experiment == "random_jump":
        df = random_jump.jump_experiment(name, profile=profile)
        return f"{len(df)} pairs"
    if experiment == "attention":
        from .attention import attention_experiment

        df = attention_experiment(name, profile)
        return f"{df.layer.nunique()} modules"
    raise ValueError(f"unknown experiment {experiment!r}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m curvlib", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="compute experiments into the results cache")
    r.add_argument("experiment", choices=(*EXPERIMENTS, "all"))
    r.add_argument("--profile", default=None, help="embedded, smoke or paper (default: $CURVLIB_PROFILE)")
    r.add_argument("--data", help="ImageNet validation ImageFolder (paper profile; sets CURVLIB_DATA)")
    r.add_argument("--models", help="comma-separated model names (default: the profile's four)")
    r.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="local weights for a paper model (repeatable)")
    r.add_argument("--weights", choices=("pretrained", "random"), help="paper models: timm weights or random "
                   "init (tests and benchmarks only)")
    r.add_argument("--device", help="cpu, cuda, cuda:1 … (sets CURVLIB_DEVICE)")
    r.add_argument("--bf16", action="store_true", help="bf16 autocast for forward-only passes (calibration, θ); "
                   "travel and FGSM stay float32. Results are cached under their own key")
    r.add_argument("--cache", help="results cache directory (sets CURVLIB_CACHE)")
    for f in ("n_calibration", "n_travel", "n_theta_images", "n_directions", "n_steps", "batch_size"):
        r.add_argument("--" + f.replace("_", "-"), type=int, help=f"override the profile's {f}")
    a = p.parse_args(argv)

    # environment first: the experiments (and torchrun's other ranks) read the profile from it
    for flag, var in ((a.profile, "CURVLIB_PROFILE"), (a.data, "CURVLIB_DATA"), (a.device, "CURVLIB_DEVICE"),
                      (a.cache, "CURVLIB_CACHE"), (a.weights, "CURVLIB_WEIGHTS"),
                      ("bf16" if a.bf16 else None, "CURVLIB_AUTOCAST")):
        if flag:
            os.environ[var] = str(flag)
    if a.checkpoint:
        for c in a.checkpoint:
            if "=" not in c:
                p.error(f"--checkpoint must be NAME=PATH, got {c!r}")
        os.environ["CURVLIB_CHECKPOINTS"] = ",".join(a.checkpoint)

    from . import runner
    from .config import get_profile

    rank, size = runner.init_distributed()
    profile = get_profile()
    overrides = {f: getattr(a, f) for f in ("n_calibration", "n_travel", "n_theta_images", "n_directions",
                                            "n_steps", "batch_size") if getattr(a, f) is not None}
    if overrides:
        profile = profile.replace(**overrides)
    names = tuple(m.strip() for m in a.models.split(",") if m.strip()) if a.models else profile.models
    profile = profile.replace(models=names)
    experiments = EXPERIMENTS if a.experiment == "all" else (a.experiment,)
    say = print if rank == 0 else (lambda *_, **__: None)
    say(f"profile {profile.name} on {profile.device}, {size} process(es), cache {profile.cache_dir}")
    batch = {name: profile for name in names}
    if str(profile.device).startswith("cuda") and a.batch_size is None:  # size batches to the GPU's memory
        from . import models
        from .inference import auto_batch_size

        for name in names:
            bs = auto_batch_size(models.load(name, profile))
            batch[name] = profile.replace(batch_size=bs)
            say(f"{name}: batch size {bs} (80 % of free GPU memory, FGSM forward + backward)")
    for exp in experiments:
        for name in names:
            t = time.perf_counter()
            msg = _run_one(exp, name, batch[name])
            say(f"{exp:12s} {name:32s} {time.perf_counter() - t:8.1f} s  {msg}", flush=True)
    if size > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
