import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from curvlib import ablations, models
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


def test_epoch_checkpoints_are_sorted_with_final(tiny_checkpoints):
    ck, md = tiny_checkpoints
    got = ablations.epoch_checkpoints("resnet", ck, md)
    assert [e for e, _ in got] == [1, 2] and got[-1][1] == md / "resnet.safetensors"
    with pytest.raises(FileNotFoundError, match="no epoch snapshots"):
        ablations.epoch_checkpoints("vit", ck, md / "nowhere")


def test_training_dynamics_on_two_tiny_checkpoints(tiny_checkpoints, tmp_cache):
    ck, md = tiny_checkpoints
    profile = get_profile("smoke")
    df = ablations.training_dynamics("resnet", profile, checkpoint_dir=ck, model_dir=md)
    assert df.epoch.tolist() == [1, 2] and df.final.tolist() == [False, True]
    assert ((df.accuracy >= 0) & (df.accuracy <= 1)).all() and (df.ece >= df.sece.abs() - 1e-12).all()
    assert np.isfinite(df.theta_mean).all() and (df.theta_q1 <= df.theta_median).all()
    assert (df.theta_median <= df.theta_q3).all()
    # different weights → different cached results (the checkpoint is part of the cache key)
    assert df.accuracy.iloc[0] != df.accuracy.iloc[1] or df.theta_mean.iloc[0] != df.theta_mean.iloc[1]


def test_variant_parents_use_the_same_recipe():
    from curvlib.train import DEFAULTS

    for v, (parent, _) in models.VARIANTS.items():
        assert DEFAULTS[v] == DEFAULTS[parent]
        name, path = ablations.parent_weights(v)
        assert name == parent and path.exists()
    assert ablations.parent_weights("vit_bn")[1].name == "vit_ep15.safetensors"


def test_component_swap_table_and_figure(tmp_path, tmp_cache, monkeypatch):
    """A briefly trained variant next to its parent: table rows, missing list, figure."""
    import shutil

    import matplotlib

    matplotlib.use("Agg")
    from curvlib import plots
    from curvlib.train import train

    md = tmp_path / "models"
    md.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(models.MODEL_DIR / f"resnet{suffix}", md / f"resnet{suffix}")
    monkeypatch.setattr(models, "MODEL_DIR", md)
    train("resnet_gelu", epochs=1, subset=256, test_subset=200, max_steps=2, out=md,
          checkpoints=tmp_path / "ck", state_dir=tmp_path / "state", snapshots=(), progress=False)
    table, missing = ablations.component_swaps(get_profile("smoke"))
    assert sorted(missing) == ["resnet_ln", "vit_bn", "vit_relu"]
    assert table.model.tolist() == ["resnet", "resnet_gelu"] and table.parent.tolist() == ["resnet", "resnet"]
    assert table.swap.iloc[1] == "ReLU → GELU" and table.epochs.tolist() == [12, 1]
    assert table.accuracy.iloc[0] > table.accuracy.iloc[1]  # 2 steps of training vs the shipped parent
    axes = plots.swap_figure(table)
    assert len(axes[0].patches) == 2
