"""The ledger on seed replicates: every claim judged about the *families*, with the networks' own
training variance inside its interval.

A profile's ``seed_dir`` holds the embedded models retrained with :mod:`curvlib.seeds` (several seeds
each, a validation split choosing the epoch; :func:`curvlib.models.seed_replicates`).
:func:`seeded_ledger` runs the single-seed ledger's claim functions (:mod:`curvlib.claims.tally`) on
every replicate's cached experiments (``checkpoint=`` its weights) and returns one row per claim:

- ``estimate``: the claim's statistic with every replicate as a network of its family (the same seeds
  for every model, so each model weighs the same);
- ``lo``, ``hi``: a two-stage percentile bootstrap (:func:`pool`) — per draw, the seeds of every model
  drawn with replacement (a replicate enters its family's statistic as often as it is drawn), then the
  test images by the claim's own resampling (paired across models): the interval holds the
  seed-to-seed variance as well as the images';
- ``seeds``: the estimate on each seed alone (the models' seed-k replicates as the families); a
  "holds" or "opposite" needs every one of them on that side of no effect
  (:meth:`~curvlib.claims.records.Claim.judge`), else the row is "inconclusive".
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import models
from ..config import REPO, require
from ..constants import EPS_R
from ..experiments.attention import attention_experiment
from ..experiments.calibration import predictions
from ..experiments.curvature import curvature_experiment
from ..experiments.mesh import mesh_experiment
from ..experiments.random_jump import jump_experiment, jump_path_experiment
from ..experiments.robustness import LEDGER_EPS, robustness_experiment
from ..experiments.surgery import path_experiment
from ..experiments.surgery import travel_experiment as surgery_travel
from ..experiments.theta import theta_experiment
from ..experiments.travel import travel_experiment
from ..stats import percentile_interval, recording
from .attention import attention_claim
from .boundary import boundary_claim, rank_correlation_claim
from .calibration import calibration_family, calibration_gap
from .curvature import curvature_theta_claim, omega_gap
from .random_jump import random_jump_claim, straighter_claim
from .records import CLAIMS
from .robustness import robustness_claim
from .surgery import claim_rows
from .trajectories import flatness_claim, mesh_grid

#: Appended to every pooled row's rule.
POOLED_RULE = ("Interval: two-stage bootstrap (each model's seeds, then the test images); a verdict other than "
               "inconclusive also needs every seed's own estimate on its side")


@dataclass(frozen=True)
class Rows:
    """One group of ledger rows: ``load(model, profile, weights, context)`` → one network's cached result;
    ``judge(results, families, n_boot, seed)`` → the rows (:meth:`~curvlib.claims.records.Claim.judge`)
    for ``results`` (network → result) and ``families`` (network → family); ``prepare(profile,
    replicates)`` → the ``context`` every load receives (e.g. a grid shared by all networks)."""

    key: str
    claims: tuple[str, ...]
    load: Callable[..., Any]
    judge: Callable[..., list[dict]]
    prepare: Callable[..., Any] | None = None


def _frames(results: dict) -> pd.DataFrame:
    return pd.concat([df.assign(model=net) for net, df in results.items()], ignore_index=True)


#: Random directions per image of the replicates' θ (at most the profile's ``n_directions``, which the shipped
#: models' θ uses): twelve replicates' θ were the seed ledger's costliest experiment.
SEED_DIRECTIONS = 20


def seed_directions(profile) -> int:
    """Random directions per image of every replicate's θ: :data:`SEED_DIRECTIONS`, at most the profile's."""
    return min(profile.n_directions, SEED_DIRECTIONS)


def sizes_markdown(profile) -> str:
    """The sentence saying which sizes the replicates are measured with (the profile's, except θ's directions)."""
    k = seed_directions(profile)
    theta = ("the same" if k == profile.n_directions else f"{k} instead of {profile.n_directions}")
    return (f"Every replicate is measured with the profile's sizes (those of the rows above), except θ's random "
            f"directions: {theta} per image, on the same {profile.n_theta_images} images as the shipped models'.")


def _theta_load(m, p, w, _):
    return theta_experiment(m, p, kind="random", checkpoint=w, n_directions=seed_directions(p))["theta"]


def _mesh_context(profile, replicates):
    travels = {f"{m} s{k}": travel_experiment(m, profile, kind="fgsm", checkpoint=w)
               for m, ws in replicates.items() for k, w in ws.items()}
    return mesh_grid(travels, families={f"{m} s{k}": models.family(m) for m, ws in replicates.items() for k in ws})


def _mesh_load(m, p, w, grid):
    return mesh_experiment(m, p, step=grid.step, n_steps=grid.n_steps, checkpoint=w)


def _surgery_load(m, p, w, _):
    paths = ({s: path_experiment(m, p, surgery=s, checkpoint=w) for s in ("none", "attention")}
             if models.family(m) == "Transformer" else {})
    return {"paths": paths, "frames": {s: surgery_travel(m, p, surgery=s, kind="fgsm", checkpoint=w)
                                       for s in ("none", "all")}}


def _surgery_judge(r, fam, **kw):
    paths = {(net, s): v for net, x in r.items() for s, v in x["paths"].items()}
    frames = {(net, s, "fgsm"): v for net, x in r.items() for s, v in x["frames"].items()}
    return claim_rows(paths, frames, fam, **kw)


#: Every ledger row, grouped by the experiments it reads (the single-seed ledger's pre-declared rulers).
ROWS = (
    Rows("calibration", ("calibration (CNNs)", "calibration (Transformers)", "calibration (gap)"),
         lambda m, p, w, _: predictions(m, p, checkpoint=w),
         lambda r, fam, **kw: [calibration_family(r, "CNN", fam, **kw), calibration_family(r, "Transformer", fam, **kw),
                               calibration_gap(r, fam, **kw)]),
    # the replicates' accuracy only where the row reads it (ε = 0 and the pre-declared step): the same numbers
    # as their whole curve's, a quarter of the passes; the pooled row's note then has no other steps
    *(Rows(f"robustness ({k})", (f"robustness ({'noise' if k == 'random' else 'FGSM'})",),
           lambda m, p, w, _, k=k: robustness_experiment(m, p, kind=k, checkpoint=w, eps=(0.0, LEDGER_EPS[k])),
           lambda r, fam, k=k, **kw: [robustness_claim(r, k, LEDGER_EPS[k], fam, **kw)]) for k in ("random", "fgsm")),
    Rows("boundary", ("boundary (low confidence)", "boundary (confidence ↔ distance)"),
         lambda m, p, w, _: travel_experiment(m, p, kind="fgsm", checkpoint=w),
         lambda r, fam, **kw: [boundary_claim(r, fam, **kw), rank_correlation_claim(r, fam, **kw)]),
    Rows("curvature (θ)", ("curvature (θ)",),
         _theta_load,
         lambda r, fam, **kw: [curvature_theta_claim(r, fam, ruler="random directions, one-way travel", **kw)]),
    Rows("curvature (ω)", ("curvature (ω)",), lambda m, p, w, _: curvature_experiment(m, p, kind="fgsm", checkpoint=w),
         lambda r, fam, **kw: [omega_gap(r, fam, **kw)]),
    Rows("mesh flatness", ("mesh flatness",), _mesh_load,
         lambda r, fam, **kw: [flatness_claim(_frames(r), "interior", fam, **kw)], prepare=_mesh_context),
    Rows("attention", ("attention",), lambda m, p, w, _: attention_experiment(m, p, per_sample=True, checkpoint=w),
         lambda r, fam, **kw: [attention_claim(_frames(r), fam, **kw)]),
    Rows("surgery", ("surgery (what bends)", "surgery (distance)", "surgery (low confidence)", "surgery (control)"),
         _surgery_load, _surgery_judge),
    Rows("random jump", ("random jump",), lambda m, p, w, _: jump_experiment(m, p, eps_r=EPS_R, checkpoint=w),
         lambda r, fam, **kw: [random_jump_claim(r, fam, **kw)]),
    Rows("random jump (straighter)", ("random jump (straighter)",),
         lambda m, p, w, _: jump_path_experiment(m, p, checkpoint=w),
         lambda r, fam, **kw: [straighter_claim(r, fam, **kw)]),
)


def _common_seeds(results: dict[str, dict[int, Any]]) -> list[int]:
    sets = {m: sorted(r) for m, r in results.items()}
    first = next(iter(sets.values()), [])
    if any(s != first for s in sets.values()):
        raise ValueError("every model needs the same seeds for a pooled row (each model weighs the same): got "
                         + ", ".join(f"{m} {s}" for m, s in sets.items()))
    if len(first) < 2:
        raise ValueError(f"a pooled row needs at least 2 seeds per model, got {first}")
    return first


def _same(a: float, b: float) -> bool:
    return a == b or (np.isnan(a) and np.isnan(b))


def _recorded(log: list[dict], row: dict, size: int) -> np.ndarray:
    """The resampled values of the bootstrap in ``log`` that gave the row its estimate and interval (several
    with the same three numbers, e.g. a discrete share measured twice, are interchangeable: the first)."""
    est, lo, hi = (float(row[k]) for k in ("estimate", "lo", "hi"))
    hits = [e for e in log if _same(e["estimate"], est) and _same(e["lo"], lo) and _same(e["hi"], hi)]
    if hits:
        return hits[0]["values"]
    if np.isnan(est):
        return np.full(size, np.nan)
    raise RuntimeError(f"no bootstrap of this claim gave the row's estimate and interval ({est!r} [{lo!r}, {hi!r}]): "
                       "its interval does not come from one resampling, so it cannot be pooled over seeds")


def pool(judge: Callable[..., list[dict]], results: dict[str, dict[int, Any]], families: dict[str, str], *,
         n_boot: int = 1000, draws: int = 200, per_draw: int = 5, level: float = 0.95, seed: int = 0
         ) -> list[dict]:
    """The rows of ``judge`` pooled over seed replicates, with a two-stage interval.

    ``results``: model → {seed → result} (every model the same seeds, at least 2); ``families``: model →
    family; ``judge(results, families, n_boot=, seed=)`` → rows, as the single-seed ledger's claim
    functions (their intervals from :func:`curvlib.stats.bootstrap`). Returns one row per row of
    ``judge``, re-judged: the estimate with every replicate a network of its family; the interval from
    ``draws`` × ``per_draw`` two-stage resamples (each draw: every model's seeds with replacement, then
    ``per_draw`` resamples of the images, paired as the claim pairs them); ``seeds``: the estimate on
    each seed's models alone. Controls (a row's ``ctrl_*_verdict`` columns) and ``design`` are those of
    the pooled estimate's row."""
    seeds = _common_seeds(results)
    names = list(results)
    nets = {f"{m} s{k}": results[m][k] for m in names for k in seeds}
    fam = {f"{m} s{k}": families[m] for m in names for k in seeds}
    rows0 = judge(nets, fam, n_boot=n_boot, seed=seed)
    per_seed = [judge({m: results[m][k] for m in names}, families, n_boot=20, seed=seed) for k in seeds]
    rng = np.random.default_rng(seed)
    values: list[list[np.ndarray]] = [[] for _ in rows0]
    for b in range(draws):
        nets_b, fam_b = {}, {}
        for m in names:
            for j, k in enumerate(rng.choice(seeds, size=len(seeds))):
                nets_b[f"{m} s{k}~{j}"], fam_b[f"{m} s{k}~{j}"] = results[m][k], families[m]
        with recording() as log:
            rows_b = judge(nets_b, fam_b, n_boot=per_draw, seed=seed + 1 + b)
        for i, r in enumerate(rows_b):
            values[i].append(_recorded(log, r, per_draw))
    out = []
    for i, r0 in enumerate(rows0):
        claim = CLAIMS[r0["claim"]]
        est, lo, hi = percentile_interval(float(r0["estimate"]), np.concatenate(values[i]), draws * per_draw, level,
                                          0.9)
        controls = tuple(r0[c] for c in ("ctrl_point_verdict", "ctrl_direction_verdict") if c in r0)
        out.append(claim.judge(est, lo, hi, int(r0["n"]), measure=claim.statistic,
                               rule=f"{r0['rule']}. {POOLED_RULE}", note=r0.get("note", ""), controls=controls,
                               design=r0.get("design", ""), seeds=tuple(float(p[i]["estimate"]) for p in per_seed),
                               seed_ids=tuple(seeds), pooled_networks=len(nets)))
    return out


