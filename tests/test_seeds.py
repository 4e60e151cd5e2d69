import json

import pytest
import torch

from curvlib import models, seeds, train

TWO_STAGES = {"recipe": {"epochs": 1, "lr": 3e-4, "warmup_epochs": 0.5, "batch_size": 64, "weight_decay": 0.05},
              "earlier_stages": [{"recipe": {"epochs": 2, "lr": 1e-3, "batch_size": 64}}]}


@pytest.fixture
def cards(tmp_path):
    d = tmp_path / "cards"
    d.mkdir()
    (d / "resnet.json").write_text(json.dumps(TWO_STAGES))
    return d


def _run(tmp_path, cards, fashion_train_root, seeds_=(0,), **kw):
    return seeds.run(["resnet"], list(seeds_), tmp_path / "out", tmp_path / "state", cards=cards, val_size=64,
                     subset=128, test_subset=100, data_root=fashion_train_root, log=lambda s: None, **kw)


def test_stages_replay_the_card_in_order(cards):
    assert seeds.stages("resnet", cards) == [
        {"epochs": 2, "lr": 1e-3, "warmup_epochs": 1.0, "batch_size": 64, "weight_decay": 0.05},
        {"epochs": 1, "lr": 3e-4, "warmup_epochs": 0.5, "batch_size": 64, "weight_decay": 0.05}]
    assert seeds.stages("swin", cards) == [{"epochs": 15, "lr": 1e-3, "warmup_epochs": 1.0, "batch_size": 128,
                                            "weight_decay": 0.05}]  # no card: the record's recipe
    assert [s["epochs"] for s in seeds.stages("vit")] == [15, 10, 6, 8]  # the shipped four-stage ViT
    with pytest.raises(ValueError, match="unknown model 'lenet'"):
        seeds.stages("lenet", cards)


def test_driver_chains_stages_skips_finished_pairs_and_resumes(tmp_path, monkeypatch, cards, fashion_train_root):
    torch.set_num_threads(1)
    [row] = _run(tmp_path, cards, fashion_train_root)
    assert row["status"] == "trained" and row["MB"] > 0
    card = json.loads((tmp_path / "out" / "seed0" / "resnet.json").read_text())
    assert card["seed"] == 0 and card["weights_dtype"] == "float16 (loaded as float32)"
    assert card["recipe"]["lr"] == 3e-4 and card["earlier_stages"][0]["recipe"]["lr"] == 1e-3
    stage1 = tmp_path / "state" / "seed0" / "resnet" / "stage1" / "resnet.safetensors"
    assert card["recipe"]["init_from"]["sha256"] == models.file_sha256(stage1)
    assert card["validation"]["size"] == 64 and card["seed_plan"]["stages"] == seeds.stages("resnet", cards)

    calls, real = [], train.train

    def spy(model, **kw):
        calls.append((kw["seed"], kw["init_from"] is not None))
        if kw["seed"] == 1 and kw["init_from"] is not None and len(calls) == 2:
            raise KeyboardInterrupt  # seed 1 cut at the start of its second stage
        return real(model, **kw)

    monkeypatch.setattr(train, "train", spy)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, cards, fashion_train_root, seeds_=(0, 1))
    assert calls == [(1, False), (1, True)]  # seed 0 finished: skipped
    calls.clear()
    rows = _run(tmp_path, cards, fashion_train_root, seeds_=(0, 1))
    assert calls == [(1, True)]  # seed 1's finished first stage is kept
    assert [r["status"] for r in rows] == ["done", "trained"]
    calls.clear()
    assert [r["status"] for r in _run(tmp_path, cards, fashion_train_root, seeds_=(0, 1))] == ["done", "done"]
    assert calls == []
    # an earlier stage stored beside the final weights (as the ViT's 15-epoch parent replicate is), in half
    # precision, with a card that says where it comes from; it loads and predicts as the float32 stage does
    dest = seeds.copy_stage("resnet", 1, 1, "resnet_ep2", tmp_path / "out", tmp_path / "state")
    assert dest == tmp_path / "out" / "seed1" / "resnet_ep2.safetensors"
    c = json.loads(dest.with_suffix(".json").read_text())
    assert c["stage_of"]["stage"] == 1 and c["seed"] == 1 and c["weights_dtype"].startswith("float16")
    src = tmp_path / "state" / "seed1" / "resnet" / "stage1" / "resnet.safetensors"
    assert dest.stat().st_size < 0.6 * src.stat().st_size
    x = torch.rand(4, 1, 32, 32)
    a, b = models.load_embedded("resnet", src)(x), models.load_embedded("resnet", dest)(x)
    assert torch.allclose(a, b, atol=0.05) and not torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="no stage 3 of resnet seed 1"):
        seeds.copy_stage("resnet", 1, 3, "x", tmp_path / "out", tmp_path / "state")


def test_driver_never_overwrites_weights_of_another_recipe(tmp_path, cards, fashion_train_root):
    legacy = tmp_path / "out" / "seed1"
    legacy.mkdir(parents=True)
    (legacy / "resnet.json").write_text(json.dumps({"recipe": {"seed": 1}}))
    (legacy / "resnet.safetensors").write_bytes(b"legacy")
    with pytest.raises(FileExistsError, match="another recipe"):
        _run(tmp_path, cards, fashion_train_root, seeds_=(0, 1))
    assert (legacy / "resnet.safetensors").read_bytes() == b"legacy"
    assert not (tmp_path / "out" / "seed0").exists()  # refused before training anything


def test_cli_dry_run_prints_the_plan(tmp_path, cards, capsys):
    rows = seeds.main(["--models", "resnet", "--seeds", "0,2", "--out", str(tmp_path / "o"),
                       "--state-dir", str(tmp_path / "s"), "--cards", str(cards), "--dry-run"])
    assert [r["status"] for r in rows] == ["planned", "planned"]
    out = capsys.readouterr().out
    assert "[2/2] resnet seed 2: 2 stage(s), 2 ep @ lr 0.001 + 1 ep @ lr 0.0003" in out
    with pytest.raises(SystemExit):
        seeds.main(["--models", "lenet", "--out", "o", "--state-dir", "s"])


def test_store_half_halves_the_file_and_re_measures_its_card(tmp_path):
    from curvlib.train import _save_weights, store_half

    torch.manual_seed(0)
    f = tmp_path / "resnet_ep1.safetensors"
    _save_weights(models.build("resnet"), f, {"epoch": 1, "accuracy": 0.5, "sece": 0.0, "model": "resnet"})
    size = f.stat().st_size
    x, y = torch.rand(64, 1, 32, 32), torch.randint(0, 10, (64,))
    card = store_half("resnet", f, x, y)
    assert f.stat().st_size < 0.55 * size and card["weights_dtype"].startswith("float16")
    assert card["epoch"] == 1 and card["accuracy"] != 0.5 and card["float32_metrics"]["accuracy"] != 0.5
    assert json.loads(f.with_suffix(".json").read_text()) == card  # the card on disk is the returned one
    m = models.load_embedded("resnet", f)
    assert m.card["accuracy"] == pytest.approx(train.evaluate(m, x, y)["accuracy"])  # true of the stored weights
    with pytest.raises(ValueError, match="already stored in float16"):
        store_half("resnet", f, x, y)
