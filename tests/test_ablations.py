import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from curvlib import config, models
from curvlib.claims import ablations
from curvlib.config import get_profile


@pytest.fixture
def tiny_checkpoints(tmp_path):
    """Two resnet weight sets: an epoch-1 snapshot and 'final' weights trained for 2 epochs."""
    ck, md = tmp_path / "checkpoints", tmp_path / "models"
    ck.mkdir(), md.mkdir()
    for seed, path, card in [(1, ck / "resnet_ep1.safetensors", {"epoch": 1}),
                             (2, md / "resnet.safetensors", {"epochs_trained": 2})]:
        torch.manual_seed(seed)
        m = models.build("resnet")
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
        path.with_suffix(".json").write_text(json.dumps(card))
    (ck / "resnet_ep1_extra.safetensors").write_text("not a snapshot name")  # ignored
    return ck, md


def test_theta_is_measured_on_the_first_half_of_the_travel_images(tiny_checkpoints, tmp_cache, monkeypatch):
    profile = get_profile("smoke")
    assert [ablations.theta_images(profile.replace(n_travel=n)) for n in (2, 4, 9, 40, 500)] == [2, 4, 4, 20, 250]
    seen = {}
    real = ablations.theta_experiment

    def spy(name, prof, **kw):
        seen["n"] = prof.n_theta_images
        return real(name, prof, **kw)

    monkeypatch.setattr(ablations, "theta_experiment", spy)
    ck, md = tiny_checkpoints
    row = ablations.curvedness("resnet", profile.replace(n_travel=12), checkpoint=md / "resnet.safetensors")
    assert seen["n"] == 6
    travel = ablations.travel_experiment("resnet", profile.replace(n_travel=12), kind="fgsm",
                                         checkpoint=md / "resnet.safetensors")
    assert len(travel) == 12 and row["n_crossed"] == int((travel.status == "crossed").sum())  # ε*: every image


def test_epoch_checkpoints_are_sorted_with_final(tiny_checkpoints):
    ck, md = tiny_checkpoints
    got = ablations.epoch_checkpoints("resnet", ck, md)
    assert [e for e, _ in got] == [1, 2] and got[-1][1] == md / "resnet.safetensors"
    with pytest.raises(FileNotFoundError, match="no epoch snapshots"):
        ablations.epoch_checkpoints("vit", ck, md / "nowhere")


def test_training_dynamics_on_two_tiny_checkpoints(tiny_checkpoints, tmp_cache):
    ck, md = tiny_checkpoints
    profile = get_profile("smoke")
    df = ablations.training_dynamics("resnet", profile.replace(checkpoint_dir=ck, model_dir=md))
    assert df.epoch.tolist() == [1, 2] and df.final.tolist() == [False, True]
    assert ((df.accuracy >= 0) & (df.accuracy <= 1)).all() and (df.ece >= df.sece.abs() - 1e-12).all()
    assert np.isfinite(df.theta_mean).all() and (df.theta_q1 <= df.theta_median).all()
    assert (df.theta_median <= df.theta_q3).all()
    # different weights → different cached results (the checkpoint is part of the cache key)
    assert df.accuracy.iloc[0] != df.accuracy.iloc[1] or df.theta_mean.iloc[0] != df.theta_mean.iloc[1]
    assert ((df.theta_ci_lo <= df.theta_mean) & (df.theta_mean <= df.theta_ci_hi)).all()

    import matplotlib

    matplotlib.use("Agg")
    from curvlib import plots

    axes = plots.dynamics_figure(df)
    assert len(axes) == 4 and len([ln for ln in axes[3].lines if len(ln.get_xdata())]) == 1  # one accuracy line


