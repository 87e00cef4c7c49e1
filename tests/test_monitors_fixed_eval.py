"""Fixed evaluation: values against a plain computation, sliced accuracy, the Trainer's cadence, trend, alerts."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import TwoHeadNet, make_regression_data, two_task_trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import acc
from acc.monitors import FixedEvalMonitor, expected_calibration_error, heatmap_matrix, sliced_accuracy


def eval_set(n: int = 120, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def test_values_match_a_plain_computation_and_the_mode_is_restored() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 3))
    x, y = eval_set()
    loader = DataLoader(TensorDataset(x, y), batch_size=32)  # 4 batches, the last one short
    ev = FixedEvalMonitor(loader)
    model.train()
    result = ev.evaluate(model, step=7)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert result.step == 7 and result.n == 120
    assert result.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert result.accuracy == pytest.approx((logits.argmax(-1) == y).float().mean().item())
    assert result.ece == pytest.approx(expected_calibration_error(torch.softmax(logits, -1), y), abs=1e-6)
    assert result.heatmap is None


@pytest.mark.parametrize(
    ("hits", "rows", "cols", "accuracy", "count"),
    [
        ([1, 0, 1, 1], ["a", "a", "b", "b"], [1, 1, 1, 2], [[0.5, None], [1.0, 1.0]], [[2, 0], [1, 1]]),
        ([0, 0], ["x", "x"], ["short", "short"], [[0.0]], [[2]]),
        ([1, 1, 0], [2, 10, 2], ["s", "s", "s"], [[0.5], [1.0]], [[2], [1]]),  # numbers sort as numbers
    ],
)
def test_sliced_accuracy_table(
    hits: list[int], rows: list[Any], cols: list[Any], accuracy: list[list[float | None]], count: list[list[int]]
) -> None:
    out = sliced_accuracy([bool(h) for h in hits], rows, cols, ("pattern", "length"))
    assert out["accuracy"] == accuracy and out["count"] == count
    assert out["row_name"] == "pattern" and out["col_name"] == "length"
    assert out["rows"] == sorted(set(rows))


def test_sliced_accuracy_refuses_misaligned_labels() -> None:
    with pytest.raises(ValueError, match="one row and one column label per example"):
        sliced_accuracy([True, False], ["a"], ["b", "c"])


def test_slices_in_an_evaluation_follow_the_examples() -> None:
    x, y = eval_set(60)
    model = nn.Linear(8, 3)
    rows = ["pos" if v > 0 else "neg" for v in x[:, 0].tolist()]
    cols = [int(v) for v in y.tolist()]
    ev = FixedEvalMonitor((x, y), slices=(rows, cols), slice_names=("sign", "label"))
    result = ev.evaluate(model)
    with torch.no_grad():
        hits = (model(x).argmax(-1) == y).tolist()
    assert result.heatmap == sliced_accuracy(hits, rows, cols, ("sign", "label"))
    wrong = FixedEvalMonitor((x, y), slices=(rows[:10], cols[:10]))
    with pytest.raises(ValueError, match="60 examples"):
        wrong.evaluate(model)


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        (iter([1, 2]), {}, "re-iterable"),
        (42, {}, "batches"),
        ([], {"every": 0}, "every"),
        ([], {"slices": (["a"], ["b", "c"])}, "column labels"),
        ([], {"loss_fn": "ce"}, "loss_fn"),
    ],
)
def test_bad_arguments_are_named(data: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        FixedEvalMonitor(data, **kwargs)


def test_empty_set_and_missing_labels_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="no batches"):
        FixedEvalMonitor([]).evaluate(nn.Linear(8, 3))
    with pytest.raises(ValueError, match="no \\(logits, labels\\)"):
        FixedEvalMonitor([torch.randn(4, 8)]).evaluate(nn.Linear(8, 3))


def test_in_a_trainer_every_n_steps_and_at_the_end_with_trend(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    x, y_reg = (t[:120] for t in make_regression_data().tensors)  # conftest's problem and labels
    labels = (y_reg.squeeze(1) > 0).long() + (y_reg.squeeze(1) > 1).long()
    ev = FixedEvalMonitor([(x, y_reg, labels)], every=20)  # the trainer's batch layout: (x, y_reg, label)
    trainer = two_task_trainer(two_task_loader, store, monitors=acc.monitors.default_monitors(ev))
    trainer.fit(steps=90)
    assert [r.step for r in ev.history] == [20, 40, 60, 80, 90]  # and once more at the end
    assert ev.history[-1].loss < ev.history[0].loss  # the classification task learns
    assert ev.get_trend() == "improving"
    status = trainer.status()
    assert status.fixed_eval_step == 90
    assert status.fixed_eval_em == ev.history[-1].accuracy
    assert status.fixed_eval_ce == ev.history[-1].loss
    assert status.fixed_eval_trend == "improving"


def test_poor_calibration_on_the_fixed_set_raises_an_alert(store: acc.RunStore) -> None:
    class Overconfident(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.lin(x) * 1000.0  # certain of everything, right a third of the time
            return out

    torch.manual_seed(0)
    model = Overconfident()
    g = torch.Generator().manual_seed(3)
    val = (torch.randn(90, 8, generator=g), torch.randint(0, 3, (90,), generator=g))
    ev = FixedEvalMonitor(val, every=5)
    data = [(torch.randn(16, 8), torch.randint(0, 3, (16,))) for _ in range(3)]
    trainer = acc.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-6),
        data,
        tasks={"cls": "classification"},
        store=store,
        fetch_every=5,
        monitors=acc.monitors.default_monitors(ev),
    )
    trainer.fit(steps=10)
    alert = next(a for a in trainer.status().active_alerts if a["code"] == "poor_eval_calibration")
    assert alert["first_step"] == 5
    assert "fixed evaluation set" in alert["message"]
    assert trainer.status().fixed_eval_ece > 0.3


def test_trainer_forward_and_tasks_are_reused(store: acc.RunStore) -> None:
    """A dict-output model: the eval reads logits and labels where the classification task does."""
    torch.manual_seed(0)
    model = TwoHeadNet()
    x, y = eval_set(40)
    batch = {"x": x, "label": y}
    ev = FixedEvalMonitor([batch], every=5)
    trainer = acc.Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        [batch] * 5,
        tasks={"cls": acc.tasks.Classification(output="logits", target="label")},
        forward=lambda m, b: m(b["x"]),
        store=store,
        monitors=[ev],
    )
    trainer.fit(steps=5)
    assert ev.history[-1].n == 40


def test_the_sliced_accuracy_renders_in_the_heatmap_widget() -> None:
    heatmap = sliced_accuracy([True, False, True], ["a", "a", "b"], [1, 2, 1], ("pattern", "length"))
    matrix = heatmap_matrix(heatmap)
    assert matrix[0].tolist() == [1.0, 0.0] and matrix[1, 0] == 1.0 and math.isnan(matrix[1, 1])  # empty: NaN
    widget = acc.HeatmapWidget(matrix)  # kernel side: NaN cells are drawn grey
    assert list(widget.get_state()["shape"]) == [2, 2]
