"""The debugger's pure parts, table-driven: PNG and grids, batch summaries, feature tables,
cosine matrices, forces, breakpoint conditions and bounded trajectories (NaN/Inf rows included)."""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np
import pytest
import torch

from acc.debug.batch import CapturedBatch, clone_batch, describe_batch, is_image_batch, tensor_summary
from acc.debug.breakpoints import BreakpointError, make_breakpoint
from acc.debug.cosine import as_rows, cosine_matrix, order_features
from acc.debug.forces import force_detail, force_summary
from acc.debug.png import encode_png, grid_png, make_grid, to_unit_range
from acc.debug.tables import StatusRule, feature_table
from acc.debug.watches import Trajectory

NAN, INF = math.nan, math.inf


# -- an independent PNG reader (the spec's chunk layout, CRCs and filter 0) -----------


def decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    w, h, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8
    channels = {0: 1, 2: 3}[colour]
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, 1 + w * channels)
    assert (rows[:, 0] == 0).all(), "every scanline uses filter 0"
    pixels = rows[:, 1:]
    return pixels.reshape(h, w) if channels == 1 else pixels.reshape(h, w, 3)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (np.array([[0.0, 1.0], [0.5, 0.25]]), np.array([[0, 255], [128, 64]], dtype=np.uint8)),
        (np.array([[NAN, 2.0], [-1.0, 1.0]]), np.array([[0, 255], [0, 255]], dtype=np.uint8)),  # clipped, NaN black
        (np.arange(12, dtype=np.uint8).reshape(3, 4), np.arange(12, dtype=np.uint8).reshape(3, 4)),
        (
            np.tile(np.array([1.0, 0.0, 0.5]), (2, 3, 1)),
            np.zeros((2, 3, 3), dtype=np.uint8) + np.array([255, 0, 128], np.uint8),
        ),
    ],
)
def test_encode_png_round_trips(image: np.ndarray, expected: np.ndarray) -> None:
    assert np.array_equal(decode_png(encode_png(image)), expected)


@pytest.mark.parametrize("shape", [(2, 2, 2), (0, 4), (3, 4, 4), (5,)])
def test_encode_png_refuses_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="encode_png"):
        encode_png(np.zeros(shape))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.5, 1.0], [0.0, 0.5, 1.0]),  # already in [0, 1]: as it is
        ([-1.0, 0.0, 1.0], [0.0, 0.5, 1.0]),  # min-max scaled
        ([NAN, 0.0, 4.0], [0.0, 0.0, 1.0]),  # NaN -> 0, then scaled
        ([INF, -INF, 0.5], [0.0, 0.0, 0.5]),  # Inf -> 0
        ([3.0, 3.0, 3.0], [0.0, 0.0, 0.0]),  # constant out of range
    ],
)
def test_to_unit_range(values: list[float], expected: list[float]) -> None:
    out = to_unit_range(torch.tensor(values))
    assert out.tolist() == pytest.approx(expected)


def test_uint8_images_are_divided_by_255() -> None:
    assert to_unit_range(torch.tensor([0, 255, 51], dtype=torch.uint8)).tolist() == pytest.approx([0.0, 1.0, 0.2])


def test_make_grid_places_each_image_in_its_cell() -> None:
    images = torch.stack([torch.full((1, 3, 2), float(k) / 10) for k in range(5)])
    grid = make_grid(images, nrow=2, padding=1)
    assert grid.shape == (1, 3 * (3 + 1) + 1, 2 * (2 + 1) + 1)
    for k in range(5):
        r, c = divmod(k, 2)
        top, left = r * 4 + 1, c * 3 + 1
        assert torch.all(grid[0, top : top + 3, left : left + 2] == k / 10)
    assert grid[0, 0, :].eq(0).all()  # padding
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        make_grid(torch.zeros(3, 4, 4))


def test_grid_png_of_rgb_and_grey_images_decodes_to_the_grid() -> None:
    rgb = torch.rand(3, 3, 4, 5)
    png, layout = grid_png(rgb, nrow=2, padding=2)
    pixels = decode_png(png)
    assert pixels.shape == (layout["height"], layout["width"], 3) == (2 * 6 + 2, 2 * 7 + 2, 3)
    assert np.allclose(pixels[2:6, 2:7] / 255.0, rgb[0].permute(1, 2, 0).numpy(), atol=1 / 255)
    grey, _ = grid_png(torch.rand(4, 1, 3, 3), nrow=4)
    assert decode_png(grey).ndim == 2