def test_variant_parents_use_the_same_recipe():
    """The shipped variant was trained with exactly the recipe of the parent weights it is compared
    with (read from the weights' cards: the ResNet's own, the ViT's first training stage)."""
    emb = get_profile("embedded", env={})
    for v, sp in models.variants().items():
        name, path = ablations.parent_weights(v, emb)
        assert name == sp.parent and path.exists()
        parent_card = json.loads((emb.model_dir / f"{sp.parent}.json").read_text())
        stages = [s["recipe"] for s in parent_card.get("earlier_stages", [])] + [parent_card["recipe"]]
        parent_recipe = next(r for r in stages if r["epochs"] == sp.recipe["epochs"])
        variant_recipe = json.loads((emb.model_dir / f"{v}.json").read_text())["recipe"]
        strip = lambda r: {k: x for k, x in r.items() if k not in ("model", "init_from")}  # noqa: E731
        assert strip(variant_recipe) == strip(parent_recipe), v
    assert ablations.parent_weights("vit_bn", emb)[1].name == "vit_ep15.safetensors"
    with pytest.raises(ValueError, match="not a component-swap variant"):
        ablations.parent_weights("vit", emb)


def test_component_swap_table_and_figure(tmp_path, tmp_cache, monkeypatch, fashion_train_root):
    """A briefly trained variant next to its parent: table rows, missing list, figure."""
    import shutil

    import matplotlib

    matplotlib.use("Agg")
    from curvlib import plots
    from curvlib.train import train

    md = tmp_path / "models"
    md.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(config.MODEL_DIR / f"resnet{suffix}", md / f"resnet{suffix}")
    train("resnet_gelu", epochs=1, subset=256, test_subset=200, max_steps=2, out=md, data_root=fashion_train_root,
          checkpoints=tmp_path / "ck", state_dir=tmp_path / "state", snapshots=(), progress=False, val_size=0)
    seeds = tmp_path / "seeds" / "seed3"
    seeds.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):  # a stand-in replicate: the epoch-1 snapshot
        shutil.copy(config.CHECKPOINT_DIR / f"resnet_ep1{suffix}", seeds / f"resnet{suffix}")
    table, missing = ablations.component_swaps(get_profile("smoke", model_dir=md, seed_dir=tmp_path / "seeds"))
    assert sorted(missing) == ["resnet_ln", "vit_bn", "vit_relu"]
    assert table.model.tolist() == ["resnet"] * 2 + ["resnet_gelu"] and set(table.parent) == {"resnet"}
    assert table.label.tolist() == ["resnet", "resnet seed 3", "resnet_gelu"]
    assert table.swap.tolist() == ["— (parent)", "— (parent, seed 3)", "ReLU → GELU"]
    assert table.swap_from.isna().tolist() == [True, True, False]  # parents and replicates swap nothing
    assert (table.swap_from.iloc[2], table.swap_to.iloc[2]) == ("ReLU", "GELU")
    assert table.seed.tolist() == [0, 3, 0] and table.epochs.iloc[[0, 2]].tolist() == [12, 1]
    assert table.accuracy.iloc[0] > table.accuracy.iloc[2]  # 2 steps of training vs the shipped parent
    assert table.accuracy.iloc[0] != table.accuracy.iloc[1]  # the replicate's own weights were measured
    assert ((table.theta_ci_lo <= table.theta_mean) & (table.theta_mean <= table.theta_ci_hi)).all()
    eff = ablations.swap_effects(table)
    assert eff.variant.tolist() == ["resnet_gelu"]
    assert eff.seed_theta.iloc[0] == pytest.approx(abs(table.theta_mean.iloc[1] - table.theta_mean.iloc[0]))
    bnd = ablations.swap_boundary(table, get_profile("smoke", model_dir=md))
    assert set(bnd.label) == set(table.label)
    assert (bnd.groupby("label").n.sum() == table.set_index("label").n_crossed).all()
    axes = plots.swap_figure(table, boundary=bnd)
    assert len(axes) == 3 and len(axes[0].patches) == 3 and axes[0].patches[1].get_hatch() == "//"
    assert len([ln for ln in axes[2].lines if len(ln.get_xdata())]) == 3  # one line per row


