"""What bends the space: curvedness of component-swap variants and along training.

For one set of weights, :func:`curvedness` gathers the book's three measurements — calibration
(accuracy, ECE, sECE), curvature (θ along FGSM directions, away from the input-path kink at
ε = 0) and boundary distance (median ε* along FGSM) — from the chapters' cached experiments.
:func:`training_dynamics` runs it on every epoch snapshot of a model, :func:`component_swaps` on
each variant of ``models.variants()`` and its parent trained with the same recipe (and, where
``profile.seed_dir`` holds them, the parent retrained with other seeds: the seed-to-seed spread is the
yardstick a swap's effect has to beat). :func:`swap_effects` turns that table into differences. The
``*_markdown`` functions word these tables for the chapter.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import models
from ..config import get_profile, require
from ..constants import AWAY, BANDS
from ..experiments.calibration import predictions
from ..experiments.curvature import curvature_experiment
from ..experiments.theta import theta_experiment, theta_step_experiment
from ..experiments.travel import median_by_confidence, travel_experiment, travel_share
from ..measure.calibration import summary
from ..stats import bootstrap


def profile_for(profile):
    """(profile, note): the profile the ablations run on. Epoch snapshots and component-swap
    variants exist only for the embedded models (training ImageNet models is beyond this project),
    so a profile on other data is replaced by ``embedded`` (same device and cache), with a note
    saying so; ``note`` is None otherwise."""

    profile = require(profile)
    if profile.dataset == "fashion-mnist":
        return profile, None
    keep = ("device", "cache_dir", "model_dir", "checkpoint_dir", "seed_dir", "autocast")
    emb = get_profile("embedded", env={}, **{f: getattr(profile, f) for f in keep})
    return emb, (f"The {profile.name!r} profile has no epoch snapshots and no component-swap variants (they would "
                 "mean training ImageNet models), so this chapter measures the embedded models on Fashion-MNIST.")


def theta_images(profile) -> int:
    """Images of :func:`curvedness`'s θ: the first half of the profile's ``n_travel`` images (at least 4, at
    most all; :func:`~curvlib.experiments.travel.travel_share`), one FGSM line each. Half the lines halve the
    chapter's costliest measurement (θ of every snapshot, replicate and variant); the chapter prints the size
    and each θ's interval over these images."""
    return travel_share(profile, 2)


def curvedness(model_name: str, profile=None, *, checkpoint: str | Path | None = None, eps_range: float = 0.1,
               low_confidence: float = 0.9) -> dict:
    """One row of measurements for ``model_name`` (or its ``checkpoint``) on the profile's images.

    Returns accuracy, ece, sece; theta_mean / theta_q1 / theta_median / theta_q3 (degrees, FGSM
    directions, |ε| > AWAY, on the first :func:`theta_images` of the profile's ``n_travel`` images) and
    theta_ci_lo / theta_ci_hi (95 % bootstrap interval of theta_mean over those images); eps_median (median ε*
    of crossed samples, FGSM, on all ``n_travel`` images) with eps_ci_lo / eps_ci_hi, and eps_median_low
    (those with confidence ≤ ``low_confidence``), n_crossed.
    """

    profile = require(profile)
    p = predictions(model_name, profile, checkpoint=checkpoint)
    s = summary(p.confidence.to_numpy(), p.correct.to_numpy())
    # θ along FGSM on the first theta_images of ε*'s images (one line per image; the curvature chapter's
    # n_theta_images is sized for its many random directions per image)
    th = theta_experiment(model_name, profile.replace(n_theta_images=theta_images(profile)), kind="fgsm",
                          eps_range=eps_range, checkpoint=checkpoint, protocol="symmetric")
    away = (th["eps"][1:-1].abs() > AWAY).numpy()
    t = np.degrees(th["theta"].double().numpy()[..., away])  # [M directions, N images, steps]
    per_image = t.swapaxes(0, 1).reshape(t.shape[1], -1)
    finite = np.isfinite(per_image)  # [N images, directions × steps]
    sums, counts = np.where(finite, per_image, 0).sum(1), finite.sum(1)
    deg = per_image[finite]
    theta_ci = bootstrap(lambda i: sums[i].sum(1) / np.maximum(counts[i].sum(1), 1), len(sums) if deg.size else 0)[1:]
    tr = travel_experiment(model_name, profile, kind="fgsm", checkpoint=checkpoint)
    ok = tr[tr.status == "crossed"]
    eps = ok.eps.to_numpy()
    eps_ci = bootstrap(lambda i: np.median(eps[i], axis=1), len(eps))[1:]
    return {"accuracy": s["accuracy"], "ece": s["ece"], "sece": s["sece"],
            "theta_mean": float(deg.mean()) if deg.size else np.nan,
            "theta_ci_lo": theta_ci[0], "theta_ci_hi": theta_ci[1],
            "theta_q1": float(np.quantile(deg, 0.25)) if deg.size else np.nan,
            "theta_median": float(np.median(deg)) if deg.size else np.nan,
            "theta_q3": float(np.quantile(deg, 0.75)) if deg.size else np.nan,
            "eps_median": float(np.median(eps)) if eps.size else np.nan, "eps_ci_lo": eps_ci[0], "eps_ci_hi": eps_ci[1],
            "eps_median_low": float(ok[ok.confidence <= low_confidence].eps.median()),
            "n_crossed": int(len(ok))}