def replicates(profile=None, names=None) -> dict[str, dict[int, Path]]:
    """Model → {seed → weights} of the profile's seed replicates (``profile.seed_dir``), for ``names``
    (default: the profile's models)."""
    profile = require(profile)
    return {m: models.seed_replicates(m, profile.seed_dir) for m in (names or profile.models)}


def missing(reps: dict[str, dict[int, Path]], seeds=(0, 1, 2)) -> list[str]:
    """"model seed k" for every wanted seed a model has no replicate of."""
    return [f"{m} seed {k}" for m, ws in reps.items() for k in seeds if k not in ws]


def replicate_table(reps: dict[str, dict[int, Path]]) -> pd.DataFrame:
    """One row per replicate, from its card: model, seed, the chosen stage and epoch with its validation
    accuracy, test accuracy and sECE (the test set is only reported), training time (minutes, every
    stage) and device, stored size (MB)."""
    rows = []
    for m, ws in reps.items():
        for k, w in sorted(ws.items()):
            card = json.loads(Path(w).with_suffix(".json").read_text())
            chosen = card.get("chosen", {})
            stages = [*card.get("earlier_stages", []), card]
            rows.append({"model": m, "family": models.family(m), "seed": k,
                         "chosen": f"stage {chosen.get('stage', '?')}, epoch {chosen.get('epoch', '?')}",
                         "val_accuracy": chosen.get("val_accuracy", np.nan),
                         "test_accuracy": card.get("test_accuracy", np.nan), "sece": card.get("sece", np.nan),
                         "train_min": sum(float(s.get("train_time_s", 0) or 0) for s in stages) / 60,
                         "device": card.get("device", "?"),
                         "mb": Path(w).stat().st_size / 1e6})
    return pd.DataFrame(rows)


