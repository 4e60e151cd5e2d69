"""The paper profiles' setup (issue #18): ImageNet labels from folder names of every accepted form,
the accuracy check that stops a wrongly labelled run, the weights' identity in cache entries and
pages, ``CURVLIB_SIZES``, and ``paper-lite`` end to end (CLI, then one chapter built from the cache).
All offline: random-init timm models and synthetic 224 px-able images."""
import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from curvlib import cache, cli, config, data, models, stats
from curvlib.runner import preflight as sanity

ROOT = Path(__file__).resolve().parents[1]
IMAGENETTE = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916", "n03417042",
              "n03425413", "n03445777", "n03888257")


def _write(root: Path, folders, per_class: int = 1, size=(40, 48), seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for f in folders:
        (root / f).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / f / f"{i}.png")
    return root


def _labels(root: Path) -> dict[str, int]:
    ds = data.imagefolder(root, input_size=8)
    return {Path(p).parent.name: t for p, t in ds.samples}


# ---------------------------------------------------------------------------------------------
# Labels


def test_full_imagenet_folder_labels_are_timm_class_indices(tmp_path):
    from timm.data import ImageNetInfo

    wnids = ImageNetInfo("imagenet-1k").label_names()
    got = _labels(_write(tmp_path / "val", wnids, size=(4, 4)))
    assert len(got) == 1000 and all(got[w] == i for i, w in enumerate(wnids))
    assert got["n01440764"] == 0 and got["n15075141"] == 999  # tench, toilet tissue


def test_subset_labels_are_imagenet_indices_not_positions(tmp_path):
    got = _labels(_write(tmp_path / "imagenette", IMAGENETTE))
    # sorted-position labels would be 0 … 9; the ImageNet-1k ones are not
    assert got["n01440764"] == 0 and got["n02102040"] == 217 and got["n03888257"] == 701
    assert sorted(got.values()) != list(range(10))
    assert got == data.imagenet_class_index(IMAGENETTE)


def test_integer_folders_are_indices_not_sorted_strings(tmp_path):
    names = ("0", "1", "2", "10", "100", "999")
    got = _labels(_write(tmp_path / "v2", names))
    assert got == {n: int(n) for n in names}  # torchvision's sorting would give "10" the label 2


@pytest.mark.parametrize("names, match", [
    (("n01440764", "cats"), r"'cats' are not ImageNet-1k classes.*WordNet ids.*0 … 999"),
    (("1000",), "'1000' are not ImageNet-1k"),
    (("n01440764", "7"), "mix integer names"),
    (("7", "007"), "same ImageNet-1k class"),
])
def test_unknown_folder_names_are_refused_with_the_accepted_forms(tmp_path, names, match):
    root = _write(tmp_path / "bad", names)
    with pytest.raises(ValueError, match=match):
        data.imagefolder(root)


# ---------------------------------------------------------------------------------------------
# The accuracy check


def test_judge_and_wilson():
    lo, hi = stats.wilson(0, 256, level=sanity.LEVEL)
    assert lo == 0 and 0.015 < hi < 0.03
    assert sanity.judge(0, 256, 81.2)["ok"] is False  # shuffled labels
    assert sanity.judge(180, 256, 81.2)["ok"] is True  # ImageNet-V2-like: 70 %
    assert sanity.judge(3, 5, 81.2)["ok"] is True  # too few images to condemn 60 %
    with pytest.raises(ValueError):
        stats.wilson(3, 2)


def test_reference_describes_the_weights_timm_loads():
    sanity.assert_reference_tags()
    assert set(sanity.REFERENCE_TOP1) == set(config.PAPER_MODELS)


@pytest.fixture(scope="module")
def arranged(tmp_path_factory):
    """A random-init resnet18 saved as a local checkpoint, and a folder whose labels are that model's
    own predictions (so its top-1 is 100 %), plus the same images with the labels shuffled."""
    from safetensors.torch import save_file

    base = tmp_path_factory.mktemp("arranged")
    ck = base / "resnet18.safetensors"
    with torch.random.fork_rng():
        torch.manual_seed(1)
        import timm

        save_file(timm.create_model("resnet18", pretrained=False).state_dict(), str(ck))
    model = models.load_paper("resnet18", checkpoint=ck)
    flat = _write(base / "flat", ["n01440764"], per_class=12, size=(64, 72), seed=3)
    ds = data.imagefolder(flat, model_name="resnet18")
    x, _ = data.load_tensors(ds)
    pred = model(x).argmax(-1).tolist()
    wnids = data._wordnet_ids()
    by_index = {i: w for w, i in wnids.items()}
    good, bad = base / "good", base / "shuffled"
    for (path, _), p in zip(ds.samples, pred):
        for root, cls in ((good, p), (bad, (p + 1) % 1000)):
            (root / by_index[cls]).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, root / by_index[cls] / Path(path).name)
    return ck, good, bad


