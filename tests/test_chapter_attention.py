"""The attention chapter's tables and sentences (curvlib.claims.attention) and its score-path figure."""
import numpy as np
import pandas as pd
import pytest

from curvlib.claims import CLAIMS
from curvlib.claims import attention as attn
from curvlib.config import get_profile
from curvlib.experiments import examples
from curvlib.measure import attention as at
from curvlib.plots.attention import score_path_figure

TS = [1e-3, 1e-2, 1e-1, 1.0]


def _score_rows(model="vit", layer="blocks.0.attn", k=2.0, n=3):
    """A synthetic score_line frame: bend ∝ t^k, ‖tR‖ ∝ t, R's share 1 − t/2."""
    rows = []
    for t in TS:
        for s in range(n):
            rows.append({"sample": s, "t": t, "change": t, "linear": t * (1 - t / 2), "quadratic": 2 * t ** k,
                         "bend": t ** k, "bend_predicted": t ** k * (1 + 1e-9), "linear_share": 1 - t / 2,
                         "rel_bend": t ** (k - 1), "identity_err": 1e-14, "model": model, "layer": layer,
                         "shifted": False})
    return pd.DataFrame(rows)


def test_slope_recovers_a_power_law():
    t = np.array([1e-3, 1e-2, 1e-1])
    assert attn.slope(t, 5 * t ** 2) == pytest.approx(2.0)
    assert attn.slope(t, t ** -0.5) == pytest.approx(-0.5)


def test_score_path_of_the_first_module_and_its_sentence():
    lines = pd.concat([_score_rows(), _score_rows(layer="blocks.1.attn", k=3.0), _score_rows(model="swin")])
    first = attn.first_module(lines)
    assert set(first.layer) == {"blocks.0.attn"} and set(first.model) == {"vit"} and len(first) == 3 * len(TS)
    med = attn.score_path(first)
    assert list(med.index) == TS and list(med.columns) == attn.SCORE_PATH
    text = attn.score_path_markdown(first)
    assert "grows as t^2.000, ‖tR‖ as t^" in text
    assert "R's share of the score change is 0.9995 at t = 0.001 and 0.50 at t = 1" in text


def test_per_layer_table_one_row_per_module():
    lines = pd.concat([_score_rows(), _score_rows(layer="blocks.1.attn", k=3.0)], ignore_index=True)
    t = attn.per_layer_table(lines)
    assert list(t.columns) == ["model", "layer", "shifted", "bend exponent", "R share at t=0.001", "R share at t=1",
                               "β at t=1"]
    assert t["bend exponent"].tolist() == pytest.approx([2.0, 3.0])
    assert t["R share at t=1"].tolist() == pytest.approx([0.5, 0.5])
    assert attn.per_layer_markdown(t, TS[0]) == ("Over all 2 attention modules the bend exponent lies in "
                                                 "[2.000, 3.000] and R's share at t = 0.001 is at least 1.000.")


def _bends():
    layers = pd.DataFrame([
        ("resnet", "conv", 1e-8, 1e-8), ("resnet", "relu", 0.02, 0.5), ("resnet", "batchnorm", 1e-8, 1e-8),
        ("vit", "attention", 0.08, 0.3), ("vit", "softmax", 0.1, 0.2), ("vit", "gelu", 0.01, 0.4),
        ("vit", "linear", 1e-7, 1e-7), ("vit", "layernorm", 0.03, 5.0), ("vit", "mystery", 0.5, 0.5),
        ("vit_relu", "relu", 0.04, 0.5), ("vit_relu", "attention", 0.06, 0.3),
    ], columns=["model", "component", "bend", "defect"])
    return layers, at.component_bends(layers)


