"""Every verdict of curvlib.claims on constructed inputs whose right answer is known."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from curvlib import claims
from curvlib.claims.records import CLAIMS, Claim
from curvlib.claims.tally import sensitivity

FAMS = {"resnet": "CNN", "mobilenetv2": "CNN", "vit": "Transformer", "swin": "Transformer"}
N = 400


def _preds(over: dict, seed=0):
    """Predictions on the same N images; model m's confidence exceeds its accuracy by over[m]."""
    g = np.random.default_rng(seed)
    out = {}
    for m in FAMS:
        conf = g.uniform(0.5, 0.95, N)
        correct = g.uniform(size=N) < conf - over[m]
        out[m] = pd.DataFrame({"index": np.arange(N), "confidence": conf, "correct": correct})
    return out


@pytest.mark.parametrize("cnn, tr, outcome", [(0.1, 0.0, "holds"), (0.0, 0.1, "opposite"), (0.0, 0.0, "inconclusive")])
def test_calibration_gap(cnn, tr, outcome):
    preds = _preds({m: cnn if f == "CNN" else tr for m, f in FAMS.items()})
    r = claims.calibration_gap(preds, FAMS)
    assert r["verdict"] == outcome and r["lo"] <= r["estimate"] <= r["hi"] and r["n"] == N
    # sECE = accuracy − mean confidence for any binning: the row's family means are exactly that
    cnn_sece = np.mean([preds[m].correct.mean() - preds[m].confidence.mean() for m in ("resnet", "mobilenetv2")])
    assert r["cnn"] == pytest.approx(cnn_sece)
    assert set(claims.ROW) <= set(r)


def test_calibration_gap_is_paired_over_images():
    # a hard image set shared by all models: large per-image noise, tiny family difference
    g = np.random.default_rng(1)
    conf = g.uniform(0.2, 1.0, N)
    base = g.uniform(size=N) < conf
    preds = {m: pd.DataFrame({"index": np.arange(N), "confidence": conf - (0.01 if f == "Transformer" else 0),
                              "correct": base}) for m, f in FAMS.items()}
    r = claims.calibration_gap(preds, FAMS)
    assert r["estimate"] == pytest.approx(-0.01) and r["hi"] - r["lo"] < 1e-9 and r["verdict"] == "holds"


@pytest.mark.parametrize("over, cnn, tr", [(0.1, "holds", "opposite"), (-0.1, "opposite", "holds"),
                                           (0.0, "inconclusive", "inconclusive")])
def test_calibration_family(over, cnn, tr):
    preds = _preds(dict.fromkeys(FAMS, over))
    assert claims.calibration_family(preds, "CNN", FAMS)["verdict"] == cnn
    r = claims.calibration_family(preds, "Transformer", FAMS)
    assert r["verdict"] == tr and r["claim"] == "calibration (Transformers)"
    assert r["estimate"] == pytest.approx(np.mean([preds[m].correct.mean() - preds[m].confidence.mean()
                                                   for m in ("vit", "swin")]))


def test_calibration_inputs_must_be_comparable():
    preds = _preds(dict.fromkeys(FAMS, 0.0))
    with pytest.raises(ValueError, match="both families"):
        claims.calibration_gap({"resnet": preds["resnet"]}, FAMS)
    preds["vit"] = preds["vit"].iloc[::-1]
    with pytest.raises(ValueError, match="other images"):
        claims.calibration_gap(preds, FAMS)


@pytest.mark.parametrize("model, lo, hi, outcome", [
    ("resnet", -0.03, -0.01, "holds"), ("mobilenetv2", 0.01, 0.02, "opposite"), ("resnet", -0.01, 0.01, "inconclusive"),
    ("vit", 0.01, 0.02, "holds"), ("vit", -0.01, 0.01, "inconclusive"), ("swin", 0.0, 0.02, "inconclusive"),
    ("vit", -0.03, -0.01, "opposite"), ("swin", np.nan, np.nan, "no data"),
])
def test_calibration_by_model_applies_each_family_rule(model, lo, hi, outcome):
    rep = pd.DataFrame({"sece": [(lo + hi) / 2], "sece_lo": [lo], "sece_hi": [hi]}, index=[model])
    assert claims.calibration_by_model(rep).loc[model, "verdict"] == outcome


