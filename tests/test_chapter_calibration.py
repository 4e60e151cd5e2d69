"""The calibration chapter's helpers on small constructed predictions: tables as text, the verdict paragraph
from the claim records, ECE by binning, training histories, and the figures that draw them."""
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from curvlib import claims, plots
from curvlib.claims.calibration import (
    binning_sensitivity,
    by_model_table,
    calibration_verdicts,
    resampling_note,
    summary_table,
    training_history,
)
from curvlib.claims.records import CLAIMS
from curvlib.experiments.calibration import calibration_report
from curvlib.measure.calibration import calibration_table
from curvlib.widgets import figure_tabs

FAMS = {"resnet": "CNN", "mobilenetv2": "CNN", "vit": "Transformer", "swin": "Transformer"}
N = 300


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def preds():
    """Predictions on the same N images: the CNNs overconfident by 0.2, the Transformers calibrated."""
    g = np.random.default_rng(0)
    out = {}
    for m, f in FAMS.items():
        conf = g.uniform(0.5, 0.95, N)
        correct = g.uniform(size=N) < conf - (0.2 if f == "CNN" else 0.0)
        out[m] = pd.DataFrame({"index": np.arange(N), "confidence": conf, "correct": correct})
    return out


@pytest.fixture(scope="module")
def report(preds):
    return calibration_report(preds, n_boot=50, seed=0, mce_min_count=10)


def test_summary_table_writes_each_interval_under_its_estimate(report):
    t = summary_table(report, FAMS)
    assert list(t.index) == list(FAMS) and t.family.tolist() == list(FAMS.values())
    r = report.loc["vit"]
    assert t.loc["vit", "ECE"] == f"{r.ece:.4f}\n[{r.ece_lo:.4f}, {r.ece_hi:.4f}]"
    assert t.loc["resnet", "sECE"].startswith("-") and t.loc["vit", "MCE"] == f"{r.mce:.4f}"


def test_resampling_note_counts_each_statistic(report):
    note = resampling_note(report)
    assert "accuracy 50" in note and "ace 10" in note and "≥ 10 samples" in note


def test_verdicts_come_from_the_claim_records(preds, report):
    by_model = claims.calibration_by_model(report, FAMS)
    table = by_model_table(by_model)
    assert table.loc["resnet", "verdict"] == "holds"
    assert table.loc["resnet", "sECE [95 % CI]"].startswith(f"{by_model.sece['resnet']:+.4f} [")
    fam = {f: claims.calibration_family(preds, f, FAMS, n_boot=50) for f in ("CNN", "Transformer")}
    gap = claims.calibration_gap(preds, FAMS, n_boot=50)
    text = calibration_verdicts(by_model, fam, gap, report, SimpleNamespace(name="toy"))
    n_hold = int((by_model.verdict == "holds").sum())
    assert text.startswith(f"**Measured on the `toy` profile:** {n_hold} of 4 models")
    gap_sentence = CLAIMS["calibration (gap)"].sentence(gap)
    assert gap_sentence in text and f"**{gap['verdict']}**" in text  # a symbol keeps its case: sECE(CNNs)
    assert CLAIMS["calibration (CNNs)"].paper in text and CLAIMS["calibration (Transformers)"].paper in text
    assert "We measure mean sECE of the CNNs (resnet, mobilenetv2): " in text
    assert f"resnet {report.accuracy['resnet']:.1%}" in text


def test_binning_sensitivity_keeps_sece_and_moves_ece(preds):
    rows = binning_sensitivity(preds, bins=(5, 10), schemes=("width", "mass"))
    assert len(rows) == 4 * 2 * 2 and set(rows.columns) == {"model", "bins", "scheme", "ECE", "sECE"}
    spread = rows.groupby("model").sECE.agg(lambda v: v.max() - v.min())
    assert (spread < 1e-12).all()  # sECE = accuracy − mean confidence, whatever the bins
    assert rows.groupby("model").ECE.nunique().min() > 1
    r = rows[(rows.model == "vit") & (rows.bins == 10) & (rows.scheme == "width")].iloc[0]
    d = preds["vit"]
    assert r.sECE == pytest.approx(d.correct.mean() - d.confidence.mean())


def test_training_history_stacks_the_cards():
    cards = {"resnet": {"history": [{"epoch": 1, "accuracy": 0.8, "sece": -0.01},
                                    {"epoch": 2, "accuracy": 0.85, "sece": -0.02}]},
             "vit": {"history": [{"epoch": 1, "accuracy": 0.7, "sece": 0.01}]}, "swin": {}}
    h = training_history(cards)
    assert len(h) == 3 and h.model.tolist() == ["resnet", "resnet", "vit"]
    assert training_history({}).empty
    fig = plots.training_curves(h)
    a1, a2 = fig.axes[:2]
    assert a1.get_ylabel() == "test sECE" and a2.get_ylabel() == "test accuracy"


def test_grids_draw_one_panel_per_model(preds):
    tables = {m: calibration_table(d.confidence, d.correct) for m, d in preds.items()}
    fig = plots.reliability_grid(tables)
    assert [ax.get_title() for ax in fig.axes] == [f"{m} ({f})" for m, f in FAMS.items()]
    three = dict(list(preds.items())[:3])
    fig = plots.confidence_grid(three)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == list(three)
    assert len(fig.axes) == 4 and not fig.axes[3].get_visible()


def test_figure_tabs_hold_one_png_per_figure(preds):
    figs = {m: plots.calibration_panel(calibration_table(d.confidence, d.correct), d, title=m)
            for m, d in list(preds.items())[:2]}
    assert all(len(f.axes) == 2 for f in figs.values())
    tabs = figure_tabs(figs)
    assert [tabs.get_title(i) for i in range(2)] == ["resnet", "mobilenetv2"]
    outputs = [c.outputs[0]["data"] for c in tabs.children]
    assert all(o["image/png"] for o in outputs)
    assert not plt.get_fignums()  # the figures were closed


def test_figure_tabs_refuse_no_figures():
    with pytest.raises(ValueError, match="at least one figure"):
        figure_tabs({})
