"""Seed replicates of the embedded models, one command for all of them:
``python -m curvlib.seeds --models resnet,mobilenetv2,vit,swin --seeds 0,1,2 --out DIR --state-dir DIR``.

Each (model, seed) replays the model's recipe — its stages (a stage continues the previous one's
kept weights, as ``--init-from`` did), with their epochs, learning rates, warm-up, batch size and
weight decay — read from the model's card (``--cards``, default ``data/models``; a model without a
card trains its record's single-stage recipe), with the training seed replaced and the clean
stopping rule of :mod:`curvlib.train`: the same held-out validation split for every model and
seed, the best-validation epoch kept, the test set only reported.

Layout (``k`` the seed):

- ``<out>/seed<k>/<model>.safetensors`` + ``.json``: the final stage (float16 by default: loading
  upcasts to float32, the card says so and its metrics are those of the stored weights);
- ``<state-dir>/seed<k>/<model>/stage<i>/``: earlier stages' kept weights (float32), and
  ``<state-dir>/seed<k>/<model>/`` the per-epoch training states.

Every stage's card records the plan it belongs to (``seed_plan``): a finished (model, seed) — its
card's plan equal to the one asked for — is skipped, a finished stage is not retrained, and an
unfinished stage resumes from its last epoch (an interruption loses at most one epoch). Weights in
``<out>`` from another recipe (e.g. a legacy seed replicate) are never overwritten: that is an error
before anything trains. ``--device cuda`` trains on a GPU (data order and augmentation stay on
the CPU, so they do not depend on the device).

On a lent GPU machine (no network; the Debian training set may be missing there): carry the four
Fashion-MNIST idx ``.gz`` files (30 MB) and name their folder with ``--data-root``, write
``--out``/``--state-dir`` under the folder that comes back, and run the same command again to
resume what a time limit cut. ``--dry-run`` prints the plan (stages, epochs, learning rates).
Each card's ``train_time_s`` says how long its recipe took (``benchmarks/results/measurements.md``:
hours per seed on the 2-core development machine, so run it in the background or on a GPU).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from . import config, models, train
from .cache import atomic_write_bytes

#: Recipe fields a stage takes from a card (everything else is shared, or the seed).
STAGE_FIELDS = ("epochs", "lr", "warmup_epochs", "batch_size", "weight_decay")


def stages(model: str, cards: Path = config.MODEL_DIR) -> list[dict]:
    """The training stages of ``model``: [{epochs, lr, warmup_epochs, batch_size, weight_decay}]
    in order, from ``cards/<model>.json`` (earlier stages, then the last), else the record's recipe."""
    if model not in models.list_models():
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(models.list_models())}")
    defaults = {"warmup_epochs": 1.0, "batch_size": 128, "weight_decay": 0.05, **models.spec(model).recipe}
    path = Path(cards) / f"{model}.json"
    if not path.exists():
        return [{f: defaults[f] for f in STAGE_FIELDS}]
    card = json.loads(path.read_text())
    recipes = [s.get("recipe") or {} for s in card.get("earlier_stages", [])] + [card.get("recipe") or {}]
    out = []
    for i, r in enumerate(recipes, 1):
        missing = [f for f in ("epochs", "lr") if f not in r]
        if missing:
            raise ValueError(f"{path}: stage {i} records no {', '.join(missing)}; cannot replay the recipe")
        out.append({f: r.get(f, defaults[f]) for f in STAGE_FIELDS})
    return out


def _plan(model, seed, stage_list, i, opts) -> dict:
    return {"model": model, "seed": seed, "stage": i, "stages": stage_list, **opts}


def _finished(card_path: Path, plan: dict) -> bool:
    if not (card_path.exists() and card_path.with_suffix(".safetensors").exists()):
        return False
    return json.loads(card_path.read_text()).get("seed_plan") == plan


def _final_card(out: Path, model: str, seed: int) -> Path:
    return Path(out) / f"seed{seed}" / f"{model}.json"


def check_outputs(pairs, out: Path, plans: dict) -> None:
    """Refuse to overwrite weights in ``out`` trained by another recipe (error naming them)."""
    clash = []
    for model, seed in pairs:
        p = _final_card(out, model, seed)
        if (p.exists() or p.with_suffix(".safetensors").exists()) and not _finished(p, plans[model, seed]):
            clash.append(str(p.with_suffix(".safetensors")))
    if clash:
        raise FileExistsError("these weights come from another recipe and would be overwritten: "
                              + ", ".join(clash) + "; choose another --out or move them away")