def test_a_model_of_unknown_family_is_not_judged():
    rep = pd.DataFrame({"sece": [0.0], "sece_lo": [-0.01], "sece_hi": [0.01]}, index=["resnet18"])
    with pytest.raises(ValueError, match="unknown model 'resnet18'"):
        claims.calibration_by_model(rep)


def _travel(conf, eps, status=None):
    status = status if status is not None else np.where(np.isnan(eps), "never", "crossed")
    return pd.DataFrame({"index": np.arange(len(conf)), "confidence": conf, "eps": eps,
                         "status": pd.Categorical(status, categories=["crossed", "never", "misclassified_at_start"])})


@pytest.mark.parametrize("factor, outcome", [(2.0, "holds"), (0.5, "opposite"), (1.0, "inconclusive")])
def test_boundary_claim(factor, outcome):
    g = np.random.default_rng(2)
    frames = {}
    for m, f in FAMS.items():
        conf = g.uniform(0.3, 1.0, N)
        eps = 0.05 * conf * g.lognormal(0, 0.3, N) * (factor if f == "Transformer" else 1.0)
        frames[m] = _travel(conf, eps)
    r = claims.boundary_claim(frames, FAMS)
    assert r["verdict"] == outcome and r["lo"] <= r["estimate"] <= r["hi"]
    assert r["estimate"] == pytest.approx(factor, rel=0.2)
    bands = claims.boundary_bands(frames, FAMS)
    assert bands.band.tolist() == ["[0, 0.5]", "(0.5, 0.7]", "(0.7, 0.9]", "(0.9, 0.99]", "(0.99, 1]"]
    assert (bands["n CNN"] + bands["n Transformer"]).sum() == 4 * N


def test_boundary_compares_within_bands_not_across_them():
    # ε* = confidence for every model; the Transformers just have more confident images. Pooled over
    # "confidence ≤ 0.9" they look farther (a composition effect); within bands they are not.
    g = np.random.default_rng(3)
    frames = {m: _travel(c, c.copy()) for m, c in
              ((m, g.uniform(0.3, 0.9, N) if f == "CNN" else g.uniform(0.7, 0.9, N)) for m, f in FAMS.items())}
    pooled = {f: np.median(np.concatenate([frames[m].eps for m in FAMS if FAMS[m] == f]))
              for f in ("CNN", "Transformer")}
    assert pooled["Transformer"] / pooled["CNN"] > 1.25
    r = claims.boundary_claim(frames, FAMS)
    assert r["estimate"] == pytest.approx(1.0, abs=0.05) and r["verdict"] == "inconclusive"


def test_boundary_weights_bands_by_both_families_counts():
    # band (0.5, 0.7]: Transformers 4× farther, but only 2 Transformer images there; band (0.7, 0.9]: equal,
    # with many images of both. A pooled-count weight would still give the first band a large say (n_C large);
    # n_C·n_T/(n_C + n_T) gives it almost none.
    conf = {f: np.r_[np.full(300, 0.6), np.full(300, 0.8)] for f in ("CNN", "Transformer")}
    conf["Transformer"] = np.r_[np.full(2, 0.6), np.full(598, 0.8)]
    frames = {}
    for m, f in FAMS.items():
        c = conf[f]
        eps = np.where(c < 0.7, 0.01 * (4 if f == "Transformer" else 1), 0.05)
        frames[m] = _travel(c, eps)
    r = claims.boundary_claim(frames, FAMS, n_boot=200)
    w1, w2 = 600 * 4 / 604, 600 * 1196 / 1796  # pooled counts over two models per family
    assert r["estimate"] == pytest.approx(np.exp(w1 * np.log(4) / (w1 + w2)), rel=1e-6)


def test_boundary_leaves_out_images_misclassified_at_the_start():
    conf = np.full(N, 0.6)
    status = np.where(np.arange(N) < 100, "misclassified_at_start", "crossed")
    eps = np.where(status == "crossed", 0.1, np.nan)
    frames = {m: _travel(conf, eps * (2 if f == "Transformer" else 1), status) for m, f in FAMS.items()}
    bands = claims.boundary_bands(frames, FAMS, n_boot=100)
    assert bands["n CNN"].sum() == 2 * (N - 100) and bands.loc[1, "ratio"] == pytest.approx(2.0)


