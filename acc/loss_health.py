"""Loss health: a verdict per task loss, and per-task summaries.

Everything here is a pure function over plain Python numbers, so it can be
tested by tables and used anywhere (the trainer calls it on values that were
already fetched from the device in one batch; nothing here touches a tensor).

Task types and their default thresholds (lower loss is better; a value below
``healthy`` is HEALTHY, below ``warning`` is WARNING, anything else CRITICAL):

================  =====================================  ========  ========
type              typical loss                           healthy   warning
================  =====================================  ========  ========
reconstruction    L1 on images scaled to [0, 1]          < 0.05    < 0.15
kl                KL divergence of a VAE posterior       < 5       < 15
classification    cross-entropy                          < 0.5     < 2.0
regression        mean squared error                     < 0.1     < 0.5
custom            (user-defined; no default thresholds)  --        --
================  =====================================  ========  ========

NaN and +/-Inf are always CRITICAL, whatever the thresholds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, Literal, overload

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLDS",
    "FLAT_TOLERANCE",
    "LossHealth",
    "LossSummary",
    "LossSummaryAccumulator",
    "TaskTypeName",
    "Thresholds",
    "classify_loss",
    "compute_loss_summary",
    "health_codes",
    "health_within",
    "infer_task_type",
    "loss_trend",
    "normalize_task_type",
    "worst_health",
]


class LossHealth(str, Enum):
    """The verdict on one loss value. Ordered: HEALTHY < WARNING < CRITICAL."""

    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    def __str__(self) -> str:  # f"{health}" gives "healthy", as in the seed's JSON
        return self.value


_SEVERITY = {LossHealth.HEALTHY: 0, LossHealth.WARNING: 1, LossHealth.CRITICAL: 2}

TaskTypeName = Literal["reconstruction", "kl", "classification", "regression", "custom"]


@dataclass(frozen=True)
class Thresholds:
    """Upper bounds of the HEALTHY and WARNING bands (``healthy <= warning``)."""

    healthy: float
    warning: float

    def __post_init__(self) -> None:
        if math.isnan(self.healthy) or math.isnan(self.warning):
            raise ValueError(f"thresholds must be numbers, got {self.healthy!r}, {self.warning!r}")
        if self.healthy > self.warning:
            raise ValueError(
                f"healthy threshold ({self.healthy}) must not exceed the warning threshold ({self.warning})"
            )

    @classmethod
    def coerce(cls, value: Thresholds | tuple[float, float] | Mapping[str, float]) -> Thresholds:
        """Accept ``Thresholds``, ``(healthy, warning)`` or ``{"healthy": .., "warning": ..}``."""
        if isinstance(value, Thresholds):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"healthy", "warning"}
            if unknown:
                raise ValueError(f"unknown threshold keys {sorted(unknown)}; use 'healthy' and 'warning'")
            return cls(float(value["healthy"]), float(value["warning"]))
        healthy, warning = value
        return cls(float(healthy), float(warning))


DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "reconstruction": Thresholds(0.05, 0.15),
    "kl": Thresholds(5.0, 15.0),
    "classification": Thresholds(0.5, 2.0),
    "regression": Thresholds(0.1, 0.5),
}

# Type names users may write: the seed's class names, our class names and short aliases.
_TYPE_ALIASES: dict[str, TaskTypeName] = {
    "reconstruction": "reconstruction",
    "reconstructiontask": "reconstruction",
    "recon": "reconstruction",
    "rec": "reconstruction",
    "l1": "reconstruction",
    "kl": "kl",
    "kld": "kl",
    "kldivergence": "kl",
    "kldivergencetask": "kl",
    "kl_divergence": "kl",
    "klloss": "kl",
    "classification": "classification",
    "classificationtask": "classification",
    "cls": "classification",
    "ce": "classification",
    "crossentropy": "classification",
    "cross_entropy": "classification",
    "xent": "classification",
    "nll": "classification",
    "regression": "regression",
    "regressiontask": "regression",
    "reg": "regression",
    "mse": "regression",
    "custom": "custom",
    "task": "custom",
}

# Words that reveal a task's type: whole words, or (for the long ones) prefixes,
# so "recon_loss" and "reconstruction" are reconstruction but "record" is not.
_NAME_WORDS: dict[str, TaskTypeName] = {
    "rec": "reconstruction",
    "l1": "reconstruction",
    "kl": "kl",
    "kld": "kl",
    "cls": "classification",
    "ce": "classification",
    "nll": "classification",
    "xent": "classification",
    "mse": "regression",
    "reg": "regression",
}
_NAME_PREFIXES: tuple[tuple[str, TaskTypeName], ...] = (
    ("recon", "reconstruction"),
    ("kldiv", "kl"),
    ("classif", "classification"),
    ("crossent", "classification"),
    ("regress", "regression"),
)

_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def normalize_task_type(task_type: str | None) -> TaskTypeName | None:
    """The canonical type for a type name or alias, or None when it is not one we know.

    >>> normalize_task_type("KLDivergenceTask")
    'kl'
    """
    if task_type is None:
        return None
    key = task_type.strip().lower().replace("-", "_")
    return _TYPE_ALIASES.get(key) or _TYPE_ALIASES.get(key.replace("_", ""))


def infer_task_type(task_name: str) -> TaskTypeName:
    """Guess a task's type from its name ("recon_loss" -> reconstruction, "kl" -> kl).

    Each word of the name (split at anything that is not a letter or digit) is
    compared with known words ("kl", "ce", "mse", ...) and prefixes ("recon",
    "classif", ...); a name that reveals nothing is "custom".
    """
    known = normalize_task_type(task_name)
    if known is not None:
        return known
    words = [w for w in _WORD_SPLIT.split(task_name.lower()) if w]
    for word in words:
        if word in _NAME_WORDS:
            return _NAME_WORDS[word]
        for prefix, task_type in _NAME_PREFIXES:
            if word.startswith(prefix):
                return task_type
    return "custom"


def _resolve_type(task_name: str, task_type: str | None) -> TaskTypeName:
    return normalize_task_type(task_type) or infer_task_type(task_name)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a loss value must be a real number, got {value!r}") from exc


@overload
def classify_loss(
    task_name: str, loss_value: float, /, *, thresholds: Thresholds | tuple[float, float] | None = None
) -> LossHealth: ...
@overload
def classify_loss(
    task_name: str,
    task_type: str | None,
    loss_value: float,
    /,
    *,
    thresholds: Thresholds | tuple[float, float] | None = None,
) -> LossHealth: ...
def classify_loss(
    task_name: str,
    task_type_or_value: Any,
    loss_value: Any = None,
    /,
    *,
    thresholds: Thresholds | tuple[float, float] | None = None,
) -> LossHealth:
    """The health of one loss value.

    Two forms, as in the seed:

    * ``classify_loss(task_name, task_type, loss_value)``
    * ``classify_loss(task_name, loss_value)``: the type is inferred from the name.

    ``thresholds`` overrides the type's defaults (a task instance's own thresholds).

    An unknown task type never raises: the type is then inferred from the task
    name, and a task whose type is still unknown ("custom") has no thresholds, so
    every finite value is HEALTHY. NaN and Inf are CRITICAL in every case.
    """
    if loss_value is None:
        task_type: str | None = None
        value = _as_float(task_type_or_value)
    else:
        task_type = task_type_or_value if task_type_or_value is None else str(task_type_or_value)
        value = _as_float(loss_value)
    bounds = (
        Thresholds.coerce(thresholds)
        if thresholds is not None
        else DEFAULT_THRESHOLDS.get(_resolve_type(task_name, task_type))
    )
    return health_within(value, bounds)


def health_within(value: float, bounds: Thresholds | None) -> LossHealth:
    """The verdict on ``value`` for resolved ``bounds`` (None: no thresholds). NaN/Inf are CRITICAL.

    The shared rule behind ``classify_loss``; callers that resolved a task's
    bounds once (a Task, the recorder) call it per value without the name and
    alias lookups.
    """
    if not math.isfinite(value):
        return LossHealth.CRITICAL
    if bounds is None or value < bounds.healthy:
        return LossHealth.HEALTHY
    if value < bounds.warning:
        return LossHealth.WARNING
    return LossHealth.CRITICAL


def health_codes(values: np.ndarray, bounds: Thresholds | None) -> np.ndarray:
    """``health_within`` for an array: 0 HEALTHY, 1 WARNING, 2 CRITICAL per value (int8)."""
    if bounds is None:
        codes = np.zeros(values.shape, dtype=np.int8)
    else:
        codes = np.where(values < bounds.healthy, 0, np.where(values < bounds.warning, 1, 2)).astype(np.int8)
    codes[~np.isfinite(values)] = 2
    return codes


def worst_health(healths: Iterable[LossHealth | str]) -> LossHealth:
    """The most severe of several verdicts; HEALTHY for none."""
    worst = LossHealth.HEALTHY
    for health in healths:
        h = LossHealth(health)
        if h.severity > worst.severity:
            worst = h
    return worst


# "flat" when the second half's mean is within 5 % of the first half's.
FLAT_TOLERANCE = 0.05
Trend = Literal["improving", "worsening", "flat"]


def loss_trend(values: list[float], tolerance: float = FLAT_TOLERANCE) -> Trend:
    """Compare the mean of the second half of ``values`` with the first half.

    "improving" when it fell by more than ``tolerance`` (relative to the first
    half's magnitude), "worsening" when it rose by more, else "flat". Fewer than
    four values are "flat": two points are not a trend. Non-finite values are
    ignored (the caller counts them).
    """
    finite = [v for v in values if math.isfinite(v)]
    n = len(finite)
    if n < 4:
        return "flat"
    half = n // 2
    first = sum(finite[:half]) / half
    second = sum(finite[n - half :]) / half
    scale = max(abs(first), 1e-12)
    change = (second - first) / scale
    if change < -tolerance:
        return "improving"
    if change > tolerance:
        return "worsening"
    return "flat"


@dataclass(frozen=True)
class LossSummary:
    """One task's losses over a job: the seed's ``LossSummary``.

    ``mean``/``min``/``max``/``final`` are over the finite values (``final`` is
    the last finite one; NaN when there is none). ``n_nonfinite`` counts NaN and
    Inf values; any makes ``health`` CRITICAL. Otherwise ``health`` is the
    verdict on ``final``.
    """

    task_name: str
    task_type: str
    mean: float
    final: float
    min: float
    max: float
    trend: Trend
    health: LossHealth
    n_steps: int
    n_nonfinite: int = 0
    last_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (health as its string value; NaN stays a float)."""
        data = asdict(self)
        data["health"] = self.health.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossSummary:
        fields = dict(data)
        fields["health"] = LossHealth(fields["health"])
        return cls(**fields)


class LossSummaryAccumulator:
    """Builds a task's ``LossSummary`` from values arriving a few at a time.

    The live trainer feeds it each fetched block; the summary is then O(1) for
    everything but the trend, which needs the two half means and is computed
    from a running prefix sum, so asking for a summary stays cheap at 1e6 steps.
    """

    __slots__ = (
        "_count",
        "_final",
        "_last_step",
        "_max",
        "_min",
        "_n_nonfinite",
        "_prefix",
        "task_name",
        "task_type",
        "thresholds",
    )

    def __init__(self, task_name: str, task_type: str | None = None, thresholds: Thresholds | None = None):
        self.task_name = task_name
        self.task_type: str = _resolve_type(task_name, task_type)
        self.thresholds = thresholds
        self._count = 0
        self._n_nonfinite = 0
        self._min = math.inf
        self._max = -math.inf
        self._final = math.nan
        self._last_step: int | None = None
        # prefix[i] = sum of the first i finite values (prefix[0] = 0)
        self._prefix: list[float] = [0.0]

    def add(self, value: float, step: int | None = None) -> None:
        self._count += 1
        if step is not None:
            self._last_step = step
        if not math.isfinite(value):
            self._n_nonfinite += 1
            return
        self._prefix.append(self._prefix[-1] + value)
        self._final = value
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value

    def add_many(self, values: np.ndarray, last_step: int | None = None) -> None:
        """``add`` for each of ``values`` in order, the running sums bit for bit the same."""
        n = len(values)
        if n == 0:
            return
        self._count += n
        if last_step is not None:
            self._last_step = last_step
        finite = values[np.isfinite(values)]
        self._n_nonfinite += n - len(finite)
        if len(finite):
            # np.cumsum adds left to right, as repeated ``add`` does (pairwise summation is for reductions only)
            sums = np.cumsum(np.concatenate(([self._prefix[-1]], finite)))
            self._prefix.extend(sums[1:].tolist())
            self._final = float(finite[-1])
            self._min = min(self._min, float(finite.min()))
            self._max = max(self._max, float(finite.max()))

    def summary(self, tolerance: float = FLAT_TOLERANCE) -> LossSummary:
        n = len(self._prefix) - 1
        if n == 0:
            mean = lo = hi = math.nan
            trend: Trend = "flat"
        else:
            mean = self._prefix[-1] / n
            lo, hi = self._min, self._max
            trend = self._trend(n, tolerance)
        if self._n_nonfinite:
            health = LossHealth.CRITICAL
        else:
            health = classify_loss(self.task_name, self.task_type, self._final, thresholds=self.thresholds)
        return LossSummary(
            task_name=self.task_name,
            task_type=self.task_type,
            mean=mean,
            final=self._final,
            min=lo,
            max=hi,
            trend=trend,
            health=health,
            n_steps=self._count,
            n_nonfinite=self._n_nonfinite,
            last_step=self._last_step,
        )

    def _trend(self, n: int, tolerance: float) -> Trend:
        # Same rule as loss_trend(), from prefix sums instead of a list.
        if n < 4:
            return "flat"
        half = n // 2
        first = self._prefix[half] / half
        second = (self._prefix[n] - self._prefix[n - half]) / half
        change = (second - first) / max(abs(first), 1e-12)
        if change < -tolerance:
            return "improving"
        if change > tolerance:
            return "worsening"
        return "flat"


def compute_loss_summary(
    records: Iterable[Mapping[str, Any]],
    *,
    thresholds: Mapping[str, Thresholds | tuple[float, float]] | None = None,
    tolerance: float = FLAT_TOLERANCE,
) -> dict[str, LossSummary]:
    """Per-task summaries of loss records (the seed's ``compute_loss_summary``).

    A record is one task's loss at one step: ``{"step", "task_name",
    "task_type", "loss", ...}`` (``task_type`` optional; other keys ignored).
    Records are ordered by step within each task, so the input order does not
    matter. ``thresholds`` maps task names to their own thresholds.
    """
    by_task: dict[str, list[tuple[int, float]]] = {}
    types: dict[str, str | None] = {}
    for record in records:
        try:
            name = str(record["task_name"])
            value = _as_float(record["loss"])
        except KeyError as exc:
            raise ValueError(f"a loss record needs 'task_name' and 'loss', got {dict(record)!r}") from exc
        step = int(record.get("step", len(by_task.get(name, ()))))
        by_task.setdefault(name, []).append((step, value))
        if record.get("task_type") is not None:
            types[name] = str(record["task_type"])
        else:
            types.setdefault(name, None)
    own = {k: Thresholds.coerce(v) for k, v in (thresholds or {}).items()}
    summaries: dict[str, LossSummary] = {}
    for name, points in by_task.items():
        points.sort(key=lambda p: p[0])
        acc = LossSummaryAccumulator(name, types[name], own.get(name))
        for step, value in points:
            acc.add(value, step)
        summaries[name] = acc.summary(tolerance)
    return summaries
