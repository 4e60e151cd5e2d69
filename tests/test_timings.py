"""The build's timing summary (book/_ext/timings.py) splits each experiment's seconds by weights."""
import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "book" / "_ext" / "timings.py"


def _timings():
    spec = importlib.util.spec_from_file_location("timings", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_experiment_seconds_split_own_and_other_weights(tmp_path):
    log = tmp_path / "timings.jsonl"
    rows = [dict(experiment="theta", model="vit", seconds=2.0, time=10, weights=None),
            dict(experiment="theta", model="vit", seconds=3.0, time=11, weights="vit_seed1.safetensors"),
            dict(experiment="travel", model="resnet", seconds=1.5, time=12),  # a line written before "weights"
            dict(experiment="travel", model="resnet", seconds=9.0, time=1)]  # before the build: left out
    log.write_text("\n".join(map(json.dumps, rows)) + "\n{cut", encoding="utf-8")
    got = _timings().experiment_seconds(log, since=5)
    assert got == {"theta": {"profile": 2.0, "other": 3.0}, "travel": {"profile": 1.5, "other": 0.0}}


def test_log_time_records_the_weights(tmp_path):
    from curvlib.config import get_profile
    from curvlib.runner import log_time

    p = get_profile("smoke", env={}, device="cpu").replace(cache_dir=tmp_path)
    log_time(p, "theta", "vit", 1.0)
    log_time(p, "theta", "vit", 2.0, checkpoint=tmp_path / "seeds" / "vit_seed2.safetensors")
    lines = [json.loads(s) for s in (tmp_path / "timings.jsonl").read_text().splitlines()]
    assert [r["weights"] for r in lines] == [None, "vit_seed2.safetensors"]
    assert _timings().experiment_seconds(tmp_path / "timings.jsonl") == {"theta": {"profile": 1.0, "other": 2.0}}
