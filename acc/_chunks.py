"""Series stored as chunks: packed numpy columns, one SQLite row per series per commit.

A chunk holds one series' points from one commit (or from a compaction):
int64 steps, float64 values and float64 wall times, as little-endian bytes.
One row per series per commit instead of one per point makes ingest a matter
of numpy conversions, and reading a whole series a few ``np.frombuffer``
calls instead of a Python tuple per point. NaN and Inf are stored bit for bit.

A step written twice keeps the later value (the order of the chunks' rows),
as ``INSERT OR REPLACE`` per point did: ``merge`` resolves it when reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["CHUNK_POINTS", "Columns", "decode", "encode", "merge", "split", "window"]

# Compaction target: a 10,000-step window of a finished job reads one or two chunks.
CHUNK_POINTS = 16_384

Columns = tuple[np.ndarray, np.ndarray, np.ndarray]  # steps int64, values float64, wall times float64
Encoded = tuple[int, int, int, bytes, bytes, bytes]  # first step, last step, n, and the three columns

_STEPS = np.dtype("<i8")
_FLOATS = np.dtype("<f8")


def encode(steps: np.ndarray, values: np.ndarray, walls: np.ndarray) -> Encoded:
    """A chunk's row values from its columns (any order of steps)."""
    steps = np.ascontiguousarray(steps, dtype=_STEPS)
    return (
        int(steps.min()),
        int(steps.max()),
        len(steps),
        steps.tobytes(),
        np.ascontiguousarray(values, dtype=_FLOATS).tobytes(),
        np.ascontiguousarray(walls, dtype=_FLOATS).tobytes(),
    )


def decode(steps: bytes, values: bytes, walls: bytes) -> Columns:
    return np.frombuffer(steps, _STEPS), np.frombuffer(values, _FLOATS), np.frombuffer(walls, _FLOATS)


def merge(chunks: Iterable[Columns]) -> Columns:
    """Chunks in write order -> one series with ascending, unique steps (the last write of a step wins)."""
    parts = list(chunks)
    if not parts:
        empty = np.empty(0)
        return empty.astype(_STEPS), empty, empty
    steps = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    walls = np.concatenate([p[2] for p in parts])
    if len(steps) < 2 or bool(np.all(steps[1:] > steps[:-1])):
        return steps, values, walls  # the usual case: written in step order, no repeats
    order = np.argsort(steps, kind="stable")  # stable: equal steps stay in write order
    steps, values, walls = steps[order], values[order], walls[order]
    last = np.ones(len(steps), dtype=bool)
    last[:-1] = steps[1:] != steps[:-1]  # keep the last of each run of equal steps
    return steps[last], values[last], walls[last]


def window(columns: Columns, start: int | None, end: int | None) -> Columns:
    """The points with ``start <= step <= end`` (ascending steps in, contiguous arrays out)."""
    steps, values, walls = columns
    lo = 0 if start is None else int(np.searchsorted(steps, start, side="left"))
    hi = len(steps) if end is None else int(np.searchsorted(steps, end, side="right"))
    return (
        np.ascontiguousarray(steps[lo:hi]),
        np.ascontiguousarray(values[lo:hi]),
        np.ascontiguousarray(walls[lo:hi]),
    )


def split(columns: Columns, size: int = CHUNK_POINTS) -> list[Encoded]:
    """Encoded chunks of at most ``size`` points from one merged series."""
    steps, values, walls = columns
    return [encode(steps[i : i + size], values[i : i + size], walls[i : i + size]) for i in range(0, len(steps), size)]


def columns_of(
    points: Sequence[tuple[str, int, float, float]],
) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """Queued ``(name, step, value, wall)`` points grouped into per-series columns (Python lists)."""
    cols: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for name, step, value, wall in points:
        c = cols.get(name)
        if c is None:
            c = cols[name] = ([], [], [])
        c[0].append(step)
        c[1].append(value)
        c[2].append(wall)
    return cols