def epoch_checkpoints(model_name: str, checkpoint_dir: Path, model_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, weights) of ``<model>_ep<E>.safetensors`` snapshots plus the final weights, by epoch."""
    checkpoint_dir, model_dir = Path(checkpoint_dir), Path(model_dir)
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
    """:func:`curvedness` per epoch snapshot of ``profile.checkpoint_dir`` (one row per epoch; column
    ``final`` marks the weights in ``profile.model_dir``)."""
    profile = require(profile)
    rows = []
    ckpts = epoch_checkpoints(model_name, profile.checkpoint_dir, profile.model_dir)
    for epoch, path in ckpts:
        rows.append({"model": model_name, "epoch": epoch, "final": path == ckpts[-1][1],
                     **curvedness(model_name, profile, checkpoint=path, **kw)})
    return pd.DataFrame(rows)


#: The parent weights each variant is compared with: trained with the same recipe (the parent's
#: default epochs), so only the swapped component differs.
def parent_weights(variant: str, profile) -> tuple[str, Path]:
    sp = models.spec(variant)
    if sp.parent is None:
        raise ValueError(f"{variant!r} is not a component-swap variant")
    snap = profile.checkpoint_dir / f"{sp.parent}_ep{sp.recipe['epochs']}.safetensors"
    if snap.exists():
        return sp.parent, snap
    return sp.parent, profile.model_dir / f"{sp.parent}.safetensors"


def own_length_parents(variants, profile=None, *, eps_range: float = 0.1) -> dict:
    """Each variant's parent *as trained for as long as the variant* (:func:`parent_weights`: for the ViT its
    15-epoch snapshot, not the 39-epoch shipped model), measured like the curvature chapter's models:
    variant → ``{"label", "parent", "weights", "sweep"`` (θ-versus-step sweep), ``"omega_median"`` (median ω
    along FGSM)``}``. Read from the experiments' cache (computed on a miss)."""
    profile = require(profile)
    out = {}
    for v in variants:
        parent, w = parent_weights(v, profile)
        shipped = w == profile.model_dir / f"{parent}.safetensors"
        ck = None if shipped else w
        sweep = theta_step_experiment(parent, profile, checkpoint=ck, eps_range=eps_range)
        omega = curvature_experiment(parent, profile, kind="fgsm", checkpoint=ck, eps_range=eps_range)["omega"]
        out[v] = {"label": parent if shipped else w.stem, "parent": parent, "weights": w, "sweep": sweep,
                  "omega_median": float(np.nanmedian(omega.double().numpy()))}
    return out


def parent_replicates(parent: str, seed_dir: Path, stem: str | None = None) -> list[tuple[int, Path]]:
    """(seed, weights) of the parent retrained with other seeds, from ``seed_dir/seed<k>/<stem>.safetensors``
    (``stem``: the parent's weights as the variants' recipe trained it, e.g. ``vit_ep15``; default ``parent``)."""
    return list(models.seed_files(stem or parent, seed_dir).items())


#: Seeds of a parent (itself included) its spread needs before it can tell a swap's effect from training noise.
MIN_SEEDS = 3


