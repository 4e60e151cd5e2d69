"""Train an embedded model on Fashion-MNIST: ``python -m curvlib.train --model vit``.

Recipe ingredients shared by all models: AdamW, linear warm-up then cosine decay per step,
cross-entropy *without* label smoothing (it would change calibration), light augmentation (random
shifts of up to 2 px, horizontal flips), seeded. Epochs, learning rate and the number of stages
(a run continued from the previous one's weights) differ per model: each card records them, and
:func:`recipe_table` lists them.

Stopping rule. ``val_size`` images (default 5,000) are held out of the 60,000 *training* images
by :func:`validation_split` — a fixed seed (:data:`VAL_SEED`) independent of the training seed,
so every model and seed holds out the same images — and the run keeps the weights of the epoch
with the highest *validation accuracy* (the first epoch reaching it; an epoch must beat the best
so far strictly). Accuracy, not NLL: the book's measurements are about calibration (ECE, sECE),
and choosing the epoch by a calibration-sensitive criterion such as NLL would select for the
quantity under study. The test set is evaluated every epoch and only reported. ``val_size=0``
reproduces the legacy recipe of the shipped weights (no split, the last epoch kept; their
lengths were chosen by watching the test accuracy). A later stage (``init_from``) starts from the
earlier stage's kept weights, which stay the choice unless one of its epochs beats them.

The run is resumable: the full training state (model, optimiser, schedule, best weights so far)
is saved atomically after every epoch to ``--state-dir`` and picked up by the next run with the
same arguments, on any device. Outputs:

- ``<out>/<model>.safetensors`` + ``<model>.json`` (the card: test accuracy, ECE, sECE of the kept
  weights, parameters, seed, validation split (size, seed, sha256 of the held-out indices), the
  chosen epoch, per-epoch validation and test history, wall time, recipe, versions);
- ``<checkpoints>/<model>_ep<E>.safetensors`` (+ card) for the epochs in ``--snapshots``.

``weights_dtype="float16"`` stores the kept weights in half precision (half the bytes); the card
says so, its metrics are measured on the rounded weights, and loading upcasts them to float32.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import config, data, models
from .cache import atomic_write_bytes
from .inference import predict
from .measure.calibration import calibration_table, ece, sece

#: Per-model default recipe (epochs chosen to converge within the CPU budget; lr per family), from
#: the model records (variants inherit their parent's).
DEFAULTS = {name: dict(models.spec(name).recipe) for name in models.list_models()}
SNAPSHOT_MODELS = ("resnet", "vit")
#: The epochs after which those models' snapshots are kept (``data/checkpoints``, the ablations chapter).
SNAPSHOT_EPOCHS = (1, 2, 5, 10)
#: Images held out of the training set for choosing the epoch, and the seed that picks them
#: (fixed, independent of the training seed: one split for every model and seed).
VAL_SIZE, VAL_SEED = 5000, 29
#: The stopping criterion, as recorded in cards.
SELECTION = "highest validation accuracy (first epoch reaching it)"
WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def validation_split(n_total: int, val_size: int = VAL_SIZE, seed: int = VAL_SEED
                     ) -> tuple[torch.Tensor, torch.Tensor, dict | None]:
    """Split ``n_total`` training images into (train indices [n_total − val_size], held-out
    indices [val_size], record), both sorted int64. The held-out images are the first
    ``val_size`` of a permutation seeded by ``seed`` only. The record (None for ``val_size=0``)
    names the split in cards: size, seed, n_total and the sha256 of the held-out indices
    (little-endian int64), first 16 hex digits."""
    if not isinstance(val_size, int) or not 0 <= val_size < n_total:
        raise ValueError(f"val_size must be an integer in [0, {n_total}) for {n_total} training images, "
                         f"got {val_size!r}")
    if val_size == 0:
        return torch.arange(n_total), torch.empty(0, dtype=torch.long), None
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    held = perm[:val_size].sort().values
    keep = torch.ones(n_total, dtype=torch.bool)
    keep[held] = False
    digest = hashlib.sha256(held.numpy().astype("<i8").tobytes()).hexdigest()[:16]
    return torch.arange(n_total)[keep], held, {"size": val_size, "seed": seed, "n_total": n_total,
                                               "indices_sha256": digest, "selection": SELECTION}


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shifts in [-2, 2] px (the 2-px zero border makes rolling exact) and h-flips of
    ``x`` [N, C, H, W]: image i is ``torch.roll(x[i], shifts_i, dims=(1, 2))``, then flipped if
    drawn — done as one gather for the whole batch (no per-image loop)."""
    n, c, h, w = x.shape
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    rows = (torch.arange(h)[None] - shifts[:, :1]) % h  # [N, H]: source row of each output row
    cols = (torch.arange(w)[None] - shifts[:, 1:]) % w  # [N, W]
    cols = torch.where(flips[:, None], cols.flip(-1), cols)
    src = (rows[:, :, None] * w + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, src).view(n, c, h, w)


