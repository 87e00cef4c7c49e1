"""Streaming statistics: a smoothed loss, its noise and trend, token entropy, accuracy and calibration.

Pure functions (table-tested) do the arithmetic: ``debiased_ema``,
``window_slope``, ``trend``, ``token_entropy``, ``calibration_bins``,
``expected_calibration_error``. ``StreamingMonitor`` keeps the running values:

* in a Trainer (default, ``every=10``): the loss comes from the Recorder's
  batched fetch (no sync); logits and labels are taken from ``state.outputs``
  and ``state.batch`` at sampled steps, reduced on the device to a few
  numbers and fetched together at the next METRICS_FETCHED;
* by hand (the seed's API)::

      tracker = acc.monitors.create_streaming_tracker(ema_alpha=0.1)
      tracker.update_loss(loss_value)        # a host float
      tracker.observe(logits, labels)        # device tensors; no sync here
      tracker.get_statistics()               # fetches what observe() left on the device
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from acc.events import Event
from acc.monitors._base import MonitorBase, Ticket, check_every
from acc.state import TrainerState

__all__ = [
    "Extractor",
    "OutputSample",
    "StreamingMonitor",
    "Trend",
    "calibration_bins",
    "create_streaming_tracker",
    "debiased_ema",
    "default_extractor",
    "ece_from_bins",
    "expected_calibration_error",
    "token_entropy",
    "trend",
    "window_slope",
]

Trend = Literal["improving", "stable", "degrading", "insufficient_data"]
Extractor = Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor | None] | None]
"""``extract(outputs, batch) -> (logits [..., C], labels [...] or None)``, or None to skip this batch."""

IGNORE_INDEX = -100
"""Labels equal to this are left out (PyTorch's and Hugging Face's padding convention)."""

# Rows of logits reduced per chunk: bounds the float32 copy of a language model's logits.
_CHUNK_ELEMENTS = 1 << 24


# -- pure statistics ---------------------------------------------------------


def debiased_ema(values: Iterable[float], alpha: float) -> float:
    """Adam-style bias-corrected exponential moving average of the finite ``values``.

    ``m_t = (1 - alpha) m_{t-1} + alpha x_t`` from ``m_0 = 0``, divided by
    ``1 - (1 - alpha)^t``; the first value is returned as it is, not pulled
    towards zero. Non-finite values are skipped (one NaN must not poison the
    average for ever); NaN when there is no finite value.
    """
    ema = _Ema(alpha)
    for v in values:
        ema.update(v)
    return ema.value


class _Ema:
    """The running form of ``debiased_ema``."""

    __slots__ = ("alpha", "m", "n", "n_nonfinite")

    def __init__(self, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"ema_alpha must be in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self.m = 0.0
        self.n = 0
        self.n_nonfinite = 0

    def update(self, x: float) -> float:
        x = float(x)
        if not math.isfinite(x):
            self.n_nonfinite += 1
            return self.value
        self.m = (1.0 - self.alpha) * self.m + self.alpha * x
        self.n += 1
        return self.value

    @property
    def value(self) -> float:
        if self.n == 0:
            return math.nan
        return self.m / (1.0 - (1.0 - self.alpha) ** self.n)


def window_slope(values: Sequence[float] | np.ndarray) -> float:
    """Least-squares slope of the finite ``values`` against their index (per step); NaN for < 2 points."""
    y = np.asarray(values, dtype=np.float64)
    x = np.arange(y.size, dtype=np.float64)
    ok = np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    x, y = x[ok], y[ok]
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def trend(
    values: Sequence[float], *, higher_is_better: bool = False, tolerance: float = 0.05, min_points: int = 5
) -> Trend:
    """ "improving", "stable" or "degrading" from the windowed slope of ``values``.

    The slope times the window length is the change the fit sees across the
    window; relative to the window's mean magnitude, a change beyond
    ``tolerance`` is a trend. Losses improve downwards, accuracies upwards
    (``higher_is_better``). Fewer than ``min_points`` finite values:
    "insufficient_data".
    """
    y = np.asarray(values, dtype=np.float64)
    finite = y[np.isfinite(y)]
    if finite.size < max(min_points, 2):
        return "insufficient_data"
    slope = window_slope(y)
    scale = max(float(np.abs(finite).mean()), 1e-12)
    change = slope * (y.size - 1) / scale
    if higher_is_better:
        change = -change
    if change < -tolerance:
        return "improving"
    if change > tolerance:
        return "degrading"
    return "stable"


def _variance(values: Iterable[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return 0.0
    return float(np.var(finite))


def _check_logits(logits: torch.Tensor, what: str = "logits") -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"{what} must be a floating tensor, got {logits.dtype}")
    if logits.dim() < 1 or logits.shape[-1] < 2:
        raise ValueError(
            f"{what} must have a class dimension of size >= 2 as its last dimension, got shape {tuple(logits.shape)} "
            "(for one binary logit z pass torch.cat([torch.zeros_like(z), z], -1))"
        )


def _check_labels(labels: torch.Tensor, logits: torch.Tensor) -> None:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be integer class indices, got {labels.dtype}")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"labels of shape {tuple(labels.shape)} do not match logits of shape {tuple(logits.shape)} "
            "(labels must have the logits' shape without the class dimension)"
        )


_EDGES: dict[tuple[torch.device, int], torch.Tensor] = {}


def _bin_edges(device: torch.device, n_bins: int) -> torch.Tensor:
    """Inner bin edges 1/n .. (n-1)/n on ``device``, made once (no host->device copy per sample)."""
    key = (device, n_bins)
    edges = _EDGES.get(key)
    if edges is None:
        edges = _EDGES[key] = (torch.arange(1, n_bins, dtype=torch.float64) / n_bins).float().to(device)
    return edges


def _reduce_outputs(
    logits: torch.Tensor, labels: torch.Tensor | None, n_bins: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """One batch's numbers, on the device, in one vector (no sync; about 20 small kernels).

    Without labels ``[entropy_sum]``; with labels ``[entropy_sum, correct,
    counted, conf_sum x n_bins, correct x n_bins, count x n_bins]``. Entropy
    over every row; accuracy and calibration over rows whose label is not
    ``ignore_index``; confidences in ``(k/n, (k+1)/n]`` fall in bin ``k``. The
    number of rows is known on the host; a NaN anywhere makes the entropy NaN,
    which is how the host tells that the batch's accuracy and ECE are NaN too.
    """
    classes = logits.shape[-1]
    z_all = logits.detach().reshape(-1, classes)
    y_all = labels.detach().reshape(-1).to(z_all.device) if labels is not None else None
    chunk = max(1, _CHUNK_ELEMENTS // max(classes, 1))
    total: torch.Tensor | None = None
    for start in range(0, z_all.shape[0], chunk):
        p = torch.softmax(z_all[start : start + chunk].float(), dim=-1)
        ent = torch.special.entr(p).sum()  # -p log p, 0 at p == 0, NaN stays NaN
        if y_all is None:
            part = ent.reshape(1)
        else:
            y = y_all[start : start + chunk]
            keep = y != ignore_index
            conf, pred = p.max(dim=-1)
            hit = ((pred == y) & keep).float()
            keepf = keep.float()
            idx = torch.bucketize(conf, _bin_edges(conf.device, n_bins))
            bins = conf.new_zeros(3, n_bins)
            bins[0].scatter_add_(0, idx, conf * keepf)
            bins[1].scatter_add_(0, idx, hit)
            bins[2].scatter_add_(0, idx, keepf)
            part = torch.cat([torch.stack([ent, hit.sum(), keepf.sum()]), bins.reshape(-1)])
        total = part if total is None else total + part
    assert total is not None
    return total


def _unpack(v: np.ndarray, rows: int, n_bins: int) -> tuple[float, float, float, np.ndarray]:
    """Host side of ``_reduce_outputs`` with labels: mean entropy, correct, counted, ``calibration_bins`` layout."""
    bad = 1.0 if math.isnan(v[0]) else 0.0
    return float(v[0] / rows), float(v[1]), float(v[2]), np.concatenate([v[3 : 3 + 3 * n_bins], [bad]])


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of ``softmax(logits)`` over every row, as a 0-d tensor on the logits' device.

    ``logits``: ``[..., C]`` with ``C >= 2``. No host sync; NaN logits give NaN.
    """
    _check_logits(logits)
    if logits.numel() == 0:
        raise ValueError(f"token_entropy() got no rows (logits of shape {tuple(logits.shape)})")
    rows = logits.numel() // logits.shape[-1]
    return _reduce_outputs(logits, None, 1)[0] / rows


