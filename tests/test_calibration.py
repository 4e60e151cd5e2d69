import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from curvlib.experiments.calibration import calibration_report, predictions
from curvlib.measure import calibration as cal


def test_hand_computed_table():
    conf = np.array([0.95, 0.9, 0.85, 0.3, 0.6, 0.65])
    corr = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    t = cal.calibration_table(conf, corr)
    assert t["count"].tolist() == [0, 0, 1, 0, 0, 1, 1, 0, 2, 1]
    r = t.set_index("bin")
    assert r.loc[8, "confidence"] == pytest.approx(0.875) and r.loc[8, "accuracy"] == 0.5
    assert r.loc[6, "confidence"] == pytest.approx(0.65) and r.loc[6, "accuracy"] == 0.0
    # ECE = (|0−0.3| + |1−0.6| + |0−0.65| + 2·|0.5−0.875| + |1−0.95|) / 6
    assert cal.ece(t) == pytest.approx((0.3 + 0.4 + 0.65 + 0.75 + 0.05) / 6)
    assert cal.sece(t) == pytest.approx((-0.3 + 0.4 - 0.65 - 0.75 + 0.05) / 6)
    assert cal.mce(t) == pytest.approx(0.65)
    assert t["is_empty"].sum() == 5 and t.loc[t.is_empty, "accuracy"].isna().all()


def test_bin_edges_are_right_closed():
    # lo < conf <= hi: 0.1, 0.2, 0.3 ... are the *upper* edges of their bins
    conf = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
    t = cal.calibration_table(conf, np.ones(6, bool))
    assert t.loc[t["count"] > 0, "bin"].tolist() == [0, 1, 2, 4, 6, 8]


def test_zero_and_one_edge_cases():
    t = cal.calibration_table(np.array([0.0, 1.0, 1.0]), np.array([False, True, True]))
    assert t.loc[0, "count"] == 1 and t.loc[9, "count"] == 2 and t["count"].sum() == 3


def test_float32_torch_input_any_device():
    conf = torch.tensor([0.55, 0.95, 0.95], dtype=torch.float32)
    corr = torch.tensor([True, True, False])
    t = cal.calibration_table(conf, corr)
    assert t["count"].sum() == 3
    assert cal.ece(t) == pytest.approx(cal.ece(cal.calibration_table(conf.numpy(), corr.numpy())))


def test_agrees_with_torchmetrics_l1_ece():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(0)
    for _ in range(5):
        n, k = 5000, 10
        logits = torch.from_numpy(rng.normal(size=(n, k)) * rng.uniform(0.5, 4)).float()
        y = torch.from_numpy(rng.integers(0, k, n))
        probs = logits.softmax(-1)
        conf, pred = probs.max(-1)
        ours = cal.ece(cal.calibration_table(conf, pred == y))
        theirs = tm.multiclass_calibration_error(probs, y, num_classes=k, n_bins=10, norm="l1").item()
        assert ours == pytest.approx(theirs, abs=1e-5)


def test_perfect_calibration_is_near_zero():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0, 1, 200_000)
    corr = rng.uniform(0, 1, conf.size) < conf
    s = cal.summary(conf, corr)
    assert s["ece"] < 0.01 and abs(s["sece"]) < 0.01 and s["ace"] < 0.01


def test_overconfidence_has_negative_sece():
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.5, 1, 50_000)
    corr = rng.uniform(0, 1, conf.size) < conf - 0.2
    assert cal.sece(cal.calibration_table(conf, corr)) == pytest.approx(-0.2, abs=0.01)


def test_mass_bins_hold_equal_shares():
    rng = np.random.default_rng(3)
    conf = rng.beta(8, 1, 10_000)
    t = cal.calibration_table(conf, rng.uniform(size=conf.size) < conf, scheme="mass")
    assert np.allclose(t["share"], 0.1, atol=0.001)


settings.register_profile("curvbook", deadline=None, max_examples=60)
settings.load_profile("curvbook")
probs = st.floats(0, 1, allow_nan=False)


@given(st.lists(st.tuples(probs, st.booleans()), min_size=1, max_size=200), st.integers(1, 20))
def test_properties(pairs, n_bins):
    conf = np.array([p for p, _ in pairs])
    corr = np.array([c for _, c in pairs])
    for scheme in ("width", "mass"):
        t = cal.calibration_table(conf, corr, n_bins, scheme)
        e, s = cal.ece(t), cal.sece(t)
        assert -1e-12 <= e <= 1 + 1e-12
        assert abs(s) <= e + 1e-12
        assert t["count"].sum() == conf.size
        assert cal.mce(t) >= e - 1e-12
    perm = np.random.default_rng(0).permutation(conf.size)
    t2 = cal.calibration_table(conf[perm], corr[perm], n_bins)
    assert cal.ece(t2) == pytest.approx(cal.ece(cal.calibration_table(conf, corr, n_bins)), abs=1e-12)


