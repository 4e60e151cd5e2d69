"""The book's certification of its own boundary search: dense scan, categories, interval, cached experiment."""
import numpy as np
import pandas as pd
import pytest
import torch
from test_travel import Path, _steep_island_then_crossing

from curvlib import runner
from curvlib.config import get_profile
from curvlib.experiments.travel_check import check_experiment, chosen_rows
from curvlib.measure import certify
from curvlib.measure.travel import travel


def _island_inputs():
    # three samples: an island at 0.0335 (the default march steps over it), two without
    c = torch.tensor([0.0335, 0.9, 0.9])
    w = torch.tensor([0.008, 0.0, 0.0])
    return Path.inputs(c, w, torch.zeros(3))


def test_dense_scan_stops_at_the_first_wrong_step_and_counts_its_passes():
    x, y, d = _island_inputs()
    scan = certify.dense_scan(Path(_steep_island_then_crossing), x, y, d, step=1e-3, k_max=1000)
    # margin 100·(|ε − c − w/2| − w/2) < 0 first at k = 34 (ε = 0.034 > 0.0335); the others reach 0 at 0.4 (a
    # tie 0 = 0 is read as class 0, wrong)
    assert scan["first"].tolist() == [34, 400, 400]
    assert scan["passes"] == 3 + 34 + 400 + 400  # the start, then one pass per sample per step until it stops
    assert np.isnan(scan["margin"][0, 34:]).all() and not np.isnan(scan["margin"][0, :34]).any()
    assert scan["new_class"].tolist() == [0, 0, 0]


def test_categories_report_a_missed_island_and_agree_elsewhere():
    x, y, d = _island_inputs()
    model = Path(_steep_island_then_crossing)
    df = travel(model, x, y, d, eps_max=1.0, tol=1e-4, progress=False)
    scan = certify.dense_scan(model, x, y, d)
    cat = certify.categories(model, x, y, d, df, scan)
    assert cat.tolist() == ["missed", "agree", "agree"]  # the default search stepped over the island
    careful = travel(model, x, y, d, eps_max=1.0, tol=1e-4, progress=False, search="careful")
    assert certify.categories(model, x, y, d, careful, scan).tolist() == ["agree"] * 3


def test_categories_false_never_and_earlier_verified():
    x, y, d = _island_inputs()
    model = Path(_steep_island_then_crossing)
    scan = certify.dense_scan(model, x, y, d)
    frame = pd.DataFrame({"status": ["never", "crossed", "crossed"], "eps": [np.nan, 0.4001, 0.0336],
                          "eps_lo": [np.nan, 0.4, 0.0335]})
    # sample 2 has no island: a claimed crossing at 0.0336 is earlier than the scan's and NOT wrong there
    assert certify.categories(model, x, y, d, frame, scan).tolist() == ["false never", "agree",
                                                                        "earlier, NOT verified"]
    # a crossing inside sample 0's island, earlier than the scan's step 34: verified wrong
    frame2 = frame.assign(status=["crossed", "crossed", "crossed"], eps=[0.0337, 0.4001, 0.4001],
                          eps_lo=[0.0336, 0.4, 0.4])
    scan2 = dict(scan, first=np.array([40, 401, 401]))
    assert certify.categories(model, x, y, d, frame2, scan2)[0] == "earlier, verified"
    with pytest.raises(ValueError, match="differ in length"):
        certify.categories(model, x, y, d, frame.iloc[:2], scan)


def test_wilson_interval_known_values_and_edges():
    lo, hi = certify.wilson(100, 100)
    assert hi == 1.0 and abs(lo - 0.96301) < 1e-4
    lo, hi = certify.wilson(50, 100)
    assert abs(lo - 0.40383) < 1e-4 and abs(hi - 0.59617) < 1e-4
    assert all(np.isnan(certify.wilson(0, 0)))
    with pytest.raises(ValueError, match="0 ≤ k ≤ n"):
        certify.wilson(5, 4)


def test_summary_counts_categories_and_names_the_disagreeing_samples():
    rows = pd.DataFrame({"model": ["m"] * 4, "kind": ["fgsm"] * 4, "index": [3, 8, 12, 20],
                         "category": ["agree", "missed", "earlier, verified", "agree"]})
    s = certify.summary(rows).iloc[0]
    assert s.checked == 4 and s.agree == 2 and s["earlier, verified"] == 1 and s.missed == 1
    assert s.agreement == 0.75 and s.lo < 0.75 < s.hi
    assert s["disagreeing samples"] == "#8"
    with pytest.raises(ValueError, match="need columns"):
        certify.summary(rows.drop(columns="category"))


def test_check_experiment_rechecks_seeded_rows_of_the_chapters_travel(tmp_cache):
    profile = get_profile("smoke")
    frame = runner.run("travel", "resnet", profile, kind="random")
    rows = check_experiment("resnet", profile, kind="random", n_check=10)
    assert len(rows) == 10 and rows["index"].is_monotonic_increasing
    assert set(rows.category) <= set(certify.CATEGORIES)
    chosen = chosen_rows(frame, 10, 0)
    assert rows["index"].tolist() == chosen.tolist()
    assert (frame.status.iloc[chosen] != "misclassified_at_start").all()  # only searched rows are checked
    # the frame's own ε* are reported, not replaced by the scan's
    np.testing.assert_array_equal(rows.eps.to_numpy(), frame.eps.iloc[chosen].to_numpy())
    # the CLI's calls (registry) read the same cache entries as this call with the profile's defaults
    exp = runner.get("travel_check")
    assert {"kind": "random"} in exp.calls
    params = runner.params_for("travel_check", profile, kind="random", n_check=10)
    assert params["search"] == profile.search == "default" and params["n"] == profile.n_travel


def test_sentence_pools_the_agreement_and_lists_every_disagreement():
    rows = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 2, "kind": ["fgsm"] * 3 + ["random"] * 2,
                         "index": [1, 4, 9, 2, 7], "category": ["agree", "missed", "agree", "agree", "false never"]})
    text = certify.sentence(certify.summary(rows))
    lo, hi = certify.wilson(3, 5)
    assert f"Of the 5 rows re-checked on this run, 3 agree with the dense scan: 60.0% [{lo:.1%}, {hi:.1%}]" in text
    assert "a / fgsm #4" in text and "b / random #7" in text
    assert certify.sentence(certify.summary(rows.assign(category="agree"))).endswith("and no row disagrees.")
