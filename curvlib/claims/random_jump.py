"""The random-jump claim: ε* after a small random step against the direct one, with the two controls."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import bootstrap, verdict
from .records import CLAIMS
from .resample import _families, _family_of, _pooled_median, _same_images

#: The ratios of :func:`jump_ratios`: name → (numerator, denominator) columns of a jump frame. The
#: controls compare second legs with one ingredient of the jump route in common: the start x_r
#: (``vs start point only``) or the direction FGSM(x_r) (``vs direction only``); ``direction only vs
#: direct`` asks whether FGSM(x_r) is simply a better direction from x itself.
JUMP_RATIOS = {"total": ("total_jump", "total_direct"), "eps": ("eps_jump", "eps_direct"),
               "vs start point only": ("eps_jump", "eps_ctrl_point"),
               "vs direction only": ("eps_jump", "eps_ctrl_direction"),
               "direction only vs direct": ("eps_ctrl_direction", "eps_direct")}


def jump_ratios(jumps: dict[str, pd.DataFrame], groups: dict[str, list[str]] | None = None, n_boot: int = 1000,
                level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Median paired ratios of :data:`JUMP_RATIOS` per group of models (default: each model alone),
    pooled over the group's models, each with an interval paired over test images. One tidy row per
    group and ratio: ``group``, ``ratio``, ``median``, ``lo``, ``hi``, ``n_pairs``, ``verdict`` (below 1
    = the numerator's route is the shorter)."""
    n = len(_same_images(jumps))
    groups = groups or {m: [m] for m in jumps}
    unknown = sorted({m for ms in groups.values() for m in ms} - set(jumps))
    if unknown:
        raise ValueError(f"groups name models without a jump frame: {', '.join(unknown)}")
    rows = []
    for g, ms in groups.items():
        for name, (a, b) in JUMP_RATIOS.items():
            vals = [(jumps[m][a] / jumps[m][b]).to_numpy(float) for m in ms]
            est, lo, hi = bootstrap(_pooled_median(vals), n, n_boot=n_boot, level=level, seed=seed)
            rows.append({"group": g, "ratio": name, "median": est, "lo": lo, "hi": hi,
                         "n_pairs": int(sum(np.isfinite(v).sum() for v in vals)), "verdict": verdict(lo, hi, 1.0, "<")})
    return pd.DataFrame(rows)


def random_jump_claim(jumps: dict[str, pd.DataFrame], families: dict | None = None, **kw) -> dict:
    """The Transformers' median total perturbation after jump + FGSM over that of FGSM alone.

    "holds" when that interval lies below 1 *and* the jump route's ε* is shorter than both controls'
    (travel from x_r along FGSM(x); from x along FGSM(x_r)) — otherwise a generic effect of the random
    step or of a better direction could explain it; "opposite" when the total is significantly larger
    (above 1); "inconclusive" otherwise. The note says how often the jump alone already exceeds the
    direct route's total (the ratio is then above 1 whatever the second leg), and how the CNNs fare."""
    families = _family_of(jumps, families)
    fams = _families(list(jumps), families)
    t = jump_ratios(jumps, fams, **kw).set_index(["group", "ratio"])
    tr = t.loc["Transformer"]
    total, ctrl = tr.loc["total"], [tr.loc["vs start point only"], tr.loc["vs direction only"]]
    cnn_eps, tr_eps = t.loc[("CNN", "eps"), "median"], tr.loc["eps", "median"]
    note = (f"Second leg alone (ε* after the jump / ε* from x): Transformers {tr_eps:.2f}, CNNs {cnn_eps:.2f}"
            + (" — the CNNs, the flat family in the paper, gain more from the jump" if cnn_eps < tr_eps else "")
            + f"; against the controls (Transformers) {ctrl[0]['median']:.2f} (same start) and "
            f"{ctrl[1]['median']:.2f} (same direction).")
    if "psnr_jump_only" in next(iter(jumps.values())).columns:
        both = []
        for m in fams["Transformer"]:
            df = jumps[m]
            jump_rms = 10 ** (-df.psnr_jump_only.to_numpy(float) / 20)  # PSNR = −20 log10(rms) for range 1
            ok = np.isfinite(df.total_direct.to_numpy(float)) & np.isfinite(df.total_jump.to_numpy(float))
            both.append((df.total_direct.to_numpy(float) < jump_rms)[ok])
        share = float(np.concatenate(both).mean()) if sum(len(b) for b in both) else float("nan")
        note += (f" On {share:.0%} of the Transformers' pairs the jump alone (after clipping) is larger than the whole "
                 "direct route, so the total-perturbation test favours the direct route before the second leg is "
                 "counted; the second-leg and control ratios are the ones that speak to the geometry.")
    return CLAIMS["random jump"].judge(total["median"], total.lo, total.hi, int(total.n_pairs),
                                       controls=tuple(c.verdict for c in ctrl), note=note,
                                       eps_ratio=tr.loc["eps", "median"], ctrl_point=ctrl[0]["median"],
                                       ctrl_point_verdict=ctrl[0].verdict, ctrl_direction=ctrl[1]["median"],
                                       ctrl_direction_verdict=ctrl[1].verdict)