def test_boundary_counts_never_as_far_and_no_low_confidence_as_no_data():
    conf = np.full(N, 0.6)
    eps_c = np.full(N, 0.1)
    eps_t = np.where(np.arange(N) % 4 == 0, 0.1, np.nan)  # three quarters never cross: median ∞
    frames = {m: _travel(conf, eps_c if f == "CNN" else eps_t) for m, f in FAMS.items()}
    r = claims.boundary_claim(frames, FAMS)
    assert r["estimate"] == np.inf and r["verdict"] == "holds"
    both_far = {m: _travel(conf, np.full(N, np.nan)) for m in FAMS}  # no model ever crosses: no difference seen
    r = claims.boundary_claim(both_far, FAMS)
    assert r["estimate"] == 1.0 and r["verdict"] == "inconclusive"
    high = {m: _travel(np.full(N, 0.999), eps_c) for m in FAMS}
    assert claims.boundary_claim(high, FAMS)["verdict"] == "no data"
    with pytest.raises(ValueError, match="no confidence band"):
        claims.boundary_claim(high, FAMS, threshold=0.3)


def test_spearman_resampled_matches_pandas():
    g = np.random.default_rng(4)
    x = np.round(g.uniform(size=60), 1)  # ties
    y = np.where(g.uniform(size=60) < 0.2, np.inf, x + g.normal(0, 0.2, 60))
    idx = g.integers(0, 60, size=(5, 60))
    got = claims.spearman(x, y)(idx)
    ref = [pd.Series(x[i]).rank().corr(pd.Series(y[i]).rank()) for i in idx]
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_rank_correlation_rows():
    g = np.random.default_rng(5)
    frames = {}
    for m, f in FAMS.items():
        conf = g.uniform(0.3, 1.0, N)
        eps = conf * 0.1 + g.normal(0, 0.01 if f == "CNN" else 0.2, N) ** 2
        frames[m] = _travel(conf, eps)
    t = claims.rank_correlation(frames, FAMS)
    assert (t.loc[["resnet", "mobilenetv2"], "verdict"] == "holds").all()
    assert t.loc["CNN − Transformer", "verdict"] == "holds" and t.loc["CNN − Transformer", "rho"] > 0.3
    assert ((t.lo <= t.rho) & (t.rho <= t.hi)).all()
    row = claims.rank_correlation_claim(frames, FAMS)
    assert row["verdict"] == "holds" and row["estimate"] == t.loc["CNN − Transformer", "rho"]
    assert "resnet +" in row["note"]


def _theta(mean_deg, n_images=30, seed=0, spread=0.5):
    g = np.random.default_rng(seed)
    return torch.from_numpy(np.radians(mean_deg + spread * g.standard_normal((2, n_images, 5))))


@pytest.mark.parametrize("cnn, tr, verdict", [(2.0, 6.0, "holds"), (6.0, 2.0, "opposite"), (4.0, 4.0, "inconclusive")])
def test_family_ratio_verdicts(cnn, tr, verdict):
    th = {m: _theta(cnn if f == "CNN" else tr, seed=i) for i, (m, f) in enumerate(FAMS.items())}
    r = claims.family_ratio(th, FAMS)
    assert r["verdict"] == verdict and r["lo"] <= r["ratio"] <= r["hi"] and r["n_images"] == 30
    assert r["ratio"] == pytest.approx(tr / cnn, rel=0.05)
    assert claims.curvature_theta_claim(th, FAMS)["verdict"] == verdict


def test_family_ratio_rejects_degenerate_input():
    with pytest.raises(ValueError, match="both families"):
        claims.family_ratio({"resnet": _theta(2.0)}, FAMS)
    with pytest.raises(ValueError, match="same images"):
        claims.family_ratio({"resnet": _theta(2.0), "vit": _theta(2.0, n_images=7)}, FAMS)
    nan = _theta(2.0)
    nan[:, 3] = float("nan")  # an image with no defined θ (a path that does not move) is skipped, not a crash
    assert np.isfinite(claims.family_ratio({"resnet": nan, "vit": _theta(4.0)}, FAMS)["ratio"])


@pytest.mark.parametrize("cnn, tr, outcome", [(0.0, 30.0, "holds"), (30.0, 0.0, "opposite"),
                                              (5.0, 5.0, "inconclusive")])