def seeded_ledger(profile=None, *, keys=None, n_boot: int = 1000, draws: int = 200, per_draw: int = 5,
                  seed: int = 0, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per claim of :data:`ROWS` (``keys``: some of its groups), pooled over the profile's seed
    replicates with :func:`pool`. Every model of the profile needs the same ≥ 2 seeds (a clear error
    names what is missing). ``progress``: called with a line per group."""
    profile = require(profile)
    reps = replicates(profile)
    empty = [m for m, ws in reps.items() if not ws]
    if empty:
        raise ValueError(f"no seed replicates of {', '.join(empty)} in {profile.seed_dir}: train them with "
                         "`python -m curvlib.seeds` (see its docstring) or set CURVLIB_SEED_DIR")
    families = {m: models.family(m) for m in reps}
    groups = [g for g in ROWS if keys is None or g.key in keys]
    unknown = set(keys or ()) - {g.key for g in ROWS}
    if unknown:
        raise ValueError(f"unknown row group(s) {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(g.key for g in ROWS)}")
    rows = []
    for g in groups:
        if progress:
            progress(f"seed ledger: {g.key} ({sum(len(w) for w in reps.values())} networks)")
        context = g.prepare(profile, reps) if g.prepare else None
        results = {m: {k: g.load(m, profile, w, context) for k, w in ws.items()} for m, ws in reps.items()}
        rows += pool(g.judge, results, families, n_boot=n_boot, draws=draws, per_draw=per_draw, seed=seed)
    return pd.DataFrame(rows)


def ready(reps: dict[str, dict[int, Path]], minimum: int = 3) -> list[int]:
    """The seeds every model has, when there are at least ``minimum`` of them; else []."""
    common = sorted(set.intersection(*(set(ws) for ws in reps.values()))) if reps else []
    return common if len(common) >= minimum else []


def status_markdown(reps: dict[str, dict[int, Path]], seed_dir: Path, wanted=(0, 1, 2), minimum: int = 3) -> str:
    """What the seed ledger can use: the replicates found in ``seed_dir``, the wanted ones missing, and
    — when fewer than ``minimum`` seeds are common to every model — that the seed ledger waits, and how
    to train what is missing."""
    have = sum(len(ws) for ws in reps.values())
    lack = missing(reps, wanted)
    seed_dir = Path(seed_dir)
    if seed_dir.is_relative_to(REPO):
        seed_dir = seed_dir.relative_to(REPO)
    text = (f"{have} seed replicate(s) of the {len(reps)} models found in `{seed_dir}`"
            + (f"; missing: {', '.join(lack)}." if lack else "."))
    if ready(reps, minimum):
        return text
    return (text + f" The seed ledger needs the same ≥ {minimum} seeds of every model, so it is not computed on "
            "this machine. Train the missing ones with `python -m curvlib.seeds --models "
            f"{','.join(m for m in reps if any(k not in reps[m] for k in wanted))} --seeds "
            f"{','.join(str(k) for k in wanted)} --out {seed_dir} --state-dir <folder>` (resumable; hours on a "
            "CPU, minutes on a GPU) and build the page again.")


def compare(single: pd.DataFrame, pooled: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: the single-seed ledger's verdict (shipped models, images resampled) beside the
    pooled one (every seed, two-stage interval), the per-seed estimates, and whether the verdict changed
    (a † marks a row that is not evidence)."""
    f = {c: CLAIMS[c].fmt for c in pooled.claim}

    def cell(r):
        mark = " †" if isinstance(r.design, str) and r.design else ""
        return f"{r.verdict}{mark} ({r.estimate:{f[r.claim]}} [{r.lo:{f[r.claim]}}, {r.hi:{f[r.claim]}}])"

    one = {r.claim: r for r in single.itertuples()}
    rows = []
    for r in pooled.itertuples():
        s = one.get(r.claim)
        rows.append({"claim": r.claim, "one seed (shipped models)": cell(s) if s is not None else "—",
                     "seeds pooled": cell(r),
                     "per seed": ", ".join(f"{v:{f[r.claim]}}" for v in r.seeds),
                     "changed": "" if s is None or s.verdict == r.verdict else f"{s.verdict} → {r.verdict}"})
    return pd.DataFrame(rows).set_index("claim")


def changes_markdown(single: pd.DataFrame, pooled: pd.DataFrame) -> str:
    """Markdown: which verdicts change when the seeds are pooled, and why each one does (the pooled interval
    now contains the no-effect value, or it excludes it but a seed's own estimate lies on the other side, or
    the interval moved to the other side)."""
    one = {r.claim: r for r in single.itertuples()}
    why = []
    for r in pooled.itertuples():
        s = one.get(r.claim)
        if s is None or s.verdict == r.verdict:
            continue
        c = CLAIMS[r.claim]
        if r.verdict == "inconclusive" and r.lo <= c.null <= r.hi:
            reason = f"the pooled interval contains {c.null:g}"
        elif r.verdict == "inconclusive":
            reason = f"the interval excludes {c.null:g} but not every seed's estimate lies on its side"
        else:
            reason = f"the pooled interval lies {'below' if r.hi < c.null else 'above'} {c.null:g}"
        against = [v for v in r.seeds if (v - c.null) * (r.estimate - c.null) < 0]
        if against:
            reason += f"; seed estimate(s) {', '.join(f'{v:{c.fmt}}' for v in against)} on the other side"
        if r.seeds:
            where = "inside" if min(r.seeds) <= s.estimate <= max(r.seeds) else "outside"
            reason += f"; the shipped models' {s.estimate:{c.fmt}} lies {where} the seeds' range"
        why.append(f"**{r.claim}** ({s.verdict} → {r.verdict}: {reason})")
    evidence = [r for r in pooled.itertuples() if not (isinstance(r.design, str) and r.design)]
    if not why:
        return f"Pooling the seeds changes none of the {len(pooled)} verdicts."
    return (f"Pooling the seeds changes {len(why)} of the {len(pooled)} verdicts ({len(evidence)} are evidence, "
            f"{len(pooled) - len(evidence)} marked †): " + "; ".join(why) + ".")