@pytest.mark.parametrize(
    ("shape", "image"),
    [
        ((8, 1, 5, 5), True),
        ((8, 3, 5, 5), True),
        ((8, 5, 5), True),
        ((8, 2, 5, 5), False),
        ((8, 64), False),
        ((8,), False),
    ],
)
def test_is_image_batch(shape: tuple[int, ...], image: bool) -> None:
    assert is_image_batch(torch.zeros(shape)) is image


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 2.0, 3.0], {"min": 1.0, "max": 3.0, "mean": 2.0, "std": 1.0, "n_nonfinite": 0}),
        ([1.0, NAN, 3.0, INF], {"min": 1.0, "max": 3.0, "mean": 2.0, "std": math.sqrt(2.0), "n_nonfinite": 2}),
        ([NAN, -INF], {"min": None, "max": None, "mean": None, "std": None, "n_nonfinite": 2}),
        ([5.0], {"min": 5.0, "max": 5.0, "mean": 5.0, "std": 0.0, "n_nonfinite": 0}),
    ],
)
def test_tensor_summary_covers_the_finite_values(values: list[float], expected: dict[str, Any]) -> None:
    summary = tensor_summary(torch.tensor(values))
    assert summary["shape"] == [len(values)] and summary["dtype"] == "float32"
    for key, value in expected.items():
        assert summary[key] == (pytest.approx(value) if value is not None else None), key


def test_tensor_summary_of_integers_and_empty_tensors() -> None:
    ints = tensor_summary(torch.tensor([[1, 5], [3, 7]]))
    assert (ints["min"], ints["max"], ints["mean"], ints["dtype"]) == (1.0, 7.0, 4.0, "int64")
    empty = tensor_summary(torch.zeros(0, 3))
    assert empty["shape"] == [0, 3] and empty["min"] is None


def test_clone_batch_is_independent_of_later_in_place_changes() -> None:
    batch = {"x": torch.ones(2, 2), "pair": (torch.zeros(3), [torch.arange(2)]), "name": "b"}
    copy = clone_batch(batch)
    batch["x"].add_(1)
    batch["pair"][0].add_(1)
    batch["pair"][1][0].add_(1)
    assert copy["x"].eq(1).all() and copy["pair"][0].eq(0).all() and copy["pair"][1][0].tolist() == [0, 1]
    assert copy["name"] == "b"


@pytest.mark.parametrize(
    ("batch", "kind", "labels"),
    [
        ((torch.rand(4, 1, 6, 6), torch.tensor([3, 1, 4, 1])), "image", [3, 1, 4, 1]),
        ({"images": torch.rand(2, 6, 6), "labels": torch.tensor([7, 2])}, "image", [7, 2]),
        ((torch.rand(4, 8), torch.rand(4, 1)), "tensor", pytest.approx),  # regression targets: listed
        (torch.rand(3, 5), "tensor", None),
        (["not", "tensors"], "object", None),
    ],
)
def test_describe_batch_kinds(batch: Any, kind: str, labels: Any) -> None:
    out = describe_batch(CapturedBatch.of(12, batch, torch.tensor(0.5)))
    assert out["kind"] == kind and out["step"] == 12 and out["loss"] == pytest.approx(0.5)
    if kind == "image":
        assert decode_png(out["png"]).shape == (out["grid"]["height"], out["grid"]["width"])
    else:
        assert out["png"] is None
    if labels is pytest.approx:
        assert len(out["labels"]) == 4
    else:
        assert out["labels"] == labels


def test_describe_batch_per_task_losses() -> None:
    out = describe_batch(CapturedBatch.of(1, torch.rand(2, 3), {"a": torch.tensor(1.0), "b": 2.0}))
    assert out["losses"] == {"a": 1.0, "b": 2.0} and out["loss"] == 3.0