def _swap_row(model, parent, swap, theta, eps, ci=0.5, seed=0):
    role = "parent" if swap == "— (parent)" else "replicate" if swap.startswith("—") else "variant"
    a, b = (t.strip() for t in swap.split("→")) if role == "variant" else (None, None)
    return {"model": model, "parent": parent, "role": role, "swap": swap, "swap_from": a, "swap_to": b,
            "seed": seed, "accuracy": 0.9, "sece": -0.01,
            "theta_mean": theta, "theta_ci_lo": theta - ci, "theta_ci_hi": theta + ci,
            "eps_median": eps, "eps_median_low": eps / 2}


def test_swap_effects_arithmetic_and_yardsticks():
    import pandas as pd

    t = pd.DataFrame([
        _swap_row("resnet", "resnet", "— (parent)", 15.0, 0.020),
        _swap_row("resnet", "resnet", "— (parent, seed 1)", 16.0, 0.023, seed=1),
        _swap_row("resnet", "resnet", "— (parent, seed 2)", 14.0, 0.019, seed=2),
        _swap_row("resnet_ln", "resnet", "BN → LN", 20.0, 0.030),
        _swap_row("resnet_gelu", "resnet", "ReLU → GELU", 15.6, 0.021),
        _swap_row("vit", "vit", "— (parent)", 8.0, 0.020),
        _swap_row("vit_bn", "vit", "LN → BN", 6.0, 0.022, ci=2.0),
    ])
    e = ablations.swap_effects(t).set_index("variant")
    assert list(e.index) == ["resnet_ln", "resnet_gelu", "vit_bn"]
    assert e.d_theta.tolist() == pytest.approx([5.0, 0.6, -2.0])
    assert e.d_eps.tolist() == pytest.approx([0.010, 0.001, 0.002])
    assert e.d_eps_low["resnet_ln"] == pytest.approx(0.005)
    # the yardstick is the spread (max − min) of the parent's three seeds
    assert e.seed_theta["resnet_ln"] == pytest.approx(2.0) and e.seed_eps["resnet_gelu"] == pytest.approx(0.004)
    assert e.n_seeds.tolist() == [3, 3, 1] and e.beyond_seed.tolist()[:2] == [True, False]
    assert np.isnan(e.seed_theta["vit_bn"]) and np.isnan(e.beyond_seed["vit_bn"])
    # two seeds give a spread but no decision: one difference is no measure of training noise
    two = ablations.swap_effects(t[t.seed != 2]).set_index("variant")
    assert two.seed_theta["resnet_ln"] == pytest.approx(1.0)
    assert two.beyond_seed[["resnet_ln", "resnet_gelu"]].isna().all()
    line = ablations.swap_line(t[t.seed != 2], next(two.reset_index().itertuples()))
    assert "2 seeds are no measure of training noise" in line and "not decided" in line
    # intervals: [14.5, 15.5] vs [19.5, 20.5] separate; [15.1, 16.1] overlaps; vit [7.5, 8.5] vs [4, 8] overlaps
    assert e.ci_separate.tolist() == [True, False, False]


def test_parent_replicates_read_only_seed_folders(tmp_path):
    for folder in ("seed1", "seed12", "other"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "resnet.safetensors").write_text("x")
    (tmp_path / "seed1" / "vit.safetensors").write_text("x")
    got = ablations.parent_replicates("resnet", tmp_path)
    assert got == [(1, tmp_path / "seed1" / "resnet.safetensors"), (12, tmp_path / "seed12" / "resnet.safetensors")]
    assert ablations.parent_replicates("swin", tmp_path) == []
    (tmp_path / "seed1" / "vit_ep15.safetensors").write_text("x")  # the parent as the variants' recipe trained it
    got = ablations.parent_replicates("vit", tmp_path, "vit_ep15")
    assert got == [(1, tmp_path / "seed1" / "vit_ep15.safetensors")]


