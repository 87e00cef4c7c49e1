"""What the debugger shows of a paused run: step data, grad_delta, feature tables, forces,
cosine matrices and watched-feature trajectories, on the competitive recipe and on a plain control model."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TwoHeadNet, wait_until
from torch import nn
from torch.utils.data import DataLoader

import acc
from acc import Event
from acc.recipes import FEATURE_PARAM, competitive_trainer, control_trainer


@pytest.fixture
def paused_recipe(store: acc.RunStore) -> Any:
    """The competitive recipe, paused after 5 steps."""
    dbg = acc.DebugController(feature_param=FEATURE_PARAM)
    trainer = competitive_trainer(dbg, store=store, monitors=None)
    dbg.step(5)
    job = trainer.start(steps=10_000)
    wait_until(lambda: dbg.is_paused)
    yield dbg, trainer
    dbg.stop()
    job.wait(10)


def test_the_issues_example_end_to_end(store: acc.RunStore) -> None:
    dbg = acc.DebugController(feature_param="encoder.weight")
    trainer = competitive_trainer(dbg, store=store, monitors=None)
    job = trainer.start(steps=5000)
    wait_until(lambda: trainer.state.step >= 3)  # (a pause before the first step shows no batch yet)
    dbg.pause()
    state = dbg.get_state()
    assert state["paused"] is True and state["has_batch"] is True and state["reason"] == "user"
    s = state["step"]
    dbg.step()
    batch = dbg.get_batch()
    assert batch is not None and batch["step"] == s + 1 and batch["png"].startswith(b"\x89PNG")
    assert {"grad_delta", "win_rate"} <= set(dbg.list_step_data_keys())
    cos = dbg.cosine_matrix("weights")
    assert cos["matrix"].shape == (32, 32) and {"mean", "std", "max"} <= set(cos)
    dbg.add_watch(17)
    dbg.step(20)
    assert len(dbg.get_trajectories()[17]) == 20
    dbg.break_on("nan")
    dbg.resume()
    assert dbg.get_state()["state"] == "running"
    dbg.stop()
    assert job.wait(10).status == "stopped"


def test_the_recipe_fills_step_data_and_the_table(paused_recipe: Any) -> None:
    dbg, _ = paused_recipe
    assert dbg.get_state()["step"] == 5 and dbg.get_state()["n_features"] == 32
    assert dbg.list_step_data_keys() == [
        "attraction",
        "attraction_norm",
        "grad_delta",
        "grad_norm",
        "gradient_force",
        "win_rate",
    ]
    info = dbg.step_data_info()
    assert info["attraction"] == {"step": 5, "shape": [32, 64], "dtype": "float32", "kind": "tensor"}
    win = dbg.get_step_data("win_rate")
    assert win["step"] == 5 and isinstance(win["value"], np.ndarray) and win["value"].shape == (32,)
    assert win["value"].sum() == pytest.approx(1.0)  # each input has one winner
    assert isinstance(dbg.get_step_data("win_rate", as_tensor=True)["value"], torch.Tensor)
    table = dbg.feature_table(sort_by="win_rate")
    assert table["step"] == 5 and table["n_features"] == 32
    assert table["columns"] == ["feature", "attraction_norm", "grad_norm", "win_rate", "status"]
    rates = [r["win_rate"] for r in table["rows"]]
    assert rates == sorted(rates, reverse=True)
    dead = sorted(r["feature"] for r in table["rows"] if r["status"] == "dead")
    assert dead == [int(i) for i in np.flatnonzero(win["value"] < 0.01)]
    with pytest.raises(KeyError, match=r"no step data 'nope' for step 5.*keys: \['attraction'"):
        dbg.get_step_data("nope")
    with pytest.raises(TypeError, match="non-empty string"):
        dbg.capture_step_data("", 1)


def test_grad_delta_is_the_optimizer_steps_change_of_the_rows(store: acc.RunStore, two_task_loader: DataLoader) -> None:
    dbg = acc.DebugController(feature_param="body.0.weight")
    torch.manual_seed(0)
    model = TwoHeadNet()
    lr = 0.1
    tasks = {"reg": acc.tasks.Regression(output="pred", target=1)}
    trainer = acc.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=lr),
        two_task_loader,
        tasks=tasks,
        store=store,
        debug_controller=dbg,
        monitors=None,
    )
    weight = model.body[0].weight
    trainer.on(Event.AFTER_BACKWARD, lambda st: dbg.capture_step_data("grad", weight.grad.clone()))
    dbg.step(3)
    job = trainer.start(steps=100)
    wait_until(lambda: dbg.is_paused)
    delta = dbg.get_step_data("grad_delta")["value"]
    grad = dbg.get_step_data("grad")["value"]
    assert delta.shape == (16, 8) and np.allclose(delta, -lr * grad, atol=1e-6)  # plain SGD: delta = -lr * grad
    before = weight.detach().clone()
    dbg.step()
    assert torch.allclose(
        weight.detach() - before, torch.from_numpy(dbg.get_step_data("grad_delta")["value"]), atol=1e-6
    )
    dbg.resume()
    job.wait(10)
    opt = trainer.optimizer
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks  # no copies after the job


def test_step_data_is_of_the_step_just_taken_and_stale_keys_disappear(
    store: acc.RunStore, two_task_loader: DataLoader
) -> None:
    dbg = acc.DebugController()
    torch.manual_seed(0)
    model = TwoHeadNet()
    trainer = acc.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-2),
        two_task_loader,
        tasks={"reg": acc.tasks.Regression(output="pred", target=1)},
        store=store,
        debug_controller=dbg,
        monitors=None,
    )

    def started(st: acc.TrainerState) -> None:
        dbg.capture_step_data("started_at", st.step + 1)  # captured before the forward pass
        if (st.step + 1) % 2 == 0:
            dbg.capture_step_data("even_only", torch.tensor(st.step + 1))

    trainer.on(Event.STEP_STARTED, started)
    trainer.on(Event.STEP_COMPLETED, lambda st: dbg.capture_step_data("completed_at", st.step))
    job = trainer.start(steps=1000)
    wait_until(lambda: trainer.state.step >= 3)
    dbg.pause()  # from a loop running free: the first step it saw whole
    for _ in range(6):
        s = dbg.get_state()["step"]
        assert dbg.get_step_data("started_at")["value"] == s
        assert dbg.get_step_data("completed_at")["value"] == s
        if s % 2 == 0:
            assert dbg.get_step_data("even_only") == {
                "key": "even_only",
                "step": s,
                "value": s,
                "shape": [],
                "dtype": "int64",
                "kind": "tensor",
            }
        else:
            assert "even_only" not in dbg.list_step_data_keys()
            with pytest.raises(KeyError, match=f"no step data 'even_only' for step {s}; keys: "):
                dbg.get_step_data("even_only")
        dbg.step()
    dbg.stop()
    job.wait(10)


def test_forces_of_the_recipe(paused_recipe: Any) -> None:
    dbg, _ = paused_recipe
    summary = dbg.force_summary(a="grad_delta", b="attraction")
    assert summary["step"] == 5 and summary["n"] == 32
    assert summary["agree"] + summary["fight"] + summary["neutral"] == 32
    a = dbg.get_step_data("grad_delta")["value"]
    b = dbg.get_step_data("attraction")["value"]
    busiest = int(np.argmax(np.linalg.norm(b, axis=1)))
    detail = dbg.force_detail(busiest, b="attraction")
    assert np.allclose(detail["a"], a[busiest], atol=1e-6) and np.allclose(
        detail["sum"], a[busiest] + b[busiest], atol=1e-6
    )
    expected = float(a[busiest] @ b[busiest] / (np.linalg.norm(a[busiest]) * np.linalg.norm(b[busiest])))
    assert detail["cos"] == pytest.approx(expected, abs=1e-5) and summary["cos"][busiest] == pytest.approx(
        expected, abs=1e-5
    )
    weights = dbg.cosine_matrix("weights")  # (any access to the rows works while paused)
    assert weights["step"] == 5
    assert len(detail["weight"]) == 64
    raw = dbg.force_summary(a="gradient_force", b="attraction")  # the loss's pull before momentum
    assert raw["n"] == 32 and raw["agree"] + raw["fight"] + raw["neutral"] == 32
    with pytest.raises(ValueError, match=r"force 'win_rate' must be a per-feature update of shape \[D, K\]"):
        dbg.force_summary(b="win_rate")
    with pytest.raises(KeyError, match="no step data 'nope'"):
        dbg.force_detail(0, b="nope")


def test_cosine_matrices_of_weights_updates_and_step_data(paused_recipe: Any) -> None:
    dbg, trainer = paused_recipe
    out = dbg.cosine_matrix("weights")
    w = trainer.model.encoder.weight.detach().numpy()
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)
    assert out["matrix"].dtype == np.float32 and out["matrix"].shape == (32, 32)
    assert np.allclose(out["matrix"], wn @ wn.T, atol=1e-5)
    off = (wn @ wn.T)[~np.eye(32, dtype=bool)]
    assert out["mean"] == pytest.approx(off.mean(), abs=1e-5) and out["max"] == pytest.approx(off.max(), abs=1e-5)
    ordered = dbg.cosine_matrix("weights", order_by="win_rate")
    rates = dbg.get_step_data("win_rate")["value"]
    assert [rates[i] for i in ordered["order"]] == sorted(rates, reverse=True)
    assert dbg.cosine_matrix("grad_delta")["matrix"].shape == (32, 32)
    assert dbg.cosine_matrix("attraction")["step"] == 5
    with pytest.raises(ValueError, match=r"'win_rate' has shape \[32\]: a cosine matrix needs a \[D, K\] tensor"):
        dbg.cosine_matrix("win_rate")
    with pytest.raises(KeyError, match="no step data 'typo'"):
        dbg.cosine_matrix("typo")


def test_a_4096_feature_cosine_matrix(store: acc.RunStore) -> None:
    dbg = acc.DebugController(feature_param=torch.randn(4096, 64, generator=torch.Generator().manual_seed(0)))
    out = dbg.cosine_matrix("weights")
    assert out["matrix"].shape == (4096, 4096) and out["n"] == 4096
    assert abs(out["mean"]) < 0.01 and 0.0 < out["max"] < 1.0  # random rows: nearly orthogonal


def test_watches_record_every_step_paused_or_not(paused_recipe: Any) -> None:
    dbg, trainer = paused_recipe
    w = trainer.model.encoder.weight
    start_row = w.detach()[17].clone()
    handle = dbg.add_watch(17)
    dbg.add_watch(3)
    assert dbg.get_watched() == [3, 17]
    state = dbg.step(20)
    traj = dbg.get_trajectories()
    assert len(traj[17]) == 20 and [p["step"] for p in traj[17]] == list(range(6, 26))
    last = traj[17][-1]
    assert set(last) == {"step", "cosine", "attraction_norm", "grad_norm", "win_rate"}
    expected = torch.nn.functional.cosine_similarity(w.detach()[17], start_row, dim=0).item()
    assert last["cosine"] == pytest.approx(expected, abs=1e-5) and state["step"] == 25
    assert last["win_rate"] == pytest.approx(float(dbg.get_step_data("win_rate")["value"][17]))

    # running free (not paused), points keep coming: one per step
    dbg.resume()
    time.sleep(0.1)
    state = dbg.pause()
    traj = dbg.get_trajectories()
    assert [p["step"] for p in traj[3]] == list(range(6, state["step"] + 1))

    handle.remove()  # a removed watch keeps its trajectory
    dbg.step(3)
    traj = dbg.get_trajectories()
    assert dbg.get_watched() == [3] and traj[17][-1]["step"] == state["step"] and len(traj[3]) == len(traj[17]) + 3
    frame = dbg.trajectories_frame()
    assert list(frame.columns[:3]) == ["feature", "step", "attraction_norm"] or "cosine" in frame.columns
    assert len(frame) == len(traj[3]) + len(traj[17]) and set(frame["feature"]) == {3, 17}
    dbg.clear_trajectories()
    assert dbg.get_trajectories() == {}


def test_watch_errors(paused_recipe: Any) -> None:
    dbg, _ = paused_recipe
    with pytest.raises(IndexError, match=r"feature 32 is out of range: the feature parameter has 32 rows \(0..31\)"):
        dbg.add_watch(32)
    with pytest.raises(IndexError, match="out of range"):
        dbg.add_watch(-1)
    with pytest.raises(TypeError, match="row index"):
        dbg.add_watch(1.5)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match=r"feature 4 is not watched; watched: \[\]"):
        dbg.remove_watch(4)


def test_trajectories_are_bounded_and_a_new_job_clears_them(store: acc.RunStore) -> None:
    dbg = acc.DebugController(feature_param=FEATURE_PARAM, trajectory_cap=16, fetch_every=5)
    trainer = competitive_trainer(dbg, store=store, monitors=None)
    dbg.add_watch(0)
    trainer.fit(steps=60)
    traj = dbg.get_trajectories()[0]
    assert len(traj) <= 16 and traj[0]["step"] == 1 and traj[-1]["step"] == 60
    assert [p["step"] for p in traj] == sorted(p["step"] for p in traj)
    trainer.fit(steps=3)  # a new job: trajectories start again from its first row, the watch stays
    assert [p["step"] for p in dbg.get_trajectories()[0]] == [61, 62, 63]
    with pytest.raises(ValueError, match="trajectory_cap"):
        acc.DebugController(trajectory_cap=2)


def test_the_same_controller_on_a_plain_control_model(store: acc.RunStore) -> None:
    dbg = acc.DebugController()  # no feature parameter
    trainer = control_trainer(dbg, store=store, monitors=None)
    trainer.on(
        Event.AFTER_BACKWARD, lambda st: dbg.capture_step_data("hidden_grad", trainer.model[1].weight.grad.clone())
    )
    with dbg.break_on(step=4):
        job = trainer.start(steps=200)
        wait_until(lambda: dbg.is_paused)
    state = dbg.get_state()
    assert (state["step"], state["reason"], state["n_features"], state["feature_param"]) == (
        4,
        "breakpoint: step 4",
        None,
        None,
    )
    batch = dbg.get_batch()
    assert batch is not None and batch["kind"] == "image" and len(batch["labels"]) == 64
    assert dbg.step(2)["step"] == 6
    assert dbg.list_step_data_keys() == ["hidden_grad"]  # no grad_delta without a feature parameter
    with pytest.raises(KeyError, match="grad_delta needs a feature parameter and its optimizer: no feature_param"):
        dbg.force_summary(b="hidden_grad")
    assert dbg.cosine_matrix("hidden_grad")["matrix"].shape == (64, 64)  # any [D, K] step data works
    with pytest.raises(ValueError, match="needs a feature parameter"):
        dbg.cosine_matrix("weights")
    with pytest.raises(ValueError, match="needs a feature parameter"):
        dbg.add_watch(0)
    dbg.resume()
    assert job.wait(10).status == "completed"


@pytest.mark.parametrize(
    ("feature_param", "match"),
    [
        (
            "encoder.nope",
            r"'encoder.nope' is not a parameter of CompetitiveFeatures; "
            r"its 2-D parameters are: encoder.weight, readout.weight",
        ),
        ("readout.bias", r"'readout.bias' has shape \[10\]; a feature parameter must be 2-D"),
    ],
)
def test_a_bad_feature_param_fails_the_job_with_a_clear_error(
    store: acc.RunStore, feature_param: str, match: str
) -> None:
    dbg = acc.DebugController(feature_param=feature_param)
    trainer = competitive_trainer(dbg, store=store, monitors=None)
    with pytest.raises(ValueError, match=match):
        trainer.fit(steps=3)
    assert dbg.get_state()["job_status"] == "failed"


def test_bad_controller_arguments() -> None:
    with pytest.raises(ValueError, match="2-D"):
        acc.DebugController(feature_param=torch.zeros(3))
    with pytest.raises(TypeError, match="feature_param"):
        acc.DebugController(feature_param=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fetch_every"):
        acc.DebugController(fetch_every=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        acc.DebugController(featre_param="x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="positive integer number of steps"):
        acc.DebugController().step(0)


def test_a_model_on_the_digits_pauses_with_its_images_as_png(store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    trainer = acc.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        acc.datasets.digits_loader(16),
        tasks={"cls": acc.tasks.Classification()},
        store=store,
        debug_controller=dbg,
        monitors=None,
    )
    dbg.step(2)
    job = trainer.start(steps=10)
    wait_until(lambda: dbg.is_paused)
    batch = dbg.get_batch(nrow=4)
    assert batch is not None and batch["png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert batch["grid"]["nrow"] == 4 and batch["grid"]["rows"] == 4 and batch["grid"]["width"] == 4 * 30 + 2
    assert (
        batch["summary"]["shape"] == [16, 1, 28, 28]
        and 0.0 <= batch["summary"]["min"] <= batch["summary"]["max"] <= 1.0
    )
    dbg.resume()
    job.wait(10)