# -- feature tables ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("win_rate", "statuses"),
    [
        ([0.5, 0.005, 0.2], ["ok", "dead", "ok"]),
        ([0.0, NAN, 0.01], ["dead", "non-finite", "ok"]),
        ([INF, -INF, 0.3], ["non-finite", "non-finite", "ok"]),
    ],
)
def test_feature_table_statuses_from_the_default_rule(win_rate: list[float], statuses: list[str]) -> None:
    table = feature_table({"win_rate": torch.tensor(win_rate)})
    assert [r["status"] for r in table["rows"]] == statuses
    assert table["columns"] == ["feature", "win_rate", "status"]


def test_feature_table_sorts_with_non_finite_last_and_summarises() -> None:
    metrics = {"win_rate": torch.tensor([0.3, NAN, 0.6, 0.1]), "grad_norm": np.array([1.0, 2.0, 3.0, INF])}
    table = feature_table(metrics, sort_by="win_rate")
    assert [r["feature"] for r in table["rows"]] == [2, 0, 3, 1]
    assert [r["feature"] for r in feature_table(metrics, sort_by="win_rate", descending=False)["rows"]] == [3, 0, 2, 1]
    assert table["rows"][-1]["win_rate"] is None  # JSON has no NaN
    assert table["summary"]["win_rate"] == {"mean": pytest.approx(1 / 3), "min": 0.1, "max": 0.6, "n_nonfinite": 1}
    assert table["summary"]["grad_norm"]["max"] == 3.0
    assert table["status_counts"] == {"ok": 2, "non-finite": 2}
    assert len(feature_table(metrics, sort_by="grad_norm", limit=2)["rows"]) == 2


def test_feature_table_custom_rules_first_match_wins() -> None:
    rules = [
        ("exploding", "grad_norm", ">", 10.0),
        ("dead", "win_rate", "<", 0.01),
        StatusRule("busy", "win_rate", ">=", 0.5),
    ]
    table = feature_table({"win_rate": [0.0, 0.6, 0.0, 0.2], "grad_norm": [20.0, 1.0, 1.0, 1.0]}, rules=rules)
    assert [r["status"] for r in table["rows"]] == ["exploding", "busy", "dead", "ok"]


@pytest.mark.parametrize(
    ("metrics", "kwargs", "error", "match"),
    [
        ({}, {}, ValueError, "at least one"),
        ({"a": [1.0, 2.0], "b": [1.0]}, {}, ValueError, "differ in length"),
        ({"a": torch.zeros(2, 2)}, {}, ValueError, "1-D"),
        ({"a": [1.0]}, {"sort_by": "zzz"}, KeyError, "cannot sort by 'zzz'"),
        ({"a": [1.0]}, {"rules": [("x", "a", "~", 1)]}, ValueError, "unknown operator"),
        ({"a": [1.0]}, {"rules": ["dead"]}, TypeError, "status rule"),
    ],
)
def test_feature_table_bad_input(metrics: dict[str, Any], kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        feature_table(metrics, **kwargs)


# -- cosine matrices ---------------------------------------------------------------


@pytest.mark.parametrize(("d", "spread"), [(6, 1.0), (300, 1.0), (300, 1e-3)])  # 1e-3: rows all alike
def test_cosine_matrix_matches_numpy_and_reports_off_diagonal_stats(d: int, spread: float) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, generator=g) + spread * torch.randn(d, 16, generator=g)
    out = cosine_matrix(x)
    x64 = x.double().numpy()
    xn = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
    ref = xn @ xn.T
    assert out["matrix"].dtype == np.float32 and out["matrix"].shape == (d, d)
    assert np.allclose(out["matrix"], ref, atol=1e-5)
    off = ref[~np.eye(d, dtype=bool)]
    assert out["mean"] == pytest.approx(off.mean(), abs=1e-5)
    assert out["std"] == pytest.approx(off.std(ddof=1), rel=2e-2, abs=1e-6)
    assert (out["min"], out["max"]) == (pytest.approx(off.min(), abs=1e-5), pytest.approx(off.max(), abs=1e-5))
    assert out["order"] == list(range(d)) and out["n_nonfinite"] == 0


