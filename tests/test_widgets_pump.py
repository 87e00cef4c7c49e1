"""UpdatePump: coalescing by key, at most max_hz batches a second, flush, polls, errors that never stop it."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

import pytest
from conftest import wait_until

import acc
from acc.widgets._pump import UpdatePump, default_pump


@pytest.fixture
def pump() -> Any:
    p = UpdatePump(max_hz=10)
    yield p
    p.close()


def test_schedule_coalesces_by_key_and_the_latest_wins(pump: UpdatePump) -> None:
    seen: list[str] = []
    with pump._run_lock:  # hold the batch so every schedule lands before the pump runs
        for i in range(100):
            pump.schedule("panel", lambda i=i: seen.append(f"panel {i}"))
        pump.schedule("chart", lambda: seen.append("chart"))
        assert pump.pending() == 2
    wait_until(lambda: len(seen) == 2)
    assert sorted(seen) == ["chart", "panel 99"]
    assert pump.calls == 2


def test_flush_runs_everything_pending_now_in_the_calling_thread(pump: UpdatePump) -> None:
    pump._last_batch = time.monotonic() + 3600  # the pump thread is throttled: only flush() can run it now
    threads: list[str] = []
    pump.schedule("a", lambda: threads.append(threading.current_thread().name))
    pump.schedule("b", lambda: threads.append(threading.current_thread().name))
    pump.flush()
    assert threads == [threading.current_thread().name] * 2
    assert pump.pending() == 0


def test_a_fast_real_loop_causes_at_most_max_hz_batches_per_second() -> None:
    """A hand-written loop fetching every step (thousands of METRICS_FETCHED a second) -> <= 10 batches/s."""
    pump = UpdatePump(max_hz=10)
    runs: list[float] = []
    rec = acc.Recorder(tasks={"loss": "regression"}, fetch_every=1, name="fast")
    rec.on(acc.Event.METRICS_FETCHED, lambda state: pump.schedule("w", lambda: runs.append(time.monotonic())))
    fetches = 0
    started = time.monotonic()
    with rec:
        step = 0
        while time.monotonic() - started < 1.5:
            step += 1
            rec.record(step, {"loss": 1.0 / step})
            fetches += 1
    elapsed = time.monotonic() - started
    pump.close()
    assert fetches > 100  # the loop really was fast: far more events than the budget
    # The budget: one batch per interval, plus the final flush.
    assert len(runs) <= elapsed * pump.max_hz + 2, (len(runs), elapsed)
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert all(g >= pump.interval * 0.9 for g in gaps[:-1]), gaps


def test_an_exception_is_logged_counted_and_the_pump_goes_on(
    pump: UpdatePump, caplog: pytest.LogCaptureFixture
) -> None:
    done = threading.Event()

    def broken() -> None:
        raise RuntimeError("boom in a widget")

    with caplog.at_level(logging.ERROR, logger="acc.widgets._pump"):
        pump.schedule("bad", broken)
        pump.schedule("good", done.set)
        assert done.wait(5)
    assert pump.errors == 1
    assert "boom in a widget" in caplog.text
    later = threading.Event()
    pump.schedule("later", later.set)
    assert later.wait(5)


def test_every_polls_until_the_handle_is_removed(pump: UpdatePump) -> None:
    ticks: list[float] = []
    handle = pump.every("poll", 0.1, lambda: ticks.append(time.monotonic()))
    wait_until(lambda: len(ticks) >= 3)
    handle.remove()
    time.sleep(0.3)  # a poll already in its batch may still run once
    count = len(ticks)
    time.sleep(0.4)
    assert len(ticks) == count


@pytest.mark.parametrize("max_hz", [0, -1, 1e9, "10", True])
def test_bad_rates_are_refused(max_hz: Any) -> None:
    with pytest.raises(ValueError, match="max_hz"):
        UpdatePump(max_hz=max_hz)


def test_bad_arguments_are_refused(pump: UpdatePump) -> None:
    with pytest.raises(TypeError, match="callable"):
        pump.schedule("k", "not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds"):
        pump.every("k", 0, lambda: None)


def test_a_closed_pump_refuses_work_and_the_default_pump_is_shared() -> None:
    p = UpdatePump()
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.schedule("k", lambda: None)
    assert default_pump() is default_pump()
