"""The premise rows: accuracy after a fixed step, and the family gap on the images every model gets right."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from curvlib import toys
from curvlib.claims import robustness as rc
from curvlib.config import get_profile
from curvlib.experiments.robustness import LEDGER_EPS, ROBUSTNESS_EPS, robustness_experiment
from curvlib.measure.direction import direction
from curvlib.measure.robustness import accuracy_under
from curvlib.plots.boundary import robustness_figure

FAMS = {"resnet": "CNN", "mobilenetv2": "CNN", "vit": "Transformer", "swin": "Transformer"}


def test_accuracy_under_a_step_along_fgsm_falls_from_the_clean_accuracy():
    g = torch.Generator().manual_seed(0)
    model = toys.Linear(torch.randn(3, 4, generator=g, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    x = 0.3 + 0.4 * torch.rand(40, 1, 2, 2, generator=g)
    y = model(x).argmax(1)
    y[:5] = (y[:5] + 1) % 3  # five images wrong from the start
    d = direction(model, x, y, "fgsm")
    df = accuracy_under(model, x, y, d, [0.0, 0.05, 1.0])
    acc = df.groupby("eps").correct.mean()
    assert acc[0.0] == pytest.approx(35 / 40) and acc[1.0] < acc[0.05] <= acc[0.0]
    assert len(df) == 3 * 40 and df.confidence.between(0, 1).all()
    with pytest.raises(ValueError, match="eps"):
        accuracy_under(model, x, y, d, [-0.1])
    with pytest.raises(ValueError, match="match the images"):
        accuracy_under(model, x, y, d[:3], [0.1])


def _frames(keep: dict[str, float], n=300, seed=0, wrong_at_start=()):
    """Robustness frames on the same n images: model m keeps each image with probability keep[m] at every
    step > 0; images ``wrong_at_start`` are wrong for the first model at ε = 0."""
    g = np.random.default_rng(seed)
    out = {}
    for k, (m, p) in enumerate(keep.items()):
        rows = []
        for e in (0.0, 0.01, 0.05):
            c = np.ones(n, bool) if e == 0 else g.random(n) < p
            if e == 0 and k == 0:
                c[list(wrong_at_start)] = False
            rows.append(pd.DataFrame({"index": np.arange(n), "eps": e, "correct": c, "confidence": 0.9}))
        out[m] = pd.concat(rows, ignore_index=True)
    return out


@pytest.mark.parametrize("cnn, tr, outcome", [(0.3, 0.7, "holds"), (0.7, 0.3, "opposite"), (0.5, 0.5, "inconclusive")])
def test_robustness_gap_compares_the_families_on_clean_correct_images(cnn, tr, outcome):
    frames = _frames({m: (cnn if f == "CNN" else tr) for m, f in FAMS.items()}, seed=1)
    r = rc.robustness_gap(frames, 0.05, FAMS, n_boot=500)
    assert r["verdict"] == outcome and r["lo"] <= r["estimate"] <= r["hi"] and r["n"] == 300
    assert r["estimate"] == pytest.approx(tr - cnn, abs=0.08)
    # an image one model gets wrong without any step is not counted for anyone
    fewer = rc.robustness_gap(_frames({m: 0.5 for m in FAMS}, wrong_at_start=range(20)), 0.05, FAMS, n_boot=50)
    assert fewer["n"] == 280
    with pytest.raises(ValueError, match="ε = 0.2"):
        rc.robustness_gap(frames, 0.2, FAMS)
    with pytest.raises(ValueError, match="same images"):
        rc.robustness_gap({**frames, "vit": frames["vit"].iloc[:-1]}, 0.05, FAMS)


def test_robustness_claim_is_a_ledger_row_with_every_other_step_as_sensitivity():
    frames = _frames({"resnet": 0.3, "mobilenetv2": 0.3, "vit": 0.8, "swin": 0.8}, seed=2)
    row = rc.robustness_claim(frames, "random", 0.05, FAMS, n_boot=300)
    assert row["claim"] == "robustness (noise)" and row["verdict"] == "holds" and row["design"] == ""
    assert "ε = 0.01:" in row["note"] and "ε = 0.05:" not in row["note"]
    # frames measured only at ε = 0 and the row's step (the seed replicates'): the same row, no sensitivity
    two = {m: f[f.eps.isin([0.0, 0.05])] for m, f in frames.items()}
    only = rc.robustness_claim(two, "random", 0.05, FAMS, n_boot=300)
    assert (only["estimate"], only["lo"], only["hi"], only["n"]) == (row["estimate"], row["lo"], row["hi"], row["n"])
    assert "sensitivity" in row["note"] and "sensitivity" not in only["note"] and only["note"].endswith("%.")
    t = rc.accuracy_table(frames)
    assert set(t.model) == set(FAMS) and (t[t.eps == 0].kept == 1).all() and t.n_clean.eq(300).all()
    fig = robustness_figure({"random": t, "fgsm": t})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 4
    plt.close(fig)


def test_the_ledger_steps_are_on_the_experiments_grid():
    assert 0.0 in ROBUSTNESS_EPS and all(e in ROBUSTNESS_EPS for e in LEDGER_EPS.values())


def test_robustness_experiment_on_the_shipped_models(tmp_cache):
    p = get_profile("embedded")  # the isolated cache of tmp_cache
    df = robustness_experiment("resnet", p, kind="fgsm", n=20, eps=(0.0, 0.05))
    assert len(df) == 2 * 20 and df["index"].unique().tolist() == list(range(20))
    clean = df[df.eps == 0].correct.mean()
    assert df[df.eps == 0.05].correct.mean() < clean
