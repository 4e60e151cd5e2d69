"""Calibration speed: 1,000,000 predictions → table + ECE, sECE, MCE, ACE, on one CPU thread.

Target (issue #4): < 0.1 s. Also times torchmetrics' MulticlassCalibrationError (l1 ECE only)
on the same predictions and prints the ratio. Medians of repeated runs, measured in this run.
Run: python benchmarks/bench_calibration.py
"""
import torch
from _timing import median_time

torch.set_num_threads(1)
N, K, REPEATS = 1_000_000, 10, 7


def main():
    from curvlib.measure import calibration as cal

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(N, K, generator=g) * 3
    labels = torch.randint(0, K, (N,), generator=g)
    probs = logits.softmax(-1)
    conf, pred = probs.max(-1)
    correct = pred == labels

    def ours():
        t = cal.calibration_table(conf, correct)
        return cal.ece(t), cal.sece(t), cal.mce(t), cal.ace(conf, correct)

    t_ours = median_time(ours, REPEATS)
    line = f"curvlib table + ECE/sECE/MCE/ACE, {N:,} predictions: median {t_ours * 1e3:.1f} ms " \
           f"({'meets' if t_ours < 0.1 else 'MISSES'} the 100 ms target)"
    print(line)
    try:
        from torchmetrics.classification import MulticlassCalibrationError
    except ImportError:
        print("torchmetrics not installed: no comparison")
        return
    metric = MulticlassCalibrationError(num_classes=K, n_bins=10, norm="l1")

    def theirs():
        metric.reset()
        return metric(probs, labels)

    t_tm = median_time(theirs, REPEATS)
    e_ours, e_tm = ours()[0], float(theirs())
    print(f"torchmetrics MulticlassCalibrationError (ECE only): median {t_tm * 1e3:.1f} ms")
    print(f"ratio torchmetrics / curvlib = {t_tm / t_ours:.2f}x  (ECE {e_ours:.6f} vs {e_tm:.6f})")


if __name__ == "__main__":
    main()
