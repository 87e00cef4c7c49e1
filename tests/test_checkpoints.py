"""CheckpointStore: summaries inside, a tree of parents, atomic writes, clear errors for broken files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import acc
from acc import CheckpointError, CheckpointStore
from acc.loss_health import compute_loss_summary


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_save_list_load_with_loss_summary(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 4)).sum().backward()
    opt.step()  # the optimizer has state worth restoring
    summary = compute_loss_summary([{"step": 1, "task_name": "recon", "loss": 0.02}])
    ckpt = store.save(model, opt, step=7, name="first", loss_summary=summary, metrics={"acc": 0.9})
    assert ckpt.metrics["loss_summary"]["recon"]["health"] == "healthy"
    assert ckpt.metrics["acc"] == 0.9
    (listed,) = store.list()
    assert listed == ckpt
    assert listed.loss_summary["recon"].health is acc.LossHealth.HEALTHY

    fresh, fresh_opt = _model(seed=1), None
    fresh_opt = torch.optim.Adam(fresh.parameters())
    store.load(ckpt.id, fresh, fresh_opt)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert fresh_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_checkpoints_form_a_tree(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    model = _model()
    root = store.save(model, step=1)
    a = store.save(model, step=2, parent=root)
    store.save(model, step=3, parent=a.id)
    b = store.save(model, step=2, parent=root.id, name="branch")
    other_root = store.save(model, step=10)
    roots = store.tree()
    assert [r.checkpoint.id for r in roots] == [root.id, other_root.id]
    walked = [(depth, c.step, c.name) for depth, c in roots[0].walk()]
    assert walked == [(0, 1, None), (1, 2, None), (2, 3, None), (1, 2, "branch")]
    assert b.parent_id == root.id
    with pytest.raises(CheckpointError, match="parent checkpoint 'nope' does not exist"):
        store.save(model, step=4, parent="nope")


def test_a_truncated_checkpoint_is_a_clear_error_and_the_others_are_still_listed(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    good = store.save(_model(), step=1)
    bad = store.save(_model(), step=2)
    data = bad.path.read_bytes()
    bad.path.write_bytes(data[: len(data) // 2])
    assert [c.id for c in store.list()] == [good.id]
    assert bad.path in store.errors and "truncated or corrupt" in store.errors[bad.path]
    with pytest.raises(CheckpointError, match=f"{bad.path}.*unreadable"):
        store.load(bad.id, _model())
    with pytest.raises(CheckpointError, match=f"{bad.path}.*unreadable"):
        store.get(bad.id)


def test_a_failed_save_leaves_the_previous_file_whole_and_no_debris(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    model = _model()
    store.save(model, step=1)
    before = sorted(p.name for p in tmp_path.iterdir())

    class Unpicklable(nn.Module):
        def state_dict(self, *args: object, **kwargs: object) -> dict[str, object]:  # type: ignore[override]
            return {"bad": lambda: None}  # torch.save cannot pickle a lambda

    with pytest.raises(Exception, match=r"pickle|lambda"):
        store.save(Unpicklable(), step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial file, no temp file
    assert len(store.list()) == 1


@pytest.mark.slow
def test_a_crash_mid_save_never_leaves_a_half_written_checkpoint(tmp_path: Path) -> None:
    """kill -9 a process while it saves a large checkpoint over and over."""
    code = textwrap.dedent(
        f"""
        import torch, acc
        store = acc.CheckpointStore({str(tmp_path)!r})
        model = torch.nn.Linear(2048, 4096)  # ~32 MB per checkpoint
        print("ready", flush=True)
        step = 0
        while True:
            step += 1
            store.save(model, step=step)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    store = CheckpointStore(tmp_path)
    listed = store.list()
    assert listed, "at least one save completed"
    assert store.errors == {}  # every file under a real name is whole
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    for ckpt in listed:
        store.load(ckpt, torch.nn.Linear(2048, 4096))
    assert all(not t.name.endswith(".pt") for t in temps)


def test_invalid_ids_and_missing_files(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    with pytest.raises(ValueError, match="invalid checkpoint id"):
        store.path_of("../etc/passwd")
    with pytest.raises(CheckpointError, match="no checkpoint 'missing'"):
        store.get("missing")
    (tmp_path / "stray.pt").write_bytes(os.urandom(64))
    assert store.list() == [] and tmp_path / "stray.pt" in store.errors