def test_omega_gap(cnn, tr, outcome):
    g = np.random.default_rng(6)
    res = {m: {"omega": torch.from_numpy(np.abs((cnn if f == "CNN" else tr) + g.normal(0, 1, (2, 20, 6)))
                                        * ((cnn if f == "CNN" else tr) > 0))}
           for m, f in FAMS.items()}
    r = claims.omega_gap(res, FAMS)
    assert r["verdict"] == outcome and r["lo"] <= r["estimate"] <= r["hi"]
    # CNNs with ω exactly 0: the rule cannot say "opposite", and the row says so (not evidence)
    assert bool(r["design"]) == (cnn == 0.0) and ("cannot" in r["design"] if cnn == 0.0 else True)


def test_omega_note_names_cnn_variants_that_bend_like_transformers():
    g = np.random.default_rng(8)
    res = {m: {"omega": torch.from_numpy(np.abs(g.normal(30.0, 1, (1, 10, 6))) * (f == "Transformer"))}
           for m, f in FAMS.items()}
    fams = {**FAMS, "resnet_gelu": "CNN"}
    r = claims.omega_gap(res, fams, variants={"resnet_gelu": {"omega": torch.full((1, 10, 6), 25.0)}})
    assert "resnet_gelu (ReLU → GELU) 25" in r["note"] and "follows the components" in r["note"]
    nan = {m: {"omega": v["omega"].clone()} for m, v in res.items()}
    nan["vit"]["omega"][:, 2] = float("nan")  # an image without ω is left out of vit's mean, not a crash
    assert np.isfinite(claims.omega_gap(nan, FAMS)["estimate"])


def _long(attn, relu, n_images=12, n_layers=4, seed=0, windows=None):
    """Per-sample bends: every model on the same images; Swin-like models have several windows per image."""
    g = np.random.default_rng(seed)
    windows = windows or {"swin": 3}
    rows = []
    for m, f in FAMS.items():
        comp, level = ("attention", attn) if f == "Transformer" else ("relu", relu)
        for k in range(n_layers):
            for i in range(n_images):
                for _ in range(windows.get(m, 1)):
                    rows.append({"model": m, "component": comp, "layer": f"b{k}", "sample": i,
                                 "bend": level * g.lognormal(0, 0.3)})
                rows.append({"model": m, "component": "conv", "layer": f"c{k}", "sample": i, "bend": 1e-9})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("attn, relu, outcome", [(0.2, 0.05, "holds"), (0.05, 0.2, "opposite"),
                                                  (0.1, 0.1, "inconclusive")])
def test_attention_claim(attn, relu, outcome):
    long = _long(attn, relu)
    r = claims.attention_claim(long, FAMS)
    assert r["verdict"] == outcome and r["n"] == 12
    assert r["estimate"] == pytest.approx(attn / relu, rel=0.3)
    # the estimate is the chapter's statistic: medians over images, then layers, then models
    per_layer = long.groupby(["model", "component", "layer"]).bend.median().reset_index()
    med = {m: per_layer[(per_layer.model == m) & per_layer.component.isin(["attention", "relu"])].bend.median()
           for m in FAMS}
    assert r["estimate"] == pytest.approx(np.median([med["vit"], med["swin"]])
                                          / np.median([med["resnet"], med["mobilenetv2"]]))


def test_attention_claim_needs_the_components_and_whole_images():
    long = _long(0.1, 0.1)
    with pytest.raises(ValueError, match="'resnet' has no 'relu' layer"):
        claims.attention_claim(long[~((long.model == "resnet") & (long.component == "relu"))], FAMS)
    with pytest.raises(ValueError, match="same number of rows"):
        claims.attention_claim(long.drop(index=long[long.model == "swin"].index[0]), FAMS)
    with pytest.raises(ValueError, match="not a per-sample attention frame"):
        claims.attention_claim(long.drop(columns="sample"), FAMS)
    zero = long.assign(bend=np.where(long.component == "relu", 0.0, long.bend))
    assert claims.attention_claim(zero, FAMS)["verdict"] == "no data"  # no CNN bend: no ratio