def _card(weights: Path) -> dict:
    c = weights.with_suffix(".json")
    return json.loads(c.read_text()) if c.exists() else {}


def component_swaps(profile=None, *, variants=None) -> tuple[pd.DataFrame, list[str]]:
    """(table, missing): one row per trained variant, one per parent and one per parent seed
    replicate (from ``profile.seed_dir``) — with a ``label``, its ``role`` (parent, replicate,
    variant), what was swapped (``swap``: readable; ``swap_from`` / ``swap_to``: the module types,
    None for parents), the training ``seed`` and the ``weights`` file; ``missing`` lists variants
    whose weights are not in ``profile.model_dir`` yet."""

    profile = require(profile)
    rows, missing, parents_done = [], [], set()

    def row(model, parent, role, swap, label, weights, seed=None):
        card = _card(weights)
        card_seed = card.get("recipe", {}).get("seed", 0 if seed is None else seed)
        if seed is not None and card_seed != seed:
            raise ValueError(f"{weights}: its card says seed {card_seed}, its folder says seed {seed}")
        seed = card_seed
        sw = models.spec(model).swap if role == "variant" else None
        return {"model": model, "label": label, "parent": parent, "role": role, "swap": swap,
                "swap_from": sw[0] if sw else None, "swap_to": sw[1] if sw else None, "seed": seed,
                "epochs": card.get("epoch", card.get("epochs_trained")), "weights": str(weights),
                **curvedness(model, profile, checkpoint=weights)}

    for v in variants or list(models.variants()):
        parent, pw = parent_weights(v, profile)
        vw = profile.model_dir / f"{v}.safetensors"
        if not vw.exists():
            missing.append(v)
            continue
        if parent not in parents_done:
            rows.append(row(parent, parent, "parent", "— (parent)", parent, pw))
            for seed, rw in parent_replicates(parent, profile.seed_dir, pw.stem):
                rows.append(row(parent, parent, "replicate", f"— (parent, seed {seed})", f"{parent} seed {seed}",
                                rw, seed))
            parents_done.add(parent)
        rows.append(row(v, parent, "variant", models.spec(v).swap_label, v, vw))
    return pd.DataFrame(rows), missing


def swap_boundary(table: pd.DataFrame, profile=None, *, edges=BANDS) -> pd.DataFrame:
    """Median ε* along FGSM per confidence band for every row of a :func:`component_swaps` table
    (tidy: label, parent, band, median, n), from the cached travel experiments."""

    out = []
    for r in table.itertuples():
        m = median_by_confidence(travel_experiment(r.model, profile, kind="fgsm", checkpoint=r.weights), edges)
        out.append(m.assign(label=r.label, parent=r.parent))
    return pd.concat(out, ignore_index=True)[["label", "parent", "band", "median", "n"]] if out else pd.DataFrame()


def swap_effects(table: pd.DataFrame) -> pd.DataFrame:
    """Variant − parent differences from a :func:`component_swaps` table, one row per variant.

    ``d_theta`` (degrees), ``d_eps`` / ``d_eps_low`` (pixels), ``d_accuracy``, ``d_sece``; and the
    yardsticks: ``n_seeds`` = the parent's seeds (itself and its replicates), ``seed_theta`` / ``seed_eps`` =
    their spread (max − min; nan without replicates), ``ci_separate`` = the two 95 % bootstrap intervals of
    mean θ do not overlap, ``beyond_seed`` = |d_theta| exceeds ``seed_theta`` — decided only with at least
    :data:`MIN_SEEDS` seeds (nan otherwise: one difference is no measure of training noise).
    """
    missing = {"role", "parent", "theta_mean", "theta_ci_lo", "theta_ci_hi", "eps_median"} - set(table.columns)
    if missing:
        raise ValueError(f"not a component_swaps table: no column(s) {', '.join(sorted(missing))}")
    rows = []
    for _, v in table[table.role == "variant"].iterrows():
        fam = table[table.parent == v.parent]
        parents, reps = fam[fam.role == "parent"], fam[fam.role == "replicate"]
        if len(parents) != 1:
            raise ValueError(f"variant {v.model!r} needs exactly one parent row for {v.parent!r}, found {len(parents)}")
        p = parents.iloc[0]
        thetas, eps = [p.theta_mean, *reps.theta_mean], [p.eps_median, *reps.eps_median]
        seed_theta = float(np.ptp(thetas)) if len(reps) else np.nan
        seed_eps = float(np.ptp(eps)) if len(reps) else np.nan
        d_theta = v.theta_mean - p.theta_mean
        rows.append({"variant": v.model, "parent": v.parent, "swap": v.swap, "swap_from": v.swap_from,
                     "swap_to": v.swap_to, "d_theta": d_theta, "n_seeds": 1 + len(reps),
                     "seed_theta": seed_theta, "d_eps": v.eps_median - p.eps_median, "seed_eps": seed_eps,
                     "d_eps_low": v.eps_median_low - p.eps_median_low,
                     "d_accuracy": v.accuracy - p.accuracy, "d_sece": v.sece - p.sece,
                     "ci_separate": bool(v.theta_ci_lo > p.theta_ci_hi or v.theta_ci_hi < p.theta_ci_lo),
                     "beyond_seed": bool(abs(d_theta) > seed_theta) if 1 + len(reps) >= MIN_SEEDS else np.nan})
    return pd.DataFrame(rows)


