"""The Recorder's device staging: exact values, one host copy per device per fetch, bounded memory."""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import pytest
import torch

import acc


def _recorder(store: acc.RunStore, **kwargs: Any) -> acc.Recorder:
    return acc.Recorder(tasks={"recon": "reconstruction", "kl": "kl"}, store=store, **kwargs)


def test_mixed_dtypes_and_python_numbers_come_back_exactly(store: acc.RunStore) -> None:
    rec = _recorder(store, fetch_every=3, max_fetch_interval=60)
    bf16 = torch.tensor(0.1, dtype=torch.bfloat16)
    values = [
        {"recon": bf16, "kl": torch.tensor(2.5)},
        {"recon": torch.tensor(math.nan), "kl": 7.0},
        {"recon": torch.tensor(0.03, dtype=torch.float64), "kl": torch.tensor(math.inf)},
    ]
    for step, losses in enumerate(values, 1):
        rec.record(step, losses, lr=1e-3, grad_norm=torch.tensor(0.5) if step == 2 else None,
                   metrics={"acc": torch.tensor(0.75, dtype=torch.float16)})  # fmt: skip
    assert rec.job_id is not None
    rec.close()
    points = store.metrics(rec.job_id)
    recon = [p["value"] for p in points["loss/recon"]]
    assert recon[0] == float(bf16) and math.isnan(recon[1]) and recon[2] == 0.03  # float64 kept, not cut to float32
    assert [p["value"] for p in points["loss/kl"]] == [2.5, 7.0, math.inf]
    assert [p["step"] for p in points["grad_norm"]] == [2]
    assert [p["value"] for p in points["acc"]] == [0.75] * 3
    summary = rec.loss_summary()
    assert summary["recon"].n_nonfinite == 1 and summary["kl"].n_nonfinite == 1


def test_one_host_copy_per_fetch_even_with_several_buffers(
    store: acc.RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = {"n": 0}
    original = torch.Tensor.tolist

    def counting(self: torch.Tensor) -> Any:
        if f"{os.sep}acc{os.sep}" in sys._getframe(1).f_code.co_filename:
            reads["n"] += 1
        return original(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counting)
    rec = _recorder(store, fetch_every=10, max_fetch_interval=60)
    for step in range(1, 21):  # rows of two widths (grad norm every 5th step) and two dtypes
        recon = torch.tensor(0.1 * step, dtype=torch.float64 if step % 2 else torch.float32)
        rec.record(
            step, {"recon": recon, "kl": torch.tensor(1.0)}, grad_norm=torch.tensor(1.0) if step % 5 == 0 else None
        )
    assert rec.n_fetches == 2
    assert reads["n"] == 2
    monkeypatch.undo()
    assert rec.job_id is not None
    rec.close()
    stored = [p["value"] for p in store.metrics(rec.job_id)["loss/recon"]]
    assert stored == pytest.approx([0.1 * s for s in range(1, 21)], rel=1e-6)


def test_a_huge_fetch_interval_grows_the_staging_buffer_instead_of_preallocating(store: acc.RunStore) -> None:
    rec = _recorder(store, fetch_every=10**9, max_fetch_interval=1e9)
    for step in range(1, 3001):
        rec.record(step, {"recon": torch.tensor(float(step))})
    (buffer,) = rec._buffers.values()
    assert buffer.data.shape[0] == 4096  # 1024 rows at first, doubled as steps came
    infos = rec.flush()
    assert [i["losses"]["recon"] for i in infos] == [float(s) for s in range(1, 3001)]
    assert buffer.used == 0


def test_losses_that_require_grad_are_copied_not_kept(store: acc.RunStore) -> None:
    w = torch.tensor(2.0, requires_grad=True)
    loss = w * 3
    rec = _recorder(store, fetch_every=100)
    rec.record(1, {"recon": loss})
    loss.backward()  # the graph is the caller's: recording did not consume or change it
    assert w.grad is not None and float(w.grad) == 3.0
    (info,) = rec.flush()
    assert info["losses"]["recon"] == 6.0


def test_bad_values_are_clear_errors(store: acc.RunStore) -> None:
    rec = _recorder(store)
    with pytest.raises(ValueError, match=r"1-element tensors, got shape \(3,\)"):
        rec.record(1, {"recon": torch.ones(3)})
    rec.record(2, {"recon": torch.ones(1)})  # a 1-element tensor of any shape is fine
    assert rec.flush()[0]["losses"]["recon"] == 1.0
