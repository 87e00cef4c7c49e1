"""Helpers for benchmarks: interleaved repetitions and a plain report."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(candidates: dict[str, Callable[[], None]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run each candidate in turn, ``repeats`` rounds, so drift and noise hit all of them alike."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(times: dict[str, list[float]], candidate: str, baseline: str) -> float:
    """Median of per-round ratios (each round's pair ran back to back)."""
    return statistics.median(c / b for c, b in zip(times[candidate], times[baseline], strict=True))


def verdict(ratio: float, budget: float) -> str:
    return "PASS" if ratio <= budget else "FAIL"
