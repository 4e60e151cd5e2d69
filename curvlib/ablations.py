"""What bends the space: curvedness of component-swap variants and along training.

For one set of weights, :func:`curvedness` gathers the book's three measurements — calibration
(accuracy, ECE, sECE), curvature (θ along FGSM directions, away from the input-path kink at
ε = 0) and boundary distance (median ε* along FGSM) — from the chapters' cached experiments.
:func:`training_dynamics` runs it on every epoch snapshot of a model, :func:`component_swaps` on
each variant of ``models.VARIANTS`` and its parent trained with the same recipe.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import models

#: θ is averaged over steps with |ε| above this (clipping kinks the input path at ε = 0).
AWAY = 0.01


def curvedness(model_name: str, profile=None, checkpoint: str | Path | None = None, eps_range: float = 0.1,
               low_confidence: float = 0.9) -> dict:
    """One row of measurements for ``model_name`` (or its ``checkpoint``) on the profile's images.

    Returns accuracy, ece, sece; theta_mean / theta_q1 / theta_median / theta_q3 (degrees, FGSM
    directions, |ε| > AWAY); eps_median (median ε* of crossed samples, FGSM) and eps_median_low
    (those with confidence ≤ ``low_confidence``), n_crossed.
    """
    from .calibration import predictions, summary
    from .config import get_profile
    from .trajectory import theta_experiment
    from .travel import travel_experiment

    profile = profile or get_profile()
    p = predictions(model_name, profile, checkpoint=checkpoint)
    s = summary(p.confidence.to_numpy(), p.correct.to_numpy())
    th = theta_experiment(model_name, "fgsm", profile, eps_range=eps_range, checkpoint=checkpoint)
    away = (th["eps"][1:-1].abs() > AWAY).numpy()
    deg = np.degrees(th["theta"].double().numpy()[..., away]).ravel()
    deg = deg[np.isfinite(deg)]
    tr = travel_experiment(model_name, "fgsm", profile, checkpoint=checkpoint)
    ok = tr[tr.status == "crossed"]
    return {"accuracy": s["accuracy"], "ece": s["ece"], "sece": s["sece"],
            "theta_mean": float(deg.mean()) if deg.size else np.nan,
            "theta_q1": float(np.quantile(deg, 0.25)) if deg.size else np.nan,
            "theta_median": float(np.median(deg)) if deg.size else np.nan,
            "theta_q3": float(np.quantile(deg, 0.75)) if deg.size else np.nan,
            "eps_median": float(ok.eps.median()),
            "eps_median_low": float(ok[ok.confidence <= low_confidence].eps.median()),
            "n_crossed": int(len(ok))}


def epoch_checkpoints(model_name: str, checkpoint_dir: Path | None = None,
                      model_dir: Path | None = None) -> list[tuple[int, Path]]:
    """(epoch, weights) of ``<model>_ep<E>.safetensors`` snapshots plus the final weights, by epoch."""
    checkpoint_dir = Path(checkpoint_dir or models.CHECKPOINT_DIR)
    model_dir = Path(model_dir or models.MODEL_DIR)
    out = []
    for f in checkpoint_dir.glob(f"{model_name}_ep*.safetensors"):
        m = re.fullmatch(rf"{re.escape(model_name)}_ep(\d+)\.safetensors", f.name)
        if m:
            out.append((int(m.group(1)), f))
    final = model_dir / f"{model_name}.safetensors"
    if final.exists():
        card = final.with_suffix(".json")
        epoch = json.loads(card.read_text()).get("epochs_trained") if card.exists() else None
        if epoch is None:
            raise ValueError(f"{card} has no epochs_trained: cannot place the final weights on the epoch axis")
        out.append((int(epoch), final))
    if not out:
        raise FileNotFoundError(f"no epoch snapshots of {model_name!r} in {checkpoint_dir} and no {final}")
    return sorted(out)


def training_dynamics(model_name: str, profile=None, **kw) -> pd.DataFrame:
    """:func:`curvedness` per epoch snapshot (one row per epoch; column ``final`` marks the
    shipped weights)."""
    rows = []
    ckpts = epoch_checkpoints(model_name, kw.pop("checkpoint_dir", None), kw.pop("model_dir", None))
    for epoch, path in ckpts:
        rows.append({"model": model_name, "epoch": epoch, "final": path == ckpts[-1][1],
                     **curvedness(model_name, profile, checkpoint=path, **kw)})
    return pd.DataFrame(rows)


#: The parent weights each variant is compared with: trained with the same recipe (the parent's
#: default epochs), so only the swapped component differs.
def parent_weights(variant: str) -> tuple[str, Path]:
    parent = models.VARIANTS[variant][0]
    from .train import DEFAULTS

    epochs = DEFAULTS[parent]["epochs"]
    snap = models.CHECKPOINT_DIR / f"{parent}_ep{epochs}.safetensors"
    if snap.exists():
        return parent, snap
    return parent, models.MODEL_DIR / f"{parent}.safetensors"


def component_swaps(profile=None, variants=None) -> tuple[pd.DataFrame, list[str]]:
    """(table, missing): one row per trained variant and one per parent, with what was swapped;
    ``missing`` lists variants whose weights are not in ``data/models`` yet."""
    rows, missing, parents_done = [], [], set()
    for v in variants or sorted(models.VARIANTS):
        parent, pw = parent_weights(v)
        vw = models.MODEL_DIR / f"{v}.safetensors"
        if not vw.exists():
            missing.append(v)
            continue
        if parent not in parents_done:
            card = json.loads(pw.with_suffix(".json").read_text()) if pw.with_suffix(".json").exists() else {}
            rows.append({"model": parent, "parent": parent, "swap": "— (parent)",
                         "epochs": card.get("epoch", card.get("epochs_trained")),
                         **curvedness(parent, profile, checkpoint=pw)})
            parents_done.add(parent)
        card = json.loads(vw.with_suffix(".json").read_text())
        rows.append({"model": v, "parent": parent, "swap": models.VARIANTS[v][1],
                     "epochs": card.get("epochs_trained"), **curvedness(v, profile)})
    return pd.DataFrame(rows), missing
