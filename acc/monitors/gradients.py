"""Per-layer gradient health, LoRA-aware: norms, relative updates and a verdict per layer and adapter.

At a sampled step (``every=N``) the gradient norm of every parameter is
computed in one fused pass (``torch._foreach_norm`` per device and dtype), the
weights are copied, and after the optimizer step the norms of the weight
changes follow the same way. Everything stays on the device until the next
report (the Recorder's METRICS_FETCHED in a Trainer), which fetches all pending
samples in one transfer per device. Parameters are then grouped into layers
(their owning module) and, for LoRA, into adapters (the adapted module of
peft's ``lora_A``/``lora_B``), and each gets a verdict:

* ``frozen``: no gradient (``requires_grad=False``, or unused in the forward);
* ``dead``: a zero gradient for ``dead_after`` consecutive samples;
* ``exploding``: norm above ``exploding`` (100), or not finite;
* ``vanishing``: norm below ``vanishing`` (1e-5);
* ``active`` otherwise; and across layers, ``imbalanced`` when the largest
  and smallest non-zero norms differ ``imbalance`` (1000x) or more.

By hand (the seed's API)::

    monitor = acc.monitors.create_lora_monitor(model)
    loss.backward()
    monitor.collect_gradients()   # {adapted module: grad norm}; one host sync
    optimizer.step()
    monitor.collect_updates()     # {adapted module: |dW| / |W|}
    monitor.get_layer_stats(); monitor.get_summary()

or without a sync per step: ``monitor.sample(step)`` after backward,
``monitor.after_step()`` after the optimizer step, ``monitor.report()`` at
your fetch points.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from acc._torch_utils import foreach_norms
from acc.events import Event
from acc.monitors._base import FetchQueue, MonitorBase, Ticket, check_every
from acc.state import TrainerState

__all__ = [
    "DEFAULT_ADAPTER_PATTERN",
    "GradientMonitor",
    "GradientSample",
    "GradientThresholds",
    "LayerStatus",
    "create_lora_monitor",
    "layer_status",
    "summarize_layers",
]

log = logging.getLogger("acc.monitors")

LayerStatus = Literal["active", "vanishing", "exploding", "dead", "frozen", "unknown"]
"""``unknown``: a trainable layer before its first sample."""

DEFAULT_ADAPTER_PATTERN = re.compile(r"(?:^|\.)(?:lora_(?:embedding_)?[AB]|lora_magnitude_vector)(?:\.|$)")
"""peft's adapter parameter names; the adapted module is the name before the match."""

AdapterKey = str | re.Pattern[str] | Callable[[str], str | None]
ROOT = "<root>"


@dataclass(frozen=True)
class GradientThresholds:
    """When a layer's gradient is vanishing, exploding, dead, and layers imbalanced."""

    vanishing: float = 1e-5
    exploding: float = 100.0
    imbalance: float = 1000.0
    dead_after: int = 3
    """Consecutive samples with an exactly zero gradient before a layer is dead."""

    def __post_init__(self) -> None:
        if not 0 <= self.vanishing < self.exploding:
            raise ValueError(f"need 0 <= vanishing < exploding, got {self.vanishing} and {self.exploding}")
        if not self.imbalance > 1:
            raise ValueError(f"imbalance must be a ratio > 1, got {self.imbalance}")
        if isinstance(self.dead_after, bool) or not isinstance(self.dead_after, int) or self.dead_after < 1:
            raise ValueError(f"dead_after must be a positive integer (samples), got {self.dead_after!r}")


def layer_status(grad_norm: float | None, zero_streak: int, thresholds: GradientThresholds) -> LayerStatus:
    """The verdict on one layer's latest gradient norm (None: no gradient at all)."""
    if grad_norm is None:
        return "frozen"
    if not math.isfinite(grad_norm) or grad_norm > thresholds.exploding:
        return "exploding"
    if grad_norm == 0.0 and zero_streak >= thresholds.dead_after:
        return "dead"
    if grad_norm < thresholds.vanishing:
        return "vanishing"
    return "active"


