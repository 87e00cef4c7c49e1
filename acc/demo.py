"""The headless main job: ``python -m acc demo`` (``--broken`` for a run that goes wrong).

Trains a small two-task model on scikit-learn's bundled handwritten digits on
the CPU in the background, prints progress with a health verdict per task,
then the per-task summary table, the saved checkpoint and the job history.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import torch

from acc.loss_health import LossHealth, LossSummary, worst_health
from acc.state import TrainerState
from acc.store import JobRecord, RunStore
from acc.tasks import Classification, KLDivergence, Reconstruction
from acc.trainer import Trainer

__all__ = ["build_demo_trainer", "format_history", "format_summary_table", "run_demo"]

_COLOURS = {"healthy": "32", "warning": "33", "critical": "31", "bold": "1", "dim": "2"}
_TREND_ARROWS = {"improving": "↓ improving", "worsening": "↑ worsening", "flat": "→ flat"}


class _Style:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, style: str) -> str:
        if not self.colour or style not in _COLOURS:
            return text
        return f"\033[{_COLOURS[style]}m{text}\033[0m"

    def health(self, text: str, health: str) -> str:
        return self(text, health)


def _use_colour(mode: str, stream: IO[str]) -> bool:
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or stream.isatty()


def _num(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4f}"


def _table(rows: list[list[str]], widths: list[int] | None = None) -> list[str]:
    """Left-aligned columns; cells may carry ANSI codes (width from the visible text)."""
    import re

    visible = [[re.sub(r"\033\[[0-9;]*m", "", c) for c in row] for row in rows]
    widths = widths or [max(len(r[i]) for r in visible) for i in range(len(rows[0]))]
    lines = []
    for row, vis in zip(rows, visible, strict=True):
        cells = [c + " " * (w - len(v)) for c, v, w in zip(row, vis, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_summary_table(summaries: Mapping[str, LossSummary], style: _Style | None = None) -> list[str]:
    """The per-task summary as text lines, health coloured."""
    style = style or _Style(False)
    rows = [["task", "type", "mean", "final", "min", "max", "trend", "steps", "health"]]
    for s in summaries.values():
        health = s.health.value
        nonfinite = f" ({s.n_nonfinite} non-finite)" if s.n_nonfinite else ""
        rows.append(
            [
                style.health(s.task_name, health),
                s.task_type,
                _num(s.mean),
                style.health(_num(s.final), health),
                _num(s.min),
                _num(s.max),
                _TREND_ARROWS[s.trend],
                str(s.n_steps),
                style.health(health.upper() + nonfinite, health),
            ]
        )
    return _table(rows)


def format_history(jobs: list[JobRecord], style: _Style | None = None, limit: int = 8) -> list[str]:
    """Job history, newest first, with each job's worst final task health."""
    style = style or _Style(False)
    rows = [["id", "name", "status", "steps", "final losses", "health"]]
    for job in jobs[:limit]:
        summary = {k: LossSummary.from_dict(v) for k, v in (job.summary or {}).items()}
        finals = ", ".join(f"{k} {_num(s.final)}" for k, s in summary.items()) or "-"
        health = worst_health(s.health for s in summary.values()).value if summary else ""
        status_style = {"completed": "healthy", "failed": "critical", "interrupted": "warning"}.get(
            job.status.value, "dim"
        )
        rows.append(
            [
                str(job.id),
                job.name,
                style(job.status.value, status_style),
                str(job.last_step or 0),
                finals,
                style.health(health.upper(), health) if health else "-",
            ]
        )
    return _table(rows)


def build_demo_trainer(
    *, broken: bool = False, store: RunStore | None = None, seed: int = 0, batch_size: int = 128
) -> Trainer:
    """The demo's trainer: a digit autoencoder+classifier, or (``broken``) a VAE that cannot learn."""
    from acc.datasets import digits_loader
    from acc.examples import DigitAutoencoder, TinyVAE

    torch.manual_seed(seed)
    loader = digits_loader(batch_size, seed=seed)
    if broken:
        model: torch.nn.Module = TinyVAE(broken=True)
        # far too large a learning rate on top of the broken model
        optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
        tasks: dict[str, Any] = {"recon": Reconstruction(), "kl": KLDivergence(weight=0.1)}
        name = "digits-vae-broken"
    else:
        model = DigitAutoencoder()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        tasks = {"recon": Reconstruction(), "class": Classification(weight=0.1)}
        name = "digits-autoencoder"
    return Trainer(model, optimizer, loader, tasks=tasks, store=store, name=name, fetch_every=25)


def run_demo(
    *,
    steps: int = 300,
    broken: bool = False,
    store_path: str | None = None,
    colour: str = "auto",
    out: IO[str] | None = None,
    report_every: int = 50,
) -> int:
    """Train, print progress, the summary, the checkpoint and the history. Returns an exit code."""
    stream = out or sys.stdout
    style = _Style(_use_colour(colour, stream))

    def emit(line: str = "") -> None:
        stream.write(line + "\n")
        stream.flush()

    store = RunStore(store_path) if store_path else None
    trainer = build_demo_trainer(broken=broken, store=store)
    what = (
        "a deliberately broken VAE (reconstruction + KL)"
        if broken
        else "a digit autoencoder (reconstruction + classification)"
    )
    emit(style(f"acc demo: {what} on 1,797 real handwritten digits, {steps} steps on the CPU", "bold"))
    emit(f"run directory: {trainer.store.root}")

    last_reported = [0]

    def report(state: TrainerState) -> None:
        info = state.last_info
        if info is None or (info["step"] - last_reported[0] < report_every and info["step"] != state.max_steps):
            return
        last_reported[0] = info["step"]
        parts = []
        for name, value in info["losses"].items():
            health = info["health"][name]
            parts.append(f"{name} {style.health(_num(value), health)} [{style.health(health, health)}]")
        emit(f"  step {info['step']:>5}/{state.max_steps}  " + "  ".join(parts))

    started = time.perf_counter()
    with trainer.on("metrics_fetched", report):
        job = trainer.start(steps=steps)
        emit(f"job {job.id} {job.name!r}: training in a background thread...")
        try:
            job.wait()
        except Exception as exc:  # shown, not hidden: the demo reports the failure and exits non-zero
            emit(style(f"job {job.id} failed: {exc}", "critical"))
            return 1
    elapsed = time.perf_counter() - started
    summaries = trainer.loss_summary()
    overall = worst_health(s.health for s in summaries.values()) if summaries else LossHealth.HEALTHY
    emit()
    emit(style(f"Per-task loss summary (job {job.id}, {trainer.state.step} steps in {elapsed:.1f} s)", "bold"))
    for line in format_summary_table(summaries, style):
        emit("  " + line)
    emit("  overall health: " + style.health(overall.value.upper(), overall.value))
    checkpoint = trainer.save_checkpoint("demo-end")
    emit()
    emit(f"checkpoint {checkpoint.id} saved with its loss summary: {checkpoint.path}")
    emit()
    emit(style("Job history (newest first)", "bold"))
    for line in format_history(trainer.store.jobs(), style):
        emit("  " + line)
    trainer.store.flush()
    return 0
