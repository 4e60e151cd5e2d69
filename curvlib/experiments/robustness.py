"""Experiment ``robustness``: accuracy of every image after a fixed step ε along FGSM or Gaussian
directions — the premise the paper starts from (Transformers need larger perturbations)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import data, runner
from ..measure.direction import direction
from ..measure.robustness import accuracy_under

#: The steps ε (per-pixel RMS, pixels in [0, 1]) of the accuracy curves: one to eight grey levels
#: (1/255 … 8/255, the usual attack budgets) and the Gaussian-noise levels of ImageNet-C's first
#: severities (σ = 0.08, 0.12, 0.18).
ROBUSTNESS_EPS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 0.08, 0.12, 0.18)
#: The ledger's pre-declared step per direction kind: two grey levels for FGSM, ImageNet-C's mildest
#: Gaussian noise (σ = 0.08) for the corruption.
LEDGER_EPS = {"fgsm": 2 / 255, "random": 0.08}


@dataclass(frozen=True)
class RobustnessParams:
    """Parameters of experiment ``robustness`` (ε in pixel units)."""

    n: int | None = runner.from_profile("n_travel")  #: the profile's first n test images
    kind: str = "fgsm"  #: direction: "fgsm" (attack) or "random" (Gaussian noise)
    eps: tuple = ROBUSTNESS_EPS  #: the steps
    seed: int = 0  #: seed of random directions


def robustness_experiment(model_name: str, profile=None, *, kind: str | None = None, refresh: bool = False,
                          checkpoint=None, **params) -> pd.DataFrame:
    """Cached :func:`~curvlib.measure.robustness.accuracy_under` of one model on the profile's first ``n``
    test images along ``kind`` directions (parameters and defaults: :class:`RobustnessParams`): one row per
    image and ε with ``index`` (test image), ``label``, ``eps``, ``correct``, ``confidence``, ``model``,
    ``kind``."""
    return runner.run("robustness", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind,
                      **params)


@runner.experiment("robustness", params=RobustnessParams, merge=runner.concat_sorted("eps", "index"),
                   calls=({"kind": "fgsm"}, {"kind": "random"}),
                   summary=lambda df: f"{df.kind.iloc[0]}: accuracy {df[df.eps == df.eps.max()].correct.mean():.3f} "
                                      f"at ε = {df.eps.max():.3g}")
def _robustness_part(model, profile, shard, context, *, n, kind, eps, seed) -> pd.DataFrame:
    x, y = data.test_set(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None,
                         shard=shard)
    index = data.shard_index(data.n_available(profile, n), shard)
    d = direction(model, x, y, kind, seed=seed, batch_size=profile.batch_size, index=index)
    df = accuracy_under(model, x.to(profile.device), y, d.to(profile.device), eps, batch_size=profile.batch_size)
    return df.assign(index=index.numpy()[df["sample"].to_numpy()], label=y.numpy()[df["sample"].to_numpy()],
                     model=model.name, kind=kind).drop(columns="sample")