def summarize_layers(
    stats: dict[str, dict[str, Any]], thresholds: GradientThresholds, noun: str = "layers"
) -> dict[str, Any]:
    """The seed's summary of per-layer stats, with the verdict counts and a one-line text."""
    by_status: dict[str, list[str]] = {s: [] for s in ("active", "vanishing", "exploding", "dead", "frozen", "unknown")}
    for name, s in stats.items():
        by_status[s["status"]].append(name)
    norms = [
        s["current_grad_norm"]
        for s in stats.values()
        if s["status"] not in ("frozen", "unknown")
        and math.isfinite(s["current_grad_norm"])
        and s["current_grad_norm"] > 0
    ]
    ratio = max(norms) / min(norms) if len(norms) >= 2 else None
    trainable = len(stats) - len(by_status["frozen"])
    # "alive" = receiving a usable gradient: active, or small-but-non-zero
    active = len(by_status["active"]) + len(by_status["vanishing"])
    ranked = sorted(
        ((n, s["current_grad_norm"]) for n, s in stats.items() if s["status"] not in ("frozen", "unknown")),
        key=lambda item: -item[1] if math.isfinite(item[1]) else -math.inf,
    )
    parts = [f"{active}/{trainable} {noun} active"]
    if trainable and len(by_status["unknown"]) == trainable:
        parts = [f"no gradient sample yet ({trainable} trainable {noun})"]
    for status in ("dead", "exploding", "frozen"):
        if by_status[status]:
            parts.append(f"{len(by_status[status])} {status}")
    return {
        "total_layers": len(stats),
        "trainable_layers": trainable,
        "active_layers": active,
        "dead_layers": by_status["dead"],
        "vanishing_layers": by_status["vanishing"],
        "exploding_layers": by_status["exploding"],
        "frozen_layers": by_status["frozen"],
        "unknown_layers": by_status["unknown"],
        "imbalance_ratio": ratio,
        "imbalanced": ratio is not None and ratio >= thresholds.imbalance,
        "top_layers": [{"name": n, "grad_norm": v} for n, v in ranked[:5]],
        "text": ", ".join(parts),
    }


class _Group:
    """Running host statistics of one layer or adapter."""

    __slots__ = (
        "grad",
        "grad_max",
        "grad_n",
        "grad_sum",
        "n_params",
        "name",
        "step",
        "trainable",
        "update",
        "update_max",
        "update_n",
        "update_sum",
        "zero_streak",
    )

    def __init__(self, name: str, n_params: int, trainable: bool) -> None:
        self.name = name
        self.n_params = n_params
        self.trainable = trainable
        self.grad: float | None = None
        self.grad_n = 0
        self.grad_sum = 0.0
        self.grad_max = 0.0
        self.zero_streak = 0
        self.update: float | None = None
        self.update_n = 0
        self.update_sum = 0.0
        self.update_max = 0.0
        self.step: int | None = None

    def add_grad(self, value: float | None, step: int) -> None:
        self.step = step
        self.grad = value
        if value is None:
            return
        self.zero_streak = self.zero_streak + 1 if value == 0.0 else 0
        self.grad_n += 1
        self.grad_sum += value
        self.grad_max = max(self.grad_max, value) if math.isfinite(value) else value

    def add_update(self, value: float | None) -> None:
        self.update = value
        if value is None:
            return
        self.update_n += 1
        self.update_sum += value
        self.update_max = max(self.update_max, value)

    def to_dict(self, thresholds: GradientThresholds) -> dict[str, Any]:
        grad = self.grad if self.trainable else None
        return {
            "current_grad_norm": grad if grad is not None else 0.0,
            "mean_grad_norm": self.grad_sum / self.grad_n if self.grad_n else 0.0,
            "max_grad_norm": self.grad_max,
            "current_update": self.update if self.update is not None else 0.0,
            "mean_update": self.update_sum / self.update_n if self.update_n else 0.0,
            "max_update": self.update_max,
            "num_updates": self.update_n,
            "num_samples": self.grad_n,
            "num_params": self.n_params,
            "zero_streak": self.zero_streak,
            "step": self.step,
            "status": "unknown"
            if self.trainable and self.step is None
            else layer_status(grad, self.zero_streak, thresholds),
        }


