"""The seed-pooled ledger (curvlib.claims.seeded): the two-stage interval, per-seed signs, the replicates."""
import json

import numpy as np
import pandas as pd
import pytest

from curvlib import models, stats
from curvlib.claims import seeded
from curvlib.claims.records import CLAIMS
from curvlib.config import get_profile

FAM = {"c1": "CNN", "c2": "CNN", "t1": "Transformer", "t2": "Transformer"}


def _synthetic(tau: float, n: int = 300, seeds=(0, 1, 2), rng_seed: int = 0, flip: int | None = None):
    """Per (model, seed): per-image values = family mean + a seed effect (sd ``tau``) + image noise shared by
    every network (sd 1) + own noise (sd 0.3). ``flip``: that seed's Transformers are the more overconfident."""
    rng = np.random.default_rng(rng_seed)
    shared = rng.normal(0, 1, n)
    out = {}
    for m, f in FAM.items():
        out[m] = {}
        for k in seeds:
            mu = -0.2 if f == "CNN" else (-0.25 if k == flip else 0.0)
            out[m][k] = mu + rng.normal(0, tau) + shared + rng.normal(0, 0.3, n)
    return out


def _gap_judge(results, families, n_boot=1000, seed=0):
    """A claim row the way the ledger's claim functions make one: CNN − Transformer family means, paired."""
    cnn = np.mean([v for m, v in results.items() if families[m] == "CNN"], axis=0)
    tr = np.mean([v for m, v in results.items() if families[m] == "Transformer"], axis=0)
    d = cnn - tr
    est, lo, hi = stats.bootstrap(lambda i: d[i].mean(1), len(d), n_boot=n_boot, seed=seed)
    return [CLAIMS["calibration (gap)"].judge(est, lo, hi, len(d))]


def _hierarchical(results, n_boot=2000):
    vals = [np.stack([results[m][k] for k in sorted(results[m])]) for m in FAM]

    def gap(si, ii):
        r = [stats.resampled_means(v, s, i) for v, s, i in zip(vals, si, ii)]
        return (r[0] + r[1] - r[2] - r[3]) / 2

    return stats.hierarchical_bootstrap(gap, [len(v) for v in vals], n=vals[0].shape[1], n_boot=n_boot)


def test_pooled_interval_matches_the_two_stage_bootstrap_and_widens_with_the_seed_variance():
    widths = {}
    for tau in (0.0, 0.15):
        res = _synthetic(tau)
        row = seeded.pool(_gap_judge, res, FAM, draws=400, per_draw=5)[0]
        est, lo, hi = _hierarchical(res)
        assert row["estimate"] == pytest.approx(est)  # every replicate a network: the mean of the seeds' means
        assert abs((row["hi"] - row["lo"]) / (hi - lo) - 1) < 0.15, (row, (est, lo, hi))
        widths[tau] = row["hi"] - row["lo"]
    assert widths[0.15] > 2 * widths[0.0]  # the networks' own variance is inside the interval


def test_per_seed_estimates_and_the_sign_rule():
    res = _synthetic(0.0, flip=2)
    row = seeded.pool(_gap_judge, res, FAM, draws=100, per_draw=5)[0]
    direct = [_gap_judge({m: res[m][k] for m in FAM}, FAM, n_boot=20)[0]["estimate"] for k in (0, 1, 2)]
    assert row["seeds"] == pytest.approx(direct) and row["seed_ids"] == (0, 1, 2)
    assert direct[0] < 0 and direct[1] < 0 and direct[2] > 0  # the flipped seed says the other thing
    assert row["estimate"] < 0 and row["verdict"] == "inconclusive"
    clean = seeded.pool(_gap_judge, _synthetic(0.0), FAM, draws=100, per_draw=5)[0]
    assert clean["verdict"] == "holds" and all(s < 0 for s in clean["seeds"])
    assert "two-stage bootstrap" in clean["rule"] and clean["pooled_networks"] == 12


def test_pool_refuses_unequal_seeds_and_rows_it_cannot_trace():
    res = _synthetic(0.0)
    del res["t2"][2]
    with pytest.raises(ValueError, match="same seeds"):
        seeded.pool(_gap_judge, res, FAM)
    one = {m: {0: v[0]} for m, v in _synthetic(0.0).items()}
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seeded.pool(_gap_judge, one, FAM)

    def no_bootstrap(results, families, n_boot=1000, seed=0):
        return [CLAIMS["calibration (gap)"].judge(-0.1, -0.2, 0.0, 10)]

    with pytest.raises(RuntimeError, match="cannot be pooled"):
        seeded.pool(no_bootstrap, _synthetic(0.0), FAM, draws=3)


