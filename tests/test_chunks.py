"""Chunk merging: step order, last write wins, windows, NaN/Inf bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acc._chunks import decode, encode, merge, split, window


def cols(steps: list[int], values: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array(steps, np.int64), np.array(values, np.float64), np.zeros(len(steps))


@pytest.mark.parametrize(
    ("chunks", "steps", "values"),
    [
        ([], [], []),
        ([([1, 2, 3], [0.1, 0.2, 0.3])], [1, 2, 3], [0.1, 0.2, 0.3]),
        ([([1, 2], [1.0, 2.0]), ([3, 4], [3.0, 4.0])], [1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0]),
        ([([3, 1], [3.0, 1.0]), ([2], [2.0])], [1, 2, 3], [1.0, 2.0, 3.0]),  # out of order
        ([([1, 2], [1.0, 2.0]), ([2], [20.0])], [1, 2], [1.0, 20.0]),  # a later write wins
        ([([5, 5, 5], [1.0, 2.0, 3.0])], [5], [3.0]),  # and within one chunk, the last
        ([([1, 2], [math.nan, math.inf]), ([3], [-math.inf])], [1, 2, 3], [math.nan, math.inf, -math.inf]),
    ],
)
def test_merge(chunks: list[tuple[list[int], list[float]]], steps: list[int], values: list[float]) -> None:
    merged = merge(cols(s, v) for s, v in chunks)
    assert merged[0].tolist() == steps
    np.testing.assert_array_equal(merged[1], np.array(values, np.float64))


def test_encode_decode_keep_nan_payload_bits() -> None:
    weird_nan = np.frombuffer(np.uint64(0x7FF8_0000_DEAD_BEEF).tobytes(), np.float64)
    first, last, n, st, v, w = encode(np.array([7, 3]), np.concatenate([weird_nan, [1.5]]), np.array([0.0, 1.0]))
    assert (first, last, n) == (3, 7, 2)
    steps, values, _ = decode(st, v, w)
    assert steps.tolist() == [7, 3]
    assert values[:1].tobytes() == weird_nan.tobytes()


@pytest.mark.parametrize(
    ("start", "end", "expected"), [(None, None, [1, 3, 5, 7]), (3, 5, [3, 5]), (4, None, [5, 7]), (8, 9, [])]
)
def test_window(start: int | None, end: int | None, expected: list[int]) -> None:
    assert window(cols([1, 3, 5, 7], [0.0] * 4), start, end)[0].tolist() == expected


def test_split_into_full_chunks() -> None:
    parts = split(cols(list(range(10)), [0.0] * 10), size=4)
    assert [(p[0], p[1], p[2]) for p in parts] == [(0, 3, 4), (4, 7, 4), (8, 9, 2)]