@pytest.mark.parametrize(
    ("rows", "mean", "n_nonfinite"),
    [
        ([[1.0, 0.0], [0.0, 1.0]], 0.0, 0),
        ([[1.0, 0.0], [2.0, 0.0]], 1.0, 0),
        ([[1.0, 0.0], [0.0, 0.0]], 0.0, 0),  # a zero row: cosine 0 with everything
        ([[1.0, 0.0], [NAN, 1.0], [1.0, 1e-9]], pytest.approx(1.0), 4),  # a NaN row: its entries left out
        ([[INF, 0.0], [1.0, 0.0]], None, 2),
    ],
)
def test_cosine_matrix_edge_rows(rows: list[list[float]], mean: Any, n_nonfinite: int) -> None:
    out = cosine_matrix(torch.tensor(rows))
    assert out["mean"] == mean if mean is None else out["mean"] == pytest.approx(mean)
    assert out["n_nonfinite"] == n_nonfinite


def test_cosine_matrix_of_one_row_has_no_stats() -> None:
    out = cosine_matrix(torch.ones(1, 3))
    assert out["matrix"].tolist() == [[pytest.approx(1.0)]] and out["mean"] is None and out["max"] is None


def test_order_features_sorts_rows_and_columns_by_a_metric() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    order = order_features(torch.tensor([0.1, NAN, 0.9]), 3, "win_rate")
    out = cosine_matrix(x, order)
    assert out["order"] == [2, 0, 1]  # NaN last
    assert out["matrix"][0, 1] == pytest.approx(1 / math.sqrt(2), abs=1e-6)  # rows 2 and 0
    with pytest.raises(ValueError, match=r"order_by='m' must be a per-feature metric of shape \[3\]"):
        order_features(torch.zeros(4), 3, "m")


@pytest.mark.parametrize(
    ("value", "error"), [(torch.zeros(5), ValueError), (torch.tensor(1.0), ValueError), ([1, 2], TypeError)]
)
def test_a_cosine_source_must_be_two_dimensional(value: Any, error: type) -> None:
    with pytest.raises(error, match="win_rate"):
        as_rows(value, "win_rate")


def test_higher_dimensional_sources_are_flattened_per_row() -> None:
    assert as_rows(torch.zeros(4, 2, 3), "conv").shape == (4, 6)


# -- forces ------------------------------------------------------------------------


def test_force_summary_counts_agreeing_fighting_and_neutral_features() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.1], [-1.0, 0.0], [1.0, 0.0], [1.0, -1.0]])
    out = force_summary(a, b, a_name="grad_delta", b_name="attraction")
    assert (out["agree"], out["fight"], out["neutral"], out["n"]) == (1, 1, 2, 4)
    assert (
        out["cos"][1] == pytest.approx(-1.0) and out["cos"][2] == 0.0 and out["cos"][3] == pytest.approx(0.0, abs=1e-7)
    )
    assert out["norm_b"][0] == pytest.approx(math.hypot(2.0, 0.1))
    assert out["mean_cos"] == pytest.approx((out["cos"][0] - 1.0 + out["cos"][3]) / 3)


def test_force_detail_gives_both_vectors_their_sum_the_row_and_the_cosine() -> None:
    a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    b = torch.tensor([[1.0, 1.0], [-3.0, -4.0]])
    w = torch.tensor([[9.0, 9.0], [0.5, 0.25]])
    out = force_detail(1, a, b, w, a_name="g", b_name="s")
    assert (out["a"], out["b"], out["sum"], out["weight"]) == ([3.0, 4.0], [-3.0, -4.0], [0.0, 0.0], [0.5, 0.25])
    assert out["cos"] == pytest.approx(-1.0) and out["agree"] is False and out["norm_a"] == pytest.approx(5.0)
    zero = force_detail(0, a, b, None)
    assert zero["cos"] is None and zero["agree"] is None and zero["weight"] is None
    assert force_detail(-1, a, b, None)["feature"] == 1


