"""Fixed evaluation: every N steps, loss, accuracy and ECE on the same held-out set, with their trend.

Training-batch numbers move with each batch's make-up; a fixed set does not,
so its trend is the honest one. Optionally each example carries two labels
(the seed's "pattern" x "length", or any two) and the accuracy is sliced by
both into a matrix for ``HeatmapWidget`` (``result.heatmap``; the status
snapshot's ``pattern_heatmap``).

::

    ev = acc.monitors.FixedEvalMonitor((x_val, y_val), every=100,
                                       slices=(digit_of_each, stroke_width_of_each), slice_names=("digit", "width"))
    trainer = acc.Trainer(..., monitors=acc.monitors.default_monitors(ev))
    ev.evaluate(model)    # by hand: one result now

The sums stay on the device across the evaluation batches and are fetched in
one transfer at its end (an evaluation is a fetch point).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from acc._torch_utils import to_device
from acc.events import Event
from acc.monitors._base import MonitorBase, check_every
from acc.monitors.streaming import (
    IGNORE_INDEX,
    Extractor,
    Trend,
    _check_labels,
    _check_logits,
    _reduce_outputs,
    _unpack,
    default_extractor,
    ece_from_bins,
    trend,
)
from acc.state import TrainerState

__all__ = ["EvalResult", "FixedEvalMonitor", "heatmap_matrix", "sliced_accuracy"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _sum_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )


@dataclass(frozen=True)
class EvalResult:
    """One evaluation of the fixed set."""

    step: int
    loss: float
    """Mean loss per counted example (cross-entropy by default)."""
    accuracy: float
    ece: float
    n: int
    """Examples counted (labels not equal to the ignore index)."""
    seconds: float
    heatmap: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ordered(labels: Sequence[Hashable]) -> list[Hashable]:
    unique = list(dict.fromkeys(labels))
    try:
        return sorted(unique)  # type: ignore[type-var]
    except TypeError:  # mixed or unorderable labels keep their first-seen order
        return unique


def _plain_label(label: Hashable) -> Any:
    if isinstance(label, (str, int, float, bool)) or label is None:
        return label
    if isinstance(label, np.generic):
        return label.item()
    return str(label)


def sliced_accuracy(
    hits: Sequence[bool] | np.ndarray,
    rows: Sequence[Hashable],
    cols: Sequence[Hashable],
    names: tuple[str, str] = ("row", "col"),
) -> dict[str, Any]:
    """Accuracy per (row label, column label) pair: ``{"row_name", "col_name", "rows", "cols", "accuracy", "count"}``.

    ``accuracy[i][j]`` is None for a pair with no example. Labels are sorted
    when they can be (else first-seen order).
    """
    h = np.asarray(hits, dtype=bool)
    if not (len(h) == len(rows) == len(cols)):
        raise ValueError(
            f"slices need one row and one column label per example: {len(h)} examples, "
            f"{len(rows)} row labels, {len(cols)} column labels"
        )
    row_keys, col_keys = _ordered(list(rows)), _ordered(list(cols))
    ri = {k: i for i, k in enumerate(row_keys)}
    ci = {k: i for i, k in enumerate(col_keys)}
    count = np.zeros((len(row_keys), len(col_keys)), dtype=np.int64)
    right = np.zeros_like(count)
    r_idx = np.fromiter((ri[r] for r in rows), dtype=np.int64, count=len(h))
    c_idx = np.fromiter((ci[c] for c in cols), dtype=np.int64, count=len(h))
    np.add.at(count, (r_idx, c_idx), 1)
    np.add.at(right, (r_idx, c_idx), h.astype(np.int64))
    accuracy = [
        [int(right[i, j]) / int(count[i, j]) if count[i, j] else None for j in range(len(col_keys))]
        for i in range(len(row_keys))
    ]
    return {
        "row_name": names[0],
        "col_name": names[1],
        "rows": [_plain_label(k) for k in row_keys],
        "cols": [_plain_label(k) for k in col_keys],
        "accuracy": accuracy,
        "count": count.tolist(),
    }


def heatmap_matrix(heatmap: dict[str, Any]) -> np.ndarray:
    """The accuracy matrix of ``sliced_accuracy`` as float64 with NaN for empty cells, for ``HeatmapWidget``::

    acc.HeatmapWidget(heatmap_matrix(status.pattern_heatmap))   # empty cells are drawn grey
    """
    rows = heatmap["accuracy"]
    return np.array([[math.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)


class FixedEvalMonitor(MonitorBase):
    """Loss, accuracy and ECE on a fixed held-out set every ``every`` steps (and at the end), with trend.

    ``FixedEvalMonitor(data, *, every=100, model=None, forward=None,
    extract=None, loss_fn=None, slices=None, slice_names=("row", "col"),
    n_bins=15, at_end=True, trend_window=5)``. ``data``: a re-iterable of
    batches (a list, a DataLoader without shuffling) or one ``(inputs,
    labels)`` batch. ``forward(model, batch)`` and ``extract(outputs, batch)
    -> (logits, labels)`` default to the trainer's forward and its
    classification task (plain logits vs ``batch[1]`` otherwise).
    ``loss_fn(logits, labels)`` returns the *summed* loss (default
    cross-entropy). ``slices=(row_labels, col_labels)``: two labels per example,
    in the data's order.
    """

    name = "fixed_eval"

    def __init__(
        self,
        data: Iterable[Any] | tuple[torch.Tensor, torch.Tensor],
        *,
        every: int = 100,
        model: torch.nn.Module | None = None,
        forward: Callable[[torch.nn.Module, Any], Any] | None = None,
        extract: Extractor | None = None,
        loss_fn: LossFn | None = None,
        slices: tuple[Sequence[Hashable], Sequence[Hashable]] | None = None,
        slice_names: tuple[str, str] = ("row", "col"),
        n_bins: int = 15,
        at_end: bool = True,
        trend_window: int = 5,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
            self.data: Iterable[Any] = [data]
        elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, torch.Tensor)):
            if iter(data) is data:
                raise TypeError(
                    "the fixed evaluation set must be re-iterable (a list or a DataLoader), not an iterator"
                )
            self.data = data
        else:
            raise TypeError(f"data must be batches or an (inputs, labels) tuple, got {type(data).__name__}")
        self.every = check_every(every)
        if model is not None and not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        for what, fn in (("forward", forward), ("extract", extract), ("loss_fn", loss_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
        self.forward = forward
        self.extract: Extractor | None = extract
        self.loss_fn: LossFn = loss_fn or _sum_cross_entropy
        if slices is not None:
            if len(slices) != 2:
                raise ValueError("slices must be (row_labels, col_labels): two labels per example")
            if len(slices[0]) != len(slices[1]):
                raise ValueError(f"slices: {len(slices[0])} row labels but {len(slices[1])} column labels")
        self.slices = slices
        self.slice_names = (str(slice_names[0]), str(slice_names[1]))
        self.n_bins = check_every(n_bins, "n_bins")
        self.at_end = at_end
        self.trend_window = check_every(trend_window, "trend_window")
        self._tasks: Any = None
        self._reset()

    def _reset(self) -> None:
        with self._lock:
            self.history: deque[EvalResult] = deque(maxlen=1000)

    def _register(self, target: Any) -> None:
        if self.model is None:
            self.model = getattr(target, "model", None)
        if self.forward is None:
            self.forward = getattr(target, "forward", None)
        self._tasks = getattr(target, "tasks", None)
        self._on(target, Event.STEP_COMPLETED, self._on_step)
        self._on(target, Event.JOB_ENDED, self._on_end)

    def _on_step(self, state: TrainerState) -> None:
        if state.step % self.every == 0:
            self.evaluate(step=state.step)

    def _on_end(self, state: TrainerState) -> None:
        last = self.history[-1].step if self.history else None
        if self.at_end and state.status in ("completed", "stopped") and state.step > 0 and last != state.step:
            self.evaluate(step=state.step)

    # -- evaluating --------------------------------------------------------

    def evaluate(self, model: torch.nn.Module | None = None, step: int | None = None) -> EvalResult:
        """Evaluate the fixed set now (eval mode, no gradients; the model's mode is restored). One fetch."""
        model = model if model is not None else self.model
        if model is None:
            raise TypeError("FixedEvalMonitor.evaluate() needs a model (evaluate(model), or attach it to a Trainer)")
        forward = self.forward or (lambda m, b: m(b[0]) if isinstance(b, (tuple, list)) else m(b))
        extract = self.extract or default_extractor(self._tasks, labels_from_batch=True)
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        started = time.perf_counter()
        total: torch.Tensor | None = None
        n_rows = 0
        loss_sum: torch.Tensor | None = None
        hits: list[torch.Tensor] = []
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for batch in self.data:
                    batch = to_device(batch, device)
                    got = extract(forward(model, batch), batch)
                    logits, labels = got if got is not None else (None, None)
                    if logits is None or labels is None:
                        raise ValueError(
                            "fixed evaluation found no (logits, labels) in the outputs/batch; pass extract="
                        )
                    _check_logits(logits)
                    _check_labels(labels, logits)
                    vec = _reduce_outputs(logits, labels, self.n_bins)
                    loss = self.loss_fn(logits, labels).detach().float().reshape(())
                    total = vec if total is None else total + vec
                    n_rows += logits.numel() // logits.shape[-1]
                    loss_sum = loss if loss_sum is None else loss_sum + loss
                    if self.slices is not None:
                        hit: torch.Tensor = logits.argmax(-1) == labels
                        hits.append(hit.reshape(-1))
        finally:
            model.train(was_training)
        if total is None or loss_sum is None:
            raise ValueError("the fixed evaluation set yielded no batches")
        tickets = [self._queue.put(total), self._queue.put(loss_sum)]
        if hits:
            tickets.append(self._queue.put(torch.cat(hits)))
        self._queue.fetch()
        host = [t.get() for t in tickets]
        loss_total = float(host[1][0])
        _, correct, counted, bins = _unpack(host[0], n_rows, self.n_bins)
        bad = bins[-1]
        heatmap = None
        if self.slices is not None:
            heatmap = sliced_accuracy(host[2] > 0.5, self.slices[0], self.slices[1], self.slice_names)
        result = EvalResult(
            step=int(step) if step is not None else (self.history[-1].step + 1 if self.history else 0),
            loss=loss_total / counted if counted > 0 else math.nan,
            accuracy=(correct / counted if counted > 0 else math.nan) if bad == 0 else math.nan,
            ece=ece_from_bins(bins),
            n=int(counted),
            seconds=time.perf_counter() - started,
            heatmap=heatmap,
        )
        with self._lock:
            self.history.append(result)
        return result

    # -- reading -----------------------------------------------------------

    def get_trend(self) -> Trend:
        """Trend of the evaluation loss over the last ``trend_window`` evaluations (3 at least)."""
        with self._lock:
            losses = [r.loss for r in self.history][-self.trend_window :]
        return trend(losses, min_points=3)

    def status_fields(self) -> dict[str, Any]:
        with self._lock:
            last = self.history[-1] if self.history else None
        if last is None:
            return {"fixed_eval_trend": "insufficient_data"}
        return {
            "fixed_eval_ce": last.loss,
            "fixed_eval_em": last.accuracy,
            "fixed_eval_ece": last.ece,
            "fixed_eval_trend": self.get_trend(),
            "fixed_eval_step": last.step,
            "fixed_eval_n": last.n,
            "pattern_heatmap": last.heatmap,
        }

    def observations(self, after_step: int) -> list[tuple[int, dict[str, Any]]]:
        """Evaluation results after ``after_step``, for the alerts (``eval_calibration_error`` and more)."""
        with self._lock:
            results = [r for r in self.history if r.step > after_step]
        return [
            (r.step, {"eval_calibration_error": r.ece, "eval_loss": r.loss, "eval_accuracy": r.accuracy})
            for r in results
        ]
