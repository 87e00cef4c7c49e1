"""Streaming statistics: the pure functions (tables with NaN/Inf rows) and the monitor, by hand and in a Trainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import two_task_trainer
from torch.utils.data import DataLoader

import acc
from acc.monitors import (
    StreamingMonitor,
    create_streaming_tracker,
    debiased_ema,
    expected_calibration_error,
    token_entropy,
    trend,
    window_slope,
)

NAN, INF = math.nan, math.inf


def same(a: float | None, b: float | None, tol: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(b):
        return math.isnan(a)
    return abs(a - b) <= tol * max(1.0, abs(b))


@pytest.mark.parametrize(
    ("values", "alpha", "expected"),
    [
        ([5.0], 0.1, 5.0),  # debiased: the first value is not pulled towards 0
        ([1.0, 3.0], 0.5, (0.5 * 1 + 3) / 1.5),  # (beta * x1 + x2) / (1 + beta)
        ([2.0] * 50, 0.1, 2.0),  # a constant stays exactly constant at every length
        ([1.0, NAN, 3.0], 0.5, (0.5 * 1 + 3) / 1.5),  # NaN skipped, not poisoning
        ([1.0, INF, -INF, 3.0], 0.5, (0.5 * 1 + 3) / 1.5),
        ([NAN, NAN], 0.1, NAN),  # nothing finite: NaN
        ([], 0.3, NAN),
        ([4.0, 0.0], 1.0, 0.0),  # alpha 1: the last value
    ],
)
def test_debiased_ema(values: list[float], alpha: float, expected: float) -> None:
    assert same(debiased_ema(values, alpha), expected)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, NAN])
def test_ema_alpha_out_of_range_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match="ema_alpha"):
        debiased_ema([1.0], alpha)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 1.0, 2.0, 3.0], 1.0),
        ([3.0, 2.0, 1.0], -1.0),
        ([5.0, 5.0, 5.0], 0.0),
        ([0.0, NAN, 2.0, 3.0], 1.0),  # NaN points are left out, x keeps their index
        ([0.0, INF, 2.0], 1.0),
        ([1.0], NAN),
        ([NAN, NAN, 1.0], NAN),
    ],
)
def test_window_slope(values: list[float], expected: float) -> None:
    assert same(window_slope(values), expected)


@pytest.mark.parametrize(
    ("values", "higher_is_better", "expected"),
    [
        ([2.0, 1.8, 1.6, 1.4, 1.2, 1.0], False, "improving"),  # a falling loss
        ([1.0, 1.2, 1.4, 1.6, 1.8, 2.0], False, "degrading"),
        ([1.0, 1.01, 0.99, 1.0, 1.01, 0.99], False, "stable"),  # noise, no slope
        ([0.5, 0.6, 0.7, 0.8, 0.9, 0.95], True, "improving"),  # a rising accuracy
        ([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], True, "degrading"),
        ([2.0, 1.8, NAN, 1.4, 1.2, 1.0, INF], False, "improving"),
        ([1.0, 2.0, 3.0], False, "insufficient_data"),  # fewer than 5 points
        ([NAN] * 10, False, "insufficient_data"),
    ],
)
def test_trend(values: list[float], higher_is_better: bool, expected: str) -> None:
    assert trend(values, higher_is_better=higher_is_better) == expected


@pytest.mark.parametrize(
    ("probs", "labels", "expected"),
    [
        ([[1.0, 0.0], [0.0, 1.0]], [0, 1], 0.0),  # certain and right
        ([[1.0, 0.0], [0.0, 1.0]], [1, 0], 1.0),  # certain and wrong
        ([[0.8, 0.2]] * 5, [0, 0, 0, 0, 1], 0.0),  # 80 % confident, 80 % right
        ([[0.9, 0.1]] * 2, [0, 1], 0.4),  # 90 % confident, 50 % right
        ([0.9, 0.2], [1, 0], (0.1 + 0.2) / 2),  # binary [N]: P(class 1); confidences 0.9 and 0.8, both right
        ([[NAN, 0.5], [0.5, 0.5]], [0, 1], NAN),  # a NaN prediction: NaN, not a number that looks fine
        ([[INF, 0.0], [0.5, 0.5]], [0, 1], NAN),
    ],
)
def test_expected_calibration_error(probs: list[object], labels: list[int], expected: float) -> None:
    assert same(expected_calibration_error(probs, labels, n_bins=10), expected, tol=1e-6)


def test_ece_agrees_with_a_plain_loop_on_random_predictions() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(500, 7, generator=g) * 2, -1)
    labels = torch.randint(0, 7, (500,), generator=g)
    conf, pred = probs.max(-1)
    ece = 0.0
    for k in range(15):  # bins (k/15, (k+1)/15]
        inside = (conf > k / 15) & (conf <= (k + 1) / 15)
        if inside.any():
            ece += inside.float().mean().item() * abs(
                conf[inside].mean().item() - (pred[inside] == labels[inside]).float().mean().item()
            )
    assert expected_calibration_error(probs, labels) == pytest.approx(ece, abs=1e-6)


@pytest.mark.parametrize(
    ("probs", "labels", "error", "match"),
    [
        ([[0.5, 0.5]], [0, 1], ValueError, "labels of shape"),
        ([[1, 0]], [0], TypeError, "floating point"),
        ([[[0.5, 0.5]]], [0], ValueError, r"\[N, C\]"),
        ([[0.5, 0.5]], [0.0], TypeError, "integer class"),
        (np.zeros((0, 3)), [], ValueError, "no predictions"),
    ],
)
def test_ece_bad_input_is_named(probs: object, labels: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        expected_calibration_error(probs, labels)  # type: ignore[arg-type]


def test_token_entropy_matches_the_definition_on_language_model_shaped_logits() -> None:
    logits = torch.randn(2, 5, 11)
    p = torch.softmax(logits, -1)
    expected = -(p * p.log()).sum(-1).mean()
    assert token_entropy(logits).item() == pytest.approx(expected.item(), rel=1e-5)
    uniform = torch.zeros(4, 8)
    assert token_entropy(uniform).item() == pytest.approx(math.log(8), rel=1e-6)
    certain = torch.tensor([[0.0, -math.inf, -math.inf]])
    assert token_entropy(certain).item() == 0.0  # 0 log 0 is 0, not NaN
    assert math.isnan(token_entropy(torch.tensor([[NAN, 0.0]])).item())
    with pytest.raises(ValueError, match="class dimension"):
        token_entropy(torch.zeros(4, 1))


def test_tracker_by_hand_seed_api() -> None:
    tracker = create_streaming_tracker(ema_alpha=0.5, window_size=4)
    out = tracker.update_loss(1.0)
    assert out == {"streaming_ce": 1.0, "raw_loss": 1.0, "loss_variance": 0.0}
    tracker.update_loss(3.0)
    for v in (2.0, 4.0, 6.0):
        tracker.update_loss(v)
    stats = tracker.get_statistics()
    assert stats["loss_variance"] == pytest.approx(np.var([3.0, 2.0, 4.0, 6.0]))  # the last window_size losses
    assert stats["loss_std"] == pytest.approx(np.std([3.0, 2.0, 4.0, 6.0]))
    assert stats["streaming_ce"] == pytest.approx(debiased_ema([1, 3, 2, 4, 6], 0.5))
    tracker.update_loss(math.nan)
    assert tracker.get_statistics()["n_nonfinite"] == 1
    with pytest.raises(TypeError, match="host number"):
        tracker.update_loss(torch.tensor(1.0))  # type: ignore[arg-type]


def test_observe_stays_on_the_device_until_report_and_pools_accuracy() -> None:
    tracker = StreamingMonitor(every=1)
    for correct in (3, 1, 4):  # batches of 4 with `correct` right answers
        logits = torch.zeros(4, 3)
        logits[:, 0] = 5.0
        labels = torch.tensor([0] * correct + [1] * (4 - correct))
        tracker.observe(logits, labels)
    assert tracker._statistics()["accuracy_last_20"] is None  # nothing fetched yet
    samples = tracker.report()
    assert [s.accuracy for s in samples] == [0.75, 0.25, 1.0]
    stats = tracker.get_statistics()
    assert stats["accuracy_last_20"] == pytest.approx(8 / 12)
    conf = torch.softmax(torch.tensor([5.0, 0.0, 0.0]), 0)[0].item()
    assert stats["calibration_error"] == pytest.approx(abs(conf - 8 / 12), rel=1e-5)
    assert stats["token_entropy"] > 0


def test_ignore_index_labels_are_left_out() -> None:
    tracker = StreamingMonitor()
    logits = torch.tensor([[[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]]])  # [B=1, T=3, C=2]
    tracker.observe(logits, torch.tensor([[0, 0, -100]]))
    (sample,) = tracker.report()
    assert sample.accuracy == 0.5  # the padded token counts for nothing


def test_in_a_trainer_values_come_from_the_fetch_and_sampled_logits(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=10)
    trainer.fit(steps=60)
    (streaming,) = [m for m in trainer.monitors if isinstance(m, StreamingMonitor)]
    stats = streaming.get_statistics()
    assert stats["n_losses"] == 60  # every step's loss, from the Recorder's batched fetch
    losses = store.series(trainer.job.id, "loss")[1]  # type: ignore[union-attr]
    assert stats["streaming_ce"] == pytest.approx(debiased_ema(losses.tolist(), 0.1))
    assert [s.step for s in streaming._samples] == [10, 20, 30, 40, 50, 60]  # every=10
    assert 0.0 <= stats["accuracy_last_20"] <= 1.0  # the classification task's logits and labels
    assert 0.0 < stats["token_entropy"] <= math.log(3) + 1e-6
    assert stats["loss_trend"] in ("improving", "stable", "degrading")


def test_default_extractor_skips_models_without_classification_outputs(store: acc.RunStore) -> None:
    model = torch.nn.Linear(4, 1)
    data = [(torch.randn(8, 4), torch.randn(8, 1))] * 20
    trainer = acc.Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), data, tasks={"reg": "regression"}, store=store
    )
    trainer.fit(steps=20)
    (streaming,) = [m for m in trainer.monitors if isinstance(m, StreamingMonitor)]
    assert streaming.enabled  # a [B, 1] regression output is not mistaken for logits
    assert streaming.get_statistics()["token_entropy"] is None
    assert streaming.get_statistics()["n_losses"] == 20