def _run_calibration(folder, ck, cache_dir, *extra):
    return cli.main(["run", "calibration", "--profile", "paper", "--data", str(folder), "--models", "resnet18",
                     "--checkpoint", f"resnet18={ck}", "--cache", str(cache_dir), "--device", "cpu",
                     "--n-calibration", "4", "--batch-size", "12", *extra])


def test_accuracy_check_stops_a_run_with_shuffled_labels(arranged, tmp_path, monkeypatch, capsys):
    ck, good, bad = arranged
    for k in [k for k in os.environ if k.startswith("CURVLIB_")]:
        monkeypatch.delenv(k)
    monkeypatch.setitem(sanity.REFERENCE_TOP1, "resnet18", ("resnet18.test", 90.0, "test reference"))
    assert _run_calibration(good, ck, tmp_path / "good") == 0
    assert "accuracy check passed" in capsys.readouterr().out
    assert _run_calibration(bad, ck, tmp_path / "bad") == 2
    err = capsys.readouterr().err
    assert "stopped before any experiment" in err and "top-1 0.0 %" in err
    assert "labels" in err and "preprocessing" in err and "--no-accuracy-check" in err
    assert not list((tmp_path / "bad").rglob("calibration/*" + cache.SUFFIX))  # nothing computed
    # the library path stops too (a chapter calling an experiment directly)
    prof = config.get_profile("paper", env={}, data_dir=bad, cache_dir=tmp_path / "bad", device="cpu",
                              checkpoints=(("resnet18", str(ck)),), n_calibration=4, models=("resnet18",))
    from curvlib.experiments import calibration

    with pytest.raises(sanity.SetupError, match="should reach about 90.0 %"):
        calibration.predictions("resnet18", prof)
    # … unless the user overrides it
    assert _run_calibration(bad, ck, tmp_path / "bad", "--no-accuracy-check") == 0
    assert "switched off" in capsys.readouterr().out
    # a folder relabelled in place (same path, same cache) is checked again, not served the old pass
    same = tmp_path / "same"
    shutil.copytree(good, same)
    assert _run_calibration(same, ck, tmp_path / "same_cache") == 0
    shutil.rmtree(same)
    shutil.copytree(bad, same)
    assert _run_calibration(same, ck, tmp_path / "same_cache") == 2
    assert "stopped before any experiment" in capsys.readouterr().err


def test_random_weights_are_not_checked(arranged, tmp_path):
    _, _, bad = arranged
    prof = config.get_profile("paper", env={}, data_dir=bad, cache_dir=tmp_path, device="cpu", weights="random")
    assert sanity.check(models.load("resnet50", prof), prof) is None


# ---------------------------------------------------------------------------------------------
# Weights identity, sizes


def test_weights_identity_names_timm_tag_and_hash(tmp_path, arranged):
    ck, good, _ = arranged
    m = models.load_paper("resnet18", checkpoint=ck)
    assert m.card["sha256"] == models.file_sha256(ck) and m.card["sha256_of"] == "file sha256"
    assert m.card["sha256"][:16] in models.identity(m) and "resnet18.safetensors" in models.identity(m)
    r1 = models.load_paper("resnet50", weights="random")
    models._BUILT.clear()  # build again (a second process, a torchrun rank), not a copy of the first
    r2 = models.load_paper("resnet50", weights="random")
    assert r1.card["sha256"] == r2.card["sha256"] == models.state_sha256(r1.net)  # deterministic random init
    assert r1.card["sha256_of"] == "state sha256" and r1.fingerprint == r1.card["sha256"][:16]
    # a pretrained card carries timm's tag in the name and the fingerprint (no download here)
    card = models.weights_card(r1.net, "resnet50", "pretrained")
    assert card["timm_name"] == "resnet50.a1_in1k" and card["tag"] == "a1_in1k"
    # every cache entry records the weights it was computed with
    prof = config.get_profile("paper", env={}, data_dir=good, cache_dir=tmp_path, device="cpu",
                              checkpoints=(("resnet18", str(ck)),), n_calibration=3, models=("resnet18",),
                              check_accuracy=False)
    from curvlib.experiments import calibration

    calibration.predictions("resnet18", prof)
    side = cache.describe(next(tmp_path.rglob("calibration/*" + cache.SUFFIX)))
    assert side["params"]["weights"] == m.fingerprint == m.card["sha256"][:16]


def test_relative_data_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = config.get_profile("paper-lite", env={"CURVLIB_DATA": "imagenette2-320/val"})
    assert p.data_dir == tmp_path / "imagenette2-320" / "val" and p.data_dir.is_absolute()


