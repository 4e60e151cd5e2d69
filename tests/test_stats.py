import numpy as np
import pytest

from curvlib.stats import bootstrap, hierarchical_bootstrap, hierarchical_resamples, resampled_means, resamples, verdict


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


def _seeded_values(tau, n_seeds, n, seed=7):
    """Per-image values [S, n] of S seeds: tau·z_s (between-seed, variance tau²) + b_i (per image,
    shared by the seeds, variance 1) + e_si (variance 1). The same z, b, e for every tau."""
    rng = np.random.default_rng(seed)
    z, b, e = rng.normal(size=n_seeds), rng.normal(size=n), rng.normal(size=(n_seeds, n))
    return tau * z[:, None] + b[None] + e


def _boot_variance(values, n_boot, seed=0):
    draws = [resampled_means(values, s[0], i[0])
             for s, i in hierarchical_resamples([len(values)], values.shape[1], n_boot, seed, chunk=500)]
    return np.concatenate(draws).var()


def _two_stage_variance(w):
    """Exact variance of the two-stage bootstrap mean given the data w [S, n]: the mean is dᵀ w c with
    d, c independent multinomial weights (seeds, images), so Var = tr(E[ddᵀ] w E[ccᵀ] wᵀ) − (mean w)²."""
    S, n = w.shape
    edd = (np.eye(S) - 1 / S) / S**2 + 1 / S**2
    ecc = (np.eye(n) - 1 / n) / n**2 + 1 / n**2
    return np.trace(edd @ w @ ecc @ w.T) - w.mean() ** 2


def test_hierarchical_interval_widens_with_the_seed_variance_and_matches_its_analytic_variance():
    """Three seeds' worth of between-seed variance: the bootstrap variance equals the exact two-stage
    variance of these data within 10 %, and the interval widens with tau, far beyond images alone."""
    widths = []
    for tau in (0.0, 0.5, 1.0):
        w = _seeded_values(tau, 5, 400)
        assert _boot_variance(w, 4000) == pytest.approx(_two_stage_variance(w), rel=0.1)
        est, lo, hi = hierarchical_bootstrap(lambda si, ii: resampled_means(w, si[0], ii[0]), [5], 400, n_boot=2000)
        assert est == pytest.approx(w.mean()) and lo < est < hi
        widths.append(hi - lo)
    assert widths[0] < widths[1] < widths[2]
    _, lo, hi = bootstrap(lambda i: w[:, i].mean((0, 2)), 400, n_boot=2000)  # images only, tau = 1
    assert widths[2] > 2 * (hi - lo)


def test_hierarchical_variance_matches_the_sampling_variance_of_the_mean():
    """Known variances (between seeds tau², per image 1, residual 1) and many seeds and images: the
    bootstrap variance of the grand mean matches tau²/S + 1/n + 1/(S·n) within 10 %."""
    S = n = 1000
    for tau in (0.0, 1.0):
        analytic = tau**2 / S + 1 / n + 1 / (S * n)
        assert _boot_variance(_seeded_values(tau, S, n, seed=11), 4000) == pytest.approx(analytic, rel=0.1)


def test_hierarchical_pairing_removes_the_images_shared_by_models():
    rng = np.random.default_rng(4)
    shared = rng.normal(0, 1, 300)
    a = shared + rng.normal(0, 0.05, (3, 300)) + 0.1
    b = shared + rng.normal(0, 0.05, (4, 300))

    def gap(si, ii):
        return resampled_means(a, si[0], ii[0]) - resampled_means(b, si[1], ii[1])

    est, lo, hi = hierarchical_bootstrap(gap, [3, 4], 300)  # the same images: paired
    _, ulo, uhi = hierarchical_bootstrap(gap, [3, 4], [300, 300])  # as if each had its own images
    assert lo < est < hi and est == pytest.approx(a.mean() - b.mean())
    assert 10 * (hi - lo) < uhi - ulo and lo > 0


def test_hierarchical_resamples_are_seeded_and_independent_of_chunking():
    whole = list(hierarchical_resamples([3, 5], 40, n_boot=50, seed=2))
    parts = list(hierarchical_resamples([3, 5], 40, n_boot=50, seed=2, chunk=7))
    for m in range(2):
        assert np.array_equal(whole[0][0][m], np.concatenate([p[0][m] for p in parts]))
        assert np.array_equal(whole[0][1][m], np.concatenate([p[1][m] for p in parts]))
    s_idx, i_idx = whole[0]
    assert i_idx[0] is i_idx[1] and s_idx[0].shape == (50, 3) and s_idx[1].shape == (50, 5)
    assert s_idx[0].max() < 3 and not np.array_equal(s_idx[0], s_idx[1][:, :3])  # seeds drawn per model
    other = next(hierarchical_resamples([3, 5], 40, n_boot=50, seed=3))
    assert not np.array_equal(other[1][0], i_idx[0])


def test_hierarchical_bad_input_is_named():
    with pytest.raises(ValueError, match="at least one seed per model"):
        next(hierarchical_resamples([3, 0], 10))
    with pytest.raises(ValueError, match="2 image-set sizes for 3 models"):
        next(hierarchical_resamples([3, 3, 3], [10, 10]))
    with pytest.raises(ValueError, match=r"values \[3, 10\] do not match"):
        resampled_means(np.zeros((3, 10)), np.zeros((2, 3), int), np.zeros((2, 9), int))
    with pytest.raises(ValueError, match="one value per resample"):
        hierarchical_bootstrap(lambda si, ii: np.zeros(2), [2], 10)