def _jumps(direct, jump, ctrl_point, ctrl_direction, seed=0, jump_size=0.05):
    """Jump frames on the same N images, every route with its own noise (so pairing matters)."""
    g = np.random.default_rng(seed)
    out = {}
    for m in FAMS:
        image = g.lognormal(0, 0.5, N)  # per-image difficulty, shared by the routes of one image
        e = {r: v * image * g.lognormal(0, 0.1, N) for r, v in
             (("direct", direct), ("jump", jump), ("ctrl_point", ctrl_point), ("ctrl_direction", ctrl_direction))}
        cols = {"index": np.arange(N), "psnr_jump_only": np.full(N, -20 * np.log10(jump_size))}
        for r, v in e.items():
            cols[f"eps_{r}"] = v
            cols[f"total_{r}"] = np.hypot(v, jump_size) if r in ("jump", "ctrl_point") else v
        out[m] = pd.DataFrame(cols)
    return out


@pytest.mark.parametrize("eps, outcome", [
    ((0.5, 0.005, 0.4, 0.45), "holds"),  # the jump route is short, and neither ingredient alone does it
    ((0.5, 0.005, 0.005, 0.45), "inconclusive"),  # the jumped point alone explains it (start-point control as short)
    ((0.5, 0.005, 0.4, 0.005), "inconclusive"),  # the new direction alone explains it (direction control as short)
    ((0.02, 0.01, 0.02, 0.02), "opposite"),  # the jump costs more than the FGSM travel saves
])
def test_random_jump_claim(eps, outcome):
    r = claims.random_jump_claim(_jumps(*eps), FAMS)
    assert r["verdict"] == outcome and r["lo"] <= r["estimate"] <= r["hi"] and r["n"] == 2 * N
    assert r["hi"] > r["lo"]  # routes carry their own noise: a real interval
    t = claims.jump_ratios(_jumps(*eps))
    assert set(t.group) == set(FAMS) and set(t.ratio) == set(claims.JUMP_RATIOS)


def test_random_jump_note_says_when_the_jump_alone_decides():
    r = claims.random_jump_claim(_jumps(0.02, 0.01, 0.02, 0.02, jump_size=0.05), FAMS)
    share = int(r["note"].split("On ")[1].split("%")[0])
    assert share > 90  # ε* ~ 0.02 < the jump's 0.05 on nearly every image
    assert f"{share}%" in r["design"] and "fixed by the jump size" in r["design"]  # not evidence
    assert claims.random_jump_claim(_jumps(0.5, 0.005, 0.4, 0.45), FAMS)["design"] == ""  # ε* ≫ ε_r: evidence


def test_the_tally_counts_only_rows_that_are_evidence():
    c = CLAIMS["calibration (gap)"]
    rows = pd.DataFrame([c.judge(-0.1, -0.2, -0.05, 10), c.judge(0.1, 0.05, 0.2, 10, design="fixed by design."),
                         c.judge(-0.1, -0.3, 0.1, 10)])
    t = claims.tally(rows)
    assert t == {"counts": {"holds": 1, "inconclusive": 1}, "evidence": 2, "left_out": ["calibration (gap)"]}
    md = claims.ledger_markdown(rows)
    assert md.count("(not evidence †)") == 1 and "† *Not evidence:* fixed by design." in md
    assert "Left out of this count (1, marked †)" in claims.tally_markdown(rows)
    with pytest.raises(ValueError, match="not a ledger"):
        claims.tally(rows.drop(columns="design"))


def test_random_jump_claim_without_pairs_is_no_data():
    j = _jumps(0.5, 0.005, 0.4, 0.45)
    for df in j.values():
        df["total_jump"] = np.nan  # nothing crossed after the jump
    assert claims.random_jump_claim(j, FAMS)["verdict"] == "no data"


def test_ledger_markdown_links_each_claim_to_its_chapter():
    row = CLAIMS["boundary (low confidence)"].judge(1.5, 1.2, 1.9, 1234, measure="m", rule="rule", note="a note")
    md = claims.ledger_markdown(pd.DataFrame([row]))
    assert "| 1. [boundary (low confidence)](boundary.md) | **holds** | 1.5 [1.2, 1.9] | 1,234 | m |" in md
    assert md.endswith("*Rule:* rule. *Note:* a note")
    with pytest.raises(ValueError, match="not a ledger"):
        claims.ledger_markdown(pd.DataFrame({"claim": ["x"]}))