def test_recording_sees_every_bootstrap_and_only_inside_the_block():
    v = np.arange(10.0)
    with stats.recording() as log:
        stats.bootstrap(lambda i: v[i].mean(1), 10, n_boot=7)
        with stats.recording() as inner:
            stats.bootstrap(lambda i: v[i].max(1), 10, n_boot=3)
    stats.bootstrap(lambda i: v[i].min(1), 10, n_boot=3)
    assert [e["estimate"] for e in log] == [4.5, 9.0] and [len(e["values"]) for e in log] == [7, 3]
    assert log[0]["lo"] == pytest.approx(np.quantile(log[0]["values"], 0.025))
    assert [e["estimate"] for e in inner] == [9.0]


def test_every_ledger_claim_has_one_pooled_group():
    claims = [c for g in seeded.ROWS for c in g.claims]
    assert sorted(claims) == sorted(CLAIMS) and len(claims) == len(set(claims))


def _write_replicate(folder, name, seed, plan=True):
    from safetensors.torch import save_file

    f = folder / f"seed{seed}" / f"{name}.safetensors"
    f.parent.mkdir(parents=True, exist_ok=True)
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    net = models.build(name)
    save_file({k: v.contiguous().half() if v.is_floating_point() else v for k, v in net.state_dict().items()},
              str(f))
    card = {"seed": seed, "test_accuracy": 0.1, "sece": -0.01, "train_time_s": 60.0,
            "chosen": {"stage": 1, "epoch": 1, "val_accuracy": 0.1}}
    if plan:
        card["seed_plan"] = {"model": name, "seed": seed}
    f.with_suffix(".json").write_text(json.dumps(card))
    return f


def test_seed_replicates_are_the_cards_with_a_seed_plan(tmp_path):
    a = _write_replicate(tmp_path, "resnet", 0)
    _write_replicate(tmp_path, "resnet", 1, plan=False)  # a legacy replicate: not the recipe's
    assert models.seed_replicates("resnet", tmp_path) == {0: a}
    card = json.loads(a.with_suffix(".json").read_text())
    card["seed_plan"]["seed"] = 3
    a.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="seed plan is for 'resnet' seed 3"):
        models.seed_replicates("resnet", tmp_path)


def test_seeded_ledger_end_to_end_on_the_smoke_profile(tmp_path):
    for m in ("resnet", "mobilenetv2", "vit", "swin"):
        for k in (0, 1):
            _write_replicate(tmp_path / "seeds", m, k)
    p = get_profile("smoke", cache_dir=tmp_path / "cache", seed_dir=tmp_path / "seeds", env={})
    table = seeded.replicate_table(seeded.replicates(p))
    assert len(table) == 8 and set(table.seed) == {0, 1} and (table.train_min == 1.0).all()
    assert seeded.missing(seeded.replicates(p), seeds=(0, 1, 2)) == [f"{m} seed 2" for m in p.models]
    lines = []
    got = seeded.seeded_ledger(p, keys=("calibration",), draws=20, n_boot=100, progress=lines.append)
    assert list(got.claim) == ["calibration (CNNs)", "calibration (Transformers)", "calibration (gap)"]
    assert all(len(s) == 2 for s in got.seeds) and lines and "8 networks" in lines[0]
    assert isinstance(got, pd.DataFrame) and (got.pooled_networks == 8).all()
    reps = seeded.replicates(p)
    assert seeded.ready(reps) == [] and seeded.ready(reps, minimum=2) == [0, 1]
    text = seeded.status_markdown(reps, p.seed_dir)
    assert text.startswith("8 seed replicate(s) of the 4 models") and "resnet seed 2" in text
    assert "not computed" in text and "--seeds 0,1,2" in text
    assert "not computed" not in seeded.status_markdown(reps, p.seed_dir, wanted=(0, 1), minimum=2)
    single = got.assign(verdict=["holds", "opposite", "inconclusive"]).drop(columns=["seeds"])
    cmp = seeded.compare(single, got)
    assert list(cmp.index) == list(got.claim) and cmp["per seed"].str.count(",").eq(1).all()
    assert (cmp.changed == ["" if a == b else f"{a} → {b}" for a, b in zip(single.verdict, got.verdict)]).all()
    with pytest.raises(ValueError, match="unknown row group"):
        seeded.seeded_ledger(p, keys=("nope",))
    empty = get_profile("smoke", cache_dir=tmp_path / "cache", seed_dir=tmp_path / "none", env={})
    with pytest.raises(ValueError, match="no seed replicates of resnet"):
        seeded.seeded_ledger(empty)