@dataclass(frozen=True)
class GradientSample:
    """One reported sample: the step and each layer's gradient norm (layers that had a gradient)."""

    step: int
    layer_norms: dict[str, float]
    adapter_norms: dict[str, float]


class _Pending:
    """A sample waiting for the fetch: per-device norm vectors with the parameter indices of their entries."""

    __slots__ = ("grad", "grad_done", "step", "update", "waiting_update")

    def __init__(self, step: int, grad: list[tuple[list[int], Ticket]]) -> None:
        self.step = step
        self.grad = grad
        self.grad_done = False
        self.update: list[tuple[list[int], Ticket, Ticket]] = []
        self.waiting_update = False


def _norms_by_device(queue: FetchQueue, tensors: list[torch.Tensor], idx: list[int]) -> list[tuple[list[int], Ticket]]:
    """Fused norms of ``tensors``, queued as one float32 vector per device with the parameter indices of its entries."""
    groups: dict[torch.device, tuple[list[int], list[torch.Tensor]]] = {}
    for i, n in zip(idx, foreach_norms(tensors), strict=True):
        ids, norms = groups.setdefault(n.device, ([], []))
        ids.append(i)
        norms.append(n.float())
    return [(ids, queue.put(torch.stack(norms))) for ids, norms in groups.values()]


def _sub_in_place(old: list[torch.Tensor], new: list[torch.Tensor]) -> list[torch.Tensor]:
    torch._foreach_sub_(old, new)
    return old


