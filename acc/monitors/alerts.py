"""Alerts that say what is wrong and what to do, once per condition, until it resolves.

Each rule looks at one check's context (the step's loss, learning rate and
gradient norm; the latest gradient, streaming and evaluation values) and
either finds its condition (a ``Finding``) or not. An alert is raised the
first time (stored with the job, passed to the user's ``notify`` hook), then
only counted while the condition holds (no spam); after ``resolve_after``
clean checks in a row it is resolved, with its step, stored and notified
again. A rule whose inputs are absent from a check is not evaluated: it
neither raises nor counts as clean. Rules about a window of steps resolve
only after a clean window (a spike after ``spike_window`` clean steps, a
plateau after ``plateau_window``): a periodic spike or a plateau hovering at
the threshold is one episode, not an alert every few steps.

Built-in rules (codes): ``nan_loss`` (critical: stop), ``loss_spike`` (>= 2x
the recent median), ``exploding_gradients``, ``vanishing_gradients``,
``dead_layers``, ``dead_adapters``, ``gradient_imbalance``, ``plateau`` (< 1 %
improvement over 50 steps), ``poor_calibration`` (ECE > 0.3 on training
batches), ``poor_eval_calibration`` (on the fixed evaluation set),
``lr_zero`` and ``lr_divergence`` (the loss blew up right after the learning
rate was raised). Custom rules plug in with ``add_rule``.

By hand (the seed's API)::

    alerts = acc.monitors.create_alerts_manager(notify=lambda a: print(a.message))
    active = alerts.check_all(step=step, loss=loss, learning_rate=lr, gradient_norms=norms)
"""

from __future__ import annotations

import logging
import math
import numbers
import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from acc.events import Event, RemovableHandle
from acc.monitors._base import MonitorBase
from acc.state import TrainerState

__all__ = [
    "SKIP",
    "Alert",
    "AlertContext",
    "AlertThresholds",
    "AlertsMonitor",
    "Finding",
    "Rule",
    "Severity",
    "builtin_rules",
    "create_alerts_manager",
]

log = logging.getLogger("acc.monitors")


class Severity(str, Enum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True)
class Finding:
    """A rule's condition holds: what to tell the user."""

    severity: Severity | str
    message: str
    recommendation: str
    details: Mapping[str, Any] = field(default_factory=dict)


class _Skip:
    """A rule's answer when its inputs are not in this check (neither raised nor clean)."""

    def __repr__(self) -> str:
        return "SKIP"


SKIP = _Skip()

RuleResult = Finding | None | _Skip


@dataclass
class Alert:
    """One alert: raised at ``first_step``, seen ``count`` times until ``last_step``, resolved at ``resolved_step``."""

    code: str
    severity: Severity
    message: str
    recommendation: str
    first_step: int
    last_step: int
    count: int = 1
    resolved_step: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    clean_checks: int = 0
    """Clean checks in a row since the condition last held."""

    @property
    def active(self) -> bool:
        return self.resolved_step is None

    # the seed's name for the code
    @property
    def category(self) -> str:
        return self.code

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (severity as its string; non-finite floats in details as strings)."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "recommendation": self.recommendation,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "count": self.count,
            "resolved_step": self.resolved_step,
            "active": self.active,
            "details": _plain(self.details),
        }


