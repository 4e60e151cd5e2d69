"""The boundary search's steps (curvlib.measure.search), each on a small hand-built state: no model involved."""
import dataclasses
import math

import pytest
import torch

from curvlib.measure import search as T
from curvlib.measure.search import ITP_SLACK, SEARCHES, _SearchState

S = SEARCHES["default"]
NAN = float("nan")
TOL_P = T._tol_plan(1.0, 1e-4)
FIELDS = [f.name for f in dataclasses.fields(_SearchState) if f.name not in ("eps_max", "tol", "tol_p", "budget",
                                                                              "caps")]


def state(b=3, budget=26, caps=None, **rows):
    """A fresh state of b samples (eps_max 1, tol 1e-4, all correct at ε = 0 with margin 1), then the given
    fields set to the given rows (lists of length b)."""
    st = _SearchState.start(torch.ones(b, dtype=torch.float64), torch.ones(b, dtype=torch.bool), 1.0, 1e-4, budget,
                            caps)
    for name, row in rows.items():
        old = getattr(st, name)
        setattr(st, name, torch.tensor(row, dtype=old.dtype))
    return st


def snapshot(st):
    return {f: getattr(st, f).clone() for f in FIELDS}


def changed(before, st, rows=None):
    """{field: the sample rows where it differs from the snapshot} (NaN equals NaN)."""
    out = {}
    for f in FIELDS:
        a, b = before[f], getattr(st, f)
        diff = a != b
        if a.is_floating_point():
            diff &= ~(torch.isnan(a) & torch.isnan(b))
        if diff.any():
            out[f] = torch.nonzero(diff).flatten().tolist()
    return out


def f32(v):
    """The float32 value nearest v, as a float."""
    return float(torch.tensor(v, dtype=torch.float32))


def test_start_state():
    m0 = torch.tensor([2.0, -1.0], dtype=torch.float64)
    st = _SearchState.start(m0, torch.tensor([True, False]), 0.5, 1e-4, 20)
    assert st.lo.tolist() == [0.0, 0.0] and st.used.tolist() == [1, 1] and st.cls.tolist() == [-1, -1]
    assert torch.equal(st.m_lo, m0) and st.m_lo is not m0  # a copy: the search writes into it
    for f in ("prev", "hi", "pend", "reach", "w0", "n_max", "g_a", "g_b"):
        assert torch.isnan(getattr(st, f)).all(), f
    assert st.g_score.tolist() == [math.inf, math.inf] and not st.checked.any()
    assert st.tol_p == 1e-4 - 0.5 * 2.0 ** -20 and st.tiny == 0.5e-12


def test_searching_skips_finished_and_misclassified_samples_and_guards_the_budget():
    # 0: marching; 1: bracket ≤ tol (done); 2: lo at eps_max (never); 3: misclassified at start; 4: bracket > tol
    st = state(5, lo=[0.3, 0.4, 1.0, 0.0, 0.4], hi=[NAN, 0.4 + 0.9e-4, NAN, NAN, 0.4 + 2e-4])
    st.alive[3] = False
    before = snapshot(st)
    assert T._searching(st).tolist() == [0, 4]
    assert changed(before, st) == {}
    st.used[4] = 26
    with pytest.raises(RuntimeError, match="budget exhausted"):
        T._searching(st)
    st.used[4], st.used[1] = 25, 26  # a finished sample at the budget is fine
    assert T._searching(st).tolist() == [0, 4]


def test_never_check_picks_finished_never_samples_with_an_affordable_gap():
    # 0: candidate; 1: still marching; 2: already checked; 3: no gap recorded; 4: crossed;
    # 5: too few passes left to refine a wrong outcome in [0.2, 0.25] (needs 2^(r−1)·tol' ≥ 0.025: r ≥ 9)
    st = state(6, lo=[1.0, 0.5, 1.0, 1.0, 0.4, 1.0], hi=[NAN, NAN, NAN, NAN, 0.4 + 5e-5, NAN],
               g_a=[0.2, 0.2, 0.2, NAN, 0.2, 0.2], g_b=[0.3, 0.3, 0.3, NAN, 0.3, 0.25],
               checked=[False, False, True, False, False, False], used=[10, 10, 10, 10, 10, 18])
    before = snapshot(st)
    chk, q = T._never_check(st)
    assert chk.tolist() == [0]
    assert q.dtype == torch.float64 and q.tolist() == [f32(0.25)]
    assert changed(before, st) == {"checked": [0]}
    st.used[5] = 17  # r = 9: now affordable
    chk, _ = T._never_check(st)
    assert chk.tolist() == [5]
    assert T._never_check(st)[0].tolist() == []  # once only