def calibration_bins(
    probs: torch.Tensor | np.ndarray | Sequence[Any],
    labels: torch.Tensor | np.ndarray | Sequence[int],
    n_bins: int = 15,
    *,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Per-bin sums for the ECE, on the device: ``[confidence sum, correct, count]`` x ``n_bins``, plus a count of NaNs.

    Returns a ``[3 * n_bins + 1]`` vector (no sync); ``ece_from_bins`` turns
    the host copy (summed over any number of batches) into the ECE.
    ``probs``: ``[N, C]`` class probabilities, or ``[N]`` the probability of
    class 1 for binary labels. ``labels``: ``[N]`` class indices.
    """
    p = torch.as_tensor(probs)
    y = torch.as_tensor(labels, device=p.device)
    if not p.is_floating_point():
        raise TypeError(f"probs must be floating point, got {p.dtype}")
    if p.dim() == 1:
        p = torch.stack([1.0 - p, p], dim=-1)
    if p.dim() != 2 or p.shape[-1] < 2:
        raise ValueError(f"probs must be [N, C] (C >= 2) or [N] (binary), got shape {tuple(p.shape)}")
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    _check_labels(y, p)
    # log of the probabilities: the shared reduction works on logits (softmax(log p) == p)
    v = _reduce_outputs(torch.log(p.float()), y, n_bins, ignore_index)
    return torch.cat([v[3:], torch.isnan(v[:1]).float()])


def ece_from_bins(bins: np.ndarray | torch.Tensor) -> float:
    """Expected calibration error from (summed) ``calibration_bins`` output: ``sum |conf - acc| / N``.

    NaN when any counted prediction was NaN, or when nothing was counted.
    """
    b = np.asarray(bins.detach().cpu() if isinstance(bins, torch.Tensor) else bins, dtype=np.float64)
    n_bins = (b.size - 1) // 3
    if b.size != 3 * n_bins + 1 or n_bins < 1:
        raise ValueError(f"expected a calibration_bins() vector of 3 * n_bins + 1 values, got {b.size}")
    conf, hits, count = b[:n_bins], b[n_bins : 2 * n_bins], b[2 * n_bins : 3 * n_bins]
    total = count.sum()
    if b[-1] > 0 or total <= 0:
        return math.nan
    return float(np.abs(conf - hits).sum() / total)


def expected_calibration_error(
    probs: torch.Tensor | np.ndarray | Sequence[Any],
    labels: torch.Tensor | np.ndarray | Sequence[int],
    n_bins: int = 15,
) -> float:
    """Expected calibration error (Guo et al. 2017) with ``n_bins`` equal-width confidence bins.

    ``probs``: ``[N, C]`` class probabilities (or ``[N]``, P(class 1) for
    binary labels); ``labels``: ``[N]``. 0 is perfectly calibrated, 1 is
    confidently always wrong. NaN probabilities give NaN. One host sync: use
    ``calibration_bins`` in a loop.
    """
    p = torch.as_tensor(probs)
    if p.numel() == 0:
        raise ValueError("expected_calibration_error() got no predictions")
    return ece_from_bins(calibration_bins(p, labels, n_bins))


# -- where logits and labels come from ---------------------------------------


def default_extractor(tasks: Mapping[str, Any] | None = None, *, labels_from_batch: bool = False) -> Extractor:
    """Logits and labels for the trainer's first ``Classification`` task, or a ``"logits"`` output.

    With a classification task, its own selectors pick the logits from the
    outputs and the labels from the batch (what its loss saw). Without one, a
    dict/ModelOutput ``logits`` entry gives the token entropy only (a language
    model shifts its labels inside; pass ``extract=`` for accuracy). With
    ``labels_from_batch`` (the fixed evaluation set, which is known to be
    labelled), a plain ``[N, C]`` output is logits too and the labels come
    from the batch (``batch[1]`` or a ``"labels"`` key). Anything else: None.
    """
    from acc.tasks import Classification, _labels_of

    cls_tasks = [t for t in (tasks or {}).values() if isinstance(t, Classification)]

    def extract(outputs: Any, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        if outputs is None:
            return None
        if cls_tasks:
            task = cls_tasks[0]
            # the task's own selectors: the same tensors its loss used
            return task._output(outputs), task._pick_target(batch, _labels_of)
        if isinstance(outputs, torch.Tensor):
            logits: Any = outputs if labels_from_batch else None
        elif isinstance(outputs, Mapping):
            logits = outputs.get("logits")
        else:
            logits = getattr(outputs, "logits", None)
        if not (isinstance(logits, torch.Tensor) and logits.is_floating_point() and logits.dim() >= 2):
            return None
        if not labels_from_batch:
            return logits, None
        try:
            return logits, _labels_of(batch)
        except (KeyError, TypeError):  # no labels in this batch: the caller says what it expected
            return logits, None

    return extract


# -- the monitor -------------------------------------------------------------


@dataclass(frozen=True)
class OutputSample:
    """One sampled step's outputs, on the host."""

    step: int
    token_entropy: float
    accuracy: float | None
    """Accuracy of the batch, or None without labels."""
    correct: float
    counted: float
    bins: np.ndarray
    """``calibration_bins`` layout, this batch only."""


class StreamingMonitor(MonitorBase):
    """Smoothed loss, loss variance and trend; token entropy, accuracy (last 20/50) and ECE from logits.

    ``StreamingMonitor(ema_alpha=0.1, window_size=50, *, every=10,
    extract=None, n_bins=15, calibration_window=10, trend_tolerance=0.05)``:
    ``window_size`` losses give the variance and the loss trend; ``every``
    steps a batch's logits are reduced on the device (``extract(outputs,
    batch) -> (logits, labels)``, default ``default_extractor`` of the
    trainer's tasks);
    accuracy is kept over the last 20 and 50 *sampled* steps (``every=1`` for
    literally the last steps); the ECE pools the last ``calibration_window``
    samples (one batch is too few predictions per bin).
    """

    name = "streaming"

    def __init__(
        self,
        ema_alpha: float = 0.1,
        window_size: int = 50,
        *,
        every: int = 10,
        extract: Extractor | None = None,
        n_bins: int = 15,
        calibration_window: int = 10,
        trend_tolerance: float = 0.05,
        ignore_index: int = IGNORE_INDEX,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        _Ema(ema_alpha)  # validates
        self.ema_alpha = float(ema_alpha)
        self.window_size = check_every(window_size, "window_size")
        if self.window_size < 2:
            raise ValueError(f"window_size must be >= 2 (a variance needs two losses), got {window_size}")
        self.every = check_every(every)
        if extract is not None and not callable(extract):
            raise TypeError(
                f"extract must be a function (outputs, batch) -> (logits, labels), got {type(extract).__name__}"
            )
        self.extract: Extractor | None = extract
        self.n_bins = check_every(n_bins, "n_bins")
        self.calibration_window = check_every(calibration_window, "calibration_window")
        self.trend_tolerance = float(trend_tolerance)
        self.ignore_index = int(ignore_index)
        self._extract: Extractor | None = extract
        self._reset()

    def _reset(self) -> None:
        with self._lock:
            self._ema = _Ema(self.ema_alpha)
            self._losses: deque[float] = deque(maxlen=self.window_size)
            self._ema_history: deque[tuple[int, float]] = deque(maxlen=max(256, self.window_size))
            self._pending: list[tuple[int, Ticket, int]] = []  # step, numbers, rows
            self._samples: deque[OutputSample] = deque(maxlen=max(50, self.calibration_window))
            self._n_steps = 0
            self._last_loss = math.nan
            self._auto_step = 0

    def _register(self, target: Any) -> None:
        if self.extract is None:
            self._extract = default_extractor(getattr(target, "tasks", None))
        self._on(target, Event.STEP_COMPLETED, self._on_step)
        self._on(target, Event.METRICS_FETCHED, self._on_fetched)
        self._on(target, Event.JOB_ENDED, lambda state: self.report())

    def _on_step(self, state: TrainerState) -> None:
        if state.step % self.every or self._extract is None:
            return
        got = self._extract(state.outputs, state.batch)
        if got is None:
            return
        logits, labels = got
        self.observe(logits, labels, step=state.step, force=True)

    def _on_fetched(self, state: TrainerState) -> None:
        with self._lock:
            for info in state.fetched:
                self._add_loss(float(info["loss"]), int(info["step"]))
        self.report()

    # -- by hand (also what the handlers call) -----------------------------

    def update_loss(self, loss: float | torch.Tensor, step: int | None = None) -> dict[str, float]:
        """Add one step's loss (a host number); returns ``{"streaming_ce", "raw_loss", "loss_variance"}``."""
        if isinstance(loss, torch.Tensor):
            raise TypeError(
                "update_loss() takes a host number; a tensor would force a device sync per step "
                "(use the Recorder's fetched values, or pass loss.item() at your own fetch points)"
            )
        value = float(loss)
        with self._lock:
            smoothed = self._add_loss(value, step)
            return {"streaming_ce": smoothed, "raw_loss": value, "loss_variance": _variance(self._losses)}

    def _add_loss(self, value: float, step: int | None) -> float:
        self._n_steps += 1
        smoothed = self._ema.update(value)
        self._losses.append(value)
        self._last_loss = value
        self._ema_history.append((self._n_steps if step is None else step, smoothed))
        return smoothed

    def observe(
        self, logits: torch.Tensor, labels: torch.Tensor | None = None, step: int | None = None, *, force: bool = False
    ) -> bool:
        """Reduce one batch's logits (and labels) on the device if ``step`` is sampled (every ``every``
        steps; always without a step, or with ``force``); fetched at the next report, no sync here.
        Returns True when it sampled."""
        if step is not None and not force and step % self.every:
            return False
        _check_logits(logits)
        if labels is not None:
            _check_labels(labels, logits)
        if logits.numel() == 0:
            return False
        ticket = self._queue.put(_reduce_outputs(logits, labels, self.n_bins, self.ignore_index))
        rows = logits.numel() // logits.shape[-1]
        with self._lock:
            self._auto_step += 1
            self._pending.append((self._auto_step if step is None else int(step), ticket, rows))
        return True

    def report(self) -> list[OutputSample]:
        """Fetch the observed batches (one transfer) and update entropy, accuracy and calibration."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return []
        self._queue.fetch()
        out: list[OutputSample] = []
        nb = self.n_bins
        for step, ticket, rows in pending:
            v = ticket.get()
            if v.size == 1:  # no labels: entropy only
                out.append(OutputSample(step, float(v[0] / rows), None, 0.0, 0.0, np.zeros(3 * nb + 1)))
                continue
            ent, correct, counted, bins = _unpack(v, rows, nb)
            acc = correct / counted if counted > 0 else None
            if math.isnan(ent):
                acc = math.nan  # NaN logits: the batch's accuracy means nothing
            out.append(OutputSample(step, ent, acc, correct, counted, bins))
        with self._lock:
            self._samples.extend(out)
        return out

    def calculate_token_entropy(self, logits: torch.Tensor) -> float:
        """The seed's call: the mean token entropy of ``logits`` now (one host sync), also recorded."""
        self.observe(logits)
        samples = self.report()
        return samples[-1].token_entropy

    def calibration_error(self) -> float | None:
        """ECE pooled over the last ``calibration_window`` labelled samples, or None without labels."""
        with self._lock:
            labelled = [s for s in self._samples if s.accuracy is not None][-self.calibration_window :]
        if not labelled:
            return None
        return ece_from_bins(np.sum([s.bins for s in labelled], axis=0))

    def _accuracy_over(self, n: int) -> float | None:
        with self._lock:
            labelled = [s for s in self._samples if s.accuracy is not None][-n:]
        counted = sum(s.counted for s in labelled)
        if not labelled or counted <= 0:
            return None
        if any(s.accuracy is not None and math.isnan(s.accuracy) for s in labelled):
            return math.nan
        return sum(s.correct for s in labelled) / counted

    def get_trends(self) -> dict[str, Trend]:
        """``loss_trend`` (of the smoothed loss), ``accuracy_trend`` and ``entropy_trend`` over the window."""
        with self._lock:
            ema = [v for _, v in self._ema_history][-self.window_size :]
            samples = list(self._samples)
        acc = [s.accuracy for s in samples if s.accuracy is not None]
        tol = self.trend_tolerance
        return {
            "loss_trend": trend(ema, tolerance=tol),
            "accuracy_trend": trend(acc, higher_is_better=True, tolerance=tol),
            "entropy_trend": trend([s.token_entropy for s in samples], tolerance=tol),
        }

    def get_statistics(self) -> dict[str, Any]:
        """Everything, as host values: the seed's keys (streaming_ce, loss_variance, loss_std, trends) and more.

        Fetches what ``observe()`` left on the device first (a sync); the
        status snapshot reads the reported values only.
        """
        self.report()
        return self._statistics()

    def _statistics(self) -> dict[str, Any]:
        with self._lock:
            variance = _variance(self._losses)
            last = self._samples[-1] if self._samples else None
            stats: dict[str, Any] = {
                "streaming_ce": self._ema.value if self._ema.n else None,
                "raw_loss": self._last_loss if self._n_steps else None,
                "loss_variance": variance,
                "loss_std": math.sqrt(variance),
                "n_losses": self._n_steps,
                "n_nonfinite": self._ema.n_nonfinite,
                "token_entropy": last.token_entropy if last is not None else None,
                "entropy_step": last.step if last is not None else None,
            }
        stats["accuracy_last_20"] = self._accuracy_over(20)
        stats["accuracy_last_50"] = self._accuracy_over(50)
        stats["calibration_error"] = self.calibration_error()
        stats.update(self.get_trends())
        return stats

    def status_fields(self) -> dict[str, Any]:
        s = self._statistics()  # no fetch: the snapshot may be read from another thread at any time
        return {
            "streaming_ce": s["streaming_ce"],
            "loss_variance": s["loss_variance"],
            "token_entropy": s["token_entropy"],
            "loss_trend": s["loss_trend"],
            "accuracy_last_20": s["accuracy_last_20"],
            "accuracy_last_50": s["accuracy_last_50"],
            "accuracy_trend": s["accuracy_trend"],
            "calibration_error": s["calibration_error"],
        }

    def observations(self, after_step: int) -> list[tuple[int, dict[str, Any]]]:
        """What the alerts need, per step, for steps after ``after_step`` (reported values only)."""
        with self._lock:
            obs: list[tuple[int, dict[str, Any]]] = [
                (step, {"streaming_ce": v}) for step, v in self._ema_history if step > after_step
            ]
            samples = [s for s in self._samples if s.step > after_step]
        for s in samples:
            fields: dict[str, Any] = {"token_entropy": s.token_entropy}
            if s.accuracy is not None:
                fields["accuracy"] = s.accuracy
                fields["calibration_error"] = self._ece_until(s.step)
            obs.append((s.step, fields))
        return obs

    def _ece_until(self, step: int) -> float | None:
        with self._lock:
            labelled = [s for s in self._samples if s.accuracy is not None and s.step <= step]
        labelled = labelled[-self.calibration_window :]
        if not labelled:
            return None
        return ece_from_bins(np.sum([s.bins for s in labelled], axis=0))


def create_streaming_tracker(ema_alpha: float = 0.1, window_size: int = 50, **kwargs: Any) -> StreamingMonitor:
    """The seed's factory: a ``StreamingMonitor`` (usable by hand, or attached to a Trainer/Recorder)."""
    return StreamingMonitor(ema_alpha=ema_alpha, window_size=window_size, **kwargs)
