"""What storing weights in float16 (loaded as float32) changes: for every shipped checkpoint, the
float32 weights against the same weights rounded to float16, on the shipped Fashion-MNIST test set.

Prints per file: the share of test images whose predicted class changes, the largest and median
|Δ confidence|, Δ accuracy and Δ sECE (the calibration statistic the book reads), and the MB saved.
The seed replicates are stored this way (``python -m curvlib.seeds``); this measures whether the
other weights could be too, within the data budget.
Run: python benchmarks/bench_fp16_storage.py [files…]   (default: data/checkpoints/*.safetensors)
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from curvlib import config, data, models
from curvlib.measure.calibration import summary


def _rounded(model_name: str, path: Path) -> models.CurvModel:
    m = models.load_embedded(model_name, path)
    state = {k: v.half().float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    m.load_state_dict(state, strict=False)
    return m.eval()


@torch.no_grad()
def _probs(model, x, batch=1000):
    return torch.cat([model(x[i:i + batch]).softmax(-1) for i in range(0, len(x), batch)])


def main(files):
    torch.set_num_threads(1)
    x, y = data.fashion_mnist("test")
    print(f"{'weights':<28} {'argmax changed':>15} {'max |Δconf|':>12} {'median |Δconf|':>15} "
          f"{'Δ accuracy':>11} {'Δ sECE':>10} {'MB saved':>9}")
    for f in files:
        name = models.spec(f.stem.split("_ep")[0]).name if "_ep" in f.stem else f.stem
        a, b = _probs(models.load_embedded(name, f), x), _probs(_rounded(name, f), x)
        ca, pa = a.max(-1)
        cb, pb = b.max(-1)
        sa = summary(ca.numpy(), (pa == y).numpy())
        sb = summary(cb.numpy(), (pb == y).numpy())
        d = (ca - cb).abs()
        saved = f.stat().st_size / 2 / 1e6
        print(f"{f.name:<28} {(pa != pb).float().mean().item():>15.2e} {d.max().item():>12.2e} "
              f"{d.median().item():>15.2e} {sb['accuracy'] - sa['accuracy']:>+11.1e} "
              f"{sb['sece'] - sa['sece']:>+10.1e} {saved:>9.2f}")


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(config.CHECKPOINT_DIR.glob("*.safetensors"))
    main(paths)
