"""The boundary chapter's library code: the images moved to the boundary, the verdict sentences and the
figures and tables that show them (synthetic frames and a toy linear model)."""
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from curvlib import toys
from curvlib.claims import boundary as bc
from curvlib.config import get_profile
from curvlib.experiments import examples
from curvlib.measure.direction import direction
from curvlib.measure.travel import travel
from curvlib.plots import boundary as bp

STATUS = ["crossed", "never", "misclassified_at_start"]

EMBEDDED = get_profile("embedded", env={}, device="cpu")


def _travel(conf, eps, status, model="resnet", kind="fgsm"):
    n = len(conf)
    return pd.DataFrame({"index": np.arange(n), "confidence": conf, "eps": eps, "passes": np.arange(n) + 3,
                         "status": pd.Categorical(status, categories=STATUS), "new_class": np.ones(n, int),
                         "model": model, "kind": kind})


def _row(estimate, lo, hi):
    return {"estimate": estimate, "lo": lo, "hi": hi, "verdict": "holds", "n_cnn": 10, "n_transformer": 12}


def _bands(ratios):
    """A boundary_bands table whose five bands have these ratios, each ± 0.1."""
    labels = ["[0, 0.5]", "(0.5, 0.7]", "(0.7, 0.9]", "(0.9, 0.99]", "(0.99, 1]"]
    return pd.DataFrame({"band": labels, "ratio": ratios, "lo": np.subtract(ratios, 0.1), "hi": np.add(ratios, 0.1)})


def _rhos():
    return pd.DataFrame({"rho": [0.4, 0.1, 0.3], "lo": [0.3, 0.0, 0.2], "hi": [0.5, 0.2, 0.4],
                         "verdict": ["holds", "—", "holds"]}, index=pd.Index(["resnet", "vit", "CNN − Transformer"],
                                                                              name="model"))


def test_verdict_markdown_compares_the_bands_above_the_threshold():
    rhos = {"fgsm": _rhos()}
    similar = bc.verdict_markdown({"fgsm": _row(2.0, 1.8, 2.2)}, rhos, {"fgsm": _bands([2, 2, 2, 2.05, 1.95])})
    assert similar.startswith("- **fgsm**: at confidence ≤ 0.9, within bands, the Transformers' median ε* is 2.00× "
                              "the CNNs' [1.80, 2.20] (10 CNN and 12 Transformer images) — the paper's ordering: "
                              "**holds**. Confidence–distance correlation, CNNs minus Transformers: +0.300 "
                              "[+0.200, +0.400] — **holds**.")
    assert "band (0.9, 0.99]: ratio 2.05" in similar and "a similar factor in every band" in similar
    assert "[0, 0.5]" not in similar.split("\n")[1]  # only the bands above the threshold are compared
    other = bc.verdict_markdown({"fgsm": _row(2.0, 1.8, 2.2)}, rhos, {"fgsm": _bands([2, 2, 2, 1.0, 1.95])})
    assert other.endswith("a different factor from the low-confidence one in (0.9, 0.99].")


def test_summary_and_accuracy_sentences():
    text = bc.summary_markdown({"fgsm": _row(2.0, 1.8, 2.2), "random": {**_row(0.5, 0.4, 0.6), "verdict": "opposite"}},
                               {"fgsm": _rhos(), "random": _rhos()}, "embedded")
    assert text == ("On this profile (embedded), the Transformers' median ε\\* at confidence ≤ 0.9 is 2.00× the CNNs' "
                    "along fgsm (the paper's ordering: holds; confidence–distance correlation stronger for the CNNs: "
                    "holds); 0.50× the CNNs' along random (the paper's ordering: opposite; confidence–distance "
                    "correlation stronger for the CNNs: holds).")
    frames = {"resnet": _travel([0.9] * 4, [0.1, np.nan, 0.2, np.nan], ["crossed", "never", "crossed",
                                                                       "misclassified_at_start"])}
    fashion = bc.accuracy_markdown(frames, SimpleNamespace(dataset="fashion-mnist", n_travel=4))
    assert "on these 4 images they classify resnet 75.0% correctly." in fashion and "`paper` profile" in fashion
    assert bc.accuracy_markdown(frames, SimpleNamespace(dataset="imagenet", n_travel=4)) == (
        "On these 4 images the models classify resnet 75.0% correctly.")


