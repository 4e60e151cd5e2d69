"""Experiment ``calibration``: per-image confidence and correctness, and the calibration report over models."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import data, runner
from ..inference import predict
from ..measure.calibration import bootstrap_ci, summary


@dataclass(frozen=True)
class CalibrationParams:
    """Parameters of experiment ``calibration``."""

    n: int | None = runner.from_profile("n_calibration")  #: the first n test images (None: all)


def predictions(model_name: str, profile=None, *, n: int | None = None, refresh: bool = False,
                checkpoint=None) -> pd.DataFrame:
    """Tidy predictions of one model on the profile's test images (cached on disk).

    Returns one row per image: ``index``, ``label``, ``pred``, ``confidence`` (top softmax
    probability), ``correct``, and ``p_label`` (probability of the true class).
    ``n``: :class:`CalibrationParams` (default: the profile's ``n_calibration``); ``checkpoint``:
    other weights (e.g. an epoch snapshot).
    """
    return runner.run("calibration", model_name, profile, checkpoint=checkpoint, refresh=refresh, n=n)


@runner.experiment("calibration", params=CalibrationParams,
                   autocast=True, summary=lambda df: f"{len(df)} predictions, accuracy {df.correct.mean():.4f}")
def _predictions_part(model, profile, shard, context, *, n) -> pd.DataFrame:
    import torch
    from tqdm.auto import tqdm


    probs, labels = [], []
    total = -(-len(data.shard_index(data.n_available(profile, n), shard)) // profile.batch_size)
    for xb, yb in tqdm(data.batches(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None,
                                    batch_size=profile.batch_size, shard=shard),
                       total=total, desc=f"predict {model.name}", leave=False,
                       disable=total <= 1 or profile.dataset != "imagenet"):  # seconds on Fashion-MNIST
        probs.append(predict(model, xb, profile.batch_size, bf16=profile.autocast == "bf16"))
        labels.append(yb)
    probs, y = torch.cat(probs), torch.cat(labels)
    conf, pred = probs.max(-1)
    index = data.shard_index(data.n_available(profile, n), shard)
    return pd.DataFrame({
        "index": index.numpy(), "label": y.numpy(), "pred": pred.numpy(),
        "confidence": conf.double().numpy(), "correct": (pred == y).numpy(),
        "p_label": probs.gather(1, y[:, None]).squeeze(1).double().numpy(),
    })


def calibration_report(preds: dict[str, pd.DataFrame], n_bins: int = 10, n_boot: int = 1000,
                       level: float = 0.95, seed: int = 0, mce_min_count: int = 1) -> pd.DataFrame:
    """One row per model: accuracy, ECE, sECE, MCE, ACE, each with a bootstrap interval.

    ``preds`` maps model name → :func:`predictions` frame. Columns: ``<stat>``, ``<stat>_lo``,
    ``<stat>_hi`` for stat in accuracy, ece, sece, mce, ace; plus ``n`` and mean ``confidence``.
    ACE re-bins every resample and gets ``n_boot // 5`` resamples; ``report.attrs["n_boot"]`` holds
    the count used for each statistic. MCE gets no interval (NaN): a maximum over noisy bins is
    biased upward under resampling, and its percentile interval need not even contain the estimate.
    ``mce_min_count``: MCE's smallest bin.
    """
    boots = {stat: n_boot if stat != "ace" else max(1, n_boot // 5) for stat in ("accuracy", "ece", "sece", "ace")}
    rows = []
    for name, df in preds.items():
        conf, corr = df["confidence"].to_numpy(), df["correct"].to_numpy()
        row = {"model": name, "n": len(df), "confidence": float(df["confidence"].mean()),
               "mce": summary(conf, corr, n_bins, mce_min_count)["mce"], "mce_lo": np.nan, "mce_hi": np.nan}
        for stat, b in boots.items():
            est, lo, hi = bootstrap_ci(conf, corr, stat, n_boot=b, level=level, n_bins=n_bins, seed=seed)
            row.update({stat: est, f"{stat}_lo": lo, f"{stat}_hi": hi})
        rows.append(row)
    out = pd.DataFrame(rows).set_index("model")
    out.attrs.update(n_boot=boots, mce_min_count=mce_min_count, level=level)
    return out
