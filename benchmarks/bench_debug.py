"""What the step debugger costs a loop that runs free, measured against a baseline in the same run.

Times are this thread's CPU time (``time.thread_time``) with one torch thread, plus wall
clock for reference: on a shared machine wall clock mostly measures the neighbours.

1. ``dbg.wait_if_paused()`` in a free-running loop vs an empty loop (goal: <= 200 ns per call).
2. A Trainer with a DebugController attached (no watches, no breakpoints) vs the same Trainer
   without one (goal: ratio <= 1.01). Many short runs, interleaved; the median of per-round ratios.
3. For information: a paused loop's stop latency, the cost of an engaged controller (a watch
   set: called every step) and a 4096-feature cosine matrix against the bare matrix product.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleaved, median_ratio, verdict

import acc
from acc.datasets import digits
from acc.examples import DigitAutoencoder
from acc.tasks import Classification, Reconstruction


def timed_rounds(candidates: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Interleaved runs: each round runs every candidate once (order reversed every other round).

    Each run records (wall seconds, this thread's CPU seconds). CPU time counts only while the
    thread is scheduled, so it is far less disturbed by other work on a shared machine.
    """
    for fn in candidates.values():  # warm-up
        fn()
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            w0, c0 = time.perf_counter(), time.thread_time()
            candidates[name]()
            out[name].append((time.perf_counter() - w0, time.thread_time() - c0))
    return out


def ratios(runs: dict[str, list[tuple[float, float]]], candidate: str, baseline: str) -> tuple[float, float]:
    """Median of per-round ratios, (wall, CPU)."""
    pairs = list(zip(runs[candidate], runs[baseline], strict=True))
    wall = statistics.median(c[0] / b[0] for c, b in pairs)
    cpu = statistics.median(c[1] / b[1] for c, b in pairs)
    return wall, cpu


def bench_wait_if_paused(calls: int, repeats: int) -> None:
    dbg = acc.DebugController()
    wait = dbg.wait_if_paused

    def empty() -> None:
        for _ in range(calls):
            pass

    def waiting() -> None:
        for _ in range(calls):
            wait()

    runs = timed_rounds({"empty": empty, "wait_if_paused": waiting}, repeats)
    wall_ratio, cpu_ratio = ratios(runs, "wait_if_paused", "empty")
    pairs = list(zip(runs["wait_if_paused"], runs["empty"], strict=True))
    extra_wall = statistics.median((w[0] - e[0]) / calls * 1e9 for w, e in pairs)
    extra_cpu = statistics.median((w[1] - e[1]) / calls * 1e9 for w, e in pairs)
    empty_ns = statistics.median(e[1] for e in runs["empty"]) / calls * 1e9
    print(f"[1] wait_if_paused() running free: {calls:,} calls x {repeats} interleaved rounds")
    print(
        f"    empty loop iteration {empty_ns:.1f} ns CPU; with wait_if_paused() ratio {cpu_ratio:.2f}x CPU "
        f"({wall_ratio:.2f}x wall)"
    )
    print(
        f"    cost per call over the empty loop = {extra_cpu:.1f} ns CPU ({extra_wall:.1f} ns wall)  "
        f"(goal <= 200 ns: {verdict(extra_cpu, 200.0)})"
    )