@given(st.lists(probs, min_size=1, max_size=100))
def test_sece_is_accuracy_minus_confidence(conf):
    conf = np.array(conf)
    corr = conf > 0.5
    t = cal.calibration_table(conf, corr)
    # summed over bins, share-weighted gaps telescope to mean(correct) − mean(confidence)
    assert cal.sece(t) == pytest.approx(corr.mean() - conf.mean(), abs=1e-9)


def test_bootstrap_interval_brackets_estimate_and_is_seeded():
    rng = np.random.default_rng(4)
    conf = rng.uniform(0.3, 1, 3000)
    corr = rng.uniform(size=conf.size) < conf - 0.05
    for stat in cal.STATS:
        est, lo, hi = cal.bootstrap_ci(conf, corr, stat, n_boot=200, seed=1)
        assert lo <= hi
        assert lo - 0.02 <= est <= hi + 0.02
        assert cal.bootstrap_ci(conf, corr, stat, n_boot=200, seed=1) == (est, lo, hi)
    _, lo, hi = cal.bootstrap_ci(conf, corr, "sece", n_boot=500)
    assert lo < -0.05 + 0.03 and hi > -0.05 - 0.03


def test_vectorised_bootstrap_matches_loop():
    rng = np.random.default_rng(5)
    conf = rng.uniform(0, 1, 500)
    corr = rng.uniform(size=500) < conf
    idx = rng.integers(0, 500, size=(7, 500))
    for stat, fn in (("ece", cal.ece), ("sece", cal.sece), ("mce", cal.mce)):
        vec = cal._binned_stats(idx, conf, corr, 10, stat)
        loop = [fn(cal.calibration_table(conf[i], corr[i])) for i in idx]
        assert np.allclose(vec, loop)


@pytest.mark.parametrize("conf, corr, msg", [
    (np.array([0.5, np.nan]), np.array([1, 0]), "NaN"),
    (np.array([0.5, 1.2]), np.array([1, 0]), r"lie in \[0, 1\]"),
    (np.array([-0.1]), np.array([1]), r"lie in \[0, 1\]"),
    (np.array([0.5, 0.6]), np.array([1]), "differ in length"),
    (np.array([]), np.array([]), "empty"),
    (np.array([0.5]), np.array([2]), "boolean or 0/1"),
    (np.ones((2, 2)) / 2, np.ones((2, 2)), "one-dimensional"),
])
def test_bad_input(conf, corr, msg):
    with pytest.raises(ValueError, match=msg):
        cal.calibration_table(conf, corr)


def test_bad_options():
    c, k = np.array([0.5]), np.array([True])
    with pytest.raises(ValueError, match="n_bins"):
        cal.calibration_table(c, k, n_bins=0)
    with pytest.raises(ValueError, match="scheme"):
        cal.calibration_table(c, k, scheme="quantile")
    with pytest.raises(ValueError, match="stat must be one of"):
        cal.bootstrap_ci(c, k, "brier")
    with pytest.raises(TypeError, match="floating point"):
        cal.calibration_table(np.array([1]), k)


