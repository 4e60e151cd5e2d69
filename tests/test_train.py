import json
import subprocess
import sys

import pytest
import torch

from curvlib import models, train


def _args(tmp_path, tag, data_root, **kw):
    return dict(subset=128, test_subset=100, epochs=2, batch_size=64, out=tmp_path / tag / "out",
                checkpoints=tmp_path / tag / "ck", state_dir=tmp_path / tag / "state", snapshots=(1,),
                data_root=data_root, progress=False, val_size=VAL) | kw


VAL = 64  # held-out images of the 512-image stand-in training set
_REAL_EVALUATE = train.evaluate


def _script_validation(monkeypatch, accuracies):
    """Replace the validation accuracy of successive epochs by ``accuracies`` (consumed in order);
    test-set evaluations stay real. Returns the list of remaining values."""
    real = _REAL_EVALUATE
    left = list(accuracies)

    def fake(model, x, y, *a, **k):
        out = real(model, x, y, *a, **k)
        if len(y) == VAL:
            out["accuracy"] = left.pop(0)
        return out

    monkeypatch.setattr(train, "evaluate", fake)
    return left


def _weights(path):
    return models.load_embedded(path.stem.split("_ep")[0], path).state_dict()


def _same(a, b) -> bool:
    return all(torch.equal(va, b[k]) for k, va in a.items())


