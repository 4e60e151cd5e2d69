import json
import subprocess
import sys

import pytest
import torch

from curvlib import models, train


def _args(tmp_path, tag, data_root):
    return dict(subset=128, test_subset=100, epochs=2, batch_size=64, out=tmp_path / tag / "out",
                checkpoints=tmp_path / tag / "ck", state_dir=tmp_path / tag / "state", snapshots=(1,),
                data_root=data_root, progress=False)


@pytest.mark.slow
def test_cli_tiny_run(tmp_path, fashion_train_root):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "curvlib.train", "--model", "swin", "--subset", "128",
                        "--batch-size", "64", "--test-subset", "100", "--epochs", "1", "--max-steps", "2",
                        "--data-root", str(fashion_train_root), "--out", str(out),
                        "--checkpoints", str(tmp_path / "ck"), "--state-dir", str(tmp_path / "st"),
                        "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    card = json.loads((out / "swin.json").read_text())
    assert card["recipe"]["label_smoothing"] == 0.0 and card["n_test"] == 100
    m = models.load_embedded("swin", out / "swin.safetensors")
    assert m.card["parameters"] == models.num_params(m)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch, fashion_train_root):
    torch.set_num_threads(1)
    ref = train.train("resnet", **_args(tmp_path, "ref", fashion_train_root))
    calls = {"n": 0}
    real = train.evaluate

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # during epoch 2, after epoch 1's state was saved
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        train.train("resnet", **_args(tmp_path, "cut", fashion_train_root))
    monkeypatch.setattr(train, "evaluate", real)
    assert not (tmp_path / "cut" / "out" / "resnet.safetensors").exists()
    resumed = train.train("resnet", **_args(tmp_path, "cut", fashion_train_root))
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
    torch.set_num_threads(1)
    first = train.train("vit", **_args(tmp_path, "s1", fashion_train_root))
    args = _args(tmp_path, "s2", fashion_train_root) | {"epochs": 1, "snapshots": (3,)}
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
