"""The Trainer on real small models: what a user sees in the store, the job and the summaries."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TwoHeadNet, make_regression_data, two_task_trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import acc
from acc import Event, JobStatus, LossHealth


def test_a_real_model_trains_and_the_store_holds_every_step(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=10)
    job = trainer.fit(steps=80)
    assert job.status == "completed"
    points = store.metrics(job.id)
    assert sorted(points) == ["grad_norm", "learning_rate", "loss", "loss/cls", "loss/reg"]
    for name, series in points.items():
        expected = list(range(1, 81, 25)) if name == "grad_norm" else list(range(1, 81))  # grad norm: sampled
        assert [p["step"] for p in series] == expected
    reg = [p["value"] for p in points["loss/reg"]]
    assert sum(reg[-10:]) / 10 < 0.2 * sum(reg[:10]) / 10  # it really learned
    assert all(p["value"] == pytest.approx(1e-2) for p in points["learning_rate"])
    record = store.job(job.id)
    assert record.status is JobStatus.COMPLETED
    assert record.last_step == 80
    assert record.config["tasks"]["cls"] == {
        "task_type": "classification",
        "weight": 0.5,
        "thresholds": None,
        "class": "Classification",
    }


def test_the_total_loss_is_the_weighted_sum(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    job = two_task_trainer(two_task_loader, store, fetch_every=5).fit(steps=10)
    points = store.metrics(job.id)
    for reg, cls, total in zip(points["loss/reg"], points["loss/cls"], points["loss"], strict=True):
        assert total["value"] == pytest.approx(reg["value"] + 0.5 * cls["value"], rel=1e-5)


def test_start_returns_at_once_and_the_summary_is_live(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5)
    reached, release = threading.Event(), threading.Event()

    def gate(state: acc.TrainerState) -> None:
        if state.step == 20:  # step 20 is recorded and fetched; step 21 waits here
            reached.set()
            release.wait(10)

    trainer.on(Event.STEP_STARTED, gate)
    job = trainer.start(steps=40)
    assert not job.done()  # the step-21 gate is closed: start() did not wait for training
    assert reached.wait(10)
    summary = trainer.loss_summary()  # while the job is running
    assert set(summary) == {"reg", "cls"}
    assert summary["reg"].n_steps == 20
    assert store.job(job.id).status is JobStatus.RUNNING
    release.set()
    job.wait(timeout=30)
    assert trainer.loss_summary()["reg"].n_steps == 40
    assert store.loss_summary(job.id)["reg"] == trainer.loss_summary()["reg"]


def test_step_infos_carry_losses_health_types_lr_grad_norm_and_time(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    infos: list[dict[str, Any]] = []
    trainer = two_task_trainer(two_task_loader, store, fetch_every=4)
    trainer.on(Event.METRICS_FETCHED, lambda state: infos.extend(state.fetched))
    trainer.fit(steps=30)
    assert [i["step"] for i in infos] == list(range(1, 31))
    info = infos[-1]
    assert set(info["losses"]) == {"reg", "cls"}
    assert info["task_type"] == {"reg": "regression", "cls": "classification"}
    assert set(info["health"].values()) <= {"healthy", "warning", "critical"}
    assert info["overall_health"] == acc.worst_health(info["health"].values()).value
    assert info["lr"] == pytest.approx(1e-2)
    assert abs(info["wall_time"] - time.time()) < 60
    # the global gradient norm is sampled every 25 steps by default, from the first
    assert [i["step"] for i in infos if i["grad_norm"] is not None] == [1, 26]
    assert all(i["grad_norm"] > 0 for i in infos if i["grad_norm"] is not None)


@pytest.mark.parametrize(
    ("kwargs", "steps_with_norm"),
    [({"grad_norm_every": 1}, list(range(1, 7))), ({"grad_norm_every": 4}, [1, 5]), ({"grad_norm_every": None}, []),
     ({"grad_norm_every": None, "grad_clip": 1.0}, list(range(1, 7)))],
)  # fmt: skip
def test_grad_norm_sampling(
    two_task_loader: DataLoader, store: acc.RunStore, kwargs: dict[str, Any], steps_with_norm: list[int]
) -> None:
    job = two_task_trainer(two_task_loader, store, **kwargs).fit(steps=6)
    stored = store.metrics(job.id, names=["grad_norm"]).get("grad_norm", [])
    assert [p["step"] for p in stored] == steps_with_norm
    assert all(p["value"] > 0 for p in stored)


def test_grad_norm_matches_torch(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    norms: list[torch.Tensor] = []
    trainer = two_task_trainer(two_task_loader, store, grad_norm_every=1)
    trainer.on(
        Event.AFTER_BACKWARD,
        lambda state: norms.append(
            torch.nn.utils.get_total_norm([p.grad for p in trainer.model.parameters() if p.grad is not None])
        ),
    )
    job = trainer.fit(steps=3)
    stored = [p["value"] for p in store.metrics(job.id, names=["grad_norm"])["grad_norm"]]
    assert stored == pytest.approx([float(n) for n in norms], rel=1e-5)


def _count_host_reads(trainer: acc.Trainer, steps: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Train and count every device->host read made from acc's own code."""
    reads = {"n": 0}
    # .numpy() is left out: it is free on a tensor that .cpu() already brought over
    for method in ("item", "cpu", "tolist", "__float__"):
        original = getattr(torch.Tensor, method)

        def counting(self: torch.Tensor, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            # only acc's own calls count (the DataLoader's sampler reads CPU tensors each epoch)
            if f"{os.sep}acc{os.sep}" in sys._getframe(1).f_code.co_filename:
                reads["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, counting)
    trainer.fit(steps=steps)
    monkeypatch.undo()
    return reads["n"]


@pytest.mark.parametrize(("monitors", "reads_per_fetch"), [(None, 1), ("default", 2)])
def test_losses_reach_the_host_in_one_batched_fetch_every_n_steps(
    two_task_loader: DataLoader,
    store: acc.RunStore,
    monkeypatch: pytest.MonkeyPatch,
    monitors: str | None,
    reads_per_fetch: int,
) -> None:
    """No per-step GPU->host sync: the recorder reads once per fetch, the monitors once more."""
    torch.manual_seed(0)
    model = TwoHeadNet()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)  # SGD: no .item() inside the optimizer
    tasks = {"reg": acc.tasks.Regression(output="pred", target=1)}
    trainer = acc.Trainer(
        model, opt, two_task_loader, tasks=tasks, store=store, fetch_every=10, max_fetch_interval=60,
        monitors=monitors,  # type: ignore[arg-type]
    )  # fmt: skip
    reads = _count_host_reads(trainer, 50, monkeypatch)
    assert trainer.recorder is not None
    assert trainer.recorder.n_fetches == 5
    assert reads == reads_per_fetch * 5  # per fetch, never per step


def test_events_fire_in_order_and_handles_remove_them(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    seen: list[str] = []
    trainer = two_task_trainer(two_task_loader, store, fetch_every=2)
    handles = [trainer.on(event, lambda state, e=event: seen.append(e.value)) for event in Event]
    trainer.fit(steps=2)
    assert seen == [
        "job_started",
        "step_started",
        "after_backward",
        "step_completed",
        "step_started",
        "after_backward",
        "step_completed",
        "metrics_fetched",
        "job_ended",
    ]
    for handle in handles:
        handle.remove()
    seen.clear()
    with trainer.on("step_completed", lambda state: seen.append("x")):
        trainer.fit(steps=1)
    trainer.fit(steps=1)
    assert seen == ["x"]


def test_registering_an_unknown_event_raises(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    with pytest.raises(ValueError, match="unknown event 'step_done'"):
        trainer.on("step_done", lambda state: None)


class NanAt:
    """A regression loss that is NaN at given steps (a real loss otherwise)."""

    def __init__(self, bad_steps: set[int]) -> None:
        self.bad_steps = bad_steps
        self.calls = 0

    def __call__(self, outputs: Any, batch: Any) -> torch.Tensor:
        self.calls += 1
        loss = nn.functional.mse_loss(outputs["pred"].squeeze(1), batch[1].squeeze(1))
        # adding a NaN constant makes the value NaN but keeps the gradient finite
        return loss + math.nan if self.calls in self.bad_steps else loss


def test_a_nan_loss_is_critical_recorded_exactly_and_training_goes_on(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    torch.manual_seed(0)
    model = TwoHeadNet()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    trainer = acc.Trainer(
        model, opt, two_task_loader, tasks={"mse": acc.Task(NanAt({5}), task_type="regression")}, store=store
    )
    infos: list[dict[str, Any]] = []
    trainer.on(Event.METRICS_FETCHED, lambda state: infos.extend(state.fetched))
    job = trainer.fit(steps=10)
    assert job.status == "completed"
    values = [p["value"] for p in store.metrics(job.id)["loss/mse"]]
    assert len(values) == 10
    assert math.isnan(values[4]) and all(math.isfinite(v) for i, v in enumerate(values) if i != 4)
    assert infos[4]["health"]["mse"] == "critical"
    summary = trainer.loss_summary()["mse"]
    assert (summary.n_nonfinite, summary.health) == (1, LossHealth.CRITICAL)


def test_stop_on_nan_stops_the_job_with_a_reason(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    torch.manual_seed(0)
    model = TwoHeadNet()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    trainer = acc.Trainer(
        model,
        opt,
        two_task_loader,
        tasks={"mse": acc.Task(NanAt({3}), task_type="regression")},
        store=store,
        stop_on_nan=True,
        fetch_every=1,
    )
    job = trainer.fit(steps=50)
    assert job.status == "stopped"
    assert trainer.state.step == 3
    record = store.job(job.id)
    assert record.status is JobStatus.STOPPED
    assert record.reason is not None and "'mse' was nan at step 3" in record.reason


def test_an_exception_in_a_loss_fails_the_job_with_its_traceback(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    def exploding(outputs: Any, batch: Any) -> torch.Tensor:
        raise RuntimeError("the loss blew up")

    trainer = acc.Trainer(
        TwoHeadNet(), torch.optim.SGD(TwoHeadNet().parameters(), lr=0.1), two_task_loader,
        tasks={"boom": exploding}, store=store,
    )  # fmt: skip
    job = trainer.start(steps=5)
    with pytest.raises(acc.TaskError, match=r"task 'boom'.*the loss blew up"):
        job.wait(timeout=30)
    record = store.job(job.id)
    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert "Traceback" in record.error and "the loss blew up" in record.error
    with pytest.raises(acc.TaskError):  # fit() raises it directly
        trainer.fit(steps=1)


class FailingLoader:
    """Yields good batches, then raises: a data pipeline failing mid-epoch."""

    def __init__(self, good: int) -> None:
        self.good = good
        self.data = make_regression_data(64)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.data.tensors
        for i in range(self.good):
            yield x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8]
        raise OSError("disk went away")


def test_an_exception_in_the_data_loader_fails_the_job_and_keeps_the_points(store: acc.RunStore) -> None:
    model = nn.Linear(8, 1)
    trainer = acc.Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), FailingLoader(good=3),
        tasks={"mse": acc.tasks.Regression()}, store=store, fetch_every=100,
    )  # fmt: skip
    job = trainer.start(steps=10)
    with pytest.raises(OSError, match="disk went away"):
        job.wait(timeout=30)
    assert store.job(job.id).status is JobStatus.FAILED
    assert [p["step"] for p in store.metrics(job.id)["loss/mse"]] == [1, 2, 3]  # pending steps were flushed


def test_stop_ends_a_background_job_promptly(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    job = trainer.start(steps=1_000_000)
    while trainer.state.step < 5:
        time.sleep(0.005)
    started = time.monotonic()
    trainer.stop()
    assert job.done()
    assert time.monotonic() - started < 5
    assert job.status == "stopped"
    record = store.job(job.id)
    assert record.status is JobStatus.STOPPED
    assert record.reason == "stopped by the user"
    assert record.last_step == trainer.state.step


def test_epochs_iterators_and_empty_data(store: acc.RunStore) -> None:
    data = make_regression_data(64)
    loader = DataLoader(data, batch_size=8)  # 8 batches per epoch
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = acc.Trainer(model, opt, loader, tasks={"mse": "regression"}, store=store)
    trainer.fit(epochs=2)
    assert (trainer.state.step, trainer.state.epoch) == (16, 2)

    one_shot = iter([data.tensors] * 3)
    trainer = acc.Trainer(model, opt, one_shot, tasks={"mse": "regression"}, store=store)
    job = trainer.fit(steps=10)
    assert trainer.state.step == 3
    assert store.job(job.id).reason == "the data ran out after step 3"

    trainer = acc.Trainer(model, opt, [], tasks={"mse": "regression"}, store=store)
    with pytest.raises(ValueError, match="no batches"):
        trainer.fit(steps=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 5, "epochs": 1}, ValueError, "exactly one"),
        ({}, ValueError, "exactly one"),
        ({"steps": 0}, ValueError, "positive integer"),
        ({"steps": 2.5}, ValueError, "positive integer"),
    ],
)
def test_bad_fit_arguments(
    two_task_loader: DataLoader, store: acc.RunStore, kwargs: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        two_task_trainer(two_task_loader, store).fit(**kwargs)


def test_bad_constructor_arguments(two_task_loader: DataLoader) -> None:
    model = TwoHeadNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="non-empty mapping"):
        acc.Trainer(model, opt, two_task_loader, tasks={})
    with pytest.raises(TypeError, match="Optimizer"):
        acc.Trainer(model, "adam", two_task_loader, tasks={"r": "mse"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword"):
        acc.Trainer(model, opt, two_task_loader, tasks={"r": "mse"}, lr=0.1)  # type: ignore[call-arg]


def test_starting_twice_is_refused(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    job = trainer.start(steps=1_000_000)
    try:
        with pytest.raises(RuntimeError, match="still running"):
            trainer.start(steps=5)
    finally:
        job.stop()


def test_checkpoints_carry_the_summary_and_form_a_tree(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=7)
    job = trainer.start(steps=1_000_000)
    while trainer.state.step < 10:
        time.sleep(0.005)
    during = trainer.save_checkpoint("while-running")  # saved between two steps of the live job
    job.stop()
    assert 10 <= during.step <= trainer.state.step
    summary = during.metrics["loss_summary"]
    assert set(summary) == {"reg", "cls"}
    assert summary["reg"]["n_steps"] == during.step  # flushed first: covers every step taken
    end = trainer.save_checkpoint("end")
    assert end.parent_id == during.id

    # resume in a "new session": a fresh model restored from the first checkpoint
    resumed = two_task_trainer(two_task_loader, store)
    resumed.load_checkpoint(during.id)
    assert resumed.state.step == during.step
    resumed.fit(steps=5)
    child = resumed.save_checkpoint("branch")
    assert child.parent_id == during.id and child.step == during.step + 5
    (root,) = resumed.checkpoints.tree()
    assert root.checkpoint.id == during.id
    assert sorted(c.checkpoint.name or "" for c in root.children) == ["branch", "end"]
    assert store.job(resumed.job.id).config["resumed_from"] == during.id  # type: ignore[union-attr]


def test_checkpoint_weights_restore_exactly(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    trainer.fit(steps=5)
    ckpt = trainer.save_checkpoint()
    expected = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit(steps=5)  # weights move on
    fresh = TwoHeadNet()
    trainer.checkpoints.load(ckpt, fresh)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, expected[key])


def test_a_hand_written_loop_records_through_the_recorder(store: acc.RunStore) -> None:
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = make_regression_data(64).tensors
    rec = acc.Recorder(tasks={"mse": "regression"}, store=store, name="manual", fetch_every=8)
    with rec:
        for step in range(1, 21):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.record(step, losses={"mse": loss.detach(), "aux_kl": loss.detach() * 0}, lr=0.05)
    assert rec.job_id is not None
    record = store.job(rec.job_id)
    assert (record.status, record.name, record.last_step) == (JobStatus.COMPLETED, "manual", 20)
    summary = rec.loss_summary()
    assert summary["mse"].n_steps == 20 and summary["mse"].trend == "improving"
    assert summary["aux_kl"].task_type == "kl"  # an undeclared loss gets the type its name says
    assert len(store.metrics(rec.job_id)["loss/mse"]) == 20

    failing = acc.Recorder(tasks={"mse": "regression"}, store=store, name="broken")

    def crashing_loop() -> None:
        with failing:
            failing.record(1, losses={"mse": 0.5})
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        crashing_loop()
    assert failing.job_id is not None
    failed = store.job(failing.job_id)
    assert failed.status is JobStatus.FAILED and failed.error is not None and "ZeroDivisionError" in failed.error


def test_a_trainer_without_a_store_uses_acc_home(two_task_loader: DataLoader, acc_home: Any) -> None:
    model = TwoHeadNet()
    trainer = acc.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), two_task_loader, tasks={"r": "mse"},
                          forward=lambda m, b: m(b[0])["pred"])  # fmt: skip
    job = trainer.fit(steps=3)
    assert trainer.store.root == acc_home
    assert [j.id for j in acc.RunStore(acc_home).jobs()] == [job.id]
    assert trainer.checkpoints.root == acc_home / "checkpoints"


def test_cuda_free_device_argument_moves_batches(store: acc.RunStore) -> None:
    seen: list[torch.device] = []
    x, y = make_regression_data(32).tensors
    model = nn.Linear(8, 1)
    trainer = acc.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), DataLoader(TensorDataset(x, y), 8),
                          tasks={"mse": "regression"}, store=store, device="cpu")  # fmt: skip
    trainer.on(Event.STEP_STARTED, lambda state: seen.append(state.batch[0].device))
    trainer.fit(steps=2)
    assert seen == [torch.device("cpu")] * 2