def test_predictions_are_cached_and_consistent(tmp_cache, monkeypatch):
    from curvlib import experiments
    from curvlib.config import get_profile

    p = get_profile("smoke")
    df = predictions("resnet", p, n=50)
    assert len(df) == 50 and df["index"].tolist() == list(range(50))
    assert ((df.confidence >= df.p_label - 1e-12) & (df.confidence <= 1)).all()
    assert (df.correct == (df.pred == df.label)).all()

    def boom(*a, **k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(experiments.calibration, "predict", boom)
    assert predictions("resnet", p, n=50).equals(df)
    report = calibration_report({"resnet": df}, n_boot=50)
    assert report.loc["resnet", "accuracy"] == pytest.approx(df.correct.mean())


def test_equal_mass_edges_use_rank_ceil_iN_over_M():
    # N = 5, M = 2: the first bin holds ranks 1..⌈5/2⌉ = 3, the second 4..5 (np.round gave 2 / 3)
    conf = np.array([0.2, 0.4, 0.6, 0.8, 0.9])
    corr = np.array([0, 1, 1, 1, 0], dtype=bool)
    t = cal.calibration_table(conf, corr, n_bins=2, scheme="mass")
    assert t["count"].tolist() == [3, 2] and t.hi.iloc[0] == 0.6
    # ACE by hand: bin 1 |2/3 − 0.4| = 0.2667 × 3/5, bin 2 |1/2 − 0.85| = 0.35 × 2/5
    assert cal.ace(conf, corr, n_bins=2) == pytest.approx(0.6 * (2 / 3 - 0.4) + 0.4 * 0.35)
    for n, m in ((10, 3), (7, 7), (1000, 10), (11, 4)):
        c = np.linspace(0.01, 1, n)
        counts = cal.calibration_table(c, c > 0.5, n_bins=m, scheme="mass")["count"].to_numpy()
        expect = np.diff([0] + [-(-i * n // m) for i in range(1, m + 1)])  # ⌈iN/M⌉ − ⌈(i−1)N/M⌉
        assert counts.tolist() == expect.tolist(), (n, m)


def test_mce_can_ignore_small_bins():
    conf = np.r_[np.full(50, 0.95), 0.15]  # one lone sample in (0.1, 0.2], wrong: |gap| = 0.15
    corr = np.r_[np.ones(45, bool), np.zeros(5, bool), True]  # ... or right: |gap| = 0.85
    t = cal.calibration_table(conf, corr)
    assert cal.mce(t) == pytest.approx(0.85)
    assert cal.mce(t, min_count=2) == pytest.approx(0.05)
    assert cal.summary(conf, corr, min_count=2)["mce"] == pytest.approx(0.05)
    _, lo, hi = cal.bootstrap_ci(conf, corr, "mce", n_boot=200, min_count=10)
    assert hi < 0.2  # the lone bin never counts, whatever the resample
    with pytest.raises(ValueError, match="min_count must be a positive integer"):
        cal.mce(t, min_count=0)


def test_vectorised_mce_with_min_count_matches_loop():
    rng = np.random.default_rng(6)
    conf = rng.uniform(0, 1, 300) ** 0.3
    corr = rng.uniform(size=300) < conf
    idx = rng.integers(0, 300, size=(9, 300))
    vec = cal._binned_stats(idx, conf, corr, 10, "mce", min_count=8)
    assert np.allclose(vec, [cal.mce(cal.calibration_table(conf[i], corr[i]), min_count=8) for i in idx])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0, 0.25, 0.999]) |
                st.floats(0, 1, allow_nan=False), min_size=1, max_size=300),
       st.integers(1, 70))
def test_fast_binning_matches_digitize(values, n_bins):
    """The comparison-count binning equals a binary search, exact edge values included."""
    conf = np.asarray(values, dtype=np.float64)
    for scheme in ("width", "mass"):
        edges = cal.bin_edges(conf, n_bins, scheme)
        assert np.array_equal(cal.bin_index(conf, edges), np.digitize(conf, edges[1:-1], right=True))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False) | st.sampled_from([0.5, 1.0]), min_size=1, max_size=400),
       st.data())
def test_order_statistics_match_sort(values, data):
    a = np.asarray(values)
    ranks = np.unique(data.draw(st.lists(st.integers(0, a.size - 1), min_size=1, max_size=12)))
    before = a.copy()
    assert np.array_equal(cal.order_statistics(a, ranks), np.sort(a)[ranks])
    assert np.array_equal(a, before)  # the input is not reordered


def test_calibration_scores_match_the_separate_functions():
    rng = np.random.default_rng(3)
    conf = rng.random(5000)
    corr = rng.random(5000) < conf
    table, s = cal.calibration_scores(conf, corr)
    ref = cal.calibration_table(conf, corr)
    assert table.equals(ref)
    assert s["ece"] == cal.ece(ref) and s["sece"] == cal.sece(ref) and s["mce"] == cal.mce(ref)
    assert s["ace"] == cal.ace(conf, corr) and s == cal.summary(conf, corr)


def test_order_statistics_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        cal.order_statistics(np.array([]), [0])
    with pytest.raises(ValueError, match="NaN"):
        cal.order_statistics(np.array([0.1, np.nan]), [0])
    with pytest.raises(ValueError, match="ranks must be increasing"):
        cal.order_statistics(np.array([0.1, 0.2]), [1, 0])
    with pytest.raises(ValueError, match="ranks must be increasing"):
        cal.order_statistics(np.array([0.1, 0.2]), [2])
