"""Shared timing helper of the benchmarks: median wall time of repeated calls after a warm-up."""
import statistics
import time


def median_time(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
