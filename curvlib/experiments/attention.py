"""Experiment ``attention``: additivity defects of every layer type along each image's FGSM direction."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import data, runner
from ..measure.attention import layer_defects, summarise_defects
from ..measure.direction import direction


@dataclass(frozen=True)
class AttentionParams:
    """Parameters of experiment ``attention``."""

    n: int | None = runner.from_profile(lambda p: min(16, p.n_travel))  #: the first n test images
    eps: float = 0.02  #: step along each image's FGSM direction (pixel units)


def attention_experiment(model_name: str, profile=None, *, eps: float | None = None, n: int | None = None,
                         refresh: bool = False, per_sample: bool = False, checkpoint=None) -> "pd.DataFrame":
    """Cached :func:`layer_defects` of one model on the profile's first ``n`` images (capped at
    ``n_travel``), each moved along its FGSM direction by ``eps`` (defaults: :class:`AttentionParams`):
    one row per layer (medians over the images), or with ``per_sample`` the unreduced rows (column
    ``sample``: the test image), which is what the cache holds."""
    if n is not None and profile is not None:
        n = min(n, profile.n_travel)
    long = runner.run("attention", model_name, profile, refresh=refresh, checkpoint=checkpoint, eps=eps, n=n)
    return long if per_sample else summarise_defects(long)


@runner.experiment("attention", params=AttentionParams, merge=runner.concat_sorted("depth", "sample"),
                   summary=lambda df: f"{df.layer.nunique()} modules, {df['sample'].nunique()} images")
def _attention_part(model, profile, shard, context, *, n, eps) -> "pd.DataFrame":
    x, y = data.test_set(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None, shard=shard)
    index = data.shard_index(data.n_available(profile, n), shard)
    d = direction(model, x, y, "fgsm")
    long = layer_defects(model, x.to(profile.device), d.to(profile.device), eps, per_sample=True)
    return long.assign(sample=index.numpy()[long["sample"].to_numpy()], model=model.name)
