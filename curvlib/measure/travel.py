r"""Travel to the decision boundary: the smallest ε with argmax f(clip(x + ε d)) ≠ y.

All samples move together, one batched forward per iteration for every sample still searching;
each probe reads the logit margin m(ε) = z_y − max_{j≠y} z_j (continuous along the path, < 0
exactly where the prediction is wrong; float64 bookkeeping). Per sample:

* **March** from the last accepted correct point lo: the first probe at eps_max/256, then the
  secant through the last two accepted points predicts where m reaches 0 and the probe goes 25 %
  beyond it (``overshoot``: a wrong point closes a tight bracket), but no further than
  m(lo)/L (``safe_step``; L the steepest recent margin slope, see below: where m could reach 0 at
  that slope), nor beyond 16·lo (``growth``) or lo + eps_max/8 (``max_step``), and at least
  eps_max·``resolution`` (5e-4) so that a tangent approach cannot creep.
* **Join check.** A correct probe b is accepted as the new lo only if
  m(lo) + m(b) ≥ ½·L·(b − lo) (``cone``), L = max(the chords at b, ½·the previous L): a crossing
  between them would need the margin to fall from m(lo) to 0 and climb back to m(b) at a slope of
  at least ½·L (half, because the chords next to a crossing are steeper than the margin elsewhere: a
  full-L cone sent many correct points to gap probes). Otherwise b waits and the gap is searched
  first, at the point where the two slope-L cones from lo and b meet (the deepest dip they allow);
  gaps narrower than eps_max·resolution are joined unseen.
* **Refinement** of [lo, first wrong point] below ``tol``: ITP (Oliveira & Takahashi 2020) on the
  margin — regula falsi, truncated and projected, allowed ``ITP_SLACK`` = 5 probes beyond
  bisection's count — with the same join check, so a non-monotone margin inside the bracket sends
  the search to its lower part; the probes never go further from lo than max(m(lo)/L, tol') (a
  margin ≈ 0 at lo must not pin them to lo), and a point within tol' of an end moves to tol' from
  it, so that the outcome the margins predict closes the bracket in one probe. The returned ε* is
  a point verified wrong, eps_lo the last accepted correct one: ε* − eps_lo ≤ tol.
* **Never check.** A sample about to be declared "never" first probes, once, the middle of its riskiest
  accepted gap [a, b] (least (m(a) + m(b)) / (b − a): the gentlest slope that could hide a crossing
  there), if the budget can still refine the bracket [a, mid] a wrong outcome leaves; wrong, it is
  refined like any bracket. Only never-samples pay for it (≈ +0.1 mean passes on random directions).
* **Budget.** Every probe is placed so that, whatever its outcome, the passes left suffice to finish:
  bisection of the bracket (width ≤ tol'·2^r after a probe that leaves r passes), or, before a
  crossing is seen, a schedule reaching eps_max whose wrong outcomes are all bracketable
  (distance left ≤ tol'·(2^r − 1)). Hence, for every sample and every model,

      passes ≤ max_passes = budget (26 by default) ≥ min_passes = 1 + ⌈log₂(eps_max / tol' + 1)⌉,

  tol' = tol − eps_max·2⁻²⁰ (probes are float32; 15 for eps_max = 1, tol = 1e-4). Probes are
  only forced into that schedule once the slack (budget − min_passes) is spent.

What it can and cannot see: it finds the first crossing unless (a) the margin dips to 0 and back
between two accepted probes faster than ½·L, L the slope seen around them (a sharp wrong-class island
between probes), (b) the island is narrower than eps_max·resolution, or (c) the budget's slack ran
out and a forced step jumped over it. Nothing in a margin read at finitely many points can rule
these out. The constants above are the fields of a :class:`Search`; :data:`SEARCHES` names the
two settings the book offers (``default``, and ``careful``, whose smaller march steps land inside
most such islands for more passes). ``benchmarks/bench_travel_frontier.py`` measures each against a
dense 1e-3 scan and against the authors' stride-halving search (``benchmarks/bench_travel.py``); its
last output is kept in ``benchmarks/results/``, and the boundary chapter re-checks a seeded subset of
its own rows (:mod:`curvlib.certify`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..inference import call, model_device
from .direction import _check

STATUSES = ("crossed", "never", "misclassified_at_start")
#: ITP truncation κ1 (× 1 / initial bracket width): smaller trusts the interpolation more.
ITP_KAPPA1 = 0.05


def positions(x: torch.Tensor, d: torch.Tensor, eps) -> torch.Tensor:
    """clip(x + ε_i·d_i) for images x, directions d [N, C, H, W] and per-sample ε [N] (NaN → 0,
    i.e. the image itself: pass a travel frame's ``eps`` to get the images at the boundary)."""
    eps = eps.to(x.dtype) if isinstance(eps, torch.Tensor) else torch.tensor(eps, dtype=x.dtype)  # copies arrays
    eps = torch.nan_to_num(eps, nan=0.0)
    return (x + eps.view(-1, *([1] * (x.ndim - 1))) * d).clamp_(0.0, 1.0)


def _logit_margin(z: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j per row of logits z [M, K] (float64)."""
    zy = z.gather(1, ys[:, None]).squeeze(1)
    other = z.scatter(1, ys[:, None], float("-inf")).amax(1)
    return (zy - other).double()


@torch.inference_mode()
def _margin(model, xs, ys, dev, index=None):
    """(prediction, margin z_y − max_{j≠y} z_j) of images xs [M, ...] with labels ys [M] (``index``:
    their sample numbers, for a model that asks for them)."""
    z = call(model, xs.to(dev, non_blocking=True), index).float()
    return z.argmax(-1).cpu(), _logit_margin(z, ys.to(z.device)).cpu()


@dataclass(frozen=True)
class Search:
    """A setting of the boundary search (:func:`travel`): its worst-case budget and the march's constants.

    ``SEARCHES`` names the two the book uses; ``benchmarks/bench_travel_frontier.py`` measures what
    each costs in forward passes and how often it agrees with a dense ε scan
    (``benchmarks/results/travel_frontier.txt``)."""

    #: worst-case forward passes per sample, start included (see :func:`max_passes`)
    budget: int = 26
    #: march: the first probe (× eps_max), the growth cap of each step (ε ≤ growth·lo), the largest step (× eps_max)
    first_step: float = 1 / 256
    growth: float = 16.0
    max_step: float = 1 / 8
    #: march: step past the secant's predicted crossing by this fraction (a wrong point closes a tight bracket) …
    overshoot: float = 0.25
    #: … but never further than safe_step·m(lo) / L, L the steepest margin slope seen on the sample's path
    safe_step: float = 1.0
    #: a correct probe b is joined to the last accepted one a only if m(a) + m(b) ≥ cone·L·(b − a): otherwise
    #: the margin could have dipped below 0 between them at a slope already seen, and the gap is searched first
    cone: float = 0.5
    #: … where L is a recent slope: each probe multiplies it by slope_memory before adding the new chords
    slope_memory: float = 0.5
    #: refinement: a probe within tol' of a bracket end goes to close·tol' from it
    close: float = 0.999
    #: gaps narrower than resolution·eps_max are joined without a look (islands that narrow may be missed)
    resolution: float = 5e-4

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "budget":
                if not isinstance(v, int) or isinstance(v, bool):
                    raise TypeError(f"Search.budget must be an integer, got {v!r}")
            elif not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"Search.{f.name} must be a positive finite number, got {v!r}")
        if self.growth <= 1 or self.max_step > 1 or self.first_step > 1 or self.close >= 1:
            raise ValueError(f"Search needs growth > 1, max_step ≤ 1, first_step ≤ 1 and close < 1, got {self}")


#: The named settings: ``default`` (budget 26: mean ≤ 9 passes, ≥ 99.6 % agreement with a dense scan on the
#: embedded models) and ``careful`` (steps grow ≤ 3× per probe and never exceed eps_max/32, budget 36: ≥ 99.9 %
#: agreement at about 1.5× the passes along random directions). Measured: ``benchmarks/results/``.
SEARCHES = {"default": Search(), "careful": Search(budget=36, growth=3.0, max_step=1 / 32)}
#: Default worst-case forward passes per sample (start included); see :func:`max_passes`.
DEFAULT_BUDGET = SEARCHES["default"].budget


def search_setting(search) -> Search:
    """A :class:`Search` from itself or its name in :data:`SEARCHES` (a clear error otherwise)."""
    if isinstance(search, Search):
        return search
    if isinstance(search, str) and search in SEARCHES:
        return SEARCHES[search]
    raise ValueError(f"unknown boundary search {search!r}; choose one of {', '.join(SEARCHES)} "
                     "or pass a curvlib.travel.Search")


def _tol_plan(eps_max: float, tol: float) -> float:
    """The bracket width the search plans for: tol less the float32 rounding of both ends."""
    return tol - eps_max * 2.0 ** -20


def min_passes(eps_max: float = 1.0, tol: float = 1e-4) -> int:
    """The fewest forward passes (start included) in which a search can guarantee a bracket
    ≤ ``tol`` around a crossing or a correct verdict at ``eps_max``: 1 + ⌈log₂(eps_max / tol' + 1)⌉,
    tol' = tol − eps_max·2⁻²⁰ (probes are rounded to float32)."""
    return 1 + math.ceil(math.log2(eps_max / _tol_plan(eps_max, tol) + 1))


def max_passes(eps_max: float = 1.0, tol: float = 1e-4, budget: int = DEFAULT_BUDGET) -> int:
    """Worst-case forward passes per sample of :func:`travel`: ``budget`` (checked to be at least
    :func:`min_passes`); the search plans every probe so that the budget is never exceeded."""
    need = min_passes(eps_max, tol)
    if not isinstance(budget, int) or budget < need:
        raise ValueError(f"budget must be an integer ≥ {need} passes for eps_max {eps_max:g}, tol {tol:g} "
                         f"(1 + ⌈log₂(eps_max / tol' + 1)⌉, tol' = tol − eps_max·2⁻²⁰), got {budget!r}")
    return budget


def itp_point(lo, hi, m_lo, m_hi, kappa1, kappa2: float = 2.0):
    """ITP's interpolate-and-truncate point in brackets [lo, hi] (tensors) with margins
    m_lo ≥ 0 ≥ m_hi: regula falsi, moved towards the midpoint by κ1·(hi − lo)^κ2 (Oliveira &
    Takahashi 2020). The projection that bounds the iterations is applied by the caller."""
    width = hi - lo
    mid = (lo + hi) / 2
    denom = (m_lo - m_hi).clamp_min(1e-30)
    x_f = (lo * (-m_hi) + hi * m_lo) / denom  # zero of the chord
    sigma = torch.sign(mid - x_f)
    delta = kappa1 * width ** kappa2
    return torch.where(delta <= (mid - x_f).abs(), x_f + sigma * delta, mid)


#: Refinement: iterations allowed beyond bisection's count for the first bracket (ITP's n₀).
ITP_SLACK = 5


def _check_grid(grid) -> tuple[float, ...] | None:
    """Optional march caps as increasing fractions in (0, 1] ending at 1 (an int n: n uniform steps)."""
    if grid is None:
        return None
    if isinstance(grid, int):
        if grid < 1:
            raise ValueError(f"a uniform grid needs at least one step, got {grid}")
        grid = tuple((k + 1) / grid for k in range(grid))
    grid = tuple(float(g) for g in grid)
    if not grid or grid[-1] != 1.0 or any(b <= a for a, b in zip((0.0, *grid[:-1]), grid)):
        raise ValueError(f"grid must increase strictly within (0, 1] and end at 1, got {grid}")
    return grid


#: No fixed coarse grid: the march adapts its steps (``grid`` may still cap them).
DEFAULT_GRID = None


@torch.inference_mode()
def travel(model, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, eps_max: float = 1.0, tol: float = 1e-4,
           grid=DEFAULT_GRID, batch_size: int = 500, progress: bool = True, budget: int | None = None,
           search="default") -> pd.DataFrame:
    """Distance to the decision boundary along directions ``d`` for every sample.

    Args:
        model: pixels [N, C, H, W] in [0, 1] → logits [N, K].
        x: images [N, C, H, W] in [0, 1]; y: labels [N]; d: directions [N, C, H, W] (any norm is
           used as given; :func:`curvlib.direction.direction` gives ‖d‖ = √D, i.e. ε in pixel units).
        eps_max: largest ε searched (> 0). tol: bracket width at which refinement stops (> 0).
        grid: optional caps for the march as increasing fractions of eps_max ending at 1 (an int n
              means n uniform steps): a probe never passes the next grid point. None (default):
              no caps beyond the adaptive ones. batch_size: samples per chunk (memory budget).
        search: the search's setting, a name in :data:`SEARCHES` (``default``, ``careful``) or a
                :class:`Search`. budget: worst-case forward passes per sample, start included (see
                :func:`max_passes`; None: the setting's).
    Returns:
        DataFrame, one row per sample in input order: ``index``, ``label``, ``confidence`` and
        ``pred`` at x, ``eps`` (ε*; NaN unless crossed), ``eps_lo`` (largest ε accepted as correct:
        the crossing lies in (eps_lo, eps]), ``status`` (crossed / never / misclassified_at_start),
        ``new_class`` (prediction at ε*), ``passes`` (forward passes spent on the sample).
    """
    _check(x, y, getattr(model, "num_classes", None))
    if d.shape != x.shape:
        raise ValueError(f"directions must have the images' shape {tuple(x.shape)}, got {tuple(d.shape)}")
    if not torch.isfinite(d).all():
        raise ValueError("directions contain NaN or inf")
    if (d.reshape(len(d), -1).abs().amax(1) == 0).any():
        raise ValueError("a direction is zero: travel along it never moves")
    if not (eps_max > 0 and math.isfinite(eps_max)):
        raise ValueError(f"eps_max must be a positive number, got {eps_max}")
    if not (0 < tol < eps_max):
        raise ValueError(f"tol must be in (0, eps_max), got {tol}")
    if tol < eps_max * 2.0 ** -19:
        raise ValueError(f"tol must be at least eps_max·2⁻¹⁹ = {eps_max * 2.0 ** -19:.3g} (float32 probes), got {tol}")
    grid = _check_grid(grid)
    setting = search_setting(search)
    budget = max_passes(eps_max, tol, setting.budget if budget is None else budget)
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    dev = model_device(model)
    n = len(x)
    eps_star = torch.full((n,), float("nan"), dtype=torch.float64)
    eps_lo = torch.zeros(n, dtype=torch.float64)
    status = np.full(n, "never", dtype=object)
    new_class = torch.full((n,), -1, dtype=torch.long)
    passes = torch.zeros(n, dtype=torch.long)
    conf0 = torch.empty(n)
    pred0 = torch.empty(n, dtype=torch.long)
    caps = None if grid is None else torch.tensor(grid, dtype=torch.float64) * eps_max
    for s in tqdm(range(0, n, batch_size), desc=f"travel {getattr(model, 'name', '')}", disable=not progress,
                  leave=False):
        sl = slice(s, min(n, s + batch_size))
        xb, yb, db = x[sl].float(), y[sl].long(), d[sl].float()
        z0 = call(model, xb.to(dev), torch.arange(sl.start, sl.stop)).float().cpu()
        p = z0.softmax(-1)
        conf0[sl], pred0[sl] = p.max(-1)
        alive = pred0[sl] == yb  # correctly classified at the start
        st = _search(model, xb, yb, db, _logit_margin(z0, yb), alive, eps_max, tol, setting, budget, caps, dev, s)
        eps_star[sl], eps_lo[sl], new_class[sl], passes[sl] = st["hi"], st["lo"], st["cls"], st["used"]
        status[sl] = np.where(alive.numpy(), np.where(torch.isnan(st["hi"]).numpy(), "never", "crossed"),
                              "misclassified_at_start")
    mis = status == "misclassified_at_start"
    eps_lo[torch.from_numpy(mis)] = float("nan")
    return pd.DataFrame({
        "index": np.arange(n), "label": y.cpu().numpy(), "pred": pred0.numpy(), "confidence": conf0.double().numpy(),
        "eps": eps_star.numpy(), "eps_lo": eps_lo.numpy(), "status": pd.Categorical(status, categories=STATUSES),
        "new_class": new_class.numpy(), "passes": passes.numpy(),
    })


def _search(model, xb, yb, db, m0, alive, eps_max, tol, S: Search, budget, caps, dev, offset: int = 0) -> dict:
    """The march and the refinement of one chunk; every sample's state is a row of float64 tensors.
    Each probe hands the model its samples' numbers (``offset`` + position in the chunk): the probed
    samples are a subset, so batch position does not identify them."""
    b = len(yb)
    nan = torch.full((b,), float("nan"), dtype=torch.float64)
    st = {"lo": torch.zeros(b, dtype=torch.float64), "m_lo": m0.clone(),  # last accepted correct point
          "prev": nan.clone(), "m_prev": nan.clone(),  # the accepted point before it (secant)
          "hi": nan.clone(), "m_hi": nan.clone(),  # nearest wrong point beyond lo
          "pend": nan.clone(), "m_pend": nan.clone(),  # the nearest correct point beyond lo not yet joined to it
          "reach": nan.clone(), "m_reach": nan.clone(),  # the furthest one (what the budget plans from)
          "L": torch.zeros(b, dtype=torch.float64),  # steepest |margin slope| seen on the path
          "w0": nan.clone(), "j": torch.zeros(b, dtype=torch.float64), "n_max": nan.clone(),
          "cls": torch.full((b,), -1, dtype=torch.long), "used": torch.ones(b, dtype=torch.long),
          # the accepted gap [g_a, g_b] a hidden island was likeliest in: least (m(a) + m(b)) / (b − a)
          "g_a": nan.clone(), "m_ga": nan.clone(), "g_b": nan.clone(),
          "g_score": torch.full((b,), math.inf, dtype=torch.float64),
          "checked": torch.zeros(b, dtype=torch.bool)}
    tiny = 1e-12 * eps_max
    # plan brackets with a slightly smaller tol: probes are rounded to float32 (≤ eps_max·2⁻²⁴ each end)
    tol_p = _tol_plan(eps_max, tol)

    def accept(i, e, m):
        """Samples i accept correct points e (margins m) as their new lo."""
        a, m_a = st["lo"][i], st["m_lo"][i]
        score = (m_a.clamp_min(0) + m.clamp_min(0)) / (e - a)
        worse = (e - a > S.resolution * eps_max) & (score < st["g_score"][i])
        k = i[worse]
        st["g_a"][k], st["m_ga"][k], st["g_b"][k], st["g_score"][k] = a[worse], m_a[worse], e[worse], score[worse]
        st["prev"][i], st["m_prev"][i] = st["lo"][i], st["m_lo"][i]
        st["lo"][i], st["m_lo"][i] = e, m

    def allowed(i):
        """[lowest, highest] ε that samples i may probe next without breaking their pass budget."""
        lo, hi = st["lo"][i], st["hi"][i]
        r = (budget - st["used"][i]).double()
        bracket = ~torch.isnan(hi)
        # refinement: both outcomes must leave a bracket bisection can close in the remaining passes
        r_ref = torch.minimum(r, st["n_max"][i] - st["j"][i])
        w = hi - lo
        rad = (tol_p * torch.exp2(r_ref - 1) - w / 2).clamp_min(0)
        mid = (lo + hi) / 2
        # march: a wrong probe must leave such a bracket, a correct one a distance the rest can cover
        dist = eps_max - lo
        step_hi = torch.minimum(tol_p * torch.exp2(r - 1), dist)
        step_lo = (dist - tol_p * (torch.exp2(r - 1) - 1)).clamp_min(0)
        a = torch.where(bracket, torch.maximum(mid - rad, lo), lo + step_lo)
        z = torch.where(bracket, torch.minimum(mid + rad, hi), lo + step_hi)
        return a, z

    while True:
        done = torch.where(torch.isnan(st["hi"]), st["lo"] >= eps_max - tiny, st["hi"] - st["lo"] <= tol)
        act = torch.nonzero(alive & ~done).flatten()
        # never check: a sample about to be declared "never" first probes the middle of its riskiest accepted
        # gap (least (m(a) + m(b)) / (b − a)) once, if the budget can refine the bracket a wrong outcome leaves
        r_left = (budget - st["used"]).double()
        cand = alive & done & torch.isnan(st["hi"]) & ~st["checked"] & ~torch.isnan(st["g_a"])
        cand &= (st["g_b"] - st["g_a"]) / 2 <= tol_p * torch.exp2(r_left - 1)
        chk = torch.nonzero(cand).flatten()
        if len(chk):
            st["checked"][chk] = True
            ga, gb = st["g_a"][chk], st["g_b"][chk]
            q = ((ga + gb) / 2).float().double()
            pr, m = _margin(model, positions(xb[chk], db[chk], q.float()), yb[chk], dev, offset + chk)
            st["used"][chk] += 1
            wrong = pr != yb[chk]
            i, q, m, pr = chk[wrong], q[wrong], m[wrong], pr[wrong]
            st["lo"][i], st["m_lo"][i] = st["g_a"][i], st["m_ga"][i]
            st["prev"][i] = st["m_prev"][i] = st["pend"][i] = st["reach"][i] = float("nan")
            st["hi"][i], st["m_hi"][i], st["cls"][i] = q, m, pr
            st["w0"][i] = q - st["lo"][i]
            st["n_max"][i] = torch.ceil(torch.log2(st["w0"][i] / tol_p)).clamp_min(0) + ITP_SLACK
            st["j"][i] = 0
            continue
        if len(act) == 0:
            break
        if (st["used"][act] >= budget).any():  # cannot happen: every probe leaves a feasible plan
            raise RuntimeError("travel: pass budget exhausted before the search finished (a bug)")
        # a pending point is joined as it is unless the budget can afford a probe below it: one that
        # leaves, if correct, the state joining would have left (bracket or distance from the pending point)
        pend, reach = st["pend"][act], st["reach"][act]
        r = (budget - st["used"][act]).double()
        bracket = ~torch.isnan(st["hi"][act])
        r_after = torch.where(bracket, torch.minimum(r, st["n_max"][act] - st["j"][act]), r) - 1
        feasible = torch.where(bracket, st["hi"][act] - reach <= tol_p * torch.exp2(r_after) + tiny,
                               eps_max - reach <= tol_p * (torch.exp2(r_after) - 1) + tiny)
        forced = ~torch.isnan(pend) & ~feasible
        if forced.any():
            i = act[forced]
            accept(i, st["reach"][i], st["m_reach"][i])
            st["pend"][i] = st["reach"][i] = float("nan")
            continue
        a, z = allowed(act)
        lo, m_lo, hi, L = st["lo"][act], st["m_lo"][act].clamp_min(0), st["hi"][act], st["L"][act]
        has_pend = ~torch.isnan(pend)
        # march: the secant's predicted crossing plus an overshoot, no further than S.safe_step·m(lo)/L,
        # capped by growth and size, at least S.resolution
        safe = torch.where(L > 0, S.safe_step * m_lo / L, torch.full_like(lo, math.inf))
        slope = (st["m_prev"][act] - st["m_lo"][act]) / (lo - st["prev"][act])
        pred = torch.where(slope > 0, (1 + S.overshoot) * m_lo / slope, torch.full_like(lo, math.inf))
        adaptive = torch.minimum(pred, safe)
        cap = torch.minimum(torch.full_like(lo, S.max_step * eps_max), (S.growth - 1) * lo)
        step = torch.minimum(adaptive, cap)
        first = torch.isnan(st["prev"][act])
        step = torch.where(first, torch.full_like(lo, S.first_step * eps_max), step)
        step = torch.nan_to_num(step, nan=S.first_step * eps_max).clamp_min(S.resolution * eps_max)
        q = lo + step
        if caps is not None:
            nxt = caps[torch.searchsorted(caps, lo + tiny, right=True).clamp_max(len(caps) - 1)]
            q = torch.minimum(q, nxt)
        # refinement: ITP's point, moved to tol from an end it falls within tol of (one probe may then close
        # the bracket), no further from lo than the safe step or tol
        w0 = st["w0"][act]
        q_itp = itp_point(lo, hi, m_lo, st["m_hi"][act].clamp_max(0), ITP_KAPPA1 / w0)
        q_itp = torch.where(q_itp - lo <= tol_p, lo + S.close * tol_p,
                            torch.where(hi - q_itp <= tol_p, hi - S.close * tol_p, q_itp))
        q = torch.where(bracket, torch.minimum(q_itp, lo + torch.clamp_min(safe, tol_p)), q)
        # a pending point: probe where the cones of slope L from lo and from it meet (the deepest dip)
        mp = st["m_pend"][act].clamp_min(0)
        q_gap = (lo + pend) / 2 + (m_lo - mp) / (2 * L.clamp_min(1e-30))
        q_gap = torch.minimum(torch.maximum(q_gap, lo + 0.1 * (pend - lo)), pend - 0.1 * (pend - lo))
        q = torch.where(has_pend, q_gap, torch.minimum(torch.maximum(q, a), z))
        # (a gap probe: if wrong, its bracket [lo, q] must fit the remaining passes too)
        q = torch.where(has_pend, torch.minimum(q, lo + tol_p * torch.exp2(r_after)), q)
        q = torch.where(~bracket & (q >= eps_max - tiny), torch.full_like(q, eps_max), q)
        # the ε actually probed: positions() works in float32; march probes round up (never short of the
        # step the budget requires), refinement probes to nearest
        q32 = q.float()
        up = ~bracket & ~has_pend & (q32.double() < q)
        q = torch.where(up, torch.nextafter(q32, torch.full_like(q32, math.inf)), q32).double()
        pr, m = _margin(model, positions(xb[act], db[act], q.float()), yb[act], dev, offset + act)
        st["used"][act] += 1
        st["j"][act] += bracket.double()
        # steepest slope seen: chords from the new point to its neighbours
        # L: the steepest chord seen, older ones discounted by S.slope_memory per probe
        chords = torch.zeros_like(q)
        for e_n, m_n in ((st["lo"], st["m_lo"]), (st["hi"], st["m_hi"]), (st["pend"], st["m_pend"])):
            sl_ = ((m - m_n[act]) / (q - e_n[act])).abs()
            chords = torch.maximum(chords, torch.where(torch.isfinite(sl_), sl_, torch.zeros_like(sl_)))
        st["L"][act] = torch.maximum(st["L"][act] * S.slope_memory, chords)
        L_join = st["L"]
        wrong = pr != yb[act]
        i = act[wrong]
        new = torch.isnan(st["hi"][i])
        st["w0"][i[new]] = q[wrong][new] - st["lo"][i[new]]
        st["n_max"][i[new]] = torch.ceil(torch.log2(st["w0"][i[new]] / tol_p)).clamp_min(0) + ITP_SLACK
        st["j"][i[new]] = 0
        st["hi"][i], st["m_hi"][i], st["cls"][i] = q[wrong], m[wrong], pr[wrong]
        st["pend"][i[st["pend"][i] >= q[wrong]]] = float("nan")
        st["reach"][i[st["reach"][i] >= q[wrong]]] = float("nan")
        # correct: join to lo if no dip of the steepest slope seen could hide a crossing in between
        ok = ~wrong
        i, qo, mo = act[ok], q[ok], m[ok]
        joins = ((st["m_lo"][i].clamp_min(0) + mo.clamp_min(0) >= S.cone * L_join[i] * (qo - st["lo"][i]))
                 | (qo - st["lo"][i] <= S.resolution * eps_max))
        accept(i[joins], qo[joins], mo[joins])
        gap = i[~joins]
        st["pend"][gap], st["m_pend"][gap] = qo[~joins], mo[~joins]
        fresh = gap[torch.isnan(st["reach"][gap])]
        st["reach"][fresh], st["m_reach"][fresh] = st["pend"][fresh], st["m_pend"][fresh]
        # a pending point beyond a newly accepted one may now join too
        k = i[joins]
        k = k[~torch.isnan(st["pend"][k])]
        if len(k):
            j2 = ((st["m_lo"][k].clamp_min(0) + st["m_pend"][k].clamp_min(0)
                   >= S.cone * L_join[k] * (st["pend"][k] - st["lo"][k]))
                  | (st["pend"][k] - st["lo"][k] <= S.resolution * eps_max))
            k = k[j2]
            accept(k, st["pend"][k], st["m_pend"][k])
            # the furthest unjoined point becomes the pending one (points in between were dropped)
            further = st["reach"][k] > st["lo"][k]
            st["pend"][k] = torch.where(further, st["reach"][k], nan[: len(k)])
            st["m_pend"][k] = torch.where(further, st["m_reach"][k], nan[: len(k)])
            st["reach"][k[~further]] = float("nan")
    return st