def test_component_grid_order_and_missing_cells():
    _, bends = _bends()
    grid = attn.component_grid(bends, ["resnet", "vit"])
    assert list(grid.columns) == ["resnet", "vit"]
    assert list(grid.index) == ["conv", "linear", "batchnorm", "layernorm", "relu", "gelu", "softmax", "attention",
                                "mystery"]
    assert np.isnan(grid.loc["attention", "resnet"]) and grid.loc["relu", "resnet"] == 0.02
    assert attn.component_grid(bends, ["vit"], "defect").loc["layernorm", "vit"] == 5.0
    assert attn.bend_of(bends, "vit", "softmax") == 0.1 and np.isnan(attn.bend_of(bends, "resnet", "softmax"))


def test_model_lines_name_the_top_components_and_the_swap():
    _, bends = _bends()
    resnet, vit, vit_relu = attn.model_lines(bends, ["resnet", "vit", "vit_relu"])
    assert resnet == "- **resnet** (CNN, BatchNorm + ReLU): bends most in relu (0.02)."
    assert vit.startswith("- **vit** (Transformer, LayerNorm + GELU): bends most in mystery (0.5), then softmax (0.1), "
                          "then layernorm (0.03); whole attention module 0.08")
    assert "The swap puts relu (0.04) where vit has gelu (0.01); attention 0.06 vs 0.08." in vit_relu


@pytest.mark.parametrize("verdict", ["holds", "inconclusive"])
def test_attention_markdown_takes_its_verdict_sentence_from_the_claim(verdict):
    layers, bends = _bends()
    row = CLAIMS["attention"].judge(4.0, 3.0 if verdict == "holds" else 0.5, 5.0, 16)
    assert row["verdict"] == verdict
    text = attn.attention_markdown(bends, layers, row, ["resnet", "vit"], ["vit_relu"])
    assert CLAIMS["attention"].sentence(row) in text
    assert "(per model: resnet relu 0.02; vit attention 0.08)" in text
    assert "bend ×0.04 as much" in text  # relu 0.02 / vit's top elementary component 0.5
    assert "- **vit_relu**" in text and "in none of them the attention module" in text
    assert "Largest additivity defect of any conv / linear / batch-norm layer: 1.0e-07" in text
    assert ("bends a finite segment more than the CNNs' ReLUs;" in text) == (verdict == "holds")


def test_maps_markdown_reads_the_toy_table():
    props = pd.DataFrame({"map": ["conv with bias", "score A(Z) = Z M Zᵀ", "ReLU"], "additivity gap": [0.5, 1.0, 0.7],
                          "δ (affine defect)": [1e-16, 0.8, 0.6], "β (bend)": [2e-16, 0.3, 0.25]})
    text = attn.maps_markdown(props)
    assert text.startswith("The convolution with bias is not additive (gap 0.50) but affine: δ = 1e-16 and β = 2e-16")
    assert text.endswith("score A(Z) = Z M Zᵀ: gap 1.00, δ = 0.80, β = 0.30; ReLU: gap 0.70, δ = 0.60, β = 0.25.")


def test_token_lines_and_relu_inputs_on_the_shipped_models():
    p = get_profile("embedded", env={}, device="cpu")
    lines = examples.token_lines("vit", p, eps=0.02, ts=[1e-2, 1.0], n=2)
    assert lines.layer.nunique() == 4 and not lines.shifted.any()  # the embedded ViT's four blocks
    assert len(lines) == 4 * 2 * 2 and lines.identity_err.max() < 1e-8
    assert (attn.per_layer_table(lines)["bend exponent"].between(1.9, 2.1)).all()
    neg = examples.relu_inputs(["resnet", "vit"], p, eps=0.02, n=2)  # the ViT has no ReLU: no row
    assert neg.model.tolist() == ["resnet"] and (neg["negative share"] > 0.05).all()
    assert attn.relu_inputs_markdown(neg, 0.02).startswith("Median over a model's ReLUs")


def test_score_path_figure_draws_both_panels():
    axes = score_path_figure(attn.score_path(_score_rows()), "vit · blocks.0.attn: score path")
    assert len(axes[0].lines) == 4 and len(axes[1].lines) == 2
    assert axes[0].get_title() == "vit · blocks.0.attn: score path" and axes[0].get_xscale() == "log"
