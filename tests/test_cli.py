"""The paper profile end to end on CPU: random-init timm models at 224 px on a synthetic
ImageFolder, through ``python -m curvlib run``; and torchrun (gloo, 2 ranks) = one process."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from curvlib import cache, cli

SMALL = ["--n-calibration", "6", "--n-travel", "4", "--n-theta-images", "2", "--n-directions", "3",
         "--n-steps", "4", "--batch-size", "4"]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("val")
    rng = np.random.default_rng(0)
    for c in ("n01440764", "n01443537"):
        (root / c).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _env(cache_dir, data):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURVLIB_")}
    env.update(CURVLIB_CACHE=str(cache_dir), OMP_NUM_THREADS="1", CURVLIB_DEVICE="cpu")
    return env


def _entries(cache_dir):
    return sorted(p for p in Path(cache_dir).rglob(f"*{cache.SUFFIX}"))


def _torchrun():
    """The torchrun script of this environment, or None."""
    script = Path(sys.executable).parent / "torchrun"
    return shutil.which("torchrun") or (str(script) if script.exists() else None)


@pytest.mark.slow(seconds=100)
def test_paper_profile_end_to_end_and_two_ranks_equal_one_process(image_folder, tmp_path, monkeypatch):
    """``curvlib run all --profile paper`` in this process, then the same run under torchrun (gloo, 2 ranks): the
    same entries with the same values. One small timm Transformer (attention, fused-attention switch-off under
    forward-mode AD, every experiment's sharding and merging, which are the runner's and the same for every
    model; a CNN's ranks are not compared, its two-stream jet runs in one process in test_paper_setup); the paper's
    own four are built in test_models and run end to end in test_paper_setup, Swin's windowed attention on the
    embedded swin."""
    for k in [k for k in os.environ if k.startswith("CURVLIB_")]:
        monkeypatch.delenv(k)
    before = dict(os.environ)
    model = "vit_tiny_patch16_224"
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["run", "all", "--profile", "paper", "--data", str(image_folder), "--weights", "random", "--models", model,
            *SMALL]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks below (OMP_NUM_THREADS=1): the same reduction order, the same FGSM signs
    try:
        assert cli.main([*args, "--cache", str(one), "--device", "cpu"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert dict(os.environ) == before  # the CLI passes its settings in the profile, not the environment
    a = _entries(one)
    # every registered call for the one model: calibration, attention, theta_step and surgery_turning once;
    # robustness, travel, travel_check and curvature with two kinds each; theta with two kinds × three rulers;
    # random_jump at four jump sizes and random_jump_relative at four fractions, jump_path once; five surgeries
    # on the path; ten (surgery, kind) travels (1·4 + 2·4 + 6 + 4 + 4 + 1 + 5 + 10).
    # random_jump reuses travel's FGSM entry and surgery_turning the unsurgered surgery_travel one
    from curvlib import experiments

    calls = sum(len(e.calls) for e in experiments.registry().values())
    assert calls == 42 and len(a) == calls and not list(one.rglob("*.part*"))
    preds = cache.load(next(p for p in a if "calibration" in str(p) and model in p.name))
    assert len(preds) == 6 and preds["index"].tolist() == list(range(6))
    assert preds.label.tolist() == [0, 0, 0, 1, 1, 1]

    torchrun = _torchrun()
    if torchrun is None:
        pytest.skip("torchrun not installed: the one-process run passed, the two-rank comparison did not run")
    r = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "curvlib", *args],
                       env=_env(two, image_folder), timeout=600, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    b = _entries(two)
    assert [p.relative_to(one) for p in a] == [p.relative_to(two) for p in b]  # same keys
    assert not list(two.rglob("*.part*"))
    for pa, pb in zip(a, b):
        va, vb = cache.load(pa), cache.load(pb)
        if isinstance(va, dict):  # theta, curvature: tensors per direction, merged back into direction order
            assert va.keys() == vb.keys()
            for k, v in va.items():
                if isinstance(v, torch.Tensor):
                    torch.testing.assert_close(v, vb[k], rtol=1e-4, atol=1e-4, equal_nan=True, msg=k)
        else:
            if "index" in va.columns:  # per-image experiments: merged back into input order (one row per image,
                # or per image and step for robustness; random_jump_relative keeps the images that crossed)
                assert va["index"].tolist() == vb["index"].tolist()
                if va["index"].is_unique:
                    assert va["index"].is_monotonic_increasing, pa.name
            for col in va.columns:
                if va[col].dtype.kind == "f":
                    np.testing.assert_allclose(va[col], vb[col], rtol=1e-4, atol=1e-4, equal_nan=True)
                else:
                    assert va[col].astype(str).tolist() == vb[col].astype(str).tolist(), (pa.name, col)


def test_bad_arguments(image_folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "nonsense"])
    with pytest.raises(SystemExit):
        cli.main(["run", "calibration", "--checkpoint", "resnet50:x.pt"])
    assert "name=path" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "travel", "--n-travel", "0"])
    assert "n_travel must be a positive integer" in capsys.readouterr().err


def test_flags_become_the_profile(tmp_path):
    p = cli.parser(["calibration"])
    a = p.parse_args(["run", "calibration", "--profile", "paper", "--data", str(tmp_path), "--bf16", "--weights",
                      "random", "--checkpoint", "resnet50=/w.pth", "--models", "resnet50, vit_base_patch16_224",
                      "--cache", str(tmp_path / "c"), "--device", "cpu", "--n-travel", "7"])
    prof = cli.profile_from_args(a, p.error)
    assert (prof.name, prof.data_dir, prof.autocast, prof.weights, prof.cache_dir, prof.device, prof.n_travel) == (
        "paper", tmp_path, "bf16", "random", tmp_path / "c", "cpu", 7)
    assert prof.models == ("resnet50", "vit_base_patch16_224") and prof.checkpoint_for("resnet50") == "/w.pth"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "curvlib"
    if not script.exists():
        pytest.skip("curvlib not installed in this environment (pip install -e .)")
    r = subprocess.run([str(script), "run", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "calibration" in r.stdout and "attention" in r.stdout


def test_batch_for_budget_and_cpu_autosize():
    from curvlib import inference, models

    assert inference.batch_for_budget(1e6, 64e6) == 64
    assert inference.batch_for_budget(1e6, 65e6, max_batch=32) == 32
    assert inference.batch_for_budget(1e9, 1e6) == 1
    with pytest.raises(ValueError):
        inference.batch_for_budget(0, 1)
    assert inference.auto_batch_size(models.build("resnet")) is None  # CPU: the profile decides


def test_bf16_autocast_is_opt_in_and_close():
    from curvlib import inference, models
    from curvlib.config import get_profile

    m = models.build("resnet").eval()
    x = torch.rand(16, 1, 32, 32)
    assert get_profile(env={}).autocast is None
    p32 = inference.predict(m, x, 8)
    p16 = inference.predict(m, x, 8, bf16=True)
    assert p16.dtype == torch.float32 and not torch.equal(p16, p32)
    torch.testing.assert_close(p16, p32, atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="CURVLIB_AUTOCAST"):
        get_profile(env={"CURVLIB_AUTOCAST": "fp8"})


@pytest.mark.slow
def test_paper_gpu_benchmark_runs_end_to_end_on_cpu(tmp_path):
    """The prepared GPU benchmark (run it on a GPU for real numbers) times the calls it is given through the
    runner, projects them, compares bf16 with float32 on the printed numbers, and writes its JSON."""
    import json

    out = tmp_path / "bench.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_paper_gpu.py"
    r = subprocess.run([sys.executable, str(script), "--cpu", "--threads", "1", "--models", "resnet18",
                        "--experiments", "calibration,travel,theta",
                        "--sizes", "n_calibration=4,n_travel=2,n_theta_images=1,n_directions=1,n_steps=2,batch_size=4",
                        "--embedded-sizes", "n_calibration=50,n_theta_images=1,n_directions=1,n_steps=4",
                        "--roofline-model", "resnet18", "--roofline-n", "2", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["device"] == "cpu" and res["models"] == ["resnet18"]
    assert {p["experiment"] for p in res["projections"]} == {"calibration", "travel", "theta"}
    cells = res["projected_min"]["float32"]["resnet18"]
    assert all(v > 0 for v in cells.values())
    assert res["total_min"]["float32"] == pytest.approx(sum(cells.values()))
    assert res["precision"]["travel"]["autocast"] is False and res["precision"]["travel"]["why"]
    for name in ("calibration", "theta"):
        assert res["precision"][name]["bf16"]["n_numbers"] > 0
        assert res["precision_embedded"][name]["bf16"]["n_numbers"] > 0
    assert res["roofline"]["flops_per_image"] > 0 and res["roofline"]["modes"]["bf16"]["images_per_s"] > 0