@pytest.mark.slow
def test_cli_tiny_run(tmp_path, fashion_train_root):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "curvlib.train", "--model", "swin", "--subset", "128",
                        "--batch-size", "64", "--test-subset", "100", "--epochs", "1", "--max-steps", "2",
                        "--data-root", str(fashion_train_root), "--out", str(out),
                        "--checkpoints", str(tmp_path / "ck"), "--state-dir", str(tmp_path / "st"),
                        "--threads", "1", "--val-size", "64"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    card = json.loads((out / "swin.json").read_text())
    assert card["recipe"]["label_smoothing"] == 0.0 and card["n_test"] == 100
    m = models.load_embedded("swin", out / "swin.safetensors")
    assert m.card["parameters"] == models.num_params(m)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch, fashion_train_root):
    """Cut during epoch 2 (after epoch 1's state was saved) and resumed: the same kept weights,
    chosen epoch and history as an uninterrupted run — the best epoch so far survives the cut."""
    torch.set_num_threads(1)
    _script_validation(monkeypatch, [0.9, 0.5])  # epoch 1 is the best, and is chosen before the cut
    ref = train.train("resnet", **_args(tmp_path, "ref", fashion_train_root))
    assert ref["chosen"]["epoch"] == 1
    monkeypatch.undo()
    _script_validation(monkeypatch, [0.9])
    scripted, calls = train.evaluate, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2's first evaluation (test, then validation, per epoch)
            raise KeyboardInterrupt
        return scripted(*a, **k)

    monkeypatch.setattr(train, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        train.train("resnet", **_args(tmp_path, "cut", fashion_train_root))
    monkeypatch.undo()
    assert not (tmp_path / "cut" / "out" / "resnet.safetensors").exists()
    _script_validation(monkeypatch, [0.5])
    resumed = train.train("resnet", **_args(tmp_path, "cut", fashion_train_root))
    monkeypatch.undo()
    assert resumed["chosen"] == ref["chosen"]
    a = models.load_embedded("resnet", tmp_path / "ref" / "out" / "resnet.safetensors")
    b = models.load_embedded("resnet", tmp_path / "cut" / "out" / "resnet.safetensors")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)
    strip = [{k: v for k, v in h.items() if k != "elapsed_s"} for h in resumed["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "elapsed_s"} for h in ref["history"]]
    assert (tmp_path / "cut" / "ck" / "resnet_ep1.safetensors").exists()


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'lenet'"):
        train.train("lenet")


def test_retraining_reads_the_full_training_set(tmp_path, monkeypatch, fashion_train_root):
    """Without ``data_root`` training reads the installed training set (an empty folder under the
    autouse fixture, with the downloader offline) and says how to install it."""
    from curvlib import data

    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as e:
        train.train("resnet", out=tmp_path, checkpoints=tmp_path, state_dir=tmp_path, progress=False)
    assert str(data.DEBIAN_DIR) in str(e.value)
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(data, "DEBIAN_DIR", fashion_train_root)
    assert len(data.fashion_mnist("train")[1]) == 512


def test_second_stage_continues_the_card(tmp_path, fashion_train_root):
    """The legacy recipe (no validation split): a second stage continues the last epoch."""
    torch.set_num_threads(1)
    first = train.train("vit", **_args(tmp_path, "s1", fashion_train_root, val_size=0))
    args = _args(tmp_path, "s2", fashion_train_root, val_size=0) | {"epochs": 1, "snapshots": (3,)}
    second = train.train("vit", init_from=tmp_path / "s1" / "out" / "vit.safetensors", **args)
    assert second["epochs_trained"] == 3 and [h["epoch"] for h in second["history"]] == [1, 2, 3]
    assert second["history"][:2] == first["history"]
    assert second["train_time_s"] >= first["train_time_s"]
    assert second["recipe"]["init_from"]["file"] == "vit.safetensors"
    assert second["earlier_stages"][0]["recipe"]["epochs"] == 2
    assert (tmp_path / "s2" / "ck" / "vit_ep3.safetensors").exists()


def test_recipe_table_lists_stages_from_the_cards():
    from curvlib.train import recipe_table

    cards = {"one": {"epochs_trained": 12, "recipe": {"epochs": 12, "lr": 0.002}, "test_accuracy": 0.93, "sece": -0.01},
             "staged": {"epochs_trained": 10, "recipe": {"epochs": 4, "lr": 1e-4}, "test_accuracy": 0.88,
                        "earlier_stages": [{"recipe": {"epochs": 6, "lr": 1e-3}, "epochs_trained": 6}]}}
    t = recipe_table(cards)
    assert t.loc["one", "stages"] == 1 and t.loc["staged", "stages"] == 2
    assert t.loc["staged", "epochs per stage"] == "6 + 4" and t.loc["staged", "learning rates"] == "0.001, 0.0001"
    assert t.loc["one", "epochs"] == 12 and t.loc["one", "sECE"] == -0.01
    assert t.loc["staged", "sECE"] != t.loc["staged", "sECE"]  # NaN: that card records no sECE


def test_validation_split_is_disjoint_and_the_same_for_every_seed(tmp_path, monkeypatch, fashion_train_root):
    """The held-out images depend on the split seed only, never reach the optimiser, and every
    training seed's card names the same split."""
    tr, held, rec = train.validation_split(512, VAL)
    assert len(held) == VAL and len(tr) == 512 - VAL
    assert set(tr.tolist()).isdisjoint(held.tolist()) and set(tr.tolist()) | set(held.tolist()) == set(range(512))
    tr2, held2, rec2 = train.validation_split(512, VAL)
    assert torch.equal(held, held2) and rec == rec2
    assert not torch.equal(held, train.validation_split(512, VAL, seed=train.VAL_SEED + 1)[1])

    from curvlib import data

    x, _ = data.fashion_mnist("train", root=fashion_train_root)
    key = {x[i].numpy().tobytes(): i for i in range(len(x))}
    assert len(key) == 512  # the stand-in images are distinct, so bytes identify them
    seen = set()
    real_augment = train.augment

    def spy(xb, g):
        seen.update(key[img.numpy().tobytes()] for img in xb)
        return real_augment(xb, g)

    monkeypatch.setattr(train, "augment", spy)
    torch.set_num_threads(1)
    cards = [train.train("resnet", **_args(tmp_path, f"s{s}", fashion_train_root, seed=s, subset=None, epochs=1,
                                           snapshots=(), max_steps=3)) for s in (0, 1)]
    assert seen and seen.isdisjoint(held.tolist())
    assert cards[0]["validation"] == cards[1]["validation"] == rec
    assert rec["indices_sha256"] and cards[0]["seed"] == 0 and cards[1]["seed"] == 1
    with pytest.raises(ValueError, match="val_size must be an integer in"):
        train.validation_split(512, 512)


def test_the_kept_weights_are_the_best_validation_epoch(tmp_path, monkeypatch, fashion_train_root):
    """Validation accuracies 0.5, 0.9, 0.9: epoch 2 (first to reach the best) is kept — its
    weights, its test metrics — while the test history of every epoch is reported."""
    torch.set_num_threads(1)
    _script_validation(monkeypatch, [0.5, 0.9, 0.9])
    card = train.train("resnet", **_args(tmp_path, "b", fashion_train_root, epochs=3, snapshots=(2, 3)))
    assert card["chosen"]["epoch"] == 2 and card["chosen"]["val_accuracy"] == 0.9 and card["epochs_trained"] == 2
    assert [h["val_accuracy"] for h in card["history"]] == [0.5, 0.9, 0.9]
    assert all("accuracy" in h and "val_nll" in h for h in card["history"])
    kept = _weights(tmp_path / "b" / "out" / "resnet.safetensors")
    assert _same(kept, _weights(tmp_path / "b" / "ck" / "resnet_ep2.safetensors"))
    assert not _same(kept, _weights(tmp_path / "b" / "ck" / "resnet_ep3.safetensors"))
    assert card["test_accuracy"] == round(card["history"][1]["accuracy"], 4)
    assert card["selection"] == train.SELECTION


def test_a_later_stage_keeps_the_earlier_choice_unless_beaten(tmp_path, monkeypatch, fashion_train_root):
    torch.set_num_threads(1)
    _script_validation(monkeypatch, [0.6, 0.8])
    first = train.train("vit", **_args(tmp_path, "s1", fashion_train_root))
    _script_validation(monkeypatch, [0.7])
    s1 = tmp_path / "s1" / "out" / "vit.safetensors"
    second = train.train("vit", init_from=s1, **_args(tmp_path, "s2", fashion_train_root, epochs=1))
    assert second["chosen"] == first["chosen"] == {"stage": 1, "epoch": 2, "val_accuracy": 0.8,
                                                   "val_nll": first["chosen"]["val_nll"]}
    assert [(h["stage"], h["epoch"]) for h in second["history"]] == [(1, 1), (1, 2), (2, 3)]
    assert _same(_weights(tmp_path / "s2" / "out" / "vit.safetensors"), _weights(s1))
    with pytest.raises(ValueError, match="may not train on images another stage held out"):
        train.train("vit", init_from=s1, **_args(tmp_path, "s3", fashion_train_root, epochs=1, val_size=VAL + 1))


def test_half_precision_weights_load_as_float32(tmp_path, fashion_train_root):
    torch.set_num_threads(1)
    card = train.train("resnet", **_args(tmp_path, "h", fashion_train_root, epochs=1, snapshots=(), max_steps=1,
                                         weights_dtype="float16"))
    from safetensors.torch import load_file

    path = tmp_path / "h" / "out" / "resnet.safetensors"
    stored = load_file(str(path))
    assert stored["net.fc.weight"].dtype == torch.float16 and card["weights_dtype"] == "float16 (loaded as float32)"
    m = models.load_embedded("resnet", path)
    assert m.net.fc.weight.dtype == torch.float32
    torch.testing.assert_close(m.net.fc.weight, stored["net.fc.weight"].float(), rtol=0, atol=0)


def test_augment_is_a_per_image_roll_then_flip():
    """The batched gather equals rolling and flipping each image on its own, draw for draw."""
    x = torch.rand(64, 1, 32, 32)
    got = train.augment(x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    shifts, flips = torch.randint(-2, 3, (64, 2), generator=g), torch.rand(64, generator=g) < 0.5
    for i in range(64):
        xi = torch.roll(x[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
        assert torch.equal(got[i], xi.flip(-1) if flips[i] else xi), i
    assert flips.any() and not flips.all() and (shifts != 0).any()