def test_reopen_brackets_a_wrong_check_from_the_gap_start_and_ignores_a_correct_one():
    st = state(3, lo=[1.0, 1.0, 1.0], m_lo=[0.5, 0.6, 0.7], prev=[0.9, 0.9, 0.9], m_prev=[0.6, 0.7, 0.8],
               g_a=[0.2, 0.3, 0.2], m_ga=[1.5, 1.6, 1.7], g_b=[0.3, 0.4, 0.3], pend=[NAN] * 3, reach=[NAN] * 3,
               checked=[True, True, False])
    before = snapshot(st)
    q = torch.tensor([0.25, 0.35], dtype=torch.float64)
    T._reopen(st, torch.tensor([0, 1]), q, torch.tensor([True, False]), torch.tensor([7, 1]),
              torch.tensor([-0.2, 0.3], dtype=torch.float64))
    assert (st.lo[0], st.m_lo[0], st.hi[0], st.m_hi[0], st.cls[0]) == (0.2, 1.5, 0.25, -0.2, 7)
    assert torch.isnan(st.prev[0]) and torch.isnan(st.m_prev[0])
    assert st.w0[0] == 0.25 - 0.2 and st.j[0] == 0
    assert st.n_max[0] == math.ceil(math.log2((0.25 - 0.2) / TOL_P)) + ITP_SLACK
    assert changed(before, st) == {f: [0] for f in ("lo", "m_lo", "prev", "m_prev", "hi", "m_hi", "cls", "w0",
                                                     "n_max")}


def test_force_joins_accepts_the_furthest_pending_point_only_when_the_budget_needs_it():
    # 0: marching, pending (0.6, 0.65), 12 passes left: after one more probe 11, whose schedule covers
    #    tol'·(2^11 − 1) ≈ 0.2 < 1 − 0.65 of distance: a probe below 0.65 is unaffordable → forced
    # 1: the same with 24 passes left: a probe is affordable; 2: no pending point
    st = state(3, budget=26, lo=[0.5, 0.5, 0.5], m_lo=[1.0, 1.0, 1.0], pend=[0.6, 0.6, NAN], m_pend=[0.2, 0.2, NAN],
               reach=[0.65, 0.65, NAN], m_reach=[0.3, 0.3, NAN], used=[14, 2, 14])
    before = snapshot(st)
    assert T._force_joins(st, S, torch.tensor([0, 1, 2]))
    assert (st.lo[0], st.m_lo[0], st.prev[0], st.m_prev[0]) == (0.65, 0.3, 0.5, 1.0)
    assert torch.isnan(st.pend[0]) and torch.isnan(st.reach[0])
    # the gap it joined unseen becomes the riskiest one
    assert (st.g_a[0], st.m_ga[0], st.g_b[0]) == (0.5, 1.0, 0.65) and st.g_score[0] == (1.0 + 0.3) / (0.65 - 0.5)
    assert changed(before, st) == {f: [0] for f in ("lo", "m_lo", "prev", "m_prev", "pend", "reach", "g_a", "m_ga",
                                                     "g_b", "g_score")}
    before = snapshot(st)
    assert not T._force_joins(st, S, torch.tensor([0, 1, 2]))
    assert changed(before, st) == {}