@dataclass(frozen=True)
class AlertThresholds:
    """The numbers behind the built-in rules."""

    spike_ratio: float = 2.0
    """A loss >= this times the median of the previous ``spike_window`` losses is a spike."""
    spike_window: int = 20
    spike_min_history: int = 10
    exploding: float = 100.0
    """Global gradient norm (or the largest layer's) above this."""
    vanishing: float = 1e-7
    """Global gradient norm (or the largest layer's) below this."""
    plateau_window: int = 50
    plateau_min_improvement: float = 0.01
    """Relative improvement of the window's second half over its first half."""
    calibration_ece: float = 0.3
    lr_zero_checks: int = 3
    """Consecutive checks at a zero learning rate (a warm-up's first step is not an alert)."""
    lr_divergence_window: int = 50
    """Steps after a learning-rate increase in which a blow-up is blamed on it."""
    lr_divergence_ratio: float = 1.5
    """The loss above this times its median before the increase."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"AlertThresholds.{f.name} must be a non-negative number, got {value!r}")
        if self.spike_ratio <= 1 or self.lr_divergence_ratio <= 1:
            raise ValueError("spike_ratio and lr_divergence_ratio must be > 1")
        if self.plateau_window < 4:
            raise ValueError(f"plateau_window must be >= 4 steps, got {self.plateau_window}")


@dataclass
class AlertContext:
    """What one check sees. ``None`` means "not known at this check"."""

    step: int
    loss: float | None = None
    losses: Mapping[str, float] | None = None
    """Per-task losses of the step."""
    streaming_ce: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    """Global gradient norm of the step (the Trainer fetches it every step)."""
    gradient_norms: Mapping[str, float] | None = None
    """Per-layer gradient norms of a sampled step."""
    layer_summary: Mapping[str, Any] | None = None
    adapter_summary: Mapping[str, Any] | None = None
    calibration_error: float | None = None
    eval_calibration_error: float | None = None
    exact_match: float | None = None
    recent_losses: Sequence[float] = ()
    """Finite losses before this step, oldest first."""
    lr_history: Sequence[tuple[int, float]] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Any other keyword given to ``check_all`` (for custom rules)."""

    def get(self, name: str) -> Any:
        if name in self.extra:
            return self.extra[name]
        return getattr(self, name, None)


@dataclass(frozen=True)
class Rule:
    """``check(ctx) -> Finding | None | SKIP``, evaluated only when every field in ``needs`` is known.

    ``resolve_after``: clean checks in a row that resolve its alert (None: the manager's).
    """

    code: str
    check: Callable[[AlertContext], RuleResult]
    needs: tuple[str, ...] = ()
    resolve_after: int | None = None
    _needs: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        if not callable(self.check):
            raise TypeError(f"rule {self.code!r}: check must be a function ctx -> Finding | None")
        if self.resolve_after is not None and (
            isinstance(self.resolve_after, bool) or not isinstance(self.resolve_after, int) or self.resolve_after < 1
        ):
            raise ValueError(
                f"rule {self.code!r}: resolve_after must be a positive integer, got {self.resolve_after!r}"
            )
        object.__setattr__(self, "needs", tuple(self.needs))
        object.__setattr__(self, "_needs", frozenset(self.needs))


# -- built-in rules ------------------------------------------------------------


def _nan_loss(ctx: AlertContext) -> RuleResult:
    assert ctx.loss is not None
    bad = {k: v for k, v in (ctx.losses or {}).items() if not math.isfinite(v)}
    if math.isfinite(ctx.loss) and not bad:
        return None
    what = ", ".join(f"{k}={v}" for k, v in bad.items()) or f"loss={ctx.loss}"
    return Finding(
        Severity.CRITICAL,
        f"Training collapsed: non-finite loss ({what}) at step {ctx.step}",
        "Stop training (Trainer(stop_on_nan=True) does it for you) and resume from the last good checkpoint. "
        "Check: (1) the learning rate, (2) gradient clipping (grad_clip=), (3) the data (extreme or NaN values), "
        "(4) log/exp/division on values that can reach 0.",
        {"loss": ctx.loss, "nonfinite_tasks": sorted(bad)},
    )