def component_effects(effects: pd.DataFrame) -> pd.DataFrame:
    """Does a component act the same way in both families? One row per pair of swapped components
    (e.g. ReLU / GELU, from each swap's ``swap_from`` → ``swap_to``): ``toward`` (the pair's second
    component, alphabetically), ``d_theta`` = {parent: θ change when that parent's component is
    replaced by ``toward``} and ``consistent`` (the same sign in every family, with ≥ 2 families)."""
    missing = {"parent", "swap_from", "swap_to", "d_theta"} - set(effects.columns)
    if missing:
        raise ValueError(f"not a swap_effects table: no column(s) {', '.join(sorted(missing))}")
    rows = {}
    for e in effects.itertuples():
        a, b = e.swap_from, e.swap_to
        if not (isinstance(a, str) and isinstance(b, str) and a and b and a != b):
            raise ValueError(f"swap of {e.parent!r} needs two different module types, got {a!r} → {b!r}")
        first, toward = sorted((a, b))
        r = rows.setdefault((first, toward), {"pair": f"{first} / {toward}", "toward": toward, "d_theta": {}})
        r["d_theta"][e.parent] = e.d_theta if b == toward else -e.d_theta
    out = []
    for r in rows.values():
        signs = {np.sign(v) for v in r["d_theta"].values()}
        out.append({**r, "consistent": len(r["d_theta"]) >= 2 and len(signs) == 1})
    return pd.DataFrame(out, columns=["pair", "toward", "d_theta", "consistent"])


# ---------------------------------------------------------------------------------------------
# The ablations chapter's sentences: each table above, worded for the page (numbers from the tables).



def missing_markdown(missing) -> str:
    """A note naming the component-swap variants ``missing`` (no weights yet) and how to train them."""
    return ("**Not trained yet:** " + ", ".join(f"`{v}` ({models.spec(v).swap_label})" for v in missing)
            + ". Their weights are not in `data/models`: train them with `python -m curvlib.train --model NAME` "
            "(the parent's recipe is the default). The comparison below covers only the trained variants.")

def _trend(dyn: pd.DataFrame, name: str) -> str:
    """One bullet: model ``name``'s mean θ, median ε* and sECE after its first and last epoch."""
    g = dyn[dyn.model == name].sort_values("epoch")
    first, last = g.iloc[0], g.iloc[-1]
    return (f"- **{name}**: mean θ {first.theta_mean:.2f}° after epoch {first.epoch} → {last.theta_mean:.2f}° "
            f"after epoch {last.epoch}; median ε* {first.eps_median:.4f} → {last.eps_median:.4f}; "
            f"sECE {first.sece:+.4f} → {last.sece:+.4f}.")


