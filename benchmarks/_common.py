"""Helpers for benchmarks: interleaved repetitions and a plain report."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable


def interleaved(
    candidates: dict[str, Callable[[], None]],
    repeats: int,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Run each candidate in turn, ``repeats`` rounds, so drift and noise hit all of them alike.

    ``clock=time.thread_time`` measures the CPU time of the calling thread: what
    the candidate costs the training thread, without time stolen by other
    processes (with one torch thread, every op runs in that thread).
    """
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates)
    shuffle = random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)  # whoever runs second in a round is measurably slower here: randomise
        for name in order:
            start = clock()
            candidates[name]()
            times[name].append(clock() - start)
    return times


def median_ratio(times: dict[str, list[float]], candidate: str, baseline: str) -> float:
    """Median of per-round ratios (each round's pair ran back to back)."""
    return statistics.median(c / b for c, b in zip(times[candidate], times[baseline], strict=True))


def verdict(ratio: float, budget: float) -> str:
    return "PASS" if ratio <= budget else "FAIL"


def bootstrap_median_ci(ratios: list[float], level: float = 0.95, draws: int = 2000) -> tuple[float, float]:
    """A bootstrap confidence interval for the median of paired ratios."""
    rng = random.Random(1)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(draws))
    lo = int((1 - level) / 2 * draws)
    return medians[lo], medians[draws - 1 - lo]


def paired_ratios(times: dict[str, list[float]], candidate: str, baseline: str) -> list[float]:
    return [c / b for c, b in zip(times[candidate], times[baseline], strict=True)]
