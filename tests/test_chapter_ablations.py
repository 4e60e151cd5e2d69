"""The ablations chapter's sentences (the ``*_markdown`` functions of curvlib.claims.ablations)."""
import pandas as pd
from test_ablations import _swap_row

from curvlib.claims import ablations

#: The full names of the swapped modules (the cards' ``swap_from`` / ``swap_to``), per variant.
FULL_NAMES = {"resnet_ln": ("BatchNorm", "LayerNorm"), "resnet_gelu": ("ReLU", "GELU"), "vit_relu": ("GELU", "ReLU")}


def _row(model, parent, swap, theta, eps, seed=0, ci=0.5):
    """test_ablations' swap row, with the modules' full names."""
    row = _swap_row(model, parent, swap, theta, eps, ci=ci, seed=seed)
    if row["role"] == "variant":
        row["swap_from"], row["swap_to"] = FULL_NAMES[model]
    return row


def _swaps():
    return pd.DataFrame([
        _row("resnet", "resnet", "— (parent)", 15.0, 0.020),
        _row("resnet", "resnet", "— (parent, seed 1)", 16.0, 0.023, seed=1),
        _row("resnet", "resnet", "— (parent, seed 2)", 14.5, 0.021, seed=2),
        _row("resnet_ln", "resnet", "BN → LN", 20.0, 0.030),
        _row("resnet_gelu", "resnet", "ReLU → GELU", 15.6, 0.021),
        _row("vit", "vit", "— (parent)", 18.0, 0.020),
        _row("vit_relu", "vit", "GELU → ReLU", 17.0, 0.022, ci=2.0),
    ])


def test_swaps_markdown_weighs_each_swap_against_both_yardsticks():
    swaps = _swaps()
    ln, gelu, relu, scale = ablations.swaps_markdown(swaps, ablations.swap_effects(swaps)).split("\n")
    assert ln == ("- **resnet_ln** (BN → LN): mean θ 15.00° → 20.00° (Δ +5.00°); the 95 % intervals [14.5, 15.5]° and "
                  "[19.5, 20.5]° do not overlap; the parent's 3 seeds spread θ over 1.50° (max − min), so the "
                  "swap's effect is larger than training noise. Median ε* 0.0200 → 0.0300 (seed spread 0.0030); "
                  "accuracy 90.00% → 90.00%; sECE -0.0100 → -0.0100.")
    assert "[15.1, 16.1]° overlap;" in gelu and "is **not** larger than training noise" in gelu
    assert "no seed replicate of the parent is shipped" in relu and "seed spread" not in relu
    two = swaps[swaps.seed != 2]  # one extra seed: a spread, but no decision
    ln2 = ablations.swaps_markdown(two, ablations.swap_effects(two)).split("\n")[0]
    assert "moved θ by 1.00°, but 2 seeds are no measure of training noise" in ln2 and "not decided" in ln2
    assert scale == ("- For scale: the two parents differ by +3.00° (vit − resnet: here the ViT is the more curved "
                     "family); the largest swap effect is +5.00° (resnet_ln).")
    assert ablations.swaps_markdown(pd.DataFrame(), pd.DataFrame()) == "No variant is trained yet."


def test_components_markdown_says_whether_the_families_agree():
    swaps = _swaps()
    comp = ablations.component_effects(ablations.swap_effects(swaps))
    ln, relu = ablations.components_markdown(comp).split("\n")
    assert ln == ("- **BatchNorm / LayerNorm**: switching to LayerNorm changes mean θ by +5.00° in resnet — only one "
                  "family measured.")
    assert relu == ("- **GELU / ReLU**: switching to ReLU changes mean θ by -0.60° in resnet, -1.00° in vit — the same "
                    "direction in both families.")
    comp.loc[comp.pair == "GELU / ReLU", "consistent"] = False
    assert "**opposite** directions" in ablations.components_markdown(comp)
    assert ablations.components_markdown(pd.DataFrame()) == "No variant is trained yet."


def test_trend_markdown_first_and_last_epoch_and_the_gap():
    dyn = pd.DataFrame([{"model": m, "epoch": e, "theta_mean": t, "eps_median": 0.01 * e, "sece": -0.001 * e}
                        for m, e, t in [("resnet", 1, 10.0), ("resnet", 5, 12.5), ("vit", 1, 9.0), ("vit", 2, 8.0),
                                        ("vit", 5, 15.0)]])
    resnet, vit, gap = ablations.trend_markdown(dyn).split("\n")
    assert resnet == ("- **resnet**: mean θ 10.00° after epoch 1 → 12.50° after epoch 5; median ε* 0.0100 → 0.0500; "
                      "sECE -0.0010 → -0.0050.")
    assert vit.startswith("- **vit**: mean θ 9.00° after epoch 1 → 15.00° after epoch 5;")
    assert gap == ("- The two models' mean θ at the common epochs: epoch 1: vit − resnet = -1.00°; "
                   "epoch 5: vit − resnet = +2.50°.")


def test_missing_markdown_names_the_swap():
    text = ablations.missing_markdown(["resnet_gelu"])
    assert text.startswith("**Not trained yet:** `resnet_gelu` (ReLU → GELU). Their weights are not in `data/models`")