def _foreach_by_group(
    op: Callable[..., Any], first: list[torch.Tensor], *others: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Apply a ``torch._foreach_*`` op per (device, dtype) group: the fused kernels want uniform lists."""
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(first):
        groups.setdefault((t.device, t.dtype), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(first)
    for idx in groups.values():
        args = [[lst[i] for i in idx] for lst in (first, *others)]
        for i, r in zip(idx, op(*args), strict=True):
            out[i] = r
    return [t for t in out if t is not None]


class GradientMonitor(MonitorBase):
    """Per-layer gradient norms, relative updates and verdicts; adapters grouped per adapted module.

    ``GradientMonitor(model=None, *, every=25, thresholds=None,
    adapter_key=None, adapters_only=False, track_updates=True,
    max_update_bytes=1 GiB)``. ``model`` defaults to the trainer's.
    ``adapter_key``: a regex searched in parameter names (the adapted module
    is the part before the match, or its ``module`` group) or a function
    ``name -> adapted module or None``; default peft's ``lora_A``/``lora_B``.
    ``adapters_only``: track adapter parameters only, one "layer" per adapted
    module (what ``create_lora_monitor`` does). Relative updates need a copy
    of the trainable weights at sampled steps; above ``max_update_bytes`` they
    are skipped (logged once).
    """

    name = "gradients"

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        *,
        every: int = 25,
        thresholds: GradientThresholds | None = None,
        adapter_key: AdapterKey | None = None,
        adapters_only: bool = False,
        track_updates: bool = True,
        max_update_bytes: int = 1 << 30,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if model is not None and not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.every = check_every(every)
        self.thresholds = thresholds if thresholds is not None else GradientThresholds()
        if not isinstance(self.thresholds, GradientThresholds):
            raise TypeError(f"thresholds must be a GradientThresholds, got {type(thresholds).__name__}")
        self._adapter_of_name = _adapter_resolver(adapter_key)
        self.adapters_only = adapters_only
        self.track_updates = track_updates
        self.max_update_bytes = int(max_update_bytes)
        self._built = False
        self._reset()

    # -- layout ------------------------------------------------------------

    def _build(self) -> None:
        """Group the model's parameters into layers and adapters (once; the model's structure is fixed)."""
        if self.model is None:
            raise TypeError(
                "GradientMonitor has no model: pass GradientMonitor(model) (a Recorder has none to lend it)"
            )
        seen: set[int] = set()
        params: list[torch.nn.Parameter] = []
        layer_names: list[str] = []
        adapter_names: list[str | None] = []
        for pname, p in self.model.named_parameters():
            if id(p) in seen:  # tied weights count once
                continue
            seen.add(id(p))
            adapter = self._adapter_of_name(pname)
            if self.adapters_only and adapter is None:
                continue
            layer = adapter if self.adapters_only and adapter is not None else _module_of(pname)
            params.append(p)
            layer_names.append(layer)
            adapter_names.append(adapter)
        if not params:
            what = "adapter parameters (lora_A/lora_B or your adapter_key)" if self.adapters_only else "parameters"
            raise ValueError(f"the model has no {what} to monitor")
        self._params = params
        layer_index = {n: i for i, n in enumerate(dict.fromkeys(layer_names))}
        adapter_index = {a: i for i, a in enumerate(dict.fromkeys(a for a in adapter_names if a is not None))}
        self._layer_list = list(layer_index)
        self._adapter_list = list(adapter_index)
        self._layer_of = np.array([layer_index[n] for n in layer_names], dtype=np.int64)
        self._adapter_of = np.array([adapter_index.get(a, -1) if a else -1 for a in adapter_names], dtype=np.int64)
        update_bytes = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
        self._updates_on = self.track_updates and update_bytes <= self.max_update_bytes
        if self.track_updates and not self._updates_on:
            log.info(
                "gradient monitor: %d MiB of trainable weights exceed max_update_bytes; relative updates are off",
                update_bytes >> 20,
            )
        self._layers = [self._new_group(i, self._layer_of) for i, _ in enumerate(self._layer_list)]
        self._adapters = [self._new_group(i, self._adapter_of) for i, _ in enumerate(self._adapter_list)]
        self._built = True

    def _new_group(self, index: int, member_of: np.ndarray) -> _Group:
        names = self._layer_list if member_of is self._layer_of else self._adapter_list
        members = [self._params[i] for i in np.flatnonzero(member_of == index)]
        return _Group(names[index], sum(p.numel() for p in members), any(p.requires_grad for p in members))

    def _reset(self) -> None:
        with self._lock:
            self._pending: list[_Pending] = []
            # step, parameter indices, weight copies, weight norms (queued)
            self._before: tuple[int, list[int], list[torch.Tensor], list[tuple[list[int], Ticket]]] | None = None
            self._samples: deque[GradientSample] = deque(maxlen=64)
            self._auto_step = 0
            if self._built:
                self._layers = [self._new_group(i, self._layer_of) for i, _ in enumerate(self._layer_list)]
                self._adapters = [self._new_group(i, self._adapter_of) for i, _ in enumerate(self._adapter_list)]

    @property
    def layer_names(self) -> list[str]:
        if not self._built:
            self._build()
        return list(self._layer_list)

    @property
    def adapter_names(self) -> list[str]:
        if not self._built:
            self._build()
        return list(self._adapter_list)

    # -- attaching ---------------------------------------------------------

    def _register(self, target: Any) -> None:
        if self.model is None:
            self.model = getattr(target, "model", None)
        if not self._built:
            self._build()
        self._on(target, Event.AFTER_BACKWARD, self._on_backward)
        self._on(target, Event.STEP_COMPLETED, self._on_step)
        self._on(target, Event.METRICS_FETCHED, lambda state: self.report())
        self._on(target, Event.JOB_ENDED, self._on_end)

    def _on_end(self, state: TrainerState) -> None:
        # a job that failed between backward and the optimizer step leaves a weight copy: free it
        with self._lock:
            self._before = None
            for p in self._pending:
                p.waiting_update = False
        self.report()

    def _on_backward(self, state: TrainerState) -> None:
        # the step being taken: state.step counts the steps completed before it
        self.sample(state.step + 1)

    def _on_step(self, state: TrainerState) -> None:
        if self._before is not None:
            self.after_step()

    # -- the loop's calls --------------------------------------------------

    def sample(self, step: int | None = None, *, force: bool = False) -> bool:
        """After backward: reduce this step's gradient norms on the device if ``step`` is sampled.

        ``step`` None counts calls. Returns True when it sampled. No host sync.
        """
        if not self._built:
            self._build()
        with self._lock:
            self._auto_step += 1
            step = self._auto_step if step is None else int(step)
        if not force and step % self.every:
            return False
        idx: list[int] = []
        grads: list[torch.Tensor] = []
        for i, p in enumerate(self._params):
            if p.requires_grad and p.grad is not None:
                idx.append(i)
                grads.append(p.grad.detach())
        pending = _Pending(step, _norms_by_device(self._queue, grads, idx) if grads else [])
        before = None
        if self._updates_on and idx:
            weights = [self._params[i].detach() for i in idx]
            # the weight norms now, and one fused copy of the weights the optimizer is about to change
            before = (
                step,
                idx,
                _foreach_by_group(lambda w: torch._foreach_mul(w, 1.0), weights),
                _norms_by_device(self._queue, weights, idx),
            )
            pending.waiting_update = True
        with self._lock:
            self._pending.append(pending)
            self._before = before
        return True

    def after_step(self) -> None:
        """After the optimizer step: the weight change of the sampled step, on the device (no sync)."""
        with self._lock:
            before, self._before = self._before, None
        if before is None:
            return
        step, idx, old, wn = before
        new = [self._params[i].detach() for i in idx]
        _foreach_by_group(_sub_in_place, old, new)  # the copy becomes -(weight change): no new allocation
        dn = _norms_by_device(self._queue, old, idx)
        with self._lock:
            for p in reversed(self._pending):
                if p.step == step:
                    p.update = [(ids, d, w) for (ids, d), (_, w) in zip(dn, wn, strict=True)]
                    p.waiting_update = False
                    break

    def report(self) -> list[GradientSample]:
        """Fetch every pending sample (with the other monitors' values: one transfer per device) and update
        the per-layer statistics."""
        if not self._built:
            return []
        with self._lock:
            pending = list(self._pending)
        if not pending:
            return []
        self._queue.fetch()
        n_params = len(self._params)
        samples: list[GradientSample] = []
        with self._lock:
            for p in pending:
                if not p.grad_done:
                    gsq, has = np.zeros(n_params), np.zeros(n_params, dtype=bool)
                    for ids, ticket in p.grad:
                        gsq[ids] = ticket.get() ** 2
                        has[ids] = True
                    p.grad_done = True
                    samples.append(
                        GradientSample(
                            p.step,
                            self._group_add(self._layers, self._layer_of, gsq, has, p.step),
                            self._group_add(self._adapters, self._adapter_of, gsq, has, p.step),
                        )
                    )
                if p.update:
                    dsq, wsq, has = np.zeros(n_params), np.zeros(n_params), np.zeros(n_params, dtype=bool)
                    for ids, d, w in p.update:
                        dsq[ids] = d.get() ** 2
                        wsq[ids] = w.get() ** 2
                        has[ids] = True
                    self._add_updates(dsq, wsq, has)
                    p.update = []
            # a sample still waiting for its optimizer step stays (its gradient norms are counted)
            self._pending = [p for p in self._pending if p.waiting_update or not p.grad_done]
            self._samples.extend(samples)
        return samples

    @staticmethod
    def _group_add(
        groups: list[_Group], member_of: np.ndarray, sq: np.ndarray, has: np.ndarray, step: int
    ) -> dict[str, float]:
        """Each group's norm (root of its parameters' summed squares); NaN/Inf squares stay NaN/Inf."""
        if not groups:
            return {}
        sel = has & (member_of >= 0)
        sums = np.bincount(member_of[sel], weights=sq[sel], minlength=len(groups))
        present = np.bincount(member_of[sel], minlength=len(groups)) > 0
        out: dict[str, float] = {}
        for g, total, ok in zip(groups, sums, present, strict=True):
            value = (math.sqrt(total) if not math.isnan(total) else math.nan) if ok else None
            g.add_grad(value, step)
            if value is not None:
                out[g.name] = value
        return out

    def _add_updates(self, dsq: np.ndarray, wsq: np.ndarray, has: np.ndarray) -> None:
        for groups, member_of in ((self._layers, self._layer_of), (self._adapters, self._adapter_of)):
            if not groups:
                continue
            sel = has & (member_of >= 0)
            d = np.bincount(member_of[sel], weights=dsq[sel], minlength=len(groups))
            w = np.bincount(member_of[sel], weights=wsq[sel], minlength=len(groups))
            present = np.bincount(member_of[sel], minlength=len(groups)) > 0
            for g, dd, ww, ok in zip(groups, d, w, present, strict=True):
                # a zero weight (e.g. a fresh lora_B) has no relative update
                g.add_update(math.sqrt(dd) / math.sqrt(ww) if ok and ww > 0 else None)

    # -- the seed's API ----------------------------------------------------

    def collect_gradients(self) -> dict[str, float]:
        """Sample the current gradients now and return ``{layer: gradient norm}`` (one host sync)."""
        self.sample(force=True)
        samples = self.report()
        return dict(samples[-1].layer_norms) if samples else {}

    def collect_updates(self) -> dict[str, float]:
        """After the optimizer step that followed ``collect_gradients()``: ``{layer: |dW| / |W|}`` (one sync)."""
        self.after_step()
        self.report()
        with self._lock:
            return {g.name: g.update for g in self._layers if g.update is not None}

    def get_layer_stats(self) -> dict[str, dict[str, Any]]:
        """Per layer: the seed's keys (current/mean/max grad norm, current/mean/max update, num_updates) and
        ``status``, ``num_params``, ``zero_streak``, ``step``. Updates are relative: ``|dW| / |W|``."""
        if not self._built:
            self._build()
        with self._lock:
            return {g.name: g.to_dict(self.thresholds) for g in self._layers}

    def get_summary(self) -> dict[str, Any]:
        """The seed's summary (total_layers, active_layers, dead_layers, top_layers) plus verdict counts and text."""
        noun = "adapters" if self.adapters_only else "layers"
        return {**summarize_layers(self.get_layer_stats(), self.thresholds, noun), "step": self.last_step}

    def get_adapter_stats(self) -> dict[str, dict[str, Any]]:
        """Per adapted module (LoRA): like ``get_layer_stats`` over its adapter parameters; {} without adapters."""
        if self.adapters_only:
            return self.get_layer_stats()
        if not self._built:
            self._build()
        with self._lock:
            return {g.name: g.to_dict(self.thresholds) for g in self._adapters}

    def get_adapter_summary(self) -> dict[str, Any] | None:
        """Active vs dead adapters ("12/16 adapters active, 4 dead"); None when the model has none."""
        stats = self.get_adapter_stats()
        if not stats:
            return None
        return {**summarize_layers(stats, self.thresholds, "adapters"), "step": self.last_step}

    def detect_issues(self) -> list[dict[str, str]]:
        """The seed's issue list: ``{"severity", "type", "message"}`` per problem found in the latest sample."""
        s = self.get_summary()
        issues: list[dict[str, str]] = []
        th = self.thresholds

        def issue(severity: str, kind: str, message: str) -> None:
            issues.append({"severity": severity, "type": kind, "message": message})

        if s["exploding_layers"]:
            n = len(s["exploding_layers"])
            issue("critical", "exploding_gradients", f"{n} layers have gradients above {th.exploding:g} or not finite")
        if s["vanishing_layers"]:
            n = len(s["vanishing_layers"])
            issue("warning", "vanishing_gradients", f"{n} layers have gradients below {th.vanishing:g}")
        if s["dead_layers"]:
            issue("warning", "dead_layers", s["text"])
        if s["imbalanced"]:
            issue(
                "warning",
                "gradient_imbalance",
                f"Large gradient imbalance (max/min ratio: {s['imbalance_ratio']:.0f}x)",
            )
        return issues

    @property
    def last_step(self) -> int | None:
        with self._lock:
            return self._samples[-1].step if self._samples else None

    # -- status and alerts -------------------------------------------------

    def status_fields(self) -> dict[str, Any]:
        if not self._built:
            return {}
        layers = self.get_layer_stats()
        noun = "adapters" if self.adapters_only else "layers"
        summary = {**summarize_layers(layers, self.thresholds, noun), "step": self.last_step}
        fields: dict[str, Any] = {"layer_stats": layers, "layer_summary": summary}
        if self.adapters_only:
            fields["lora_stats"], fields["lora_summary"] = fields["layer_stats"], fields["layer_summary"]
        elif self._adapter_list:
            fields["lora_stats"] = self.get_adapter_stats()
            fields["lora_summary"] = self.get_adapter_summary()
        return fields

    def observations(self, after_step: int) -> list[tuple[int, dict[str, Any]]]:
        """Per reported sample after ``after_step``: ``gradient_norms`` and ``layer_summary`` for the alerts."""
        with self._lock:
            samples = [s for s in self._samples if s.step > after_step]
        if not samples:
            return []
        summary = self.get_summary()
        adapters = self.get_adapter_summary() if not self.adapters_only else None
        out: list[tuple[int, dict[str, Any]]] = []
        for i, s in enumerate(samples):
            fields: dict[str, Any] = {"gradient_norms": s.layer_norms}
            if i == len(samples) - 1:  # verdicts describe the latest sample
                fields["layer_summary"] = summary
                if adapters is not None:
                    fields["adapter_summary"] = adapters
            out.append((s.step, fields))
        return out


