"""Train an embedded model on Fashion-MNIST: ``python -m curvlib.train --model vit``.

Recipe ingredients shared by all models: AdamW, linear warm-up then cosine decay per step,
cross-entropy *without* label smoothing (it would change calibration), light augmentation (random
shifts of up to 2 px, horizontal flips), seeded. Epochs, learning rate and the number of stages
(a run continued from the previous one's weights) differ per model: each card records them, and
:func:`recipe_table` lists them. Training lengths were chosen by watching the *test* accuracy
(the per-epoch history is measured on the test set; no validation split is held out).
The run is resumable: the full training state is saved atomically after every epoch to
``--state-dir`` and picked up by the next run with the same arguments. Outputs:

- ``<out>/<model>.safetensors`` + ``<model>.json`` (the card: accuracy, ECE, sECE, parameters,
  epochs, seed, wall time, recipe, versions);
- ``<checkpoints>/<model>_ep<E>.safetensors`` (+ card) for the epochs in ``--snapshots``.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import data, models
from .cache import atomic_write_bytes

#: Per-model default recipe (epochs chosen to converge within the CPU budget; lr per family), from
#: the model records (variants inherit their parent's).
DEFAULTS = {name: dict(models.spec(name).recipe) for name in models.list_models()}
SNAPSHOT_MODELS = ("resnet", "vit")


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shifts in [-2, 2] px (the 2-px zero border makes rolling exact) and h-flips."""
    n = x.shape[0]
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        xi = torch.roll(x[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
        out[i] = xi.flip(-1) if flips[i] else xi
    return out


@torch.inference_mode()
def evaluate(model: models.CurvModel, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict:
    """Accuracy, ECE and sECE (10 equal-width bins) of ``model`` on (x, y)."""
    from .calibration import calibration_table, ece, sece
    from .inference import predict

    was_training = model.training
    model.eval()
    probs = predict(model, x, batch_size)
    model.train(was_training)
    conf, pred = probs.max(-1)
    correct = pred == y
    table = calibration_table(conf, correct)
    return {"accuracy": correct.float().mean().item(), "ece": ece(table), "sece": sece(table),
            "mean_confidence": conf.mean().item(), "n_test": len(y)}


def _save_weights(model: models.CurvModel, path: Path, card: dict) -> None:
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state))
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(card, indent=1, sort_keys=True) + "\n").encode())


