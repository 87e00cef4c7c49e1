"""Task types: what each loss of a multi-task model measures, and how heavily it counts.

A task is called with ``(outputs, batch)`` — the model's outputs and the batch it
saw — and returns a scalar loss tensor. The trainer's total loss is the weighted
sum ``sum(task.weight * task(outputs, batch))``.

Where a task finds its inputs (``output=`` and ``target=``) is a key or an index:
a dict output is indexed by key, a tuple/list by position, a plain tensor is used
as it is. The defaults fit the usual shapes:

* ``Reconstruction``: output ``"recon"``/``0`` vs the input (``batch[0]``, or the batch itself).
* ``KLDivergence``: ``"mu"``/``1`` and ``"logvar"``/``2`` of a VAE's outputs.
* ``Classification``: logits ``"logits"``/``0`` vs labels ``batch[1]``.
* ``Regression``: prediction ``"pred"``/``0`` vs targets ``batch[1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from acc.loss_health import (
    DEFAULT_THRESHOLDS,
    LossHealth,
    TaskTypeName,
    Thresholds,
    health_within,
    normalize_task_type,
)

__all__ = [
    "Classification",
    "ClassificationTask",
    "KLDivergence",
    "KLDivergenceTask",
    "Reconstruction",
    "ReconstructionTask",
    "Regression",
    "RegressionTask",
    "Task",
    "TaskError",
    "as_task",
    "select",
]

Selector = str | int | Callable[[Any], Any]
LossFn = Callable[[Any, Any], torch.Tensor]


class TaskError(ValueError):
    """A task could not compute its loss; the message names the task."""


def select(container: Any, key: str, index: int, what: str) -> Any:
    """Pick ``key`` from a dict, ``index`` from a tuple/list, or the tensor itself."""
    if isinstance(container, Mapping):
        if key in container:
            return container[key]
        raise KeyError(f"{what}: no key {key!r} in {sorted(map(str, container))}")
    if isinstance(container, (tuple, list)):
        if -len(container) <= index < len(container):
            return container[index]
        raise IndexError(f"{what}: index {index} out of range for a {type(container).__name__} of {len(container)}")
    if hasattr(container, key) and not isinstance(container, torch.Tensor):
        return getattr(container, key)  # e.g. a dataclass or ModelOutput
    if index == 0:
        return container
    raise TypeError(f"{what}: cannot take {key!r} / [{index}] from a {type(container).__name__}")


def _pick(container: Any, selector: Selector | None, key: str, index: int, what: str) -> Any:
    """Apply a user's selector, or the task's default ``key``/``index``."""
    if selector is None:
        return select(container, key, index, what)
    if callable(selector):
        return selector(container)
    if isinstance(selector, int):
        if isinstance(container, (tuple, list, Mapping)):
            return container[selector]
        raise TypeError(f"{what}: cannot index a {type(container).__name__} with [{selector}]")
    if isinstance(container, Mapping):
        return container[selector]
    return getattr(container, selector)


class Task:
    """A loss of a multi-task model.

    ``Task(fn, task_type="custom", weight=1.0, thresholds=None)`` wraps any
    ``fn(outputs, batch) -> scalar tensor``. ``task_type`` picks the default
    health thresholds (see ``acc.loss_health``); ``thresholds=(healthy, warning)``
    overrides them for this task only.
    """

    default_type: TaskTypeName = "custom"

    def __init__(
        self,
        fn: LossFn | None = None,
        *,
        task_type: str | None = None,
        weight: float = 1.0,
        thresholds: Thresholds | tuple[float, float] | Mapping[str, float] | None = None,
    ) -> None:
        if fn is not None and not callable(fn):
            raise TypeError(f"Task(fn=...) must be callable, got {type(fn).__name__}")
        self.fn = fn
        resolved = normalize_task_type(task_type) if task_type is not None else self.default_type
        if resolved is None:
            raise ValueError(
                f"unknown task_type {task_type!r}; use reconstruction, kl, classification, regression or custom"
            )
        self.task_type: TaskTypeName = resolved
        self.weight = float(weight)
        self.thresholds = Thresholds.coerce(thresholds) if thresholds is not None else None

    def loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        """Compute the loss; subclasses override this."""
        if self.fn is None:
            raise NotImplementedError("a custom Task needs fn=")
        return self.fn(outputs, batch)

    def __call__(self, outputs: Any, batch: Any, *, name: str = "task") -> torch.Tensor:
        try:
            value = self.loss(outputs, batch)
        except TaskError:
            raise
        except Exception as exc:
            raise TaskError(f"task {name!r} ({type(self).__name__}) failed: {exc}") from exc
        check_loss(value, name)
        return value

    def classify(self, task_name: str, value: float) -> LossHealth:
        """The health of one value of this task's loss (its own thresholds, else its type's defaults).

        The same verdict as ``classify_loss(task_name, self.task_type, value,
        thresholds=self.thresholds)``, without resolving the type name on every call.
        """
        bounds = self.thresholds if self.thresholds is not None else DEFAULT_THRESHOLDS.get(self.task_type)
        return health_within(value, bounds)

    def describe(self) -> dict[str, Any]:
        """What the store keeps about the task (JSON-friendly)."""
        return {
            "task_type": self.task_type,
            "weight": self.weight,
            "thresholds": None if self.thresholds is None else [self.thresholds.healthy, self.thresholds.warning],
            "class": type(self).__name__,
        }

    def __repr__(self) -> str:
        extra = f", thresholds={self.thresholds}" if self.thresholds else ""
        return f"{type(self).__name__}(task_type={self.task_type!r}, weight={self.weight}{extra})"


def check_loss(value: Any, name: str) -> None:
    """A loss must be a floating scalar tensor (checked without a device sync)."""
    if not isinstance(value, torch.Tensor):
        raise TaskError(f"task {name!r} returned {type(value).__name__}, expected a scalar torch.Tensor")
    if value.numel() != 1:
        raise TaskError(
            f"task {name!r} returned a tensor of shape {tuple(value.shape)}; a loss must be a scalar "
            "(reduce it with .mean() or .sum())"
        )
    if not value.is_floating_point():
        raise TaskError(f"task {name!r} returned a {value.dtype} tensor; a loss must be a real floating tensor")


def _input_of(batch: Any) -> Any:
    if isinstance(batch, Mapping):
        for key in ("input", "inputs", "x", "image", "images", "pixel_values"):
            if key in batch:
                return batch[key]
        raise KeyError(f"no input key in batch keys {sorted(map(str, batch))}; pass target=")
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


def _labels_of(batch: Any) -> Any:
    if isinstance(batch, Mapping):
        for key in ("label", "labels", "y", "target", "targets"):
            if key in batch:
                return batch[key]
        raise KeyError(f"no label key in batch keys {sorted(map(str, batch))}; pass target=")
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[1]
    raise TypeError("the batch has no labels (expected (inputs, labels)); pass target=")


class _Supervised(Task):
    """A task comparing one output with one target, with selectable locations."""

    output_key = "out"

    def __init__(
        self,
        *,
        weight: float = 1.0,
        output: Selector | None = None,
        target: Selector | None = None,
        thresholds: Thresholds | tuple[float, float] | Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(weight=weight, thresholds=thresholds)
        self.output = output
        self.target = target

    def _output(self, outputs: Any) -> torch.Tensor:
        return _pick(outputs, self.output, self.output_key, 0, "model outputs")  # type: ignore[no-any-return]

    def _pick_target(self, batch: Any, default: Callable[[Any], Any]) -> torch.Tensor:
        if self.target is None:
            return default(batch)  # type: ignore[no-any-return]
        return _pick(batch, self.target, "", 0, "batch")  # type: ignore[no-any-return]


class Reconstruction(_Supervised):
    """Mean absolute error (L1) between a reconstruction and the input."""

    default_type: TaskTypeName = "reconstruction"
    output_key = "recon"

    def loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        recon = self._output(outputs)
        target = self._pick_target(batch, _input_of)
        if recon.shape != target.shape and recon.numel() == target.numel():
            target = target.reshape(recon.shape)  # e.g. flattened decoder output vs [B, 1, H, W] images
        return F.l1_loss(recon, target.to(recon.dtype))


class KLDivergence(Task):
    """KL divergence of a diagonal Gaussian posterior from N(0, I).

    ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))`` summed over latent
    dimensions, averaged over the batch.
    """

    default_type: TaskTypeName = "kl"

    def __init__(
        self,
        *,
        weight: float = 1.0,
        mu: Selector | None = None,
        logvar: Selector | None = None,
        thresholds: Thresholds | tuple[float, float] | Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(weight=weight, thresholds=thresholds)
        self.mu = mu
        self.logvar = logvar

    def loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        mu: torch.Tensor = _pick(outputs, self.mu, "mu", 1, "model outputs")
        logvar: torch.Tensor = _pick(outputs, self.logvar, "logvar", 2, "model outputs")
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
        return kl.reshape(kl.shape[0], -1).sum(dim=1).mean() if kl.dim() > 1 else kl.sum()


class Classification(_Supervised):
    """Cross-entropy between logits and integer class labels."""

    default_type: TaskTypeName = "classification"
    output_key = "logits"

    def loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        return F.cross_entropy(self._output(outputs), self._pick_target(batch, _labels_of))


class Regression(_Supervised):
    """Mean squared error between predictions and targets."""

    default_type: TaskTypeName = "regression"
    output_key = "pred"

    def loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        pred = self._output(outputs)
        target = self._pick_target(batch, _labels_of)
        if pred.shape != target.shape and pred.numel() == target.numel():
            target = target.reshape(pred.shape)
        return F.mse_loss(pred, target.to(pred.dtype))


# The seed documents' class names.
ReconstructionTask = Reconstruction
KLDivergenceTask = KLDivergence
ClassificationTask = Classification
RegressionTask = Regression

_BY_TYPE: dict[str, type[Task]] = {
    "reconstruction": Reconstruction,
    "kl": KLDivergence,
    "classification": Classification,
    "regression": Regression,
}


def as_task(spec: Task | str | LossFn) -> Task:
    """A Task from a Task, a type name ("reconstruction", "KLDivergenceTask", ...) or a loss function."""
    if isinstance(spec, Task):
        return spec
    if isinstance(spec, str):
        task_type = normalize_task_type(spec)
        if task_type is None or task_type == "custom":
            raise ValueError(f"{spec!r} is not a built-in task type; pass a Task or a loss function")
        return _BY_TYPE[task_type]()
    if callable(spec):
        return Task(spec)
    raise TypeError(f"a task must be a Task, a type name or a function, got {type(spec).__name__}")
