"""The paper's claims, judged on our measurements: one verdict function per claim, and the ledger.

Every function here takes results the chapters compute (cached experiment outputs) and returns
data: a tidy row with the claim, the paper's statement, what we estimate, its 95 % bootstrap
interval (:func:`curvlib.stats.bootstrap`, resampling test images, *paired* wherever the models
were measured on the same images), the verdict (holds / opposite / inconclusive, or "no data")
and the rule that produced it. :func:`ledger` gathers one row per claim for a profile.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import models, runner
from ..config import PROFILE_NAMES, get_profile, require
from ..constants import EPS_R
from ..experiments.attention import attention_experiment
from ..experiments.calibration import predictions
from ..experiments.curvature import curvature_experiment
from ..experiments.mesh import mesh_experiment
from ..experiments.random_jump import jump_experiment, jump_path_experiment
from ..experiments.robustness import LEDGER_EPS, robustness_experiment
from ..experiments.theta import theta_experiment
from ..experiments.travel import travel_experiment
from . import surgery
from .attention import attention_claim
from .boundary import boundary_claim, rank_correlation_claim
from .calibration import calibration_family, calibration_gap
from .curvature import curvature_theta_claim, omega_gap
from .random_jump import random_jump_claim, straighter_claim
from .records import CLAIMS, ROW
from .robustness import robustness_claim
from .trajectories import flatness_claim, mesh_grid

# ---------------------------------------------------------------------------------------------
# helpers: paired per-image values of several models


# ---------------------------------------------------------------------------------------------
# the claims


# ---------------------------------------------------------------------------------------------
# the ledger


def ledger(profile, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per claim (:data:`CLAIMS`) for the profile's models, from the chapters' cached
    experiments (computed on a miss): calibration on the profile's test images, accuracy after a fixed
    Gaussian-noise and FGSM step (:data:`~curvlib.experiments.robustness.LEDGER_EPS`), FGSM travel (the
    pre-declared ruler; random directions as a sensitivity result in the boundary rows' notes),
    θ along random directions (one-way travel, the curvature chapter's first ruler), ω along FGSM
    (with the profile's component-swap variants, if any, in the note), per-component bends along
    FGSM, the surgery rows (:func:`curvlib.claims.surgery.ledger_rows`) and the random jump at ε_r = :data:`EPS_R`."""

    profile = require(profile)
    names = list(profile.models)
    fam = {m: models.family(m) for m in names}
    kw = {"n_boot": n_boot, "seed": seed}
    preds = {m: predictions(m, profile) for m in names}
    travels = {m: travel_experiment(m, profile, kind="fgsm") for m in names}
    randoms = {m: travel_experiment(m, profile, kind="random") for m in names}
    variants = list(models.variants()) if profile.dataset == "fashion-mnist" else []
    rows = [
        calibration_family(preds, "CNN", fam, **kw),
        calibration_family(preds, "Transformer", fam, **kw),
        calibration_gap(preds, fam, **kw),
        *(robustness_claim({m: robustness_experiment(m, profile, kind=k) for m in names}, k, LEDGER_EPS[k], fam, **kw)
          for k in ("random", "fgsm")),
        sensitivity(boundary_claim(travels, fam, **kw), boundary_claim(randoms, fam, **kw), "random directions"),
        sensitivity(rank_correlation_claim(travels, fam, **kw), rank_correlation_claim(randoms, fam, **kw),
                    "random directions"),
        curvature_theta_claim({m: theta_experiment(m, profile, kind="random")["theta"] for m in names}, fam,
                              ruler="random directions, one-way travel", **kw),
        omega_gap({m: curvature_experiment(m, profile, kind="fgsm") for m in names}, fam,
                  variants={v: curvature_experiment(v, profile, kind="fgsm") for v in variants}, **kw),
        _mesh_row(travels, profile, kw),
        attention_claim(pd.concat([attention_experiment(m, profile, per_sample=True) for m in names],
                                  ignore_index=True), fam, **kw),
        *surgery.ledger_rows(profile, **kw),
        random_jump_claim({m: jump_experiment(m, profile, eps_r=EPS_R) for m in names}, fam, **kw),
        straighter_claim({m: jump_path_experiment(m, profile) for m in names}, fam, **kw),
    ]
    return pd.DataFrame(rows)


def _mesh_row(travels: dict, profile, kw: dict) -> dict:
    """The mesh-flatness row: the interior plane, the paper's clipped plane as sensitivity (the trajectories
    chapter's shared grid and cached meshes)."""
    grid = mesh_grid(travels)
    flat = pd.concat([mesh_experiment(m, profile, step=grid.step, n_steps=grid.n_steps) for m in travels],
                     ignore_index=True)
    return sensitivity(flatness_claim(flat, "interior", **kw), flatness_claim(flat, "clipped", **kw),
                       "the paper's clipped plane")


def sensitivity(row: dict, other: dict, label: str) -> dict:
    """``row`` (the claim under its pre-declared ruler) with ``other`` — the same claim under another
    ruler, ``label`` — added to its note as a sensitivity result; the verdict stays ``row``'s."""
    f = CLAIMS[row["claim"]].fmt
    extra = (f"Sensitivity — {label}: {other['estimate']:{f}} [{other['lo']:{f}}, {other['hi']:{f}}], "
             f"{other['verdict']}.")
    return {**row, "note": (row["note"] + " " if row["note"] else "") + extra, "sensitivity": extra}


def _num(v: float) -> str:
    if not np.isfinite(v):
        return "∞" if v == np.inf else "–"
    return f"{v:.3g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.2e}"