def train(model_name: str, epochs: int | None = None, batch_size: int = 128, lr: float | None = None,
          weight_decay: float = 0.05, warmup_epochs: float = 1.0, seed: int = 0,
          out: Path = models.MODEL_DIR, checkpoints: Path = models.CHECKPOINT_DIR,
          state_dir: Path = models.DATA_DIR / "train_state", snapshots: tuple[int, ...] | None = None,
          subset: int | None = None, max_steps: int | None = None, data_root: Path | None = None,
          test_subset: int | None = None, init_from: Path | None = None, progress: bool = True) -> dict:
    """Train (or resume training) ``model_name``; returns the card written next to the weights.

    ``init_from``: weights (+ card) of an earlier run to continue from — a second training
    stage with its own schedule. Epoch numbers, history and wall time then continue the earlier
    card's, and the card lists the earlier stage's recipe.
    """
    if model_name not in models.list_models():
        raise ValueError(f"unknown model {model_name!r}; choose one of {', '.join(models.list_models())}")
    d = DEFAULTS.get(model_name, {})
    epochs = epochs or d.get("epochs", 10)
    lr = lr or d.get("lr", 1e-3)
    if snapshots is None:
        snapshots = (1, 2, 5, 10) if model_name in SNAPSHOT_MODELS else ()
    out, checkpoints, state_dir = Path(out), Path(checkpoints), Path(state_dir)

    x_train, y_train = data.fashion_mnist("train", n=subset, root=data_root)
    x_test, y_test = data.fashion_mnist("test", n=test_subset)
    torch.manual_seed(seed)
    model = models.build(model_name)
    prev = None
    if init_from is not None:
        prev_model = models.load_embedded(model_name, init_from)
        model.load_state_dict(prev_model.state_dict())
        prev = prev_model.card
    offset = prev["epochs_trained"] if prev else 0
    model.check_inputs = False  # inputs come from our own loader; skip the per-batch range check
    # channels-last: ~1.7x faster depthwise convolutions on CPU (MobileNetV2), neutral elsewhere
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total = steps_per_epoch * epochs
    warm = max(1, int(warmup_epochs * steps_per_epoch))

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    recipe = dict(model=model_name, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  warmup_epochs=warmup_epochs, seed=seed, subset=subset, augmentation="shift2+hflip",
                  label_smoothing=0.0, optimizer="AdamW", schedule="warmup+cosine",
                  init_from=None if prev is None else {"file": Path(init_from).name, "sha256": prev["sha256"]})
    recipe_hash = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    state_path = state_dir / f"{model_name}-{recipe_hash}.pt"
    start_epoch, elapsed, history = 0, 0.0, []
    if prev is not None:
        elapsed, history = float(prev.get("train_time_s", 0.0)), list(prev.get("history", []))
    if state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        start_epoch, elapsed, history = st["epoch"], st["elapsed"], st["history"]
        print(f"resuming {model_name} from epoch {start_epoch} ({state_path})", flush=True)

    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        model.train()
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(len(x_train), generator=g)
        running, seen = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"{model_name} epoch {offset + epoch + 1}/{offset + epochs}",
                   disable=not progress,
                   mininterval=5)
        for b in bar:
            idx = order[b * batch_size:(b + 1) * batch_size]
            xb, yb = augment(x_train[idx], g).contiguous(memory_format=torch.channels_last), y_train[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(idx)
            seen += len(idx)
            step += 1
            if b % 50 == 0:
                bar.set_postfix(loss=f"{running / seen:.3f}")
            if max_steps is not None and step >= max_steps:
                break
        elapsed += time.perf_counter() - t0
        metrics = evaluate(model, x_test, y_test)
        history.append({"epoch": offset + epoch + 1, "train_loss": running / max(1, seen), **metrics,
                        "elapsed_s": round(elapsed, 1)})
        print(json.dumps(history[-1]), flush=True)
        if offset + epoch + 1 in snapshots:
            _save_weights(model, checkpoints / f"{model_name}_ep{offset + epoch + 1}.safetensors",
                          {"model": model_name, "epoch": offset + epoch + 1, **metrics})
        buf = io.BytesIO()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1, "elapsed": elapsed, "history": history}, buf)
        atomic_write_bytes(state_path, buf.getvalue())
        if max_steps is not None and step >= max_steps:
            break

    model.eval()
    final = evaluate(model, x_test, y_test)
    card = {"name": model_name, "parameters": models.num_params(model), "epochs_trained": history[-1]["epoch"],
            "train_time_s": round(elapsed, 1), "threads": torch.get_num_threads(), "recipe": recipe,
            "test_accuracy": round(final["accuracy"], 4), "ece": round(final["ece"], 4),
            "sece": round(final["sece"], 4), "mean_confidence": round(final["mean_confidence"], 4),
            "n_test": final["n_test"], "history": history,
            "earlier_stages": ([*prev.get("earlier_stages", []), {"recipe": prev.get("recipe"),
                                "epochs_trained": prev.get("epochs_trained")}] if prev else []),
            "versions": {"torch": torch.__version__, "timm": __import__("timm").__version__}}
    _save_weights(model, out / f"{model_name}.safetensors", card)
    return card


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
    p.add_argument("--out", type=Path, default=models.MODEL_DIR)
    p.add_argument("--checkpoints", type=Path, default=models.CHECKPOINT_DIR)
    p.add_argument("--state-dir", type=Path, default=models.DATA_DIR / "train_state")
    p.add_argument("--snapshots", type=str, help="comma-separated epochs to keep, e.g. 1,2,5,10")
    p.add_argument("--subset", type=int, help="train on the first N training images (tests)")
    p.add_argument("--test-subset", type=int, help="evaluate on the first N test images (tests)")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (tests)")
    p.add_argument("--data-root", type=Path, help="directory with the Fashion-MNIST idx .gz files")
    p.add_argument("--init-from", type=Path, help="continue from these weights (a second stage with its own schedule)")
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    snaps = tuple(int(s) for s in a.snapshots.split(",") if s) if a.snapshots is not None else None
    card = train(a.model, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
                 seed=a.seed, out=a.out, checkpoints=a.checkpoints, state_dir=a.state_dir, snapshots=snaps,
                 subset=a.subset, max_steps=a.max_steps, data_root=a.data_root, test_subset=a.test_subset,
                 init_from=a.init_from, warmup_epochs=a.warmup_epochs)
    print(json.dumps({k: v for k, v in card.items() if k != "history"}, indent=1))


if __name__ == "__main__":
    main()
