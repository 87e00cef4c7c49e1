"""The same controller steering a hand-written loop: wait_if_paused, capture_batch, capture_step_data."""

from __future__ import annotations

import math
import threading

import pytest
import torch
import torch.nn.functional as F
from conftest import make_regression_data, wait_until
from torch import nn

import acc


class ManualRun:
    """A hand-written loop on a linear model, in a background thread."""

    def __init__(
        self,
        dbg: acc.DebugController,
        steps: int,
        *,
        nan_at: int | None = None,
        fail_at: int | None = None,
        use_loop: bool = True,
    ) -> None:
        torch.manual_seed(0)
        x, y = make_regression_data().tensors
        self.batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
        self.model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 1))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05)
        self.dbg = dbg
        self.steps = steps
        self.nan_at = nan_at
        self.fail_at = fail_at
        self.use_loop = use_loop
        self.taken: list[int] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches[step % len(self.batches)]

    def _body(self) -> None:
        dbg = self.dbg
        for step in range(1, self.steps + 1):
            x, y = self.batch(step)
            loss = F.mse_loss(self.model(x), y)
            if step == self.nan_at:
                loss = loss + torch.tensor(math.nan)
            if step == self.fail_at:
                raise RuntimeError(f"the loop broke at step {step}")
            self.opt.zero_grad()
            loss.backward()
            dbg.capture_step_data("grad0", self.model[0].weight.grad.clone())
            dbg.capture_step_data("row_norm", self.model[0].weight.detach().norm(dim=1))
            self.opt.step()
            self.taken.append(step)
            dbg.capture_batch((x, y), {"reg": loss.detach()}, step)
            if not dbg.wait_if_paused():
                break

    def _run(self) -> None:
        try:
            if self.use_loop:
                with self.dbg.loop(model=self.model, optimizer=self.opt, name="manual"):
                    self._body()
            else:
                self._body()
        except BaseException as exc:
            self.error = exc

    def start(self) -> ManualRun:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_pause_step_and_stop_a_hand_written_loop() -> None:
    dbg = acc.DebugController(feature_param="0.weight")
    run = ManualRun(dbg, steps=100_000).start()
    wait_until(lambda: len(run.taken) >= 5)
    state = dbg.pause()
    assert state["paused"] and state["loop"] == "manual" and state["job_name"] == "manual"
    s = state["step"]
    assert run.taken[-1] == s and state["loss"] == pytest.approx(state["losses"]["reg"])
    shown = dbg.get_batch()
    assert shown is not None and shown["step"] == s
    assert shown["summary"]["mean"] == pytest.approx(run.batch(s)[0].double().mean().item())

    state = dbg.step(3)
    assert state["step"] == s + 3 and run.taken[-1] == s + 3 and state["reason"] == "step budget"
    assert dbg.list_step_data_keys() == ["grad0", "grad_delta", "row_norm"]
    delta = dbg.get_step_data("grad_delta")["value"]
    grad = dbg.get_step_data("grad0")["value"]
    assert delta.shape == (6, 8) and torch.allclose(torch.from_numpy(delta), -0.05 * torch.from_numpy(grad), atol=1e-6)

    dbg.add_watch(2)
    dbg.step(4)
    traj = dbg.get_trajectories()[2]
    assert [p["step"] for p in traj] == list(range(s + 4, s + 8))
    assert set(traj[0]) == {"step", "cosine", "row_norm"}

    state = dbg.stop()
    run.join()
    assert run.error is None and run.taken[-1] == s + 7  # wait_if_paused() returned False: the loop ended
    final = dbg.get_state()
    assert final["state"] == "stopped" and final["job_status"] == "stopped" and not final["paused"]


