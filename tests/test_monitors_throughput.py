"""Throughput and ETA with a fake clock: rates over the window and since the start, trend, token counting."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import acc
from acc.monitors import ThroughputMonitor, create_throughput_monitor, format_duration
from acc.monitors.throughput import count_samples, count_tokens


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rates_window_average_and_eta_by_hand() -> None:
    clock = FakeClock()
    thr = create_throughput_monitor(window_size=5, clock=clock, total_steps=100)
    thr.start()
    for step in range(1, 11):
        clock.now += 0.5 if step <= 5 else 0.25  # 2 steps/s, then 4 steps/s
        thr.update(256, num_samples=8, step=step)
    s = thr.get_statistics()
    assert s["steps_per_sec"] == pytest.approx(4.0)  # the window: the last 5 steps only
    assert s["tokens_per_sec"] == pytest.approx(4 * 256)
    assert s["samples_per_sec"] == pytest.approx(4 * 8)
    assert s["elapsed_seconds"] == pytest.approx(5 * 0.5 + 5 * 0.25)
    assert s["tokens_per_sec_avg"] == pytest.approx(10 * 256 / 3.75)  # since start(), every step counted
    assert s["total_tokens"] == 2560 and s["total_samples"] == 80
    assert s["eta_seconds"] == pytest.approx(90 * 0.25)  # 90 steps left at the current pace
    assert thr.estimate_time_remaining(8) == pytest.approx(2.0)
    assert thr.get_current_throughput() == pytest.approx(1024)
    assert "tok/s" in thr.get_summary()


def test_without_start_the_first_update_opens_the_clock() -> None:
    clock = FakeClock()
    thr = ThroughputMonitor(clock=clock)
    thr.update(100)
    assert thr.get_statistics()["tokens_per_sec_avg"] is None  # one time point is no rate
    clock.now += 2.0
    thr.update(100)
    assert thr.get_statistics()["tokens_per_sec_avg"] == pytest.approx(50.0)  # the first update's 100 were before


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [(0.1, 0.2, "degrading"), (0.2, 0.1, "improving"), (0.1, 0.105, "stable"), (0.1, None, "insufficient_data")],
)
def test_trend(first: float, second: float | None, expected: str) -> None:
    clock = FakeClock()
    thr = ThroughputMonitor(window_size=20, clock=clock)
    thr.start()
    durations = [first] * 10 + ([second] * 10 if second is not None else [])
    for d in durations[: 20 if second is not None else 5]:
        clock.now += d
        thr.update(num_samples=32)
    assert thr.get_trend() == expected


@pytest.mark.parametrize(
    ("batch", "samples", "tokens"),
    [
        ((torch.zeros(32, 1, 8, 8), torch.zeros(32, dtype=torch.long)), 32, None),  # images: no tokens
        ((torch.zeros(4, 16, dtype=torch.long), torch.zeros(4, 16, dtype=torch.long)), 4, 64),  # token ids
        ({"input_ids": torch.zeros(2, 10, dtype=torch.long)}, 2, 20),
        (
            {
                "input_ids": torch.zeros(2, 10, dtype=torch.long),
                "attention_mask": torch.tensor([[1] * 7 + [0] * 3] * 2),
            },
            2,
            "device",
        ),
        (torch.zeros(5, 3), 5, None),
        ("text", None, None),
    ],
)
def test_counting_batches(batch: Any, samples: int | None, tokens: Any) -> None:
    assert count_samples(batch) == samples
    got = count_tokens(batch)
    if tokens == "device":  # the mask is summed on the device, fetched later
        assert isinstance(got, torch.Tensor) and got.item() == 14
    else:
        assert got == tokens


def test_device_token_counts_are_fetched_at_report() -> None:
    clock = FakeClock()
    thr = ThroughputMonitor(clock=clock)
    thr.start()
    for _ in range(3):
        clock.now += 1.0
        thr.update(torch.tensor(7), num_samples=2)
    assert thr.get_statistics()["tokens_per_sec"] is None  # counts still on the device
    thr.report()
    assert thr.get_statistics()["tokens_per_sec"] == pytest.approx(7.0)
    assert thr.get_statistics()["total_tokens"] == 21


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"window_size": 1}, "window_size"), ({"clock": 5}, "clock"), ({"total_steps": 0}, "total_steps")],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        ThroughputMonitor(**kwargs)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (math.nan, "—"), (0.0, "0s"), (0.2, "<1s"), (5.0, "5s"), (150.0, "2.5m"), (7200.0, "2.0h")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_in_a_trainer_with_a_fake_clock_the_eta_follows_max_steps(store: acc.RunStore) -> None:
    clock = FakeClock()
    model = torch.nn.Linear(4, 2)

    def forward(m: torch.nn.Module, batch: Any) -> torch.Tensor:
        clock.now += 0.1  # every step "takes" 0.1 s
        out: torch.Tensor = m(batch[0])
        return out

    data = [(torch.randn(16, 4), torch.randint(0, 2, (16,)))] * 5
    thr = ThroughputMonitor(window_size=10, clock=clock)
    trainer = acc.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        data,
        tasks={"cls": "classification"},
        store=store,
        forward=forward,
        monitors=[thr],
    )
    etas: dict[int, float | None] = {}
    trainer.on(acc.Event.STEP_COMPLETED, lambda state: etas.update({state.step: thr.estimate_time_remaining()}))
    job = trainer.start(steps=40)
    job.wait(30)
    assert etas[20] == pytest.approx(2.0)  # 20 steps left of max_steps=40, at 0.1 s each
    assert etas[1] == pytest.approx(3.9)  # from the first step: the job's start opens the window
    s = thr.get_statistics()
    assert s["samples_per_sec"] == pytest.approx(160.0)
    assert s["samples_per_sec_avg"] == pytest.approx(160.0)
    assert s["tokens_per_sec"] is None
    assert s["eta_seconds"] == 0.0  # finished
    assert s["trend"] == "stable"
    assert thr.estimate_time_remaining(10) == pytest.approx(1.0)
    status = trainer.status()
    assert status.samples_per_sec == pytest.approx(160.0) and status.throughput_trend == "stable"


def test_a_rate_from_the_first_step_after_start() -> None:
    clock = FakeClock()
    thr = ThroughputMonitor(clock=clock, total_steps=11)
    thr.start()
    clock.now += 2.0
    thr.update(100, num_samples=4)
    s = thr.get_statistics()
    assert s["tokens_per_sec"] == pytest.approx(50.0) and s["samples_per_sec"] == pytest.approx(2.0)
    assert s["eta_seconds"] == pytest.approx(20.0)  # 10 steps left at 2 s each