def trend_markdown(dyn: pd.DataFrame) -> str:
    """Markdown bullets on a :func:`training_dynamics` table of ``resnet`` and ``vit``: per model, mean θ
    (degrees), median ε* and sECE after its first and last epoch; then the two models' mean-θ gap (vit −
    resnet) at every epoch both were measured at."""
    gap = {e: g.set_index("model").theta_mean for e, g in dyn.groupby("epoch") if g.model.nunique() == 2}
    order = [f"epoch {e}: vit − resnet = {v['vit'] - v['resnet']:+.2f}°" for e, v in gap.items()]
    return "\n".join([_trend(dyn, "resnet"), _trend(dyn, "vit"),
                      f"- The two models' mean θ at the common epochs: {'; '.join(order)}."])


def swap_line(table: pd.DataFrame, e) -> str:
    """One Markdown bullet on swap effect ``e`` (a row of :func:`swap_effects` of ``table``, a
    :func:`component_swaps` table): mean θ parent → variant with the two 95 % intervals and whether they
    overlap, the effect against the seed-to-seed spread (where a replicate exists), median ε*, accuracy, sECE."""
    fam = table[table.parent == e.parent]
    p, v = fam[fam.role == "parent"].iloc[0], fam[fam.model == e.variant].iloc[0]
    ci = (f"the 95 % intervals [{p.theta_ci_lo:.1f}, {p.theta_ci_hi:.1f}]° and [{v.theta_ci_lo:.1f}, "
          f"{v.theta_ci_hi:.1f}]° {'do not overlap' if e.ci_separate else 'overlap'}")
    if pd.isna(e.seed_theta):
        seed = "no seed replicate of the parent is shipped, so training noise is not measured"
    elif pd.isna(e.beyond_seed):
        seed = (f"retraining the parent with another seed moved θ by {e.seed_theta:.2f}°, but {e.n_seeds} seeds are "
                f"no measure of training noise (the book asks for ≥ {MIN_SEEDS}), so whether the swap's effect "
                "exceeds it is not decided")
    else:
        seed = (f"the parent's {e.n_seeds} seeds spread θ over {e.seed_theta:.2f}° (max − min), so the swap's "
                "effect is " + ("larger than" if e.beyond_seed else "**not** larger than") + " training noise")
    eps_seed = "" if pd.isna(e.seed_eps) else f" (seed spread {e.seed_eps:.4f})"
    return (f"- **{e.variant}** ({e.swap}): mean θ {p.theta_mean:.2f}° → {v.theta_mean:.2f}° "
            f"(Δ {e.d_theta:+.2f}°); {ci}; {seed}. Median ε* {p.eps_median:.4f} → {v.eps_median:.4f}{eps_seed}; "
            f"accuracy {p.accuracy:.2%} → {v.accuracy:.2%}; sECE {p.sece:+.4f} → {v.sece:+.4f}.")


def swaps_markdown(table: pd.DataFrame, effects: pd.DataFrame) -> str:
    """:func:`swap_line` for every swap effect, then, for scale, the gap in mean θ between the ``resnet`` and
    ``vit`` parents against the largest swap effect (both parents in ``table``); a note if nothing is trained."""
    lines = [swap_line(table, e) for e in effects.itertuples()]
    par = table[table.role == "parent"].set_index("model") if len(table) else pd.DataFrame()
    if {"resnet", "vit"} <= set(par.index):
        gap = par.theta_mean["vit"] - par.theta_mean["resnet"]
        biggest = effects.loc[effects.d_theta.abs().idxmax()]
        lines.append(f"- For scale: the two parents differ by {gap:+.2f}° (vit − resnet: here the ViT is the "
                     f"{'less' if gap < 0 else 'more'} curved family); the largest swap effect is "
                     f"{biggest.d_theta:+.2f}° ({biggest.variant}).")
    return "\n".join(lines) if lines else "No variant is trained yet."


def components_markdown(comp: pd.DataFrame) -> str:
    """One Markdown bullet per pair of a :func:`component_effects` table: the θ change (degrees) toward the
    pair's second component in each family, and whether the families agree in sign."""
    out = []
    for c in comp.itertuples():
        per = ", ".join(f"{d:+.2f}° in {fam}" for fam, d in c.d_theta.items())
        how = ("the same direction in both families" if c.consistent
               else "only one family measured" if len(c.d_theta) < 2 else "**opposite** directions in the two families")
        out.append(f"- **{c.pair}**: switching to {c.toward} changes mean θ by {per} — {how}.")
    return "\n".join(out) if out else "No variant is trained yet."
