"""Property-based tests (issue #30) over curvlib's public numeric functions: random shapes, dtypes,
NaN / inf, empty and single-element batches. Each call either returns a valid result or raises
``ValueError`` / ``TypeError`` with a message — never another exception type (an ``IndexError``
or a numpy / torch internal error is a bug: the caller learns nothing from it)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from curvlib import stats
from curvlib import stats as sanity
from curvlib.measure import calibration, direction, random_jump
from curvlib.measure import probe as trajectory
from curvlib.measure.angles import theta, theta_summary
from curvlib.measure.mesh import affine_residual, interior_directions

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NUMPY_DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64])
TORCH_DTYPES = st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64,
                                torch.uint8, torch.bool])
#: Values that break careless code: NaN, ±inf, signed zero, huge, tiny, the ends of [0, 1].
EDGE = st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-300, -1.0, 2.0, 1e300, math.nan, math.inf, -math.inf])


def arrays(max_dims: int = 2, min_side: int = 0, max_side: int = 6):
    """numpy arrays of any dtype above, shapes with 0 … max_dims dims (empty and single-element
    included), values in [0, 1] mixed with the edge values."""
    return NUMPY_DTYPES.flatmap(lambda dt: hnp.arrays(
        dt, hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=min_side, max_side=max_side),
        elements=_elements(dt)))


def _elements(dt):
    if np.dtype(dt).kind == "b":
        return st.booleans()
    if np.dtype(dt).kind in "iu":
        return st.integers(0, 2)
    width = 16 if dt == np.float16 else 32 if dt in (np.float32, np.complex64) else 64
    fits = np.finfo(np.float16 if width == 16 else np.float32 if width == 32 else np.float64).max
    return st.floats(0, 1, width=width) | EDGE.filter(lambda v: not math.isfinite(v) or abs(v) <= fits)


def tensors(min_dims: int = 0, max_dims: int = 4, max_side: int = 5):
    """torch tensors of any dtype above, random shapes (empty included), values [0, 1] + edge values."""
    @st.composite
    def build(draw):
        shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side))
        a = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1) | EDGE))
        dt = draw(TORCH_DTYPES)
        t = torch.from_numpy(a)
        if not dt.is_floating_point:
            t = torch.nan_to_num(t, nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1).round()
        return t.to(dt)
    return build()


def refuses_clearly(call):
    """Run ``call``; a ValueError / TypeError must carry a message. Returns (ok, result)."""
    try:
        return True, call()
    except (ValueError, TypeError) as e:
        assert str(e).strip(), f"{type(e).__name__} without a message"
        return False, None


# ---------------------------------------------------------------------------------------------
# Calibration


@FAST
@given(arrays(), arrays(), st.integers(-1, 12), st.sampled_from(["width", "mass", "other"]))
def test_calibration_table_and_scores_are_valid_or_refused(conf, correct, n_bins, scheme):
    ok, table = refuses_clearly(lambda: calibration.calibration_table(conf, correct, n_bins=n_bins, scheme=scheme))
    if ok:
        assert list(table.columns) == calibration.TABLE_COLUMNS and len(table) == n_bins
        assert table["count"].sum() == conf.size and np.isclose(table["share"].sum(), 1.0)
        e, s = calibration.ece(table), calibration.sece(table)
        assert 0 <= e <= 1 + 1e-12 and -1 - 1e-12 <= s <= 1 + 1e-12 and abs(s) <= e + 1e-12
        assert 0 <= calibration.mce(table) <= 1 + 1e-12
    ok, got = refuses_clearly(lambda: calibration.calibration_scores(conf, correct, n_bins=max(n_bins, 1)))
    if ok:
        scores = got[1]
        assert all(np.isfinite(scores[k]) for k in ("ece", "sece", "mce", "ace", "accuracy"))


@FAST
@given(tensors(max_dims=2), tensors(max_dims=2))
def test_calibration_takes_tensors_of_every_dtype(conf, correct):
    ok, got = refuses_clearly(lambda: calibration.summary(conf, correct))
    if ok:
        assert 0 <= got["ece"] <= 1 + 1e-12 and got["n"] == conf.numel()


@FAST
@given(arrays(max_dims=1, max_side=8), st.sampled_from(["ece", "sece", "mce", "ace", "accuracy", "nope"]),
       st.integers(-1, 30), st.floats(-1, 2) | EDGE)
def test_calibration_bootstrap_is_valid_or_refused(conf, stat, n_boot, level):
    correct = np.arange(conf.size) % 2 == 0 if conf.ndim == 1 else np.zeros(conf.shape, bool)
    ok, got = refuses_clearly(lambda: calibration.bootstrap_ci(conf, correct, stat=stat, n_boot=n_boot,
                                                               level=level, n_bins=3))
    if ok:
        est, lo, hi = got
        assert math.isfinite(est) and (math.isnan(lo) or lo <= hi + 1e-12)


@FAST
@given(arrays(), st.integers(-1, 6), st.sampled_from(["width", "mass", "x"]))
@example(np.array([-1.0], np.float16), 2, "mass")  # found: edges [0, −1, 1]
def test_bin_edges_are_increasing_or_refused(conf, n_bins, scheme):
    ok, edges = refuses_clearly(lambda: calibration.bin_edges(conf, n_bins, scheme))
    if ok:
        assert len(edges) == n_bins + 1 and edges[0] == 0 and edges[-1] == 1 and np.all(np.diff(edges) >= 0)


# ---------------------------------------------------------------------------------------------
# Bootstrap, verdicts, the accuracy check's interval


@FAST
@given(st.integers(-2, 6) | st.sampled_from([2.5, None, "3"]), st.integers(-1, 20) | st.sampled_from([1.5, None]),
       st.floats(-1, 2) | EDGE, st.booleans())
def test_bootstrap_is_valid_or_refused(n, n_boot, level, strata):
    values = np.linspace(0, 1, 7)

    def mean(idx):
        return values[idx % len(values)].mean(axis=1)

    groups = (np.arange(n) % 2) if strata and isinstance(n, int) and n >= 0 else None
    ok, got = refuses_clearly(lambda: stats.bootstrap(mean, n, n_boot=n_boot, level=level, strata=groups))
    if ok:
        est, lo, hi = got
        assert (n == 0 and math.isnan(est)) or (0 <= est <= 1 and (math.isnan(lo) or lo <= hi))


@FAST
@given(st.floats() | EDGE, st.floats() | EDGE, st.floats(allow_nan=False) | EDGE, st.sampled_from([">", "<", "?"]))
def test_verdict_is_one_of_the_outcomes_or_refused(lo, hi, null, expect):
    ok, got = refuses_clearly(lambda: stats.verdict(lo, hi, null, expect))
    if ok:
        assert got in (*stats.VERDICTS, stats.NO_DATA)


@FAST
@given(st.integers(-2, 300) | st.sampled_from([2.5, True]), st.integers(-2, 300), st.floats(-1, 2) | EDGE)
def test_wilson_interval_is_inside_0_1_or_refused(k, n, level):
    ok, got = refuses_clearly(lambda: sanity.wilson(k, n, level))
    if ok:
        lo, hi = got
        assert 0 <= lo <= k / n <= hi <= 1


# ---------------------------------------------------------------------------------------------
# Directions


@FAST
@given(tensors(min_dims=0, max_dims=5), st.sampled_from(["random", "random_sign", "fgsm", "nope"]),
       st.integers(0, 3))
def test_random_directions_are_valid_or_refused(x, kind, seed):
    ok, d = refuses_clearly(lambda: direction.direction(None, x, kind=kind, seed=seed))
    if ok:
        assert d.shape == x.shape and torch.isfinite(d).all()
        norms = d.reshape(len(d), -1).double().norm(dim=1)
        assert torch.allclose(norms, torch.full_like(norms, x[0].numel() ** 0.5), rtol=1e-3)


@FAST
@given(tensors(min_dims=0, max_dims=4))
@example(torch.tensor([3.5763e-06], dtype=torch.float16))  # found: inf (the scale overflowed float16)
def test_normalize_is_valid_or_refused(d):
    ok, got = refuses_clearly(lambda: direction.normalize(d))
    if ok:
        assert got.shape == d.shape and torch.isfinite(got).all()


@FAST
@given(tensors(min_dims=0, max_dims=4), tensors(min_dims=0, max_dims=4))
def test_saturation_aware_is_valid_or_refused(d, x):
    ok, got = refuses_clearly(lambda: direction.saturation_aware(d, x))
    if ok:
        assert got.shape == d.shape and torch.isfinite(got).all()


# ---------------------------------------------------------------------------------------------
# θ, curvature helpers, meshes


@FAST
@given(tensors(min_dims=0, max_dims=4, max_side=5))
def test_theta_is_an_angle_or_refused(features):
    ok, th = refuses_clearly(lambda: theta(features))
    if ok:
        assert th.shape == (*features.shape[:-2], features.shape[-2] - 2)
        finite = torch.isfinite(features).all()
        v = th[~torch.isnan(th)]
        if finite:
            assert ((v >= 0) & (v <= math.pi + 1e-6)).all()


@FAST
@given(tensors(min_dims=0, max_dims=3, max_side=5))
def test_theta_summary_is_a_table_or_refused(th):
    ok, table = refuses_clearly(lambda: theta_summary(th))
    if ok:
        assert isinstance(table, pd.DataFrame) and len(table) == th.shape[-1]


@FAST
@given(tensors(min_dims=0, max_dims=4, max_side=4), st.integers(0, 4), st.integers(0, 4), st.booleans())
@example(torch.zeros(2, 2, 0), 2, 2, False)  # found: RuntimeError from reshape
@example(torch.zeros(0, 2, 2, 1), 2, 2, False)
def test_affine_residual_is_in_0_1_or_refused(features, na, nb, constant):
    a = torch.zeros(na) if constant else torch.linspace(-1, 1, na)
    b = torch.linspace(-1, 1, nb)
    ok, rho = refuses_clearly(lambda: affine_residual(features, a, b))
    if ok:
        v = rho[~torch.isnan(rho)]
        assert ((v >= 0) & (v <= 1)).all()


@FAST
@given(arrays(max_dims=2), st.floats(-1, 2) | EDGE, st.booleans())
@example(np.array(1e-300), 1e-300, False)  # found: a step of 0
@example(np.array([0.1 + 1j]), 0.25, False)  # found: imaginary parts silently dropped
def test_grid_step_is_positive_or_refused(eps_star, fraction, nice):
    ok, step = refuses_clearly(lambda: trajectory.grid_step(eps_star, fraction, nice))
    if ok:
        assert math.isfinite(step) and step > 0


@FAST
@given(st.sampled_from(["oneway", "symmetric", "x"]), st.floats(-1, 2) | EDGE,
       st.integers(-1, 5) | st.sampled_from([2.0, True]))
@example("oneway", 1e300, 2)  # found: RuntimeError from torch.linspace
@example("oneway", 1e-300, 2)  # found: a grid of zeros
def test_eps_grid_is_increasing_or_refused(protocol, eps_range, n_steps):
    ok, grid = refuses_clearly(lambda: trajectory.eps_grid(protocol, eps_range, n_steps))
    if ok:
        assert len(grid) == n_steps + 1 and (grid.diff() > 0).all()


# ---------------------------------------------------------------------------------------------
# Image quality of the random jump


@FAST
@given(tensors(min_dims=0, max_dims=4), tensors(min_dims=0, max_dims=4), st.floats(-1, 2) | EDGE)
@example(torch.zeros(1, 1), torch.zeros(1, 1), 1e300)  # found: OverflowError
@example(torch.zeros(1, 1), torch.zeros(1, 1), 1e-236)  # found: NaN
@example(torch.zeros(1, 0, 0, 0), torch.zeros(1, 0, 0, 0), 1.0)  # found: NaN for images without pixels
def test_psnr_is_a_number_per_image_or_refused(x, x2, data_range):
    ok, got = refuses_clearly(lambda: random_jump.psnr(x, x2, data_range))
    if ok:
        finite = torch.isfinite(x.reshape(len(x), -1).double()).all(1) & \
            torch.isfinite(x2.reshape(len(x), -1).double()).all(1)
        assert got.shape == (len(x),) and not torch.isnan(got[finite]).any()


@FAST
@given(tensors(min_dims=0, max_dims=4), tensors(min_dims=0, max_dims=4))
def test_rms_distance_is_non_negative_or_refused(x, x2):
    ok, got = refuses_clearly(lambda: random_jump.rms_distance(x, x2))
    if ok:
        assert got.shape == (len(x),) and (got[~torch.isnan(got)] >= 0).all()


@pytest.mark.parametrize("n", [0, 1])
def test_median_ratio_of_an_empty_or_single_pair_frame(n):
    df = pd.DataFrame({"eps_jump": [0.5] * n, "eps_direct": [1.0] * n})
    got = random_jump.median_ratio(df, n_boot=20)
    assert got["n_pairs"] == n and (n == 0 and math.isnan(got["median_ratio"]) or got["median_ratio"] == 0.5)


@FAST
@given(tensors(min_dims=0, max_dims=3, max_side=5), st.sampled_from(["pca", "plane", "x"]), st.booleans())
@example(torch.tensor([[1e300, 0.0], [0.0, 0.0]], dtype=torch.float64), "pca", False)  # found: inf coordinates
def test_project_2d_is_finite_or_refused(points, method, with_basis):
    basis = torch.eye(2, points.shape[-1]) if with_basis and points.ndim >= 1 and points.shape[-1] >= 2 else None
    ok, got = refuses_clearly(lambda: trajectory.project_2d(points, method, basis=basis))
    if ok:
        coords, _ = got
        assert coords.shape == (*points.shape[:-1], 2) and torch.isfinite(coords).all()


@FAST
@given(arrays(max_dims=2, max_side=8), arrays(max_dims=2, max_side=4))
@example(np.array([0.1, 0.2, 0.3]), np.array([1.7]))  # found: a float rank silently truncated
def test_order_statistics_are_the_sorted_values_or_refused(values, ranks):
    ok, got = refuses_clearly(lambda: calibration.order_statistics(values, ranks))
    if ok:
        assert ranks.size == 0 or np.issubdtype(ranks.dtype, np.integer), "a non-integer rank was truncated"
        np.testing.assert_array_equal(got, np.sort(np.asarray(values, dtype=np.float64))[np.asarray(ranks, int)])


@FAST
@given(tensors(min_dims=0, max_dims=4, max_side=4), tensors(min_dims=0, max_dims=5, max_side=3),
       st.lists(st.floats(-1, 1) | EDGE, max_size=4))
@example(torch.zeros(0), torch.zeros(0), [0.0])  # found: IndexError
@example(torch.zeros(0, 0), torch.zeros(0, 0, 2), [0.0])  # found: RuntimeError
def test_line_points_stay_in_0_1_or_are_refused(x, d, eps):
    ok, pts = refuses_clearly(lambda: trajectory.line_points(x, d, eps))
    if ok:
        v = pts[~torch.isnan(pts)] if pts.is_floating_point() else pts
        assert ((v >= 0) & (v <= 1)).all()


@FAST
@given(tensors(min_dims=0, max_dims=4, max_side=4), tensors(min_dims=0, max_dims=4, max_side=4),
       st.floats(-1, 2) | EDGE, st.floats(-1, 2) | EDGE)
@example(torch.tensor(0.0), torch.tensor(False), 0.0, 0.0)  # found: NotImplementedError for bool directions
def test_interior_directions_are_valid_or_refused(x, d, extent_a, extent_b):
    ok, got = refuses_clearly(lambda: interior_directions(x, d, d.flip(0) if d.ndim else d, extent_a,
                                                                     extent_b))
    if ok:
        assert got[0].shape == d.shape
