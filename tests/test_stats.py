import numpy as np
import pytest

from curvlib.stats import bootstrap, resamples, verdict


def test_bootstrap_brackets_the_statistic_and_narrows_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (50, 2000):
        v = rng.normal(3.0, 1.0, n)
        est, lo, hi = bootstrap(lambda i: v[i].mean(1), n)
        assert est == pytest.approx(v.mean()) and lo < est < hi
        widths.append(hi - lo)
    # the interval of a mean shrinks like 1/√n: 2·1.96/√n
    assert widths[1] < widths[0] / 4
    assert abs(widths[1] - 2 * 1.96 / np.sqrt(2000)) < 0.02
    assert all(np.isnan(bootstrap(lambda i: i.sum(1), 0)))


def test_bootstrap_is_seeded_and_independent_of_chunking():
    v = np.random.default_rng(2).exponential(size=300)
    stat = lambda i: np.median(v[i], axis=1)  # noqa: E731
    a = bootstrap(stat, 300, n_boot=400, seed=5)
    assert bootstrap(stat, 300, n_boot=400, seed=5, chunk=7) == a
    assert bootstrap(stat, 300, n_boot=400, seed=6) != a
    # the same seed gives every statistic the same resamples: that is what makes comparisons paired
    first = np.concatenate(list(resamples(300, 400, seed=5, chunk=33)))
    assert np.array_equal(first, next(resamples(300, 400, seed=5)))
    strata = np.arange(300) % 3
    first = np.concatenate(list(resamples(300, 400, seed=5, chunk=33, strata=strata)))
    assert np.array_equal(first, next(resamples(300, 400, seed=5, strata=strata)))


def test_paired_resampling_removes_shared_noise():
    # two "models" measured on the same images: a large shared per-image effect and a small difference
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 1, 500)
    a, b = shared + 0.1, shared + rng.normal(0, 0.01, 500)
    est, lo, hi = bootstrap(lambda i: a[i].mean(1) - b[i].mean(1), 500)
    assert lo > 0.09 and hi < 0.11  # paired: the shared noise cancels
    # unpaired (independent resamples) the same difference would be lost in noise
    _, lo_a, hi_a = bootstrap(lambda i: a[i].mean(1), 500, seed=1)
    assert hi_a - lo_a > 10 * (hi - lo)


def test_stratified_resampling_keeps_group_sizes():
    strata = np.array([0] * 3 + [1] * 5)
    for idx in resamples(8, 50, seed=0, strata=strata):
        assert (idx[:, :3] < 3).all() and (idx[:, 3:] >= 3).all()
    v = np.r_[np.zeros(3), np.ones(5)]
    # the share of group 1 never moves under stratified resampling
    est, lo, hi = bootstrap(lambda i: v[i].mean(1), 8, strata=strata)
    assert est == lo == hi == pytest.approx(5 / 8)


def test_nan_resamples_are_left_out_and_all_nan_gives_no_interval():
    v = np.r_[np.nan, np.arange(299.0)]  # one unit undefined: ~37 % of resamples miss it
    stat = lambda i: np.where(np.isnan(v[i]).any(1), np.nan, v[i].mean(1))  # noqa: E731
    est, lo, hi = bootstrap(stat, 300, n_boot=2000, min_defined=0.3)
    assert np.isnan(est) and np.isfinite(lo) and lo < hi  # resamples without the NaN unit remain
    assert np.isnan(bootstrap(stat, 300, n_boot=2000)[1])  # but 37 % defined is too few by default
    est, lo, hi = bootstrap(lambda i: np.full(len(i), np.nan), 10)
    assert np.isnan(lo) and np.isnan(hi)


@pytest.mark.parametrize("lo,hi,null,expect,out", [
    (0.1, 0.3, 0, ">", "holds"), (-0.3, -0.1, 0, ">", "opposite"), (-0.1, 0.1, 0, ">", "inconclusive"),
    (0.5, 0.9, 1, "<", "holds"), (1.1, 1.4, 1, "<", "opposite"), (0.9, 1.0, 1, "<", "inconclusive"),
    (np.nan, np.nan, 0, ">", "no data"),
])
def test_verdict_reads_the_interval_against_the_null(lo, hi, null, expect, out):
    assert verdict(lo, hi, null, expect) == out


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        bootstrap(lambda i: i.mean(1), -1)
    with pytest.raises(ValueError, match="n_boot must be a positive integer"):
        bootstrap(lambda i: i.mean(1), 5, n_boot=0)
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap(lambda i: i.mean(1), 5, level=1.5)
    with pytest.raises(ValueError, match="one value per resample"):
        bootstrap(lambda i: i, 5)
    with pytest.raises(ValueError, match="one label per unit"):
        next(resamples(5, 10, strata=[0, 1]))
    with pytest.raises(ValueError, match="expect"):
        verdict(0, 1, expect="!=")
    with pytest.raises(ValueError, match="reversed"):
        verdict(1, 0)