def run(models_: list[str], seeds: list[int], out: Path, state_dir: Path, cards: Path = config.MODEL_DIR,
        device: str = "cpu", weights_dtype: str = "float16", val_size: int = train.VAL_SIZE,
        val_seed: int = train.VAL_SEED, subset: int | None = None, test_subset: int | None = None,
        data_root: Path | None = None, progress: bool = False, dry_run: bool = False,
        log=print) -> list[dict]:
    """Train every (model, seed) not finished yet; returns one summary row per pair (the skipped
    ones included): model, seed, status ("done" / "trained" / "planned"), chosen stage and epoch,
    validation and test accuracy, sECE, wall time, weight file and its MB."""
    out, state_dir = Path(out), Path(state_dir)
    opts = {"val_size": val_size, "val_seed": val_seed, "subset": subset, "test_subset": test_subset,
            "weights_dtype": weights_dtype}
    recipes = {m: stages(m, cards) for m in models_}
    pairs = [(m, s) for m in models_ for s in seeds]
    plans = {(m, s): _plan(m, s, recipes[m], len(recipes[m]), opts) for m, s in pairs}
    check_outputs(pairs, out, plans)
    rows = []
    for n, (model, seed) in enumerate(pairs, 1):
        final = _final_card(out, model, seed)
        head = f"[{n}/{len(pairs)}] {model} seed {seed}"
        if _finished(final, plans[model, seed]):
            log(f"{head}: finished, skipped ({final.with_suffix('.safetensors')})")
            rows.append(_row(model, seed, "done", final))
            continue
        st_list = recipes[model]
        log(f"{head}: {len(st_list)} stage(s), "
            + " + ".join(f"{s['epochs']} ep @ lr {s['lr']:g}" for s in st_list) + f", device {device}")
        if dry_run:
            rows.append({"model": model, "seed": seed, "status": "planned"})
            continue
        t0 = time.perf_counter()
        prev = None
        for i, st in enumerate(st_list, 1):
            last = i == len(st_list)
            odir = final.parent if last else state_dir / f"seed{seed}" / model / f"stage{i}"
            plan = plans[model, seed] if last else _plan(model, seed, st_list, i, opts | {"weights_dtype": "float32"})
            card_path = odir / f"{model}.json"
            if _finished(card_path, plan):
                log(f"{head}: stage {i}/{len(st_list)} finished, kept ({card_path.with_suffix('.safetensors')})")
            else:
                log(f"{head}: stage {i}/{len(st_list)}: {st['epochs']} epochs, lr {st['lr']:g}")
                train.train(model, **st, seed=seed, out=odir, checkpoints=state_dir / "unused-snapshots",
                            state_dir=state_dir / f"seed{seed}" / model, snapshots=(), subset=subset,
                            test_subset=test_subset, data_root=data_root, init_from=prev, progress=progress,
                            val_size=val_size, val_seed=val_seed, device=device,
                            weights_dtype=weights_dtype if last else "float32", extra_card={"seed_plan": plan})
            prev = odir / f"{model}.safetensors"
        row = _row(model, seed, "trained", final)
        log(f"{head}: done in {(time.perf_counter() - t0) / 60:.1f} min: chosen stage {row['chosen_stage']} "
            f"epoch {row['chosen_epoch']}, validation accuracy {row['val_accuracy']:.4f}, "
            f"test accuracy {row['test_accuracy']:.4f}, sECE {row['sece']:+.4f}, {row['MB']:.2f} MB")
        rows.append(row)
    return rows