def test_force_joins_in_a_bracket_plans_from_the_bracket_left():
    # bracket [0.5, 0.9] with a pending point at 0.6: a probe below it must leave [0.6, 0.9] bisectable
    st = state(2, lo=[0.5, 0.5], hi=[0.9, 0.9], pend=[0.6, 0.6], m_pend=[0.1, 0.1], reach=[0.6, 0.6],
               m_reach=[0.1, 0.1], j=[0.0, 0.0], n_max=[20.0, 20.0], used=[14, 13])
    # sample 0: r_after = 11, tol'·2^11 ≈ 0.2 < 0.3 → forced; sample 1: r_after = 12, ≈ 0.41 ≥ 0.3 → not
    before = snapshot(st)
    assert T._force_joins(st, S, torch.tensor([0, 1]))
    assert st.lo.tolist() == [0.6, 0.5]
    assert set(changed(before, st)) <= {"lo", "m_lo", "prev", "m_prev", "pend", "reach", "g_a", "m_ga", "g_b",
                                        "g_score"}
    assert all(rows == [0] for rows in changed(before, st).values())


def _probe(st, act, setting=S):
    before = snapshot(st)
    q = T._next_probe(st, setting, torch.as_tensor(act))
    assert changed(before, st) == {}  # choosing a probe changes nothing
    assert q.dtype == torch.float64 and torch.equal(q.float().double(), q)  # float32 values
    return q


def test_next_probe_march():
    st = state(4, lo=[0.0, 0.1, 0.1, 0.001], m_lo=[1.0, 1.0, 1.0, 1.0], prev=[NAN, 0.05, 0.05, 0.0005],
               m_prev=[NAN, 2.0, 2.0, 1.0], L=[0.0, 0.0, 40.0, 0.0], used=[1, 3, 3, 3])
    q = _probe(st, [0, 1, 2, 3]).tolist()
    assert q[0] == S.first_step  # the first probe
    # the secant (slope 20) predicts the crossing at lo + 0.05; 25 % beyond it, rounded up to float32
    assert 0.1 + 1.25 * 0.05 <= q[1] < 0.1 + 1.25 * 0.05 + 1e-8
    assert 0.1 + 1 / 40 <= q[2] < 0.1 + 1 / 40 + 1e-8  # the safe step m(lo) / L is shorter
    assert 0.016 <= q[3] < 0.016 + 1e-8  # flat margin: the growth cap 16·lo
    careful = _probe(st, [3], SEARCHES["careful"]).item()
    assert 0.003 <= careful < 0.003 + 1e-8  # careful grows 3× per probe


def test_next_probe_march_is_held_to_the_budget_and_to_eps_max_and_caps():
    # 0: 14 passes left from 0: the step must be long enough that the rest can reach eps_max
    # 1: a long step from 0.99 stops at eps_max exactly; 2: grid caps at 0.5
    st = state(3, lo=[0.0, 0.99, 0.45], m_lo=[1.0, 0.99, 1.0], prev=[NAN, 0.98, 0.4], m_prev=[NAN, 1.0, 1.0],
               used=[12, 3, 3], caps=torch.tensor([0.5, 1.0], dtype=torch.float64))
    q = _probe(st, [0, 1, 2]).tolist()
    assert q[0] >= 1.0 - TOL_P * (2 ** 13 - 1) > S.first_step
    assert q[1] == 1.0 and q[2] == 0.5
    st.caps = None
    assert 0.45 + 1 / 8 <= _probe(st, [2]).item() < 0.45 + 1 / 8 + 1e-7  # march probes round up


def test_next_probe_refines_a_bracket_with_itp():
    # margins 1 and −1: regula falsi's point is the middle; 3 and −1: ITP moves it from 0.35 towards the
    # middle by κ1·(hi − lo) = 0.01
    st = state(3, lo=[0.2, 0.2, 0.2], hi=[0.4, 0.4, 0.2 + 1.5e-4], m_lo=[1.0, 3.0, 1.0], m_hi=[-1.0, -1.0, -1e-6],
               w0=[0.2, 0.2, 1.5e-4], j=[0.0, 0.0, 0.0], n_max=[16.0, 16.0, 6.0], used=[5, 5, 5])
    q = _probe(st, [0, 1, 2]).tolist()
    assert q[0] == f32(0.3) and q[1] == f32(0.34)
    assert q[2] == f32(0.2 + 1.5e-4 - S.close * TOL_P)  # within tol' of hi: moved to close·tol' from it


