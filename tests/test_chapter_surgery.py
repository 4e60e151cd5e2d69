"""The surgery chapter's helpers: which runs it makes (each model × surgery that applies, shared where two
surgeries linearise the same modules), what the identity check measures, and the paragraphs and sentences it
shows, on constructed results whose text is known."""
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from curvlib import plots
from curvlib.claims import surgery as cs
from curvlib.claims.records import CLAIMS
from curvlib.config import get_profile
from curvlib.experiments import examples
from curvlib.experiments import surgery as es

PROFILE = get_profile("embedded", env={}, device="cpu")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture
def fake_runs(monkeypatch):
    """path_experiment / travel_experiment replaced by recorders: the calls, and a fresh object per call."""
    calls = []

    def run(model_name, profile, **kw):
        calls.append((model_name, *(kw[k] for k in ("surgery", "kind") if k in kw)))
        return {"call": calls[-1]}

    monkeypatch.setattr(es, "path_experiment", run)
    monkeypatch.setattr(es, "travel_experiment", run)
    return calls


def test_path_results_run_each_surgery_that_applies_once(fake_runs):
    paths = es.path_results(["resnet", "vit"], PROFILE)
    # a ReLU/BatchNorm CNN: no attention, no LayerNorm; its "activation" is its "all" and is not run again
    assert [k for k in paths if k[0] == "resnet"] == [("resnet", "none"), ("resnet", "all"), ("resnet", "activation")]
    assert paths[("resnet", "activation")] is paths[("resnet", "all")]
    assert [k[1] for k in paths if k[0] == "vit"] == ["none", "all", "attention", "norm", "activation"]
    assert len(fake_runs) == 2 + 5


def test_travel_results_run_random_directions_only_for_the_profiles_models(fake_runs):
    frames = es.travel_results(["vit"], PROFILE, variants=["resnet_gelu"])
    assert {k for k in frames if k[2] == "random"} == {("vit", "none", "random"), ("vit", "all", "random")}
    assert {k[2] for k in frames if k[0] == "resnet_gelu"} == {"fgsm"}
    assert ("resnet_gelu", "none", "fgsm") in frames and ("resnet_gelu", "all", "fgsm") in frames
    assert all(c[-1] in ("fgsm", "random") for c in fake_runs)
    # the page counts each distinct run once
    cost = cs.page_cost(12.3, frames, {("vit", "none"): 1}, PROFILE)
    assert cost.startswith("(This page's measurements took 12 s") and f"ε* for {len(fake_runs)} model" in cost


def test_identity_check_finds_every_surgery_keeps_value_and_first_order():
    t = examples.identity_check(PROFILE, n=2, kinds=("attention", "all"))
    assert set(t.model) == set(PROFILE.models)
    assert set(t[t.model == "resnet"].kind) == {"all"}  # no attention to linearise in a CNN
    assert (t.modules > 0).all()
    assert (t["value: max |Δf| / max |f|"] < 1e-5).all() and (t["first order: ‖Δ f′d‖ / ‖f′d‖"] < 1e-4).all()
    assert examples.batchnorm_affine("resnet", PROFILE) is True
    assert examples.batchnorm_affine("resnet", get_profile("paper", env={}, device="cpu")) is None


def test_setup_line_names_the_experiments_grids():
    line = cs.setup_line(PROFILE)
    assert line.startswith(f"profile: {PROFILE.name}; ω and θ on ") and "ε* on " in line


def _shares():
    return pd.DataFrame([
        {"model": "vit", "surgery": "attention", "omega_none": 2.0, "share": 0.8, "lo": 0.7, "hi": 0.9},
        {"model": "vit", "surgery": "norm", "omega_none": 2.0, "share": -0.3, "lo": -0.4, "hi": -0.2},
        {"model": "vit", "surgery": "all", "omega_none": 2.0, "share": 1.0, "lo": 1.0, "hi": 1.0,
         "theta": 0.5, "theta_none": 7.25}])


def test_shares_markdown_names_the_largest_share_and_a_kind_that_bends_faster():
    text = cs.shares_markdown(_shares(), ["vit"])
    first, last = text.split("\n")
    assert first.startswith("- **vit** (ω = 2 rad per unit ε): linearising attention 80% [70%, 90%], norm -30%")
    assert "the largest share is attention's" in first and "add up to 50%:" in first
    assert "Linearising norm makes the path bend *faster*" in first
    assert "(share 100.0000% or more)" in last and "vit 0.50° (original 7.25°)" in last


def test_ratios_markdown_reads_each_verdict_and_skips_what_was_not_run():
    ratios = pd.DataFrame([
        {"family": "Transformer", "surgery": "all", "kind": "fgsm", "band": "all", "median": 0.5, "lo": 0.4,
         "hi": 0.6, "n_pairs": 40, "verdict": "holds"},
        {"family": "CNN", "surgery": "all", "kind": "random", "band": "all", "median": 1.0, "lo": 0.9, "hi": 1.1,
         "n_pairs": 40, "verdict": "inconclusive"},
        {"family": "CNN", "surgery": "all", "kind": "random", "band": "(0.5, 0.7]", "median": 2.0, "lo": 1.5,
         "hi": 2.5, "n_pairs": 10, "verdict": "opposite"}])
    assert cs.ratios_markdown(ratios).split("\n") == [
        "- Transformers, all linearised, fgsm: median ratio 0.500 [0.400, 0.600] (40 pairs) — the travel is shorter.",
        "- CNNs, all linearised, random: median ratio 1.000 [0.900, 1.100] (40 pairs) — the travel is not "
        "measurably different."]