@torch.inference_mode()
def evaluate(model: models.CurvModel, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict:
    """Accuracy, NLL (mean cross-entropy, nats), ECE and sECE (10 equal-width bins) of ``model``
    on (x, y); the model may be on any device (inputs move batch by batch)."""

    was_training = model.training
    model.eval()
    probs = predict(model, x, batch_size)
    model.train(was_training)
    conf, pred = probs.max(-1)
    correct = pred == y
    table = calibration_table(conf, correct)
    nll = -probs[torch.arange(len(y)), y].clamp_min(torch.finfo(probs.dtype).tiny).log().mean().item()
    return {"accuracy": correct.float().mean().item(), "nll": nll, "ece": ece(table), "sece": sece(table),
            "mean_confidence": conf.mean().item(), "n_test": len(y)}


def _round_weights(model: models.CurvModel, dtype: torch.dtype) -> None:
    """Round the floating tensors of ``model``'s state through ``dtype`` in place (so metrics are
    measured on exactly the weights that will be stored); an overflow is an error."""
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point() and v.dtype != dtype:
                r = v.to(dtype)
                if not torch.isfinite(r).all() and torch.isfinite(v).all():
                    raise ValueError(f"{k} does not fit {dtype} (max |w| = {v.abs().max().item():.3g})")
                v.copy_(r)


def _save_weights(model: models.CurvModel, path: Path, card: dict, dtype: torch.dtype = torch.float32) -> None:
    """Weights (floating tensors stored as ``dtype``) + card, each written atomically."""
    from safetensors.torch import save

    state = {k: (v.to(dtype) if v.is_floating_point() else v).detach().contiguous().cpu()
             for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state))
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(card, indent=1, sort_keys=True) + "\n").encode())