def _module_of(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0] if "." in param_name else ROOT


def _adapter_resolver(key: AdapterKey | None) -> Callable[[str], str | None]:
    if key is None:
        key = DEFAULT_ADAPTER_PATTERN
    if callable(key) and not isinstance(key, re.Pattern):
        fn = key

        def by_function(name: str) -> str | None:
            got = fn(name)
            if got is not None and not isinstance(got, str):
                raise TypeError(f"adapter_key({name!r}) must return a module name or None, got {type(got).__name__}")
            return got

        return by_function
    if isinstance(key, str):
        try:
            key = re.compile(key)
        except re.error as exc:
            raise ValueError(f"adapter_key {key!r} is not a valid regular expression: {exc}") from None
    if not isinstance(key, re.Pattern):
        raise TypeError(f"adapter_key must be a regex or a function, got {type(key).__name__}")
    pattern = key

    def by_pattern(name: str) -> str | None:
        m = pattern.search(name)
        if m is None:
            return None
        if "module" in pattern.groupindex and m.group("module"):
            return m.group("module")
        return name[: m.start()] or ROOT

    return by_pattern


def create_lora_monitor(model: torch.nn.Module, **kwargs: Any) -> GradientMonitor:
    """The seed's factory: a GradientMonitor over the LoRA adapters only, one "layer" per adapted module."""
    return GradientMonitor(model, adapters_only=True, **kwargs)