@pytest.mark.slow
def test_kill_9_of_a_training_process_loses_at_most_a_second(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys, torch, acc
        sys.path.insert(0, "tests")
        from conftest import TwoHeadNet, make_regression_data
        x, y = make_regression_data().tensors
        batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)] * 100000
        model = TwoHeadNet()
        trainer = acc.Trainer(model, torch.optim.SGD(model.parameters(), lr=1e-3), batches,
                              tasks={"mse": acc.tasks.Regression(output="pred")}, fetch_every=50)
        job = trainer.start(steps=10**9)
        print(job.id, flush=True)
        job.wait()
        """
    )
    env = {**os.environ, "ACC_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[1])  # fmt: skip
    assert proc.stdout is not None
    job_id = int(proc.stdout.readline())
    time.sleep(3.0)
    proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    proc.wait(30)
    store = acc.RunStore(tmp_path)
    assert store.integrity_check() == "ok"
    assert store.job(job_id).status is JobStatus.INTERRUPTED
    steps, _, walls = store.series(job_id, "loss/mse")
    assert len(steps) > 50
    assert list(steps) == list(range(1, len(steps) + 1))
    assert killed_at - walls[-1] <= 1.0


def test_losses_that_cannot_be_stacked_are_recorded_the_same_way(store: acc.RunStore) -> None:
    """Scalar float losses take the stacked path; (1,)-shaped or bf16 ones are added one by one. Same record."""
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    y = x.sum(1, keepdim=True)
    labels = (y.squeeze(1) > 0).long()
    batches = [(x[i : i + 16], y[i : i + 16], labels[i : i + 16]) for i in range(0, 64, 16)]

    def run(shape: tuple[int, ...], dtype: torch.dtype) -> tuple[acc.Job, acc.Trainer]:
        torch.manual_seed(0)
        model = TwoHeadNet()
        reg = acc.tasks.Regression(output="pred", target=1)
        cls = acc.tasks.Classification(output="logits", target=2)
        tasks = {
            "reg": acc.tasks.Task(lambda out, b: reg(out, b).reshape(shape).to(dtype), task_type="regression"),
            "cls": acc.tasks.Task(lambda out, b: cls(out, b).reshape(shape).to(dtype), weight=0.5),
        }
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        trainer = acc.Trainer(model, opt, batches, tasks=tasks, store=store, fetch_every=3, grad_norm_every=2)
        return trainer.fit(steps=10), trainer

    stacked_job, stacked = run((), torch.float32)
    assert stacked._stack_losses  # the fast path was taken
    for shape, dtype in [((1,), torch.float32), ((), torch.bfloat16)]:
        job, trainer = run(shape, dtype)
        assert not trainer._stack_losses  # ... and here it was not
        expected, got = store.metrics(stacked_job.id), store.metrics(job.id)
        assert sorted(got) == sorted(expected) == ["grad_norm", "learning_rate", "loss", "loss/cls", "loss/reg"]
        rel = 1e-6 if dtype == torch.float32 else 2e-2  # bf16 rounds each loss
        for name, series in expected.items():
            assert [p["step"] for p in got[name]] == [p["step"] for p in series]
            assert [p["value"] for p in got[name]] == pytest.approx([p["value"] for p in series], rel=rel), name
        assert trainer.loss_summary()["reg"].n_steps == 10
        assert trainer.loss_summary()["cls"].mean == pytest.approx(stacked.loss_summary()["cls"].mean, rel=rel)
    totals = store.metrics(stacked_job.id)
    for total, reg_point, cls_point in zip(totals["loss"], totals["loss/reg"], totals["loss/cls"], strict=True):
        assert total["value"] == pytest.approx(reg_point["value"] + 0.5 * cls_point["value"], rel=1e-6)
