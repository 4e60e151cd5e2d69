r"""The boundary search behind :func:`curvlib.measure.travel.travel`: where to probe next along one
line per sample, from the margins read so far, within a worst-case pass budget.

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
  refined like any bracket. Only never-samples pay for it (cost: ``benchmarks/results/measurements.md``).
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
its own rows (:mod:`curvlib.measure.certify`).

The search is a typed state (:class:`_SearchState`, one row per sample) and four steps that
:func:`run_search` repeats: :func:`_never_check`, :func:`_force_joins`, :func:`_next_probe` and
:func:`_observe`. It sees the model only through ``probe``; each step is unit-tested on hand-built
states (``tests/test_travel_steps.py``). Longer than 400 lines: one algorithm whose description
above, settings, state and steps are read together; apart, a step would sit away from the fields it
changes and the rule it implements.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

#: ITP truncation κ1 (× 1 / initial bracket width): smaller trusts the interpolation more.
ITP_KAPPA1 = 0.05


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


#: The named settings: ``default`` (budget 26; its targets: mean ≤ 9 passes, ≥ 99.6 % agreement with a dense
#: scan on the embedded models) and ``careful`` (steps grow ≤ 3× per probe and never exceed eps_max/32, budget 36: more
#: passes, fewer missed islands). Their measured cost and agreement: ``benchmarks/results/travel_frontier.txt``.
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
                     "or pass a curvlib.measure.search.Search")


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


@dataclass(eq=False)
class _SearchState:
    """The boundary search of one chunk of b samples, one row per sample.

    ε is in pixel units along the direction (pixels in [0, 1]), margins m = z_y − max_{j≠y} z_j are in
    logits; every tensor is [b], float64 unless noted, NaN where a point is not (yet) known.

    * ``alive`` (bool): correctly classified at ε = 0 (the others are never searched).
    * ``lo``, ``m_lo``: the last accepted correct point (0 and the start's margin at first).
    * ``prev``, ``m_prev``: the accepted point before it (the march's secant).
    * ``hi``, ``m_hi``, ``cls`` (long, −1 unset): the nearest wrong point beyond lo and its prediction.
    * ``pend``, ``m_pend``: the nearest correct point beyond lo not yet joined to it;
      ``reach``, ``m_reach``: the furthest one (what the budget plans from).
    * ``L``: the steepest recent |margin slope| (logits per unit ε).
    * ``w0``: the bracket's width when it opened; ``j``: refinement probes since; ``n_max``: those allowed.
    * ``used`` (long): forward passes spent, the start's included.
    * ``g_a``, ``m_ga``, ``g_b``, ``g_score``: the accepted gap [g_a, g_b] a hidden island was likeliest in
      (least (m(g_a) + m(g_b)) / (g_b − g_a), inf while none); ``checked`` (bool): its never check was spent.
    * ``eps_max``, ``tol``, ``budget``, ``caps`` (ε [G] or None): :func:`travel`'s arguments;
      ``tol_p``: the bracket width every plan uses (:func:`_tol_plan`).
    """

    alive: torch.Tensor
    lo: torch.Tensor
    m_lo: torch.Tensor
    prev: torch.Tensor
    m_prev: torch.Tensor
    hi: torch.Tensor
    m_hi: torch.Tensor
    cls: torch.Tensor
    pend: torch.Tensor
    m_pend: torch.Tensor
    reach: torch.Tensor
    m_reach: torch.Tensor
    L: torch.Tensor
    w0: torch.Tensor
    j: torch.Tensor
    n_max: torch.Tensor
    used: torch.Tensor
    g_a: torch.Tensor
    m_ga: torch.Tensor
    g_b: torch.Tensor
    g_score: torch.Tensor
    checked: torch.Tensor
    eps_max: float
    tol: float
    tol_p: float
    budget: int
    caps: torch.Tensor | None = None

    @staticmethod
    def start(m0, alive, eps_max: float, tol: float, budget: int, caps=None) -> _SearchState:
        """Every sample at ε = 0 with margin m0 [b], one pass spent, nothing else known."""
        b = len(m0)

        def nan():
            return torch.full((b,), float("nan"), dtype=torch.float64)

        f64 = dict(dtype=torch.float64)
        return _SearchState(
            alive=alive, lo=torch.zeros(b, **f64), m_lo=m0.clone(), prev=nan(), m_prev=nan(), hi=nan(), m_hi=nan(),
            cls=torch.full((b,), -1, dtype=torch.long), pend=nan(), m_pend=nan(), reach=nan(), m_reach=nan(),
            L=torch.zeros(b, **f64), w0=nan(), j=torch.zeros(b, **f64), n_max=nan(),
            used=torch.ones(b, dtype=torch.long), g_a=nan(), m_ga=nan(), g_b=nan(),
            g_score=torch.full((b,), math.inf, **f64), checked=torch.zeros(b, dtype=torch.bool),
            eps_max=eps_max, tol=tol, tol_p=_tol_plan(eps_max, tol), budget=budget, caps=caps)

    @property
    def tiny(self) -> float:
        return 1e-12 * self.eps_max

    def done(self) -> torch.Tensor:
        """Samples whose search has ended: bracket ≤ tol, or lo at eps_max with no wrong point seen."""
        return torch.where(torch.isnan(self.hi), self.lo >= self.eps_max - self.tiny, self.hi - self.lo <= self.tol)


def run_search(probe, m0, alive, eps_max: float, tol: float, S: Search, budget: int, caps=None) -> _SearchState:
    """The march and the refinement of one chunk of b samples (see the module docstring).

    ``probe(i, q)`` runs one forward pass of samples ``i`` (indices [k]) at ε ``q`` [k] (float32
    values) and returns (wrong [k] bool, prediction [k], margin [k] float64); m0 [b]: margins at ε = 0;
    alive [b]: correctly classified there. Returns the final state (ε* = ``hi``, ``lo``, ``cls``, ``used``).
    """
    st = _SearchState.start(m0, alive, eps_max, tol, budget, caps)

    def counted(i, q):
        st.used[i] += 1
        return probe(i, q)

    while True:
        chk, q = _never_check(st)
        if len(chk):
            _reopen(st, chk, q, *counted(chk, q))
            continue
        act = _searching(st)
        if len(act) == 0:
            return st
        if _force_joins(st, S, act):
            continue
        q = _next_probe(st, S, act)
        _observe(st, S, act, q, *counted(act, q))


def _searching(st: _SearchState) -> torch.Tensor:
    """The samples still searching (indices)."""
    act = torch.nonzero(st.alive & ~st.done()).flatten()
    if (st.used[act] >= st.budget).any():  # cannot happen: every probe leaves a feasible plan
        raise RuntimeError("travel: pass budget exhausted before the search finished (a bug)")
    return act


def _accept(st: _SearchState, S: Search, i, e, m):
    """Samples i accept correct points e (margins m) as their new lo; the gap this closes becomes the
    riskiest one if its score (m(lo) + m(e)) / (e − lo) is the least yet."""
    a, m_a = st.lo[i], st.m_lo[i]
    score = (m_a.clamp_min(0) + m.clamp_min(0)) / (e - a)
    worse = (e - a > S.resolution * st.eps_max) & (score < st.g_score[i])
    k = i[worse]
    st.g_a[k], st.m_ga[k], st.g_b[k], st.g_score[k] = a[worse], m_a[worse], e[worse], score[worse]
    st.prev[i], st.m_prev[i] = st.lo[i], st.m_lo[i]
    st.lo[i], st.m_lo[i] = e, m


def _joinable(st: _SearchState, S: Search, i, e, m) -> torch.Tensor:
    """Whether correct points e (margins m) may join lo of samples i: no dip at slope cone·L between them
    could reach 0, or the gap is below the resolution."""
    return ((st.m_lo[i].clamp_min(0) + m.clamp_min(0) >= S.cone * st.L[i] * (e - st.lo[i]))
            | (e - st.lo[i] <= S.resolution * st.eps_max))


def _open_bracket(st: _SearchState, i, q):
    """Samples i start refining a new bracket [lo, q]: its width, ITP's probe allowance, no probe yet."""
    st.w0[i] = q - st.lo[i]
    st.n_max[i] = torch.ceil(torch.log2(st.w0[i] / st.tol_p)).clamp_min(0) + ITP_SLACK
    st.j[i] = 0


def _passes_after(st: _SearchState, act) -> torch.Tensor:
    """Passes samples act have left after their next probe (a bracket's: within ITP's allowance), float64."""
    r = (st.budget - st.used[act]).double()
    bracket = ~torch.isnan(st.hi[act])
    return torch.where(bracket, torch.minimum(r, st.n_max[act] - st.j[act]), r) - 1


def _never_check(st: _SearchState) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples about to be declared "never" whose riskiest gap [g_a, g_b] the budget can still refine after
    a wrong outcome, and the gap's middle (float32) to probe once; marks them checked."""
    r_left = (st.budget - st.used).double()
    cand = st.alive & st.done() & torch.isnan(st.hi) & ~st.checked & ~torch.isnan(st.g_a)
    cand &= (st.g_b - st.g_a) / 2 <= st.tol_p * torch.exp2(r_left - 1)
    chk = torch.nonzero(cand).flatten()
    st.checked[chk] = True
    return chk, ((st.g_a[chk] + st.g_b[chk]) / 2).float().double()


def _reopen(st: _SearchState, chk, q, wrong, pr, m):
    """Never-check outcomes at q of samples chk: a wrong one brackets [g_a, q] and the search goes on
    from g_a (the points accepted beyond it are forgotten); a correct one changes nothing."""
    i, q, m, pr = chk[wrong], q[wrong], m[wrong], pr[wrong]
    st.lo[i], st.m_lo[i] = st.g_a[i], st.m_ga[i]
    st.prev[i] = st.m_prev[i] = st.pend[i] = st.reach[i] = float("nan")
    st.hi[i], st.m_hi[i], st.cls[i] = q, m, pr
    _open_bracket(st, i, q)


def _force_joins(st: _SearchState, S: Search, act) -> bool:
    """Samples among act whose budget cannot afford a probe below their furthest pending point (one that,
    if correct, leaves what joining would: a bracket or a distance from it the rest can close) join it
    unseen, dropping the pending points; returns whether any did."""
    reach = st.reach[act]
    r_after = _passes_after(st, act)
    bracket = ~torch.isnan(st.hi[act])
    feasible = torch.where(bracket, st.hi[act] - reach <= st.tol_p * torch.exp2(r_after) + st.tiny,
                           st.eps_max - reach <= st.tol_p * (torch.exp2(r_after) - 1) + st.tiny)
    forced = ~torch.isnan(st.pend[act]) & ~feasible
    if not forced.any():
        return False
    i = act[forced]
    _accept(st, S, i, st.reach[i], st.m_reach[i])
    st.pend[i] = st.reach[i] = float("nan")
    return True


def _allowed(st: _SearchState, act) -> tuple[torch.Tensor, torch.Tensor]:
    """[lowest, highest] ε that samples act may probe next without breaking their pass budget."""
    lo, hi = st.lo[act], st.hi[act]
    r = (st.budget - st.used[act]).double()
    bracket = ~torch.isnan(hi)
    # refinement: both outcomes must leave a bracket bisection can close in the remaining passes
    r_ref = torch.minimum(r, st.n_max[act] - st.j[act])
    w = hi - lo
    rad = (st.tol_p * torch.exp2(r_ref - 1) - w / 2).clamp_min(0)
    mid = (lo + hi) / 2
    # march: a wrong probe must leave such a bracket, a correct one a distance the rest can cover
    dist = st.eps_max - lo
    step_hi = torch.minimum(st.tol_p * torch.exp2(r - 1), dist)
    step_lo = (dist - st.tol_p * (torch.exp2(r - 1) - 1)).clamp_min(0)
    a = torch.where(bracket, torch.maximum(mid - rad, lo), lo + step_lo)
    z = torch.where(bracket, torch.minimum(mid + rad, hi), lo + step_hi)
    return a, z


def _next_probe(st: _SearchState, S: Search, act) -> torch.Tensor:
    """The ε each sample of act probes next (float32 values, as float64): past a pending point, where the
    slope-L cones from lo and from it meet; in a bracket, ITP's point; else the march's step. Each within
    what the budget allows."""
    eps_max, tol_p, tiny = st.eps_max, st.tol_p, st.tiny
    lo, m_lo, hi, L, pend = st.lo[act], st.m_lo[act].clamp_min(0), st.hi[act], st.L[act], st.pend[act]
    bracket, has_pend = ~torch.isnan(hi), ~torch.isnan(pend)
    a, z = _allowed(st, act)
    # march: the secant's predicted crossing plus an overshoot, no further than S.safe_step·m(lo)/L,
    # capped by growth and size, at least S.resolution
    safe = torch.where(L > 0, S.safe_step * m_lo / L, torch.full_like(lo, math.inf))
    slope = (st.m_prev[act] - st.m_lo[act]) / (lo - st.prev[act])
    pred = torch.where(slope > 0, (1 + S.overshoot) * m_lo / slope, torch.full_like(lo, math.inf))
    adaptive = torch.minimum(pred, safe)
    cap = torch.minimum(torch.full_like(lo, S.max_step * eps_max), (S.growth - 1) * lo)
    step = torch.minimum(adaptive, cap)
    first = torch.isnan(st.prev[act])
    step = torch.where(first, torch.full_like(lo, S.first_step * eps_max), step)
    step = torch.nan_to_num(step, nan=S.first_step * eps_max).clamp_min(S.resolution * eps_max)
    q = lo + step
    if st.caps is not None:
        nxt = st.caps[torch.searchsorted(st.caps, lo + tiny, right=True).clamp_max(len(st.caps) - 1)]
        q = torch.minimum(q, nxt)
    # refinement: ITP's point, moved to tol from an end it falls within tol of (one probe may then close
    # the bracket), no further from lo than the safe step or tol
    q_itp = itp_point(lo, hi, m_lo, st.m_hi[act].clamp_max(0), ITP_KAPPA1 / st.w0[act])
    q_itp = torch.where(q_itp - lo <= tol_p, lo + S.close * tol_p,
                        torch.where(hi - q_itp <= tol_p, hi - S.close * tol_p, q_itp))
    q = torch.where(bracket, torch.minimum(q_itp, lo + torch.clamp_min(safe, tol_p)), q)
    # a pending point: probe where the cones of slope L from lo and from it meet (the deepest dip)
    mp = st.m_pend[act].clamp_min(0)
    q_gap = (lo + pend) / 2 + (m_lo - mp) / (2 * L.clamp_min(1e-30))
    q_gap = torch.minimum(torch.maximum(q_gap, lo + 0.1 * (pend - lo)), pend - 0.1 * (pend - lo))
    q = torch.where(has_pend, q_gap, torch.minimum(torch.maximum(q, a), z))
    # (a gap probe: if wrong, its bracket [lo, q] must fit the remaining passes too)
    q = torch.where(has_pend, torch.minimum(q, lo + tol_p * torch.exp2(_passes_after(st, act))), q)
    q = torch.where(~bracket & (q >= eps_max - tiny), torch.full_like(q, eps_max), q)
    # the ε actually probed: positions() works in float32; march probes round up (never short of the
    # step the budget requires), refinement probes to nearest
    q32 = q.float()
    up = ~bracket & ~has_pend & (q32.double() < q)
    return torch.where(up, torch.nextafter(q32, torch.full_like(q32, math.inf)), q32).double()


def _observe(st: _SearchState, S: Search, act, q, wrong, pr, m):
    """Outcomes of the probes q of samples act (wrong, predictions pr, margins m): L takes the steepest
    chord to the new point's neighbours (older slopes discounted by S.slope_memory); a wrong point
    becomes hi (opening a bracket if none), dropping pending points beyond it; a correct one joins lo if
    :func:`_joinable`, else waits as a pending point, and a pending point beyond a new lo may join too."""
    st.j[act] += (~torch.isnan(st.hi[act])).double()
    chords = torch.zeros_like(q)
    for e_n, m_n in ((st.lo, st.m_lo), (st.hi, st.m_hi), (st.pend, st.m_pend)):
        sl_ = ((m - m_n[act]) / (q - e_n[act])).abs()
        chords = torch.maximum(chords, torch.where(torch.isfinite(sl_), sl_, torch.zeros_like(sl_)))
    st.L[act] = torch.maximum(st.L[act] * S.slope_memory, chords)
    # wrong: the new hi
    i, qw = act[wrong], q[wrong]
    new = torch.isnan(st.hi[i])
    _open_bracket(st, i[new], qw[new])
    st.hi[i], st.m_hi[i], st.cls[i] = qw, m[wrong], pr[wrong]
    st.pend[i[st.pend[i] >= qw]] = float("nan")
    st.reach[i[st.reach[i] >= qw]] = float("nan")
    # correct: join to lo if no dip of the steepest slope seen could hide a crossing in between
    ok = ~wrong
    i, qo, mo = act[ok], q[ok], m[ok]
    joins = _joinable(st, S, i, qo, mo)
    _accept(st, S, i[joins], qo[joins], mo[joins])
    gap = i[~joins]
    st.pend[gap], st.m_pend[gap] = qo[~joins], mo[~joins]
    fresh = gap[torch.isnan(st.reach[gap])]
    st.reach[fresh], st.m_reach[fresh] = st.pend[fresh], st.m_pend[fresh]
    # a pending point beyond a newly accepted one may now join too
    k = i[joins]
    k = k[~torch.isnan(st.pend[k])]
    if len(k):
        k = k[_joinable(st, S, k, st.pend[k], st.m_pend[k])]
        _accept(st, S, k, st.pend[k], st.m_pend[k])
        # the furthest unjoined point becomes the pending one (points in between were dropped)
        further = st.reach[k] > st.lo[k]
        nan = torch.full((len(k),), float("nan"), dtype=torch.float64)
        st.pend[k] = torch.where(further, st.reach[k], nan)
        st.m_pend[k] = torch.where(further, st.m_reach[k], nan)
        st.reach[k[~further]] = float("nan")