def _loss_spike(th: AlertThresholds) -> Callable[[AlertContext], RuleResult]:
    def check(ctx: AlertContext) -> RuleResult:
        assert ctx.loss is not None
        recent = list(ctx.recent_losses)[-th.spike_window :]
        if len(recent) < th.spike_min_history or not math.isfinite(ctx.loss):
            return SKIP
        median = statistics.median(recent)
        if median <= 0 or ctx.loss < th.spike_ratio * median:
            return None
        ratio = ctx.loss / median
        return Finding(
            Severity.WARNING,
            f"Loss spike: {ctx.loss:.4g} is {ratio:.1f}x the median {median:.4g} of the last {len(recent)} steps",
            "Watch the next steps: a single bad batch recovers by itself. If it does not: lower the learning rate, "
            "enable gradient clipping, look at the batch (the debugger captures it).",
            {"loss": ctx.loss, "median": median, "ratio": ratio},
        )

    return check


def _grad_value(ctx: AlertContext) -> tuple[float, str] | None:
    """The step's global gradient norm when known (every step in a Trainer), else the largest layer's."""
    if ctx.grad_norm is not None:
        return float(ctx.grad_norm), "global gradient norm"
    if ctx.gradient_norms:
        values = list(ctx.gradient_norms.values())
        bad = [v for v in values if not math.isfinite(v)]
        return (bad[0] if bad else max(values)), "largest layer gradient norm"
    return None


def _exploding(th: AlertThresholds) -> Callable[[AlertContext], RuleResult]:
    def check(ctx: AlertContext) -> RuleResult:
        got = _grad_value(ctx)
        if got is None:
            return SKIP
        value, what = got
        if math.isfinite(value) and value <= th.exploding:
            return None
        layers = sorted(
            k for k, v in (ctx.gradient_norms or {}).items() if not (math.isfinite(v) and v <= th.exploding)
        )
        headline = (
            f"Exploding gradients: {what} {value:.3g} (> {th.exploding:g})"
            if math.isfinite(value)
            else f"Non-finite gradients: {what} is {value}"
        )
        return Finding(
            Severity.CRITICAL,
            headline,
            "Enable gradient clipping (Trainer(grad_clip=1.0)) or lower the learning rate; "
            "check for un-normalised inputs or a loss that is summed instead of averaged.",
            {"value": value, "affected_layers": layers},
        )

    return check


def _vanishing(th: AlertThresholds) -> Callable[[AlertContext], RuleResult]:
    def check(ctx: AlertContext) -> RuleResult:
        got = _grad_value(ctx)
        if got is None:
            return SKIP
        value, what = got
        if not math.isfinite(value) or value >= th.vanishing:
            return None
        return Finding(
            Severity.WARNING,
            f"Vanishing gradients: {what} {value:.3g} (< {th.vanishing:g})",
            "Nothing is learning. Check: (1) a detached tensor or torch.no_grad() in the forward, "
            "(2) saturated activations (sigmoid/tanh), (3) a learning-rate schedule that reached 0, "
            "(4) mixed-precision underflow (use a GradScaler).",
            {"value": value},
        )

    return check


def _dead(key: str, noun: str) -> Callable[[AlertContext], RuleResult]:
    def check(ctx: AlertContext) -> RuleResult:
        summary = ctx.get(key)
        assert summary is not None
        dead = list(summary.get("dead_layers", []))
        if not dead:
            return None
        shown = ", ".join(dead[:5]) + (f" and {len(dead) - 5} more" if len(dead) > 5 else "")
        return Finding(
            Severity.WARNING,
            f"Dead {noun}: {summary.get('text', '')} ({shown})",
            f"These {noun} get an exactly zero gradient every sample. Check that they are used in the forward, "
            "that their output is not multiplied by a frozen zero (a LoRA B left frozen at its zero init), "
            "and that ReLUs before them are not all inactive.",
            {"dead": dead},
        )

    return check


def _imbalance(th: AlertThresholds) -> Callable[[AlertContext], RuleResult]:
    def check(ctx: AlertContext) -> RuleResult:
        summary = ctx.layer_summary
        assert summary is not None
        ratio = summary.get("imbalance_ratio")
        if not summary.get("imbalanced") or ratio is None:
            return None
        return Finding(
            Severity.WARNING,
            f"Gradient imbalance: the largest layer gradient is {ratio:.0f}x the smallest",
            "Some layers learn far faster than others: check normalisation layers, initialisation, "
            "or use per-layer learning rates / an adaptive optimizer.",
            {"ratio": ratio},
        )

    return check