def test_sizes_from_the_environment():
    p = config.get_profile("paper-lite", env={"CURVLIB_SIZES": "n_travel=7, n_calibration=all",
                                              "CURVLIB_CHECK_ACCURACY": "0"})
    assert (p.n_travel, p.n_calibration, p.check_accuracy, p.dataset) == (7, None, False, "imagenet")
    assert p.models == config.PAPER_MODELS
    with pytest.raises(ValueError, match="unknown size 'n_images'"):
        config.get_profile("paper-lite", env={"CURVLIB_SIZES": "n_images=3"})
    with pytest.raises(ValueError, match="n_travel must be an integer"):
        config.get_profile("paper-lite", env={"CURVLIB_SIZES": "n_travel=many"})
    with pytest.raises(ValueError, match="CURVLIB_CHECK_ACCURACY must be 0 or 1"):
        config.get_profile("paper", env={"CURVLIB_CHECK_ACCURACY": "maybe"})


# ---------------------------------------------------------------------------------------------
# paper-lite end to end

LITE_SIZES = "n_calibration=6,n_travel=2,n_theta_images=1,n_directions=1,n_steps=4,batch_size=6"


#: The paper's four models in two end-to-end runs of similar cost (ViT-B/16 alone costs about as much as the
#: other three on one core: benchmarks/results/measurements.md), so two test workers can share them.
LITE_GROUPS = (pytest.param(("vit_base_patch16_224",), marks=pytest.mark.slow(seconds=200), id="vit_base_patch16_224"),
               pytest.param(("resnet50", "mobilenetv2_100", "swin_tiny_patch4_window7_224"),
                            marks=pytest.mark.slow(seconds=160), id="resnet50+mobilenetv2_100+swin_tiny"))


def _lite_env(tmp_path):
    folder = _write(tmp_path / "val", IMAGENETTE[:3], per_class=2, size=(60, 70))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURVLIB_")}
    env.update(CURVLIB_PROFILE="paper-lite", CURVLIB_DATA=str(folder), CURVLIB_CACHE=str(tmp_path / "cache"),
               CURVLIB_WEIGHTS="random", CURVLIB_DEVICE="cpu", CURVLIB_SIZES=LITE_SIZES, OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT))
    return env


def _lite_run(tmp_path, env, *args):
    r = subprocess.run([sys.executable, "-m", "curvlib", "run", *args], env=env, capture_output=True, text=True,
                       timeout=1500, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "profile paper-lite" in r.stdout and "random-init weights" in r.stdout
    return sorted((tmp_path / "cache").rglob(f"*{cache.SUFFIX}"))


@pytest.mark.parametrize("group", LITE_GROUPS)
def test_paper_lite_end_to_end(tmp_path, group):
    """``python -m curvlib run all --profile paper-lite`` on the paper's random-init models at 224 px: every
    registered call of every experiment, for each model of ``group``."""
    from curvlib import experiments

    entries = _lite_run(tmp_path, _lite_env(tmp_path), "all", "--models", ",".join(group))
    assert {e.parent.parent.name for e in entries} == {"paper-lite"}
    assert not list((tmp_path / "cache").rglob("*.part*"))
    calls = {name: len(e.calls) for name, e in experiments.registry().items() if e.calls}
    for model in group:  # one entry per registered call of every experiment (as in test_cli's paper profile run)
        got = collections.Counter(e.parent.name for e in entries if e.name.startswith(f"{model}-"))
        assert got == calls, (model, got)


@pytest.mark.slow(seconds=45)
def test_paper_lite_chapter_from_the_cache(tmp_path):
    """The calibration chapter built by Jupyter Book from a paper-lite cache alone (all four models)."""
    env = _lite_env(tmp_path)
    entries = _lite_run(tmp_path, env, "calibration")
    for name in config.PAPER_MODELS:
        assert any(name in e.name for e in entries if e.parent.name == "calibration"), name
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text(
        "title: paper-lite test\nexecute:\n  execute_notebooks: force\n  timeout: 1200\n  allow_errors: false\n"
        "bibtex_bibfiles: [references.bib]\nsphinx:\n  extra_extensions: [sphinxcontrib.bibtex]\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: calibration\n")
    shutil.copy(ROOT / "book" / "calibration.md", book)
    shutil.copy(ROOT / "book" / "references.bib", book)
    jb = Path(sys.executable).parent / "jupyter-book"
    r = subprocess.run([str(jb), "build", str(book), "--builder", "html"], env=env, capture_output=True, text=True,
                       timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert not list((book / "_build" / "html" / "reports").glob("*.log")) if (
        book / "_build" / "html" / "reports").exists() else True
    html = (book / "_build" / "html" / "calibration.html").read_text()
    assert "profile: paper-lite" in html and "vit_base_patch16_224 (random)" in html and "state sha256" in html
    after = sorted((tmp_path / "cache").rglob(f"*{cache.SUFFIX}"))
    assert after == entries  # the chapter read the cache; it computed nothing new