def test_next_probe_searches_a_pending_gap_where_the_cones_meet():
    st = state(2, lo=[0.1, 0.1], m_lo=[1.0, 1.5], pend=[0.2, 0.2], m_pend=[1.0, 1.0], L=[10.0, 10.0],
               prev=[0.05, 0.05], m_prev=[1.0, 1.0], used=[5, 5])
    q = _probe(st, [0, 1]).tolist()
    assert q[0] == f32(0.15)  # equal margins: the middle
    assert q[1] == f32(0.15 + 0.5 / 20)  # the deeper dip lies nearer the smaller margin


def test_observe_wrong_opens_a_bracket_and_drops_pending_points_beyond():
    st = state(3, lo=[0.1, 0.1, 0.1], m_lo=[1.0, 1.0, 1.0], pend=[0.3, NAN, NAN], m_pend=[0.5, NAN, NAN],
               reach=[0.3, NAN, NAN], m_reach=[0.5, NAN, NAN], L=[4.0, 0.0, 0.0])
    before = snapshot(st)
    q = torch.tensor([0.2], dtype=torch.float64)
    T._observe(st, S, torch.tensor([0]), q, torch.tensor([True]), torch.tensor([3]),
               torch.tensor([-0.5], dtype=torch.float64))
    assert (st.hi[0], st.m_hi[0], st.cls[0]) == (0.2, -0.5, 3)
    assert st.w0[0] == 0.2 - 0.1 and st.j[0] == 0
    assert st.n_max[0] == math.ceil(math.log2(0.1 / TOL_P)) + ITP_SLACK
    assert torch.isnan(st.pend[0]) and torch.isnan(st.reach[0])
    # chords from (0.2, −0.5): to lo 15, to the pending point 10; the old L is halved
    assert st.L[0] == pytest.approx(15.0)
    assert changed(before, st) == {f: [0] for f in ("hi", "m_hi", "cls", "w0", "n_max", "pend", "reach", "L")}


def test_observe_wrong_inside_a_bracket_counts_a_refinement_probe():
    st = state(2, lo=[0.1, 0.1], hi=[0.2, 0.2], m_lo=[1.0, 1.0], m_hi=[-1.0, -1.0], w0=[0.1, 0.1], j=[2.0, 2.0],
               n_max=[15.0, 15.0], L=[20.0, 20.0])
    before = snapshot(st)
    T._observe(st, S, torch.tensor([0]), torch.tensor([0.15], dtype=torch.float64), torch.tensor([True]),
               torch.tensor([1]), torch.tensor([-0.2], dtype=torch.float64))
    assert (st.hi[0], st.m_hi[0], st.j[0], st.w0[0], st.n_max[0]) == (0.15, -0.2, 3.0, 0.1, 15.0)
    assert set(changed(before, st)) == {"hi", "m_hi", "cls", "j", "L"} and changed(before, st)["j"] == [0]


def test_observe_correct_joins_when_no_dip_can_hide_between():
    st = state(2, lo=[0.1, 0.1], m_lo=[1.0, 1.0], prev=[0.05, 0.05], m_prev=[1.2, 1.2])
    before = snapshot(st)
    T._observe(st, S, torch.tensor([0]), torch.tensor([0.2], dtype=torch.float64), torch.tensor([False]),
               torch.tensor([1]), torch.tensor([0.9], dtype=torch.float64))
    assert (st.lo[0], st.m_lo[0], st.prev[0], st.m_prev[0]) == (0.2, 0.9, 0.1, 1.0)
    assert st.L[0] == pytest.approx(1.0)
    assert (st.g_a[0], st.g_b[0], st.g_score[0]) == (0.1, 0.2, pytest.approx(19.0))  # the only gap so far
    assert changed(before, st) == {f: [0] for f in ("lo", "m_lo", "prev", "m_prev", "L", "g_a", "m_ga", "g_b",
                                                     "g_score")}


def test_observe_correct_waits_as_a_pending_point_when_a_dip_could_hide():
    # margins 0.01 at both ends, 0.1 apart, after a slope of 10: a dip at slope ≥ ½·5 could reach 0 between
    st = state(2, lo=[0.1, 0.1], m_lo=[0.01, 0.01], L=[10.0, 10.0])
    before = snapshot(st)
    T._observe(st, S, torch.tensor([0]), torch.tensor([0.2], dtype=torch.float64), torch.tensor([False]),
               torch.tensor([1]), torch.tensor([0.01], dtype=torch.float64))
    assert st.lo[0] == 0.1 and (st.pend[0], st.reach[0], st.m_pend[0], st.m_reach[0]) == (0.2, 0.2, 0.01, 0.01)
    assert st.L[0] == 5.0
    assert changed(before, st) == {f: [0] for f in ("pend", "m_pend", "reach", "m_reach", "L")}