def test_replicate_whose_card_contradicts_its_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ablations, "curvedness", lambda *a, **k: {})
    rep = tmp_path / "seed3"
    rep.mkdir()
    (rep / "resnet.safetensors").write_text("x")
    (rep / "resnet.json").write_text(json.dumps({"recipe": {"seed": 5}}))
    with pytest.raises(ValueError, match="card says seed 5, its folder says seed 3"):
        ablations.component_swaps(get_profile("smoke", seed_dir=tmp_path), variants=["resnet_ln"])
    (rep / "resnet.json").write_text(json.dumps({"recipe": {"seed": 3}, "epochs_trained": 12}))
    table, _ = ablations.component_swaps(get_profile("smoke", seed_dir=tmp_path), variants=["resnet_ln"])
    assert table.seed.tolist() == [0, 3, 0] and table.label.tolist() == ["resnet", "resnet seed 3", "resnet_ln"]


def test_ablations_fall_back_to_the_embedded_models_on_other_data(tmp_path):
    smoke = get_profile("smoke")
    assert ablations.profile_for(smoke) == (smoke, None)
    paper = get_profile("paper").replace(device="cpu", cache_dir=tmp_path, model_dir=tmp_path / "m")
    prof, note = ablations.profile_for(paper)
    assert prof.name == "embedded" and prof.dataset == "fashion-mnist" and prof.cache_dir == tmp_path
    assert prof.model_dir == tmp_path / "m" and prof.device == "cpu"
    assert "'paper' profile has no epoch snapshots" in note


def test_component_effects_orient_each_swap_toward_one_component():
    import pandas as pd

    eff = pd.DataFrame([
        {"parent": "resnet", "swap_from": "ReLU", "swap_to": "GELU", "d_theta": -7.0},
        {"parent": "vit", "swap_from": "GELU", "swap_to": "ReLU", "d_theta": 2.0},
        {"parent": "resnet", "swap_from": "BatchNorm", "swap_to": "LayerNorm", "d_theta": 5.0},
        {"parent": "vit", "swap_from": "LayerNorm", "swap_to": "BatchNorm", "d_theta": 1.0},
    ])
    c = ablations.component_effects(eff).set_index("pair")
    assert list(c.index) == ["GELU / ReLU", "BatchNorm / LayerNorm"]
    assert c.toward["GELU / ReLU"] == "ReLU" and c.d_theta["GELU / ReLU"] == {"resnet": 7.0, "vit": 2.0}
    assert bool(c.consistent["GELU / ReLU"]) is True
    assert c.d_theta["BatchNorm / LayerNorm"] == {"resnet": 5.0, "vit": -1.0}
    assert bool(c.consistent["BatchNorm / LayerNorm"]) is False
    one = ablations.component_effects(eff.iloc[:1])
    assert bool(one.consistent.iloc[0]) is False  # one family cannot show consistency


def test_new_ablation_helpers_reject_bad_input():
    import pandas as pd

    with pytest.raises(ValueError, match="not a component_swaps table"):
        ablations.swap_effects(pd.DataFrame({"model": ["x"]}))
    orphan = pd.DataFrame([_swap_row("resnet_ln", "resnet", "BN → LN", 20.0, 0.03)])
    with pytest.raises(ValueError, match="exactly one parent row"):
        ablations.swap_effects(orphan)
    with pytest.raises(ValueError, match="not a swap_effects table: no column.*swap_from"):
        ablations.component_effects(pd.DataFrame([{"parent": "vit", "swap": "LayerNorm", "d_theta": 1.0}]))
    with pytest.raises(ValueError, match="needs two different module types"):
        ablations.component_effects(pd.DataFrame([{"parent": "vit", "swap_from": "GELU", "swap_to": "GELU",
                                                   "d_theta": 1.0}]))