@pytest.mark.parametrize("expect, interval, outcome", [
    (">", (1.2, 1.9), "holds"), (">", (0.2, 0.9), "opposite"), (">", (0.8, 1.3), "inconclusive"),
    ("<", (0.2, 0.9), "holds"), ("<", (1.2, 1.9), "opposite"), ("<", (float("nan"), 1.0), "no data")])
def test_a_claim_judges_its_interval_against_its_no_effect_value(expect, interval, outcome):
    c = Claim("toy", "Toy effects are large", "intro", expect, 1.0, "toy ratio", "rule in words")
    row = c.judge(1.0, *interval, 50, note="n", extra=3)
    assert row["verdict"] == outcome and row["extra"] == 3 and row["measure"] == "toy ratio"
    assert set(claims.ROW) <= set(row) and row["paper"] == c.paper and row["chapter"] == "intro"


def test_a_claim_whose_controls_fail_is_not_called_holds():
    c = CLAIMS["random jump"]
    assert c.judge(0.5, 0.4, 0.6, 10, controls=("holds", "holds"))["verdict"] == "holds"
    assert c.judge(0.5, 0.4, 0.6, 10, controls=("holds", "inconclusive"))["verdict"] == "inconclusive"
    assert c.judge(1.5, 1.4, 1.6, 10, controls=("inconclusive",))["verdict"] == "opposite"


def test_a_claim_writes_its_verdict_sentence_from_the_row():
    c = CLAIMS["calibration (gap)"]
    s = c.sentence(c.judge(-0.0123, -0.02, -0.004, 100), SimpleNamespace(name="embedded"))
    assert s == ("On this profile (embedded), we measure sECE(CNNs) − sECE(Transformers), family means: -0.0123 "
                 "[-0.0200, -0.0040] (95 % interval, n = 100). The paper: \"CNNs are more overconfident than "
                 "Transformers (Figure 2)\" — **holds**.")
    assert "**opposite**" in c.sentence(c.judge(0.01, 0.005, 0.02, 100))
    with pytest.raises(ValueError, match="expect"):
        Claim("bad", "p", "c", "=", 0.0, "s", "r")


def test_a_claims_own_words_for_its_verdicts_and_the_fallback():
    c = CLAIMS["surgery (distance)"]
    assert c.reads_as("opposite") == "the travel is longer" and c.reads_as("holds") == "the travel is shorter"
    assert CLAIMS["calibration (gap)"].reads_as("holds") == "the paper's claim **holds**"
    for claim in CLAIMS.values():  # words only for verdicts that exist
        assert {v for v, _ in claim.reads} <= {"holds", "opposite", "inconclusive", "no data"}


def test_every_claim_names_an_existing_chapter_and_a_rule():
    chapters = {p.stem for p in (Path(__file__).resolve().parents[1] / "book").glob("*.md")}
    for name, c in CLAIMS.items():
        assert c.name == name and c.chapter in chapters and c.rule and c.statistic and c.paper


@pytest.mark.slow
def test_ledger_builds_on_the_smoke_profile(tmp_cache):
    from curvlib.config import get_profile

    t = claims.ledger(get_profile("smoke"), n_boot=100)
    assert t.claim.tolist() == list(claims.CLAIMS)
    assert set(t.verdict) <= {"holds", "opposite", "inconclusive", "no data"}
    assert set(claims.ROW) <= set(t.columns)
    assert "[calibration (CNNs)](calibration.md)" in claims.ledger_markdown(t)


@pytest.mark.parametrize("cnn, tr, outcome", [(0.05, 0.2, "holds"), (0.2, 0.05, "opposite"),
                                              (0.1, 0.1, "inconclusive")])
def test_flatness_gap(cnn, tr, outcome):
    g = np.random.default_rng(7)
    rows = [{"model": m, "image": i, "rho": (cnn if f == "CNN" else tr) + g.normal(0, 0.01)}
            for m, f in FAMS.items() for i in range(12)]
    r = claims.flatness_gap(pd.DataFrame(rows), FAMS)
    assert r["verdict"] == outcome and r["n"] == 12 and r["lo"] <= r["estimate"] <= r["hi"]
    with pytest.raises(ValueError, match="every model needs"):
        claims.flatness_gap(pd.DataFrame(rows[:-1]), FAMS)
    with pytest.raises(ValueError, match="not a mesh_flatness frame"):
        claims.flatness_gap(pd.DataFrame({"model": ["vit"]}), FAMS)


