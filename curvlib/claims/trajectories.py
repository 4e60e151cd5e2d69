"""The trajectories chapter's numbers and sentences: the mesh grid shared by all models, the meshes'
flatness ρ per plane and its verdict (:data:`MESH_FLATNESS`), and the mean turning angle of single
lines. Compute functions return frames; the ``*_markdown`` functions word them for the page.

The mesh-flatness verdict is a ledger row (:func:`curvlib.claims.tally.ledger`): on the interior plane,
where no pixel clips and ρ is the model's alone, with the paper's clipped plane as sensitivity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..measure.probe import grid_step
from ..measure.views import PLANES
from ..models import family
from .curvature import flatness_gap
from .records import CLAIMS

#: The paper's Figures 1 and 4 read as a claim on the meshes' flatness ρ (0 = flat): a ledger row.
MESH_FLATNESS = CLAIMS["mesh flatness"]


@dataclass(frozen=True)
class MeshGrid:
    """The input grid every model's mesh shares: ``step`` (pixel units), ``n_steps`` per side and
    ``fraction`` (step ≤ fraction × each model's median ε*). ``table``: one row per model (index
    ``model``) with ``family``, ``crossed`` (images that crossed), ``eps_median`` (median ε* of
    those), ``own_step`` (the model's own :func:`grid_step`), ``step`` (the shared one) and
    ``ratio`` = step / eps_median."""

    step: float
    n_steps: int
    fraction: float
    table: pd.DataFrame

    @property
    def eps_median(self) -> dict[str, float]:
        """Model → median ε* (pixel units)."""
        return self.table["eps_median"].to_dict()

    @property
    def own_step(self) -> dict[str, float]:
        """Model → the step its own ε* allows."""
        return self.table["own_step"].to_dict()


def mesh_grid(travel: dict[str, pd.DataFrame], fraction: float = 0.25, min_steps: int = 4,
              max_steps: int = 10, families: dict | None = None) -> MeshGrid:
    """The shared grid of the explorer and the flatness meshes from each model's FGSM travel frame
    (model → :func:`curvlib.experiments.travel.travel_experiment` frame, columns ``status``, ``eps``):
    the smallest of the models' :func:`grid_step` (each ≤ ``fraction`` × its median ε*), and enough
    steps per side (``min_steps`` … ``max_steps``) for the grid to reach every model's median ε*.
    ``families``: model → family for the table (default: each model's own)."""
    eps_median = {m: float(df.loc[df.status == "crossed", "eps"].median()) for m, df in travel.items()}
    own = {m: grid_step(df, fraction) for m, df in travel.items()}
    step = min(own.values())
    n_steps = int(min(max_steps, max(min_steps, np.ceil(max(eps_median.values()) / step - 1e-9))))
    table = pd.DataFrame({
        "family": [families[m] if families else family(m) for m in travel],
        "crossed": [int((df.status == "crossed").sum()) for df in travel.values()],
        "eps_median": [eps_median[m] for m in travel],
        "own_step": [own[m] for m in travel],
        "step": step,
        "ratio": [step / eps_median[m] for m in travel],
    }, index=pd.Index(list(travel), name="model"))
    return MeshGrid(step, n_steps, fraction, table)


def mesh_grid_markdown(grid: MeshGrid) -> str:
    """The grid in words: its step against the models' median ε*, and whether ±n_steps·step reaches
    every model's median boundary distance."""
    t, step, n = grid.table, grid.step, grid.n_steps
    inside = [m for m in t.index if n * step >= t.eps_median[m]]
    reach = ("boundary distance of every model." if len(inside) == len(t) else
             f"boundary distance of {', '.join(inside) or 'no model'} only.")
    return (f"The grid step is **{step:g}** pixel units, {t.ratio.min():.2f}–{t.ratio.max():.2f} of the models' "
            f"median ε\\* ({t.eps_median.min():.4f}–{t.eps_median.max():.4f}): the median image's boundary is at "
            f"least {1 / t.ratio.max():.1f} grid steps away. With {n} steps each way the grid reaches "
            f"±{n * step:g}, {n * t.ratio.min():.1f}–{n * t.ratio.max():.1f} times the median ε\\*, so it contains "
            f"the median " + reach)


def flatness_table(flat: pd.DataFrame) -> pd.DataFrame:
    """Per model (index ``model``, in the frame's order) of a :func:`~curvlib.measure.views.plane_flatness`
    frame: ``family`` and the medians over images of ``rho_clipped``, ``rho_input_clipped`` (the clipped input points'
    own ρ), ``rho_interior`` and ``moving_interior`` (share of pixels the interior plane moves)."""
    order = list(dict.fromkeys(flat.model))
    med = flat.groupby(["plane", "model"], sort=False)[["rho", "rho_input", "moving"]].median()
    return pd.DataFrame({
        "family": [family(m) for m in order],
        "rho_clipped": med.loc["clipped"].rho.reindex(order),
        "rho_input_clipped": med.loc["clipped"].rho_input.reindex(order),
        "rho_interior": med.loc["interior"].rho.reindex(order),
        "moving_interior": med.loc["interior"].moving.reindex(order),
    }, index=pd.Index(order, name="model"))


def flatness_claim(flat: pd.DataFrame, plane: str, families: dict | None = None, n_boot: int = 1000,
                   seed: int = 0) -> dict:
    """The :data:`MESH_FLATNESS` row of one plane of a :func:`~curvlib.measure.views.plane_flatness` frame: the
    Transformers' mean ρ minus the CNNs' (:func:`curvlib.claims.curvature.flatness_gap`, paired over
    images), with the family means in ``cnn`` and ``transformer``. ``families``: model → family (default:
    each model's own)."""
    if plane not in PLANES:
        raise ValueError(f"unknown plane {plane!r}; choose one of {', '.join(PLANES)}")
    g = flatness_gap(flat[flat.plane == plane], families, n_boot=n_boot, seed=seed)
    return MESH_FLATNESS.judge(g["estimate"], g["lo"], g["hi"], g["n"], measure=f"{MESH_FLATNESS.statistic}, "
                               f"{plane} plane", cnn=g["cnn"], transformer=g["transformer"])


def _means(row: dict) -> str:
    return f"mean ρ Transformers {row['transformer']:.3f}, CNNs {row['cnn']:.3f}"


def flatness_markdown(rows: dict[str, dict], table: pd.DataFrame) -> str:
    """The flatness verdicts of both planes (``rows``: plane → :func:`flatness_claim`) with the family
    means, the clipped pixels' own median ρ (from :func:`flatness_table`) and what so few images can say."""
    clipped, interior = rows["clipped"], rows["interior"]
    found = MESH_FLATNESS.reads_as(interior["verdict"])
    return (f"- Paper's (clipped) plane ({_means(clipped)}): {MESH_FLATNESS.sentence(clipped)} The clipped "
            f"pixels alone already have ρ ≈ {float(table.rho_input_clipped.median()):.3f}.\n"
            f"- Interior plane, the model alone ({_means(interior)}): {MESH_FLATNESS.sentence(interior)}\n\n"
            f"{found} These are {clipped['n']} images on one grid (interval widths "
            f"{clipped['hi'] - clipped['lo']:.3f} and {interior['hi'] - interior['lo']:.3f} in ρ; percentile "
            "intervals from so few images are rough); the [local curvature](curvature) chapter measures the same "
            "question on many more paths.")


def flatness_summary(rows: dict[str, dict], profile) -> str:
    """One line for the chapter's end: the flatness verdict of every plane on ``profile``."""
    return (f"On this profile ({profile.name}), the flatness comparison (Transformers' ρ above the CNNs'): "
            + "; ".join(f"{plane} plane **{r['verdict']}**" for plane, r in rows.items()) + ".")


def line_theta_markdown(thetas: pd.DataFrame) -> str:
    """The family means of :func:`~curvlib.measure.views.single_lines`' mean θ per line (degrees), and what
    they can show."""
    per_model = pd.Series({m: float(np.mean(g.theta.to_numpy())) for m, g in thetas.groupby("model", sort=False)})
    fam = per_model.groupby(family).mean()
    n = thetas.line.nunique()
    return (f"Over these {n} lines the mean θ (leaving out the turn at the image itself, where clipping to [0, 1] "
            f"kinks every input line) is {fam['CNN']:.1f}° for the CNNs and {fam['Transformer']:.1f}° for the "
            f"Transformers — {n} lines of one image, an illustration. Whether the embedded Transformers' lines are "
            "more curved than the CNNs' is measured over many images and directions in the "
            "[local curvature](curvature) chapter.")