def test_a_nan_breakpoint_in_a_hand_written_loop() -> None:
    dbg = acc.DebugController()
    dbg.break_on("nan")
    run = ManualRun(dbg, steps=50, nan_at=9).start()
    wait_until(lambda: dbg.is_paused)
    state = dbg.get_state()
    assert state["step"] == 9 and state["reason"] == "breakpoint: nan (task 'reg' at step 9)"
    assert state["health"] == {"reg": "critical"}
    dbg.clear_breakpoints()
    dbg.resume()
    run.join()
    assert run.taken[-1] == 50 and dbg.get_state()["state"] == "finished"


def test_an_exception_in_a_hand_written_loop_is_recorded() -> None:
    dbg = acc.DebugController()
    dbg.pause()
    run = ManualRun(dbg, steps=50, fail_at=4).start()
    wait_until(lambda: dbg.is_paused)
    state = dbg.step(10)  # returns when the loop fails
    run.join()
    assert isinstance(run.error, RuntimeError)
    assert state["job_status"] == "failed" and state["error"] == "RuntimeError: the loop broke at step 4"
    assert state["state"] == "stopped" and state["reason"] == "failed: RuntimeError: the loop broke at step 4"


def test_a_loop_without_dbg_loop_still_pauses_and_steps() -> None:
    dbg = acc.DebugController()
    dbg.pause()  # pending until the loop's first pause point
    run = ManualRun(dbg, steps=40, use_loop=False).start()
    wait_until(lambda: dbg.is_paused)
    assert run.taken == [1] and dbg.get_state()["loop"] == "manual"
    assert dbg.step(2)["step"] == 3 and run.taken == [1, 2, 3]
    dbg.resume()
    run.join()
    assert run.taken[-1] == 40 and run.error is None


def test_a_stopped_loop_without_dbg_loop_lets_the_next_loop_run() -> None:
    dbg = acc.DebugController()
    dbg.pause()
    first = ManualRun(dbg, steps=40, use_loop=False).start()
    wait_until(lambda: dbg.is_paused)
    dbg.stop()
    first.join()
    assert first.taken == [1] and dbg.get_state()["state"] == "stopped"
    second = ManualRun(dbg, steps=10, use_loop=False).start()  # a fresh run of the same loop
    second.join()
    assert second.taken == list(range(1, 11))


def test_a_feature_param_name_needs_a_model() -> None:
    dbg = acc.DebugController(feature_param="0.weight")
    dbg.pause()
    run = ManualRun(dbg, steps=5, use_loop=False).start()
    run.join()
    assert isinstance(run.error, ValueError) and "pass model= to dbg.loop" in str(run.error)
    assert dbg.get_state()["job_status"] == "failed"


def test_capture_batch_outside_a_loop_clones_at_once() -> None:
    dbg = acc.DebugController()
    x = torch.ones(4, 1, 5, 5)
    dbg.capture_batch((x, torch.tensor([1, 2, 3, 4])), torch.tensor(0.25), step=3)
    x.add_(1)  # later changes do not reach what is shown
    shown = dbg.get_batch()
    assert shown is not None and shown["summary"]["mean"] == 1.0 and shown["labels"] == [1, 2, 3, 4]
    assert (shown["step"], shown["loss"], shown["kind"]) == (3, 0.25, "image")
    assert dbg.get_state()["has_batch"] and dbg.get_state()["batch_step"] == 3


def test_wait_if_paused_is_one_event_check_when_free() -> None:
    dbg = acc.DebugController()
    assert dbg.wait_if_paused() is True and not dbg.attention.is_set()
    assert dbg.get_state()["loop"] is None  # nothing attached by the fast path


def test_two_loops_cannot_share_a_controller() -> None:
    dbg = acc.DebugController()
    started = threading.Event()
    release = threading.Event()

    def first() -> None:
        with dbg.loop(name="first"):
            started.set()
            release.wait(10)

    t = threading.Thread(target=first)
    t.start()
    started.wait(10)
    with pytest.raises(RuntimeError, match="already steers a running manual loop"), dbg.loop(name="second"):
        pass
    release.set()
    t.join(10)
    assert dbg.get_state()["state"] == "finished"