@pytest.mark.parametrize(
    ("a", "b", "feature", "error", "match"),
    [
        (torch.zeros(3), torch.zeros(3), 0, ValueError, r"\[D, K\]"),
        (torch.zeros(3, 2), torch.zeros(3, 3), 0, ValueError, "differ in shape"),
        (torch.zeros(3, 2), torch.zeros(3, 2), 3, IndexError, "out of range"),
        (torch.zeros(3, 2), torch.zeros(3, 2), True, IndexError, "out of range"),
    ],
)
def test_force_bad_input(a: torch.Tensor, b: torch.Tensor, feature: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        force_detail(feature, a, b, None)


# -- breakpoints -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "info", "reason"),
    [
        (
            "nan",
            {"step": 812, "loss": NAN, "losses": {"recon": 0.1, "kl": NAN}},
            "breakpoint: nan (task 'kl' at step 812)",
        ),
        ("nan", {"step": 3, "loss": INF, "losses": {"a": 1.0, "b": -INF}}, "breakpoint: nan (task 'b' at step 3)"),
        ("nan", {"step": 3, "loss": NAN, "losses": {}}, "breakpoint: nan (loss at step 3)"),
        ("nan", {"step": 3, "loss": 1.0, "losses": {"a": 1e30}}, None),
        (
            "critical",
            {"step": 9, "losses": {"a": 1.0}, "health": {"a": "warning", "b": "critical"}},
            "breakpoint: critical (task 'b' at step 9)",
        ),
        ("critical", {"step": 9, "losses": {"a": NAN}, "health": {"a": "healthy"}}, None),  # health decides
    ],
)
def test_value_breakpoints(kind: str, info: dict[str, Any], reason: str | None) -> None:
    assert make_breakpoint(1, kind).check_info(info) == reason


@pytest.mark.parametrize(
    ("kwargs", "fires_at"),
    [({"step": 5}, [5]), ({"every": 4}, [4, 8, 12])],
)
def test_step_breakpoints(kwargs: dict[str, int], fires_at: list[int]) -> None:
    bp = make_breakpoint(1, **kwargs)
    assert [s for s in range(1, 13) if bp.check_step(s)] == fires_at
    assert not bp.needs_info


def test_a_predicate_breakpoint_and_its_failure() -> None:
    def high_kl(info: dict[str, Any]) -> bool:
        return bool(info["losses"]["kl"] > 10)

    bp = make_breakpoint(2, high_kl)
    assert (
        bp.check_info({"step": 4, "losses": {"kl": 11.0}})
        == "breakpoint: predicate test_a_predicate_breakpoint_and_its_failure.<locals>.high_kl (step 4)"
    )
    assert bp.check_info({"step": 5, "losses": {"kl": 1.0}}) is None
    with pytest.raises(BreakpointError, match=r"raised KeyError: 'kl' at step 6") as err:
        bp.check_info({"step": 6, "losses": {}})
    assert isinstance(err.value.__cause__, KeyError)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {}, TypeError, "exactly one"),
        (("nan",), {"step": 3}, TypeError, "exactly one"),
        (("nope",), {}, ValueError, "unknown breakpoint 'nope'"),
        ((42,), {}, TypeError, "must be 'nan'"),
        ((), {"step": 0}, ValueError, "positive integer"),
        ((), {"every": True}, ValueError, "positive integer"),
        ((), {"step": 2.5}, ValueError, "positive integer"),
    ],
)
def test_break_on_bad_input(args: tuple[Any, ...], kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make_breakpoint(1, *args, **kwargs)


# -- trajectories ------------------------------------------------------------------


def test_a_trajectory_stays_under_its_cap_and_keeps_recent_points_whole() -> None:
    t = Trajectory(feature=3, cap=100)
    for step in range(1, 1001):
        t.append(step, {"cosine": 1.0 - step / 1000})
        assert len(t) <= 100
    steps = t.steps
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 1000
    assert steps[-20:] == list(range(981, 1001))  # the newest points at full resolution
    assert t.points()[-1] == {"step": 1000, "cosine": 0.0}


def test_a_metric_that_appears_later_is_none_before() -> None:
    t = Trajectory(0, cap=10)
    t.append(1, {"cosine": 1.0})
    t.append(2, {"cosine": NAN, "win_rate": 0.5})
    assert t.points() == [{"step": 1, "cosine": 1.0, "win_rate": None}, {"step": 2, "cosine": None, "win_rate": 0.5}]
