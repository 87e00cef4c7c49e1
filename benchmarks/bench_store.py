"""RunStore ingest and step-range query speed, with ratios to naive baselines measured in the same run.

Goals (issue 2): ingest >= 500k points/s; a step-range query over 1e6 stored points <= 50 ms.
Ingest goes through the public path the Recorder uses (``log_points`` in
blocks of a few hundred points, a writer thread committing in batches) and is
compared with one commit per point (what a naive logger does). The query
reads a 10,000-step window of one series out of a database holding 1e6 points
in 5 series, and is compared with a full scan of an unindexed table.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import verdict

import acc


def ingest(store: acc.RunStore, job: int, n_points: int, block: int = 250) -> float:
    """Seconds to queue and commit n_points in blocks (5 series per step, as a 3-task trainer writes)."""
    names = ["loss", "loss/recon", "loss/kl", "learning_rate", "grad_norm"]
    steps = n_points // len(names)
    rng = random.Random(0)
    blocks = []
    points: list[tuple[str, int, float, float]] = []
    now = time.time()
    for step in range(steps):
        for name in names:
            points.append((name, step, rng.random(), now))
        if len(points) >= block:
            blocks.append(points)
            points = []
    blocks.append(points)
    start = time.perf_counter()
    for b in blocks:
        store.log_points(job, b)
    store.flush(timeout=600)
    return time.perf_counter() - start


def naive_ingest(path: Path, n_points: int) -> float:
    """One INSERT + COMMIT per point (WAL, synchronous=NORMAL): the baseline."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE points (name TEXT, step INTEGER, value REAL, wall REAL)")
    start = time.perf_counter()
    for i in range(n_points):
        conn.execute("INSERT INTO points VALUES (?, ?, ?, ?)", ("loss", i, 0.5, 0.0))
        conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)

    store = acc.RunStore(root / "runs")
    job = store.create_job("bench")
    seconds = ingest(store, job, args.points)
    rate = args.points / seconds
    naive_n = 20_000
    naive_rate = naive_n / naive_ingest(root / "naive.sqlite", naive_n)
    print(
        f"ingest: {args.points:,} points in {seconds:.2f} s = {rate:,.0f} points/s "
        f"(goal >= 500,000: {verdict(500_000 / rate, 1.0)})"
    )
    print(f"        one-commit-per-point baseline: {naive_rate:,.0f} points/s; acc is {rate / naive_rate:.1f}x faster")

    steps_per_series = args.points // 5
    timings = []
    for _ in range(30):
        lo = random.randint(0, steps_per_series - 10_000)
        start = time.perf_counter()
        steps, _values, _ = store.series(job, "loss/recon", start=lo, end=lo + 9_999)
        timings.append(time.perf_counter() - start)
        assert len(steps) == 10_000
    query_ms = statistics.median(timings) * 1e3
    dict_timings = []
    for _ in range(10):
        lo = random.randint(0, steps_per_series - 10_000)
        start = time.perf_counter()
        store.metrics(job, names=["loss/recon"], start=lo, end=lo + 9_999)
        dict_timings.append(time.perf_counter() - start)
    dict_ms = statistics.median(dict_timings) * 1e3

    # baseline: the same window from a plain table without the (series, step) clustering
    conn = sqlite3.connect(root / "flat.sqlite")
    conn.execute("CREATE TABLE points (name TEXT, step INTEGER, value REAL, wall REAL)")
    names = ["loss", "loss/recon", "loss/kl", "learning_rate", "grad_norm"]
    conn.executemany(
        "INSERT INTO points VALUES (?, ?, ?, ?)",
        ((n, s, 0.5, 0.0) for s in range(steps_per_series) for n in names),
    )
    conn.commit()
    flat = []
    for _ in range(5):
        lo = random.randint(0, steps_per_series - 10_000)
        start = time.perf_counter()
        conn.execute(
            "SELECT step, value, wall FROM points WHERE name = ? AND step BETWEEN ? AND ? ORDER BY step",
            ("loss/recon", lo, lo + 9_999),
        ).fetchall()
        flat.append(time.perf_counter() - start)
    flat_ms = statistics.median(flat) * 1e3
    print(
        f"query: 10,000-step window of one series out of {args.points:,} points: {query_ms:.1f} ms as arrays, "
        f"{dict_ms:.1f} ms as the seed's dicts (goal <= 50 ms: {verdict(query_ms / 50, 1.0)})"
    )
    print(f"       unclustered-table baseline: {flat_ms:.1f} ms; acc is {flat_ms / query_ms:.1f}x faster")
    store.close()
    conn.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