def ledger_markdown(table: pd.DataFrame) -> str:
    """Markdown for a :func:`ledger` (or any frame with its :data:`ROW` columns): a compact table —
    claim linked to its chapter, verdict, estimate with its interval, sample size, what is measured —
    then, claim by claim, the paper's statement, the rule that gave the verdict and the note."""
    missing = set(ROW) - set(table.columns)
    if missing:
        raise ValueError(f"not a ledger: no column(s) {', '.join(sorted(missing))}")
    lines = ["| claim | verdict | estimate [95 % CI] | n | we measure |", "|---|---|---|---|---|"]
    details = ["", "What each row tests (the paper's claim; where the book tests more or other than the paper "
               "states, *the book tests it as*):", ""]
    for k, r in enumerate(table.itertuples(), 1):
        mark = " (not evidence †)" if _not_evidence(r.design) else ""
        lines.append(f"| {k}. [{r.claim}]({r.chapter}.md) | **{r.verdict}**{mark} | {_num(r.estimate)} "
                     f"[{_num(r.lo)}, {_num(r.hi)}] | {r.n:,} | {r.measure} |")
        tested = f" *The book tests it as:* {r.tested_as}." if isinstance(r.tested_as, str) and r.tested_as else ""
        note = f" *Note:* {r.note}" if isinstance(r.note, str) and r.note else ""
        fixed = f" † *Not evidence:* {r.design}" if _not_evidence(r.design) else ""
        details.append(f"{k}. **{r.claim}** — *the paper:* {r.paper}.{tested} *Rule:* {r.rule}.{note}{fixed}")
    return "\n".join(lines + details)


def _not_evidence(design) -> bool:
    return isinstance(design, str) and bool(design)


def tally(table: pd.DataFrame) -> dict:
    """Verdict counts of a :func:`ledger` over the rows that are evidence (``design`` empty), and the
    names of the rows left out (their rule cannot come out the other way, or the design fixes the
    outcome): ``{"counts": {verdict: n}, "evidence": n, "left_out": [claim, …]}``."""
    missing = {"verdict", "design", "claim"} - set(table.columns)
    if missing:
        raise ValueError(f"not a ledger: no column(s) {', '.join(sorted(missing))}")
    out = table.design.map(_not_evidence)
    counts = table[~out].verdict.value_counts()
    return {"counts": {v: int(n) for v, n in counts.items()}, "evidence": int((~out).sum()),
            "left_out": table[out].claim.tolist()}


def tally_markdown(table: pd.DataFrame) -> str:
    """One sentence: the :func:`tally` of a ledger — the verdicts of the rows that are evidence, and which
    rows are left out and why (their † note)."""
    t = tally(table)
    text = (f"Of the {t['evidence']} rows that are evidence: "
            + ", ".join(f"{v} {n}" for v, n in t["counts"].items()) + ".")
    if t["left_out"]:
        text += (f" Left out of this count ({len(t['left_out'])}, marked †): " + ", ".join(t["left_out"])
                 + " — on these models their rule cannot come out the other way, or the design fixes the outcome.")
    return text


def other_ledgers(profile, n_boot: int = 1000, seed: int = 0) -> dict:
    """The ledgers of the *other* profiles whose results are already cached (same cache root): name →
    :func:`ledger` frame, read with :func:`curvlib.runner.cached_only` (nothing is computed), or → the
    reason (str) it cannot be shown. Profiles without a cache directory are left out."""
    profile = require(profile)
    out = {}
    for name in PROFILE_NAMES:
        if name == profile.name or not (profile.cache_dir / name).is_dir():
            continue
        try:
            other = get_profile(name, cache_dir=profile.cache_dir)
            with runner.cached_only():
                out[name] = ledger(other, n_boot=n_boot, seed=seed)
        except runner.NotCached as e:
            out[name] = f"not all of its results are cached ({e})"
        except Exception as e:  # its models or data are not on this machine: say so, do not fail the page
            out[name] = f"cannot be read here ({type(e).__name__}: {e})"
    return out


def side_by_side(ledgers: dict) -> pd.DataFrame:
    """One row per claim, one column per profile (``ledgers``: profile name → :func:`ledger` frame): the
    verdict with its estimate and interval, "—" where a profile has no row for the claim."""
    cols = {}
    for name, t in ledgers.items():
        cols[name] = {r.claim: f"{r.verdict}{' †' if _not_evidence(r.design) else ''} ({_num(r.estimate)} "
                               f"[{_num(r.lo)}, {_num(r.hi)}])" for r in t.itertuples()}
    claims = list(dict.fromkeys(c for col in cols.values() for c in col))
    return pd.DataFrame({name: [col.get(c, "—") for c in claims] for name, col in cols.items()},
                        index=pd.Index(claims, name="claim"))


def profiles_markdown(active: str, others: dict) -> str:
    """What the page says about other profiles (``others``: :func:`other_ledgers`): which are shown beside
    the active one, which could not be read and why, and how to produce the paper's column."""
    shown = [n for n, v in others.items() if isinstance(v, pd.DataFrame)]
    lines = []
    if shown:
        lines.append(f"The table below puts the cached results of {', '.join(f'`{n}`' for n in shown)} beside "
                     f"`{active}`'s (read from the results cache, not recomputed).")
    lines += [f"Profile `{n}` has a cache here but {why}." for n, why in others.items() if isinstance(why, str)]
    if not any(n in shown for n in ("paper", "paper-lite")):
        lines.append("The paper's own models are not cached here. To put them beside these rows, run "
                     "`curvlib run all --profile paper --data /path/to/imagenet/val` (a GPU; or `paper-lite` "
                     "with any ImageNet-labelled folder, on a CPU) and build the book again: this page then shows "
                     "both profiles side by side.")
    return " ".join(lines)