def test_new_helpers_name_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        claims.spearman(np.arange(3.0), np.arange(4.0))
    with pytest.raises(ValueError, match="contains NaN"):
        claims.spearman(np.array([0.1, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="family must be one of"):
        claims.calibration_family(_preds(dict.fromkeys(FAMS, 0.0)), "RNN", FAMS)
    with pytest.raises(ValueError, match="without a jump frame: deit"):
        claims.jump_ratios(_jumps(0.5, 0.005, 0.4, 0.45), {"T": ["vit", "deit"]})
    with pytest.raises(ValueError, match="both families .* got no models"):
        claims.calibration_gap({}, FAMS)


def test_a_sensitivity_result_joins_the_note_and_leaves_the_verdict():
    c = CLAIMS["boundary (low confidence)"]
    row = c.judge(1.5, 1.2, 1.9, 40, note="pooled.")
    other = c.judge(0.9, 0.7, 1.1, 40)
    out = sensitivity(row, other, "random directions")
    assert out["verdict"] == "holds"
    assert out["note"] == "pooled. Sensitivity — random directions: 0.90 [0.70, 1.10], inconclusive."


def test_cached_only_reads_what_is_cached_and_refuses_to_compute(tmp_cache):
    from curvlib import runner
    from curvlib.config import get_profile
    from curvlib.experiments.calibration import predictions

    p = get_profile("smoke")
    first = predictions("resnet", p, n=5)
    with runner.cached_only():
        assert predictions("resnet", p, n=5).equals(first)
        with pytest.raises(runner.NotCached, match="calibration of resnet on profile 'smoke'"):
            predictions("resnet", p, n=6)
    assert len(predictions("resnet", p, n=6)) == 6  # outside the context it computes again


def test_other_profiles_are_read_from_the_cache_only_and_shown_side_by_side(tmp_cache):
    from curvlib.config import get_profile

    p = get_profile("embedded")
    assert claims.other_ledgers(p) == {}  # no other profile has a cache here
    (p.cache_dir / "smoke").mkdir(parents=True)
    others = claims.other_ledgers(p)
    assert list(others) == ["smoke"] and others["smoke"].startswith("not all of its results are cached")
    text = claims.profiles_markdown("embedded", others)
    assert "Profile `smoke` has a cache here but not all" in text and "--profile paper" in text
    c = CLAIMS["calibration (gap)"]
    a = pd.DataFrame([c.judge(-0.1, -0.2, -0.05, 10)])
    b = pd.DataFrame([c.judge(0.1, 0.05, 0.2, 10, design="fixed.")])
    t = claims.side_by_side({"embedded": a, "paper": b})
    assert t.loc["calibration (gap)", "embedded"] == "holds (-0.1 [-0.2, -0.05])"
    assert t.loc["calibration (gap)", "paper"].startswith("opposite †")
    assert "beside `embedded`'s" in claims.profiles_markdown("embedded", {"paper": b})
    assert "not cached here" not in claims.profiles_markdown("embedded", {"paper": b})


@pytest.mark.parametrize("expect, interval, seeds, outcome", [
    (">", (1.2, 1.9), (1.3, 1.5, 1.1), "holds"),  # every seed on the predicted side
    (">", (1.2, 1.9), (1.3, 0.9, 1.4), "inconclusive"),  # one seed says the other way
    (">", (0.2, 0.9), (0.5, 0.7, 0.8), "opposite"),
    (">", (0.2, 0.9), (0.5, 1.2, 0.8), "inconclusive"),
    ("<", (0.2, 0.9), (0.5, 0.7, 0.8), "holds"),
    ("<", (0.2, 0.9), (0.5, 1.0, 0.8), "inconclusive"),  # a seed exactly at no effect is not a sign
    (">", (0.8, 1.3), (1.3, 1.5, 1.1), "inconclusive"),  # seeds cannot turn an undecided interval into a verdict
])
def test_a_verdict_needs_every_seeds_sign(expect, interval, seeds, outcome):
    c = Claim("toy", "Toy effects are large", "intro", expect, 1.0, "toy ratio", "rule in words")
    row = c.judge(1.0, *interval, 50, seeds=seeds)
    assert row["verdict"] == outcome and row["seeds"] == seeds