def test_observe_a_joined_gap_probe_lets_the_pending_point_join_and_the_furthest_wait():
    st = state(2, lo=[0.1, 0.1], m_lo=[1.0, 1.0], pend=[0.2, 0.2], m_pend=[1.0, 1.0], reach=[0.3, 0.3],
               m_reach=[1.0, 1.0], L=[0.0, 0.0])
    before = snapshot(st)
    T._observe(st, S, torch.tensor([0]), torch.tensor([0.15], dtype=torch.float64), torch.tensor([False]),
               torch.tensor([1]), torch.tensor([1.0], dtype=torch.float64))
    assert (st.lo[0], st.prev[0]) == (0.2, 0.15)  # 0.15 joined, then the pending 0.2
    assert (st.pend[0], st.m_pend[0], st.reach[0]) == (0.3, 1.0, 0.3)  # the furthest point waits next
    assert set(changed(before, st)) == {"lo", "prev", "m_prev", "pend", "g_a", "m_ga", "g_b", "g_score"}
    assert all(rows == [0] for rows in changed(before, st).values())
    # had the furthest point been the pending one, nothing waits any more
    st = state(1, lo=[0.1], m_lo=[1.0], pend=[0.2], m_pend=[1.0], reach=[0.2], m_reach=[1.0])
    T._observe(st, S, torch.tensor([0]), torch.tensor([0.15], dtype=torch.float64), torch.tensor([False]),
               torch.tensor([1]), torch.tensor([1.0], dtype=torch.float64))
    assert st.lo[0] == 0.2 and torch.isnan(st.pend[0]) and torch.isnan(st.reach[0])


def test_accept_keeps_the_riskiest_gap_wider_than_the_resolution():
    st = state(3, lo=[0.1, 0.1, 0.1], m_lo=[1.0, 1.0, 1.0], g_a=[0.0, 0.0, 0.0], g_b=[0.05, 0.05, 0.05],
               m_ga=[2.0, 2.0, 2.0], g_score=[10.0, 10.0, 10.0])
    i = torch.tensor([0, 1, 2])
    e = torch.tensor([0.2, 0.6, 0.1 + 1e-4], dtype=torch.float64)  # scores 20, 4, and a gap below resolution
    T._accept(st, S, i, e, torch.ones(3, dtype=torch.float64))
    assert st.lo.tolist() == e.tolist() and st.prev.tolist() == [0.1, 0.1, 0.1]
    assert st.g_a.tolist() == [0.0, 0.1, 0.0] and st.g_b.tolist() == [0.05, 0.6, 0.05]
    assert st.g_score.tolist() == [10.0, 2.0 / 0.5, 10.0]


def test_run_search_sees_the_model_only_through_probe_and_counts_its_passes():
    """A margin 0.3 − ε on every path: the search brackets the crossing at 0.3 within tol, verified wrong,
    in no more passes than the budget, and calls probe only with samples still searching."""
    calls = []

    def probe(i, q):
        calls.append(i.clone())
        m = 0.3 - q.double()
        return m < 0, torch.where(m < 0, 1, 0), m

    m0 = torch.full((4,), 0.3, dtype=torch.float64)
    alive = torch.tensor([True, True, False, True])
    st = T.run_search(probe, m0, alive, 1.0, 1e-4, S, 26)
    ok = alive.nonzero().flatten()
    assert (st.hi[ok] > 0.3).all() and (st.lo[ok] <= 0.3).all() and (st.hi[ok] - st.lo[ok] <= 1e-4).all()
    assert st.cls[ok].tolist() == [1, 1, 1] and (st.used <= 26).all() and st.used[2] == 1
    assert all(2 not in c.tolist() for c in calls)
    assert int(st.used[0]) == 1 + sum(int((c == 0).sum()) for c in calls)
