"""Experiment ``travel``: ε* of every image along FGSM or random directions, and its medians per confidence band."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import data, runner
from ..constants import BANDS
from ..measure.direction import direction
from ..measure.travel import travel


def travel_share(profile, part: int) -> int:
    """The first 1/``part`` of the profile's travel images: at least 4, at most all of them."""
    if not isinstance(part, int) or isinstance(part, bool) or part < 1:
        raise ValueError(f"part must be a positive integer (1 = all the travel images), got {part!r}")
    return min(profile.n_travel, max(4, profile.n_travel // part))


def few_travel_images(profile) -> int:
    """A fifth of the profile's travel images (:func:`travel_share`): the size of the experiments that run
    several travels per image (surgeries, relative jumps)."""
    return travel_share(profile, 5)


@dataclass(frozen=True)
class SearchParams:
    """The boundary search's parameters, shared by every experiment that measures ε* (pixel units)."""

    eps_max: float = 1.0  #: end of the searched range
    tol: float = 1e-4  #: bracket width at which ε* is reported
    seed: int = 0  #: seed of random directions
    search: str | None = runner.from_profile("search")  #: a name in :data:`curvlib.measure.search.SEARCHES`


@dataclass(frozen=True)
class TravelParams(SearchParams):
    """Parameters of experiment ``travel`` (ε in pixel units, pixels in [0, 1]): the search's, and these."""

    n: int | None = runner.from_profile("n_travel")  #: the profile's first n test images
    kind: str = "fgsm"  #: direction: "fgsm" or a seeded random kind


def travel_experiment(model_name: str, profile=None, *, kind: str | None = None, refresh: bool = False,
                      checkpoint=None, **params) -> pd.DataFrame:
    """Cached :func:`travel` of one model, one row per image, along ``kind`` directions; the other
    parameters and their defaults: :class:`TravelParams`. ``checkpoint``: other weights (e.g. an
    epoch snapshot)."""
    return runner.run("travel", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind, **params)


def _crossed(df: pd.DataFrame) -> str:
    return f"{df.kind.iloc[0]}: {int((df.status == 'crossed').sum())}/{len(df)} crossed"


@runner.experiment("travel", params=TravelParams, calls=({"kind": "fgsm"}, {"kind": "random"}), summary=_crossed)
def _travel_part(model, profile, shard, context, *, n, kind, eps_max, tol, seed, search) -> pd.DataFrame:
    x, y = data.test_set(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None,
                         shard=shard)
    index = data.shard_index(data.n_available(profile, n), shard)
    d = direction(model, x, y, kind, seed=seed, batch_size=profile.batch_size, index=index)
    df = travel(model, x, y, d, eps_max=eps_max, tol=tol, batch_size=profile.batch_size, search=search)
    return df.assign(index=index.numpy(), model=model.name, kind=kind)


def median_by_confidence(df: pd.DataFrame, edges=BANDS) -> pd.DataFrame:
    """Median ε* of crossed samples per confidence band (lo, hi], with counts, per model/kind."""
    ok = df[df.status == "crossed"].copy()
    labels = [f"[{lo:g}, {hi:g}]" if i == 0 else f"({lo:g}, {hi:g}]"
              for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
    ok["band"] = pd.cut(ok.confidence, list(edges), include_lowest=True, labels=labels)
    keys = [c for c in ("model", "kind") if c in ok.columns]
    g = ok.groupby(keys + ["band"], observed=False)["eps"]
    return g.agg(median="median", n="size").reset_index()