def _plateau(th: AlertThresholds) -> Callable[[AlertContext], RuleResult]:
    def check(ctx: AlertContext) -> RuleResult:
        assert ctx.loss is not None
        if not math.isfinite(ctx.loss):
            return SKIP
        window = [*list(ctx.recent_losses)[-(th.plateau_window - 1) :], ctx.loss]
        if len(window) < th.plateau_window:
            return SKIP
        half = len(window) // 2
        first = sum(window[:half]) / half
        second = sum(window[-half:]) / half
        if first <= 0:
            return SKIP
        improvement = (first - second) / first
        # A plateau is a loss that barely moves; one that clearly rises is not a plateau
        # (the spike, divergence and gradient rules speak for that).
        if abs(improvement) >= th.plateau_min_improvement:
            return None
        moved = (second - first) / first * 100
        return Finding(
            Severity.WARNING,
            f"Training plateaued: the loss moved {moved:+.2f} % over the last {len(window)} steps "
            f"(less than {th.plateau_min_improvement * 100:g} %)",
            "Further training may not help at this learning rate: keep the current checkpoint, "
            "try a learning-rate decay or restart, or add data.",
            {"improvement": improvement, "window": len(window)},
        )

    return check


def _calibration(key: str, where: str, th: AlertThresholds) -> Callable[[AlertContext], RuleResult]:
    def check(ctx: AlertContext) -> RuleResult:
        ece = ctx.get(key)
        assert ece is not None
        if not math.isfinite(ece) or ece <= th.calibration_ece:
            return None
        return Finding(
            Severity.WARNING,
            f"Poorly calibrated on {where}: ECE {ece:.3f} (> {th.calibration_ece:g})",
            "The model's confidence does not match its accuracy. Consider temperature scaling after training, "
            "label smoothing, or more training; do not threshold on its raw probabilities.",
            {"ece": ece},
        )

    return check


def _lr_zero(th: AlertThresholds, state: _LrState) -> Callable[[AlertContext], RuleResult]:
    def check(ctx: AlertContext) -> RuleResult:
        if state.zero_run < th.lr_zero_checks:
            return None
        return Finding(
            Severity.WARNING,
            f"Learning rate is 0 (for {state.zero_run} checks): the weights do not change",
            "Check the scheduler: a warm-up that starts at 0 and never rises, or a schedule that already ended "
            "(its total steps shorter than the run).",
            {"zero_checks": state.zero_run},
        )

    return check


def _lr_divergence(th: AlertThresholds, state: _LrState) -> Callable[[AlertContext], RuleResult]:
    def check(ctx: AlertContext) -> RuleResult:
        assert ctx.loss is not None
        inc = state.increase
        if inc is None or ctx.step - inc["step"] > th.lr_divergence_window:
            return None
        baseline = inc["baseline"]
        if baseline is None or baseline <= 0:
            return SKIP
        if math.isfinite(ctx.loss) and ctx.loss <= th.lr_divergence_ratio * baseline:
            return None
        return Finding(
            Severity.WARNING,
            f"Loss diverged ({ctx.loss:.4g}, median before {baseline:.4g}) {ctx.step - inc['step']} steps after "
            f"the learning rate rose from {inc['from']:.3g} to {inc['to']:.3g} at step {inc['step']}",
            "The new learning rate is too high: lower the peak (or lengthen the warm-up) and resume from a "
            "checkpoint saved before the increase.",
            {"loss": ctx.loss, "baseline": baseline, **inc},
        )

    return check