def copy_stage(model: str, seed: int, stage: int, stem: str, out: Path, state_dir: Path,
               weights_dtype: str = "float16") -> Path:
    """Store the kept weights of one earlier ``stage`` of a finished (model, seed) beside its final ones, as
    ``<out>/seed<k>/<stem>.safetensors`` (+ card; floating tensors as ``weights_dtype``): e.g. the ViT's
    15-epoch first stage as ``vit_ep15``, the seed replicate of the parent its component-swap variants are
    compared with. The card records where the weights come from (``stage_of``)."""
    from safetensors.torch import load_file, save

    src = Path(state_dir) / f"seed{seed}" / model / f"stage{stage}" / f"{model}.safetensors"
    if not src.exists():
        raise FileNotFoundError(f"no stage {stage} of {model} seed {seed} at {src}: train it first "
                                "(python -m curvlib.seeds)")
    if weights_dtype not in train.WEIGHT_DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(train.WEIGHT_DTYPES)}, got {weights_dtype!r}")
    card = json.loads(src.with_suffix(".json").read_text())
    if card.get("seed") != seed or card.get("chosen", {}).get("stage") != stage:
        raise ValueError(f"{src}: its card is for seed {card.get('seed')}, stage {card.get('chosen', {}).get('stage')}")
    dtype = train.WEIGHT_DTYPES[weights_dtype]
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_file(str(src)).items()}
    dest = Path(out) / f"seed{seed}" / f"{stem}.safetensors"
    card.update(stage_of={"model": model, "seed": seed, "stage": stage, "source": str(src)},
                weights_dtype=f"{weights_dtype} (loaded as float32)")
    atomic_write_bytes(dest, save(state))
    atomic_write_bytes(dest.with_suffix(".json"), (json.dumps(card, indent=1, sort_keys=True) + "\n").encode())
    return dest


def _row(model: str, seed: int, status: str, card_path: Path) -> dict:
    c = json.loads(card_path.read_text())
    w = card_path.with_suffix(".safetensors")
    return {"model": model, "seed": seed, "status": status, "chosen_stage": c["chosen"]["stage"],
            "chosen_epoch": c["chosen"]["epoch"], "val_accuracy": c["chosen"].get("val_accuracy"),
            "test_accuracy": c["test_accuracy"], "sece": c["sece"], "train_time_s": c["train_time_s"],
            "weights": str(w), "MB": w.stat().st_size / 1e6}


def _ints(text: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return vals


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m curvlib.seeds", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet,mobilenetv2,vit,swin", help="comma-separated model names")
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="comma-separated training seeds")
    p.add_argument("--out", type=Path, required=True, help="seed<k>/<model>.safetensors go here")
    p.add_argument("--state-dir", type=Path, required=True, help="earlier stages and per-epoch training states")
    p.add_argument("--cards", type=Path, default=config.MODEL_DIR, help="cards whose recipes are replayed")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--weights-dtype", choices=sorted(train.WEIGHT_DTYPES), default="float16")
    p.add_argument("--val-size", type=int, default=train.VAL_SIZE)
    p.add_argument("--val-seed", type=int, default=train.VAL_SEED)
    p.add_argument("--subset", type=int, help="train on the first N non-held-out images (tests)")
    p.add_argument("--test-subset", type=int, help="evaluate on the first N test images (tests)")
    p.add_argument("--data-root", type=Path, help="directory with the Fashion-MNIST idx .gz files")
    p.add_argument("--dry-run", action="store_true", help="print the plan, train nothing")
    p.add_argument("--copy-stage", action="append", default=[], metavar="MODEL:STAGE:STEM",
                   help="after training, store that stage's kept weights as <out>/seed<k>/<STEM>.safetensors "
                        "(e.g. vit:1:vit_ep15, the parent of the ViT's component-swap variants)")
    a = p.parse_args(argv)
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    bad = [m for m in names if m not in models.list_models()]
    if bad:
        p.error(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(models.list_models())}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {a.device}: no CUDA device is available")
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = run(names, a.seeds, a.out, a.state_dir, cards=a.cards, device=a.device, weights_dtype=a.weights_dtype,
               val_size=a.val_size, val_seed=a.val_seed, subset=a.subset, test_subset=a.test_subset,
               data_root=a.data_root, progress=sys.stderr.isatty(), dry_run=a.dry_run,
               log=lambda s: print(s, flush=True))
    for spec in a.copy_stage:
        try:
            model, stage, stem = spec.split(":")
            stage = int(stage)
        except ValueError:
            p.error(f"--copy-stage wants MODEL:STAGE:STEM, got {spec!r}")
        if model not in names:
            p.error(f"--copy-stage {spec}: {model!r} is not among --models")
        if not a.dry_run:
            for k in a.seeds:
                print(f"stored {copy_stage(model, k, stage, stem, a.out, a.state_dir, a.weights_dtype)}", flush=True)
    done = [r for r in rows if "MB" in r]
    for m in names:
        mb = [r["MB"] for r in done if r["model"] == m]
        if mb:
            print(f"{m}: {len(mb)} seed(s), {sum(mb):.2f} MB of weights ({mb[0]:.2f} MB each)", flush=True)
    return rows


if __name__ == "__main__":
    main()