def bench_trainer(steps: int, repeats: int) -> None:
    images, labels = digits().tensors
    batches = [(images[i : i + 64], labels[i : i + 64]) for i in range(0, 64 * 16, 64)]
    cycle = batches * (steps // len(batches) + 1)
    torch.manual_seed(0)
    model = DigitAutoencoder(hidden=64, latent=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tasks = {"recon": Reconstruction(), "class": Classification(weight=0.1)}
    tmp = tempfile.TemporaryDirectory()
    store = acc.RunStore(Path(tmp.name) / "runs")
    dbg = acc.DebugController()
    common = {"tasks": tasks, "store": store, "monitors": None}
    plain = acc.Trainer(model, opt, cycle, name="plain", **common)  # type: ignore[arg-type]
    debugged = acc.Trainer(model, opt, cycle, name="debugged", debug_controller=dbg, **common)  # type: ignore[arg-type]
    watched_dbg = acc.DebugController(feature_param="encoder.1.weight")
    watched = acc.Trainer(model, opt, cycle, name="watched", debug_controller=watched_dbg, **common)  # type: ignore[arg-type]
    watched_dbg.add_watch(0)

    runs = timed_rounds(
        {
            "plain": lambda: plain.fit(steps=steps),
            "debugged": lambda: debugged.fit(steps=steps),
            "watched": lambda: watched.fit(steps=steps),
        },
        repeats,
    )
    wall, cpu = ratios(runs, "debugged", "plain")
    engaged_wall, engaged_cpu = ratios(runs, "watched", "plain")
    per_step = {k: statistics.median(r[1] for r in v) / steps * 1e3 for k, v in runs.items()}
    assert dbg.get_state()["state"] == "finished"
    assert not dbg.attention.is_set()  # it never asked for the loop's attention
    print(
        f"[2] Trainer with vs without a DebugController: {steps} steps x {repeats} interleaved rounds, "
        f"DigitAutoencoder(hidden=64), batch 64, torch threads {torch.get_num_threads()}"
    )
    print(f"    median CPU per step: plain {per_step['plain']:.3f} ms, with controller {per_step['debugged']:.3f} ms")
    print(f"    ratio with/without = {cpu:.4f} CPU, {wall:.4f} wall  (goal <= 1.01 on CPU time: {verdict(cpu, 1.01)})")
    print(
        f"    (information) engaged, one watch set (called every step): ratio {engaged_cpu:.4f} CPU, "
        f"{engaged_wall:.4f} wall"
    )
    store.close()
    tmp.cleanup()


def bench_stop_latency(rounds: int) -> None:
    images, labels = digits(size=8).tensors
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    tmp = tempfile.TemporaryDirectory()
    store = acc.RunStore(Path(tmp.name) / "runs")
    loader = [(images[:32], labels[:32])] * 10_000
    latencies = []
    for _ in range(rounds):
        dbg = acc.DebugController()
        trainer = acc.Trainer(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            tasks={"cls": Classification()},
            store=store,
            monitors=None,
            debug_controller=dbg,
        )
        dbg.step(3)
        job = trainer.start(steps=100_000)
        while not dbg.is_paused:
            time.sleep(0.001)
        time.sleep(0.02)  # let the paused loop settle into its wait
        start = time.perf_counter()
        dbg.stop(wait=False)
        job._done.wait(5)
        latencies.append((time.perf_counter() - start) * 1e3)
        assert job.status == "stopped"
    print(
        f"[3] stop while paused -> job ended, {rounds} rounds: median {statistics.median(latencies):.2f} ms, "
        f"max {max(latencies):.2f} ms  (goal <= 100 ms: {verdict(max(latencies), 100.0)})"
    )
    store.close()
    tmp.cleanup()


def bench_cosine(d: int, k: int, repeats: int) -> None:
    x = torch.randn(d, k, generator=torch.Generator().manual_seed(0))
    dbg = acc.DebugController(feature_param=x)

    def bare() -> None:
        (x @ x.T).numpy()

    def cosine() -> None:
        dbg.cosine_matrix("weights")

    times = interleaved({"matmul": bare, "cosine_matrix": cosine}, repeats)
    ratio = median_ratio(times, "cosine_matrix", "matmul")
    print(
        f"[4] cosine_matrix('weights') D={d}, K={k}: median {statistics.median(times['cosine_matrix']):.3f} s, "
        f"ratio {ratio:.2f}x the bare x @ x.T"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--steps", type=int, default=100, help="steps per timed Trainer run")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.steps, args.repeats = 200_000, 20, 3
    threading.current_thread().name = "bench"
    # one torch thread: the loop's work is then all in this thread, so its CPU time is the measure
    torch.set_num_threads(1)
    bench_wait_if_paused(args.calls, max(5, args.repeats))
    bench_trainer(args.steps, args.repeats)
    bench_stop_latency(5 if args.quick else 20)
    bench_cosine(4096, 784, 3)


if __name__ == "__main__":
    main()