def store_half(model_name: str, path: Path, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> dict:
    """Store the weights in ``path`` (float32, an embedded ``model_name``) as float16, loaded as float32 —
    the seed replicates' format, half the bytes — and re-measure its card's test metrics on exactly the
    stored weights (``x``, ``y``: the test set; default the shipped Fashion-MNIST one); the float32
    metrics stay in the card as ``float32_metrics``. Returns the new card. Already float16: an error."""
    from safetensors.torch import load_file

    path = Path(path)
    if any(v.dtype == torch.float16 for v in load_file(str(path)).values()):
        raise ValueError(f"{path} is already stored in float16")
    model = models.load_embedded(model_name, path)
    card = {k: v for k, v in model.card.items() if k != "sha256"}
    if x is None or y is None:
        x, y = data.fashion_mnist("test")
    before = evaluate(model, x, y)
    _round_weights(model, torch.float16)
    after = evaluate(model, x, y)
    keys = [k for k in ("accuracy", "nll", "ece", "sece", "mean_confidence") if k in card]
    card.update({k: after[k] for k in keys}, weights_dtype="float16 (loaded as float32)",
                float32_metrics={k: before[k] for k in keys})
    _save_weights(model, path, card, torch.float16)
    return card


def train(model_name: str, epochs: int | None = None, batch_size: int = 128, lr: float | None = None,
          weight_decay: float = 0.05, warmup_epochs: float = 1.0, seed: int = 0,
          out: Path = config.MODEL_DIR, checkpoints: Path = config.CHECKPOINT_DIR,
          state_dir: Path = config.DATA_DIR / "train_state", snapshots: tuple[int, ...] | None = None,
          subset: int | None = None, max_steps: int | None = None, data_root: Path | None = None,
          test_subset: int | None = None, init_from: Path | None = None, progress: bool = True,
          val_size: int = VAL_SIZE, val_seed: int = VAL_SEED, device: str | torch.device = "cpu",
          weights_dtype: str = "float32", extra_card: dict | None = None) -> dict:
    """Train (or resume training) ``model_name``; returns the card written next to the weights.

    ``init_from``: weights (+ card) of an earlier run to continue from — a second training
    stage with its own schedule. Epoch numbers, history and wall time then continue the earlier
    card's, and the card lists the earlier stage's recipe; both stages must hold out the same
    validation split. ``val_size``/``val_seed``: see :func:`validation_split` (``subset`` then
    keeps the first ``subset`` of the remaining training images). ``device``: where to train
    (augmentation and the data order stay on the CPU, so they do not depend on it).
    ``weights_dtype``: "float32" or "float16" storage of the kept weights. ``extra_card``: merged
    into the card (e.g. the seed driver's plan).
    """
    if model_name not in models.list_models():
        raise ValueError(f"unknown model {model_name!r}; choose one of {', '.join(models.list_models())}")
    if weights_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {weights_dtype!r}")
    d = DEFAULTS.get(model_name, {})
    epochs = epochs or d.get("epochs", 10)
    lr = lr or d.get("lr", 1e-3)
    if snapshots is None:
        snapshots = SNAPSHOT_EPOCHS if model_name in SNAPSHOT_MODELS else ()
    out, checkpoints, state_dir = Path(out), Path(checkpoints), Path(state_dir)
    device = torch.device(device)

    x_all, y_all = data.fashion_mnist("train", root=data_root)
    train_idx, val_idx, split = validation_split(len(y_all), val_size, val_seed)
    if subset is not None:
        train_idx = train_idx[:subset]
    x_train, y_train = x_all[train_idx], y_all[train_idx]
    x_val, y_val = x_all[val_idx], y_all[val_idx]
    del x_all, y_all
    x_test, y_test = data.fashion_mnist("test", n=test_subset)
    torch.manual_seed(seed)
    model = models.build(model_name)
    prev = None
    if init_from is not None:
        prev_model = models.load_embedded(model_name, init_from)
        model.load_state_dict(prev_model.state_dict())
        prev = prev_model.card
        if prev.get("validation") != split:
            raise ValueError(f"{init_from} was trained with validation split {prev.get('validation')}, this stage "
                             f"holds out {split}: a stage may not train on images another stage held out "
                             "(use the same val_size and val_seed)")
    offset = prev["epochs_trained"] if prev else 0
    stage = len(prev.get("earlier_stages", [])) + 2 if prev else 1
    model.check_inputs = False  # inputs come from our own loader; skip the per-batch range check
    # channels-last: faster depthwise convolutions on CPU (MobileNetV2), neutral elsewhere
    model = model.to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total = steps_per_epoch * epochs
    warm = max(1, int(warmup_epochs * steps_per_epoch))

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    def cpu_state() -> dict:
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    recipe = dict(model=model_name, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  warmup_epochs=warmup_epochs, seed=seed, subset=subset, augmentation="shift2+hflip",
                  label_smoothing=0.0, optimizer="AdamW", schedule="warmup+cosine",
                  init_from=None if prev is None else {"file": Path(init_from).name, "sha256": prev["sha256"]})
    if split is not None:  # legacy recipes (val_size=0) keep their hash, so their states still resume
        recipe.update(val_size=val_size, val_seed=val_seed, select="val_accuracy")
    recipe_hash = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    state_path = state_dir / f"{model_name}-{recipe_hash}.pt"
    start_epoch, elapsed, history, best = 0, 0.0, [], None
    if prev is not None:
        elapsed, history = float(prev.get("train_time_s", 0.0)), list(prev.get("history", []))
        if split is not None:  # the earlier stage's choice stands unless an epoch here beats it
            best = {**prev["chosen"], "state": cpu_state()}
    if state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        start_epoch, elapsed, history, best = st["epoch"], st["elapsed"], st["history"], st.get("best")
        print(f"resuming {model_name} from epoch {start_epoch} ({state_path})", flush=True)

    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        model.train()
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(len(x_train), generator=g)
        running, seen = torch.zeros((), dtype=torch.float64, device=device), 0
        bar = tqdm(range(steps_per_epoch), desc=f"{model_name} epoch {offset + epoch + 1}/{offset + epochs}",
                   disable=not progress,
                   mininterval=5)
        for b in bar:
            idx = order[b * batch_size:(b + 1) * batch_size]
            xb = augment(x_train[idx], g).to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yb = y_train[idx].to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.detach().double() * len(idx)
            seen += len(idx)
            step += 1
            if progress and b % 50 == 0:
                bar.set_postfix(loss=f"{running.item() / seen:.3f}")
            if max_steps is not None and step >= max_steps:
                break
        elapsed += time.perf_counter() - t0
        metrics = evaluate(model, x_test, y_test)
        val = {} if split is None else {f"val_{k}": v for k, v in evaluate(model, x_val, y_val).items()
                                        if k in ("accuracy", "nll", "ece", "sece")}
        history.append({"stage": stage, "epoch": offset + epoch + 1, "train_loss": running.item() / max(1, seen),
                        **metrics, **val, "elapsed_s": round(elapsed, 1)})
        print(json.dumps(history[-1]), flush=True)
        if split is not None and (best is None or val["val_accuracy"] > best["val_accuracy"]):
            best = {"stage": stage, "epoch": offset + epoch + 1, "val_accuracy": val["val_accuracy"],
                    "val_nll": val["val_nll"], "state": cpu_state()}
        if offset + epoch + 1 in snapshots:
            _save_weights(model, checkpoints / f"{model_name}_ep{offset + epoch + 1}.safetensors",
                          {"model": model_name, "epoch": offset + epoch + 1, **metrics})
        buf = io.BytesIO()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1, "elapsed": elapsed, "history": history, "best": best}, buf)
        atomic_write_bytes(state_path, buf.getvalue())
        if max_steps is not None and step >= max_steps:
            break

    if split is None:  # legacy rule: the last epoch
        last = history[-1]
        chosen = {"stage": last.get("stage", stage), "epoch": last["epoch"]}
    else:
        model.load_state_dict(best["state"])
        chosen = {k: v for k, v in best.items() if k != "state"}
    model.eval()
    dtype = WEIGHT_DTYPES[weights_dtype]
    _round_weights(model, dtype)
    final = evaluate(model, x_test, y_test)
    card = {"name": model_name, "parameters": models.num_params(model), "epochs_trained": chosen["epoch"],
            "chosen": chosen, "selection": SELECTION if split else "last epoch (no validation split)",
            "validation": split, "seed": seed,
            "train_time_s": round(elapsed, 1), "threads": torch.get_num_threads(), "device": _device_name(device),
            "recipe": recipe, "weights_dtype": weights_dtype + ("" if dtype == torch.float32 else
                                                                 " (loaded as float32)"),
            "test_accuracy": round(final["accuracy"], 4), "ece": round(final["ece"], 4),
            "sece": round(final["sece"], 4), "nll": round(final["nll"], 4),
            "mean_confidence": round(final["mean_confidence"], 4),
            "n_test": final["n_test"], "history": history,
            "earlier_stages": ([*prev.get("earlier_stages", []), {"recipe": prev.get("recipe"),
                                "epochs_trained": prev.get("epochs_trained"), "chosen": prev.get("chosen")}]
                               if prev else []),
            "versions": {"torch": torch.__version__, "timm": __import__("timm").__version__},
            **(extra_card or {})}
    _save_weights(model, out / f"{model_name}.safetensors", card, dtype)
    return card


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def recipe_table(cards: dict[str, dict]) -> pd.DataFrame:
    """One row per model card (``models.load(...).card``): training stages, total epochs, the
    learning rate of each stage, and the final test accuracy and sECE recorded at training time."""
    rows = []
    for name, c in cards.items():
        stages = [*c.get("earlier_stages", []), {"recipe": c.get("recipe"), "epochs_trained": c.get("epochs_trained")}]
        recipes = [s.get("recipe") or {} for s in stages]
        rows.append({"model": name, "stages": len(stages), "epochs": c.get("epochs_trained"),
                     "epochs per stage": " + ".join(str(r.get("epochs", "?")) for r in recipes),
                     "learning rates": ", ".join(f"{r.get('lr', float('nan')):g}" for r in recipes),
                     "test accuracy": c.get("test_accuracy"), "sECE": c.get("sece")})
    return pd.DataFrame(rows).set_index("model")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m curvlib.train", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=models.list_models())
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=config.MODEL_DIR)
    p.add_argument("--checkpoints", type=Path, default=config.CHECKPOINT_DIR)
    p.add_argument("--state-dir", type=Path, default=config.DATA_DIR / "train_state")
    p.add_argument("--snapshots", type=str, help="comma-separated epochs to keep, e.g. 1,2,5,10")
    p.add_argument("--subset", type=int, help="train on the first N training images (tests)")
    p.add_argument("--test-subset", type=int, help="evaluate on the first N test images (tests)")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (tests)")
    p.add_argument("--data-root", type=Path, help="directory with the Fashion-MNIST idx .gz files")
    p.add_argument("--init-from", type=Path, help="continue from these weights (a second stage with its own schedule)")
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--val-size", type=int, default=VAL_SIZE,
                   help=f"training images held out for choosing the epoch (default {VAL_SIZE}; 0: legacy, last epoch)")
    p.add_argument("--val-seed", type=int, default=VAL_SEED, help="seed of the held-out images (not the training seed)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--weights-dtype", choices=sorted(WEIGHT_DTYPES), default="float32",
                   help="storage precision of the kept weights (float16 halves the file; loading upcasts)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    snaps = tuple(int(s) for s in a.snapshots.split(",") if s) if a.snapshots is not None else None
    card = train(a.model, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
                 seed=a.seed, out=a.out, checkpoints=a.checkpoints, state_dir=a.state_dir, snapshots=snaps,
                 subset=a.subset, max_steps=a.max_steps, data_root=a.data_root, test_subset=a.test_subset,
                 init_from=a.init_from, warmup_epochs=a.warmup_epochs, val_size=a.val_size, val_seed=a.val_seed,
                 device=a.device, weights_dtype=a.weights_dtype, progress=sys.stderr.isatty())
    print(json.dumps({k: v for k, v in card.items() if k != "history"}, indent=1))


if __name__ == "__main__":
    main()