def test_turning_markdown_gives_each_correlation_its_sign():
    tt = pd.DataFrame([{"model": "vit", "n": 30, "turning_median": 0.1234, "rho_eps": 0.5, "lo_eps": 0.2,
                        "hi_eps": 0.7, "rho_rate": -0.4, "lo_rate": -0.6, "hi_rate": -0.1, "rho_conf": 0.0,
                        "lo_conf": -0.2, "hi_conf": 0.2}])
    text = cs.turning_markdown(tt)
    assert text.startswith("- **vit**: median turning 0.123 rad before the boundary; Spearman ρ with ε* +0.50")
    assert "(positive)" in text and "(negative)" in text and "(not distinguishable from 0); 30 images." in text


def _travel(eps):
    n = len(eps)
    return pd.DataFrame({"index": range(n), "eps": eps, "confidence": np.full(n, 0.8), "status": ["crossed"] * n})


def test_swap_intervention_pairs_the_variant_with_its_parent(monkeypatch):
    e = np.linspace(0.01, 0.05, 20)
    monkeypatch.setattr(cs, "parent_weights", lambda v, p: ("resnet", Path("parent.safetensors")))
    monkeypatch.setattr(cs, "parent_replicates",
                        lambda parent, d, stem: [(1, "seed1.safetensors")] if stem == "parent" else [])
    monkeypatch.setattr(cs, "travel_experiment",
                        lambda m, p, surgery, kind, checkpoint: _travel(e * (1.1 if "seed" in str(checkpoint) else 1)))
    monkeypatch.setattr(cs, "path_experiment", lambda m, p, surgery, checkpoint: {"omega": torch.full((20, 4), 0.5)})
    frames = {("resnet_gelu", "none", "fgsm"): _travel(2 * e), ("resnet_gelu", "all", "fgsm"): _travel(e)}
    shares = pd.DataFrame([{"model": "resnet_gelu", "surgery": "all", "omega_none": 3.0, "share": 0.99}])
    s = cs.swap_intervention("resnet_gelu", frames, shares, SimpleNamespace(seed_dir="seeds"))
    assert s["parent"] == "resnet" and s["omega_parent"] == 0.5 and s["omega"] == 3.0
    assert s["swap"]["median"] == pytest.approx(2.0) and s["undo"]["median"] == pytest.approx(0.5)
    assert s["seeds"][1]["median"] == pytest.approx(1.1)
    text = cs.swap_markdown(s)
    assert text.startswith("- ω: resnet 0.5 → resnet_gelu 3 rad per unit ε") and "takes 99% of it" in text
    assert "the parent retrained with seed 1: 1.100 [1.100, 1.100]" in text
    assert "no seed replicate" in cs.swap_markdown({**s, "seeds": {}})
    assert "follow the seed recipe" not in text  # one replicate: no spread to speak of
    two = {1: {"median": 0.83, "lo": 0.8, "hi": 0.86}, 2: {"median": 0.9, "lo": 0.87, "hi": 0.93}}
    line = cs.swap_markdown({**s, "seeds": two}).split("\n")[-1]
    assert line == ("- The parent's replicates follow the seed recipe (part of the training set held out, the epoch "
                    "chosen on it), the shipped parent does not: their ratios to it run from 0.830 to 0.900 — all "
                    "below 1; their common offset from 1 is the recipe's, their spread (a factor 1.084) is the seeds'.")
    mixed = {1: {"median": 0.95, "lo": 0.9, "hi": 1.0}, 2: {"median": 1.05, "lo": 1.0, "hi": 1.1}}
    assert cs.swap_markdown({**s, "seeds": mixed}).endswith("run from 0.950 to 1.050; their spread (a factor 1.105) "
                                                           "is the seeds'.")


def test_verdict_sentences_are_the_claims_own_at_the_ledgers_precision():
    rows = [CLAIMS["surgery (distance)"].judge(0.81234, 0.7, 0.9, 100),
            CLAIMS["surgery (control)"].judge(1.05, 0.95, 1.2, 100)]
    text = cs.verdict_sentences(pd.DataFrame(rows), SimpleNamespace(name="toy"))
    assert text.startswith("On this profile (toy), we measure median ε*(all linearised)")
    assert text.count("On this profile") == 1 and ". We measure median ratio ε*(all)/ε*(original): Transformers" in text
    assert ": 0.812 [0.7, 0.9]" in text and "**holds**" in text and "**inconclusive**" in text
    assert CLAIMS["surgery (distance)"].paper in text and CLAIMS["surgery (control)"].paper in text


def test_gelu_toy_paths_marks_each_crossing_on_its_own_path():
    eps = torch.linspace(0, 0.4, 5)
    path = torch.stack([4 * eps, eps ** 2], 1)
    tangent = torch.stack([4 * eps, 2 * eps], 1)
    ax = plots.gelu_toy_paths(eps, path, tangent, 0.5, (0.29, 0.11))
    markers = {ln.get_marker(): ln.get_xydata()[0] for ln in ax.lines if ln.get_marker() in ("o", "s")}
    assert markers.keys() == {"o", "s"}  # ε* 0.29 → the grid point 0.3 on the path, 0.11 → 0.1 on the tangent
    assert np.allclose(markers["o"], [1.2, 0.09]) and np.allclose(markers["s"], [0.4, 0.2])