def test_boundary_images_move_each_image_to_its_crossing(monkeypatch):
    g = torch.Generator().manual_seed(1)
    model = toys.Linear([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0], [0.5, 0.5, -0.5, -0.5]], torch.zeros(3))
    x = 0.4 + 0.2 * torch.rand(8, 1, 2, 2, generator=g)  # near the boundaries, far from clipping
    y = model(x).argmax(1)
    y[0] = (y[0] + 1) % 3  # misclassified at the start: stays itself
    frame = travel(model, x, y, direction(model, x, y, "fgsm"), progress=False)
    assert set(frame.status) >= {"crossed", "misclassified_at_start"}
    monkeypatch.setattr(examples, "travel_images", lambda profile, rows, name: (x[rows], y[rows]))
    monkeypatch.setattr(examples.models, "load", lambda name, profile: model)
    x0, y0, moved = examples.boundary_images({"a": frame, "b": frame}, EMBEDDED, n=6)
    assert torch.equal(x0, x[:6]) and list(moved) == ["a", "b"] and moved["a"].shape == (6, 1, 2, 2)
    crossed = torch.tensor((frame.status.iloc[:6] == "crossed").to_numpy())
    assert crossed.any() and (model(moved["a"][crossed]).argmax(1) != y[:6][crossed]).all()  # past the boundary
    assert torch.equal(moved["a"][~crossed], x[:6][~crossed])
    fig = bp.boundary_images_figure(x0, y0, moved, {"a": frame, "b": frame}, classes=("u", "v", "w"))
    assert len(fig.axes) == 3 * 6 and fig.axes[0].get_title() in ("u", "v", "w")
    plt.close(fig)
    with pytest.raises(ValueError, match="out of step"):
        examples.boundary_images({"a": frame.assign(label=(frame.label + 1) % 3)}, EMBEDDED, n=6)


def test_page_tables_and_scatter_grid():
    frames = {kind: {m: _travel([0.6, 0.8, 0.95], [0.1, np.nan, 0.3], ["crossed", "never", "crossed"], m, kind)
                     for m in ("vit", "resnet", "swin")} for kind in ("fgsm", "random")}
    passes = bp.passes_table(frames)
    assert passes.loc["vit", "fgsm"] == "4.0 / 5" and list(passes.columns) == ["fgsm", "random"]
    fig = bp.boundary_scatter_grid(frames["fgsm"], "fgsm", eps_max=1.0)
    assert sum(ax.get_visible() and ax.axison for ax in fig.axes) == 3 and fig.axes[0].get_title() == "vit — fgsm"
    plt.close(fig)
    from curvlib.experiments.travel import median_by_confidence

    bands = pd.concat([median_by_confidence(df) for fr in frames.values() for df in fr.values()])
    table = bp.band_medians_table(bands).data
    assert list(table.columns) == ["vit", "resnet", "swin"] and table.loc[("fgsm", "(0.5, 0.7]"), "vit"] == 0.1
    assert "–" in bp.band_medians_table(bands).to_html()  # an empty band
    html = bp.band_table(pd.DataFrame({"band": ["[0, 0.5]"], "median CNN": [0.12345], "median Transformer": [np.nan],
                                       "ratio": [1.234], "lo": [1.0], "hi": [1.5]})).to_html()
    assert "0.1235" in html and "1.23" in html and "–" in html
    assert "+0.300" in bp.rho_table(_rhos()).to_html()