class _LrState:
    """Learning-rate facts carried between checks (zero run length, the last increase)."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.zero_run = 0
        self.increase: dict[str, Any] | None = None

    def update(self, step: int, lr: float, recent: Sequence[float]) -> None:
        self.zero_run = self.zero_run + 1 if lr == 0 else 0
        if self.last is not None and lr > self.last:
            finite = [v for v in recent[-20:] if math.isfinite(v)]
            self.increase = {
                "step": step,
                "from": self.last,
                "to": lr,
                "baseline": statistics.median(finite) if finite else None,
            }
        self.last = lr


_CONTEXT_FIELDS = frozenset(f.name for f in fields(AlertContext))

BUILTIN_CODES = (
    "nan_loss",
    "loss_spike",
    "exploding_gradients",
    "vanishing_gradients",
    "dead_layers",
    "dead_adapters",
    "gradient_imbalance",
    "plateau",
    "poor_calibration",
    "poor_eval_calibration",
    "lr_zero",
    "lr_divergence",
)


def builtin_rules(th: AlertThresholds, lr_state: _LrState | None = None) -> list[Rule]:
    """The built-in rules for these thresholds (in checking order)."""
    lr = lr_state or _LrState()
    return [
        Rule("nan_loss", _nan_loss, ("loss",)),
        Rule("loss_spike", _loss_spike(th), ("loss",), resolve_after=th.spike_window),
        # checked every step when the global norm is fetched: a short burst is one episode
        Rule("exploding_gradients", _exploding(th), resolve_after=10),
        Rule("vanishing_gradients", _vanishing(th), resolve_after=10),
        Rule("dead_layers", _dead("layer_summary", "layers"), ("layer_summary",)),
        Rule("dead_adapters", _dead("adapter_summary", "adapters"), ("adapter_summary",)),
        Rule("gradient_imbalance", _imbalance(th), ("layer_summary",)),
        Rule("plateau", _plateau(th), ("loss",), resolve_after=th.plateau_window),
        Rule("poor_calibration", _calibration("calibration_error", "training batches", th), ("calibration_error",)),
        Rule(
            "poor_eval_calibration",
            _calibration("eval_calibration_error", "the fixed evaluation set", th),
            ("eval_calibration_error",),
        ),
        Rule("lr_zero", _lr_zero(th, lr), ("learning_rate",)),
        Rule("lr_divergence", _lr_divergence(th, lr), ("learning_rate", "loss")),
    ]


# -- the manager / monitor ---------------------------------------------------------


class AlertsMonitor(MonitorBase):
    """Checks the rules, keeps active and resolved alerts, stores them with the job and notifies.

    ``AlertsMonitor(*, thresholds=None, resolve_after=3, notify=None,
    rules=(), store=None, job_id=None, history=200)``. ``notify(alert)`` is
    called when an alert is raised and when it resolves (``alert.active``
    tells which). ``rules``: extra ``Rule`` objects. ``store``/``job_id`` for a
    hand-written loop (attached to a Trainer or Recorder, the job's are used).

    Attached, it checks every fetched step, with the values that the monitors
    listed *before* it reported (gradients, streaming, fixed evaluation).
    """

    name = "alerts"

    def __init__(
        self,
        *,
        thresholds: AlertThresholds | None = None,
        resolve_after: int = 3,
        notify: Callable[[Alert], Any] | None = None,
        rules: Iterable[Rule] = (),
        store: Any = None,
        job_id: int | None = None,
        history: int = 200,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.thresholds = thresholds if thresholds is not None else AlertThresholds()
        if not isinstance(self.thresholds, AlertThresholds):
            raise TypeError(f"thresholds must be an AlertThresholds, got {type(thresholds).__name__}")
        if isinstance(resolve_after, bool) or not isinstance(resolve_after, int) or resolve_after < 1:
            raise ValueError(f"resolve_after must be a positive integer (clean checks), got {resolve_after!r}")
        if notify is not None and not callable(notify):
            raise TypeError(f"notify must be callable as notify(alert), got {type(notify).__name__}")
        self.resolve_after = resolve_after
        self.notify = notify
        self.store = store
        self.job_id = job_id
        self.history = history
        self._custom: list[Rule] = []
        for rule in rules:
            self._add(rule)
        self._notify_errors = 0
        self._notify_lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        with self._lock:
            self._lr = _LrState()
            self._builtin = builtin_rules(self.thresholds, self._lr)
            self._active: dict[str, Alert] = {}
            self._resolved: deque[Alert] = deque(maxlen=self.history)
            self._raised_total = 0
            self._losses: deque[float] = deque(
                maxlen=max(self.thresholds.plateau_window, self.thresholds.spike_window, 20)
            )
            self._lr_history: deque[tuple[int, float]] = deque(maxlen=64)
            self._seen: dict[int, int] = {}

    # -- rules -------------------------------------------------------------

    def add_rule(
        self,
        code: str | Rule,
        check: Callable[[AlertContext], RuleResult] | None = None,
        *,
        needs: Iterable[str] = (),
        resolve_after: int | None = None,
    ) -> RemovableHandle:
        """Add a custom rule: ``add_rule("my_code", fn, needs=("loss",))``; returns a handle that removes it.

        ``fn(ctx)`` returns a ``Finding`` while its condition holds, None when
        it does not, or ``SKIP`` when it cannot tell. A rule that raises is
        removed and reported as a ``rule_error`` alert.
        """
        if isinstance(code, Rule):
            rule = code
        else:
            if check is None or not callable(check):
                raise TypeError(f"add_rule({code!r}, check): check must be a function ctx -> Finding | None")
            rule = Rule(str(code), check, tuple(needs), resolve_after)
        self._add(rule)

        def remove() -> None:
            with self._lock:
                if rule in self._custom:
                    self._custom.remove(rule)

        return RemovableHandle(remove)

    def _add(self, rule: Rule) -> None:
        if not isinstance(rule, Rule):
            raise TypeError(f"a rule must be an acc.monitors.Rule, got {type(rule).__name__}")
        with self._lock:
            if rule.code in BUILTIN_CODES or any(r.code == rule.code for r in self._custom):
                raise ValueError(f"an alert rule with code {rule.code!r} exists already")
            self._custom.append(rule)

    # -- checking ----------------------------------------------------------

    def check_all(
        self,
        step: int,
        loss: float | None = None,
        streaming_ce: float | None = None,
        gradient_norms: Mapping[str, float] | None = None,
        exact_match: float | None = None,
        calibration_error: float | None = None,
        learning_rate: float | None = None,
        recent_losses: Sequence[float] | None = None,
        **extra: Any,
    ) -> list[Alert]:
        """Run every rule on one check; returns the active alerts (the seed's call).

        Host numbers only. ``recent_losses`` defaults to the losses this
        manager was given before. More context by keyword: ``grad_norm``,
        ``losses`` (per task), ``layer_summary``, ``adapter_summary``,
        ``eval_calibration_error``, or anything a custom rule reads with ``ctx.get``.
        """
        given: tuple[tuple[str, object], ...] = (
            ("loss", loss),
            ("learning_rate", learning_rate),
            ("streaming_ce", streaming_ce),
        )
        for name, value in given:
            # float/int first: the numbers.Real ABC check costs microseconds, and this runs every step
            if value is not None and (type(value) is bool or not isinstance(value, (float, int, numbers.Real))):
                raise TypeError(f"check_all({name}=...) takes a host number, got {type(value).__name__}")
        kw = {k: v for k, v in extra.items() if k in _CONTEXT_FIELDS}
        rest = {k: v for k, v in extra.items() if k not in _CONTEXT_FIELDS}
        present = {name for name, value in given if value is not None}
        present.update(k for k, v in extra.items() if v is not None)
        for name, value in (
            ("gradient_norms", gradient_norms),
            ("exact_match", exact_match),
            ("calibration_error", calibration_error),
        ):
            if value is not None:
                present.add(name)
        step = int(step)
        with self._lock:
            if recent_losses is None:
                history: list[float] = list(self._losses)  # finite only
            else:
                history = [v for v in map(float, recent_losses) if math.isfinite(v)]
            if learning_rate is not None:
                self._lr.update(step, float(learning_rate), history)
                self._lr_history.append((step, float(learning_rate)))
            ctx = AlertContext(
                step=step,
                loss=None if loss is None else float(loss),
                streaming_ce=streaming_ce,
                gradient_norms=gradient_norms,
                exact_match=exact_match,
                calibration_error=calibration_error,
                learning_rate=None if learning_rate is None else float(learning_rate),
                recent_losses=history,
                lr_history=self._lr_history,  # read-only for the rules: no copy per check
                extra=rest,
                **kw,
            )
            events = self._evaluate(ctx, present, [*self._builtin, *self._custom])
            if loss is not None and recent_losses is None and math.isfinite(loss):
                self._losses.append(float(loss))
            active = sorted(self._active.values(), key=_alert_order)
        for kind, alert in events:
            self._emit(kind, alert)
        return active

    def _evaluate(self, ctx: AlertContext, present: set[str], rules: list[Rule]) -> list[tuple[str, Alert]]:
        events: list[tuple[str, Alert]] = []
        for rule in rules:
            if not rule._needs <= present:
                continue
            try:
                result = rule.check(ctx)
            except Exception as exc:
                result = self._rule_failed(rule, exc)
            if result is SKIP:
                continue
            alert = self._active.get(rule.code)
            if isinstance(result, Finding):
                if alert is None:
                    alert = Alert(
                        code=rule.code,
                        severity=Severity(result.severity),
                        message=result.message,
                        recommendation=result.recommendation,
                        first_step=ctx.step,
                        last_step=ctx.step,
                        details=dict(result.details),
                    )
                    self._active[rule.code] = alert
                    self._raised_total += 1
                    events.append(("raised", alert))
                else:
                    alert.count += 1
                    alert.last_step = ctx.step
                    alert.message = result.message
                    alert.details = dict(result.details)
                    alert.clean_checks = 0
                    if _SEVERITY_ORDER[Severity(result.severity)] < _SEVERITY_ORDER[alert.severity]:
                        alert.severity = Severity(result.severity)
            elif alert is not None:
                alert.clean_checks += 1
                if alert.clean_checks >= (rule.resolve_after or self.resolve_after):
                    alert.resolved_step = ctx.step
                    del self._active[rule.code]
                    self._resolved.append(alert)
                    events.append(("resolved", alert))
        return events

    def _rule_failed(self, rule: Rule, exc: Exception) -> RuleResult:
        log.error("alert rule %r raised and is removed", rule.code, exc_info=exc)
        if rule in self._custom:
            self._custom.remove(rule)
        elif rule in self._builtin:
            self._builtin.remove(rule)
        # reported through a rule of its own that holds for ever (the failing rule is gone)
        finding = Finding(
            Severity.WARNING,
            f"Alert rule {rule.code!r} failed and was removed: {type(exc).__name__}: {exc}",
            "Fix the rule's function; the other alerts keep working.",
            {"rule": rule.code, "error": f"{type(exc).__name__}: {exc}"},
        )
        self._custom.append(Rule(f"rule_error:{rule.code}", lambda ctx: finding))
        return SKIP

    def _emit(self, kind: str, alert: Alert) -> None:
        payload = {**alert.to_dict(), "event": kind}
        step = alert.first_step if kind == "raised" else alert.resolved_step
        if self.store is not None and self.job_id is not None:
            self.store.log_event(self.job_id, "alert", payload, step=step)
        level = logging.WARNING if alert.severity is not Severity.INFO else logging.INFO
        if kind == "raised":
            log.log(level, "alert [%s] %s", alert.severity.value, alert.message)
        else:
            log.info("alert %s resolved at step %s", alert.code, alert.resolved_step)
        if self.notify is not None:
            try:
                self.notify(alert)
            except Exception:
                with self._notify_lock:
                    self._notify_errors += 1
                    first = self._notify_errors == 1
                if first:  # one traceback, then a count (a broken webhook must not flood the log)
                    log.exception("the alerts notify hook raised; alerts go on (further failures are counted)")

    # -- attached ----------------------------------------------------------

    def _register(self, target: Any) -> None:
        if self.store is None:
            self.store = getattr(target, "store", None)
        self._on(target, Event.METRICS_FETCHED, self._on_fetched)

    def _on_fetched(self, state: TrainerState) -> None:
        infos = state.fetched
        if not infos:
            return
        self.job_id = state.job_id
        overlays: list[dict[str, Any]] = [{} for _ in infos]
        steps = [int(info["step"]) for info in infos]
        for peer in self.peers:
            observe = getattr(peer, "observations", None)
            if peer is self or observe is None or not getattr(peer, "enabled", True):
                continue
            last = self._seen.get(id(peer), -1)
            obs = observe(last)
            for step, values in obs:
                # into the first fetched step at or after it (a value reported late goes to the last)
                i = next((k for k, s in enumerate(steps) if s >= step), len(steps) - 1)
                overlays[i].update(values)
                last = max(last, step)
            self._seen[id(peer)] = last
        for info, extra in zip(infos, overlays, strict=True):
            self.check_all(
                step=info["step"],
                loss=info.get("loss"),
                learning_rate=info.get("lr"),
                grad_norm=info.get("grad_norm"),
                losses=info.get("losses"),
                **extra,
            )

    # -- reading -----------------------------------------------------------

    def active_alerts(self) -> list[Alert]:
        """Active alerts, most severe first."""
        with self._lock:
            return sorted(self._active.values(), key=_alert_order)

    def resolved_alerts(self) -> list[Alert]:
        """Resolved alerts, newest first (the last ``history``)."""
        with self._lock:
            return list(reversed(self._resolved))

    get_all_alerts = active_alerts

    def get_alerts_by_severity(self, severity: Severity | str) -> list[Alert]:
        sev = Severity(severity)
        return [a for a in self.active_alerts() if a.severity is sev]

    def get_summary(self) -> dict[str, int]:
        """Counts of active alerts by severity, plus ``active``, ``resolved``, ``raised`` and ``notify_errors``."""
        with self._lock:
            counts = {s.value: 0 for s in Severity}
            for alert in self._active.values():
                counts[alert.severity.value] += 1
            counts["active"] = len(self._active)
            counts["resolved"] = len(self._resolved)
            counts["raised"] = self._raised_total
            counts["notify_errors"] = self._notify_errors
            return counts

    def to_dict(self) -> dict[str, Any]:
        """The seed's export: ``{"alerts": [active...], "resolved": [...], "summary": {...}}``."""
        return {
            "alerts": [a.to_dict() for a in self.active_alerts()],
            "resolved": [a.to_dict() for a in self.resolved_alerts()],
            "summary": self.get_summary(),
        }

    def status_fields(self) -> dict[str, Any]:
        return {
            "active_alerts": [a.to_dict() for a in self.active_alerts()],
            "resolved_alerts": [a.to_dict() for a in self.resolved_alerts()[:20]],
            "alert_summary": self.get_summary(),
        }


def _alert_order(alert: Alert) -> tuple[int, int]:
    return (_SEVERITY_ORDER[alert.severity], alert.first_step)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf": strict JSON readers accept strings
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def create_alerts_manager(**kwargs: Any) -> AlertsMonitor:
    """The seed's factory: an ``AlertsMonitor`` (``check_all`` by hand, or attached to a Trainer/Recorder)."""
    return AlertsMonitor(**kwargs)