def test_shipped_seed_replicates_are_what_their_cards_say():
    """Every shipped seed replicate loads as its model, stored in float16, its card's seed its folder's, and
    predicts the first 1,000 test images about as well as its card says of the whole test set."""
    from curvlib import config, data, train

    reps = {m: models.seed_replicates(m, config.SEED_DIR) for m in config.EMBEDDED_MODELS}
    if not any(reps.values()):
        pytest.skip("no seed replicates shipped")
    x, y = data.fashion_mnist("test", n=1000)
    for m, ws in reps.items():
        for k, w in ws.items():
            net = models.load_embedded(m, w)
            assert net.card["seed"] == k and net.card["weights_dtype"].startswith("float16"), w
            acc = train.evaluate(net, x, y)["accuracy"]
            assert abs(acc - net.card["test_accuracy"]) < 0.03, (w, acc, net.card["test_accuracy"])


def test_changes_markdown_names_each_changed_verdict_and_why():
    c = CLAIMS
    single = pd.DataFrame([c["calibration (gap)"].judge(-0.005, -0.009, -0.001, 100),
                           c["curvature (θ)"].judge(0.3, 0.28, 0.33, 10),
                           c["attention"].judge(0.45, 0.41, 0.5, 16),
                           c["calibration (Transformers)"].judge(-0.004, -0.008, 0.0001, 100)])
    pooled = pd.DataFrame([c["calibration (gap)"].judge(-0.001, -0.005, 0.003, 100, seeds=(-0.001, -0.002, 0.001)),
                           c["curvature (θ)"].judge(0.3, 0.24, 0.34, 10, seeds=(0.28, 0.27, 1.2)),
                           c["attention"].judge(0.47, 0.42, 0.55, 16, seeds=(0.5, 0.47, 0.48)),
                           c["calibration (Transformers)"].judge(-0.008, -0.012, -0.003, 100,
                                                                 seeds=(-0.008, -0.006, -0.01))])
    text = seeded.changes_markdown(single, pooled)
    assert text.startswith("Pooling the seeds changes 3 of the 4 verdicts (4 are evidence, 0 marked †): ")
    assert ("**calibration (gap)** (holds → inconclusive: the pooled interval contains 0; seed estimate(s) +0.0010 "
            "on the other side; the shipped models' -0.0050 lies outside the seeds' range)") in text
    assert "**curvature (θ)** (opposite → inconclusive: the interval excludes 1 but not every seed's estimate" in text
    assert "seed estimate(s) 1.20 on the other side; the shipped models' 0.30 lies inside" in text
    assert ("**calibration (Transformers)** (inconclusive → opposite: the pooled interval lies below 0; the shipped "
            "models' -0.0040 lies outside the seeds' range)") in text
    assert "attention" not in text
    same = seeded.changes_markdown(single, single.assign(seeds=[()] * 4))
    assert same == "Pooling the seeds changes none of the 4 verdicts."


def test_replicates_theta_uses_fewer_directions_and_the_sizes_sentence_says_so(monkeypatch):
    p = get_profile("embedded", env={})
    seen = {}

    def fake(m, prof, *, kind, checkpoint, n_directions):
        seen[m] = (kind, checkpoint, n_directions)
        return {"theta": n_directions}

    monkeypatch.setattr(seeded, "theta_experiment", fake)
    group = next(g for g in seeded.ROWS if g.key == "curvature (θ)")
    assert group.load("vit", p, "w.safetensors", None) == seeded.SEED_DIRECTIONS < p.n_directions
    assert seen["vit"] == ("random", "w.safetensors", seeded.SEED_DIRECTIONS)
    assert group.load("vit", p.replace(n_directions=3), "w.safetensors", None) == 3  # never more than the profile's
    text = seeded.sizes_markdown(p)
    assert f"{seeded.SEED_DIRECTIONS} instead of {p.n_directions} per image" in text
    assert f"same {p.n_theta_images} images as the shipped models'" in text
    assert "the same per image" in seeded.sizes_markdown(p.replace(n_directions=seeded.SEED_DIRECTIONS))


def test_replicates_robustness_is_measured_only_where_the_row_reads_it(monkeypatch):
    from curvlib.experiments.robustness import LEDGER_EPS

    seen = {}

    def fake(m, prof, *, kind, checkpoint, eps):
        seen[kind] = eps
        return kind

    monkeypatch.setattr(seeded, "robustness_experiment", fake)
    p = get_profile("embedded", env={})
    for kind in ("random", "fgsm"):
        group = next(g for g in seeded.ROWS if g.key == f"robustness ({kind})")
        assert group.load("vit", p, "w.safetensors", None) == kind
        assert seen[kind] == (0.0, LEDGER_EPS[kind])
