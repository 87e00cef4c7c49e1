"""The Trainer's pending steps: each step's task losses as one stacked device tensor.

The Trainer computes its total loss from ``torch.stack(losses)``, so keeping a
step for the next fetch costs one ``detach()`` and a few list appends. Right
after a model's forward and backward pass the CPU's caches hold activations,
not acc's code, and every extra tensor op or Python call there costs several
times what it costs in a micro-benchmark: a ``torch.stack(..., out=row)`` per
step measured ~35 us after a 4.5 ms step against 6 us alone. The fetch stacks
the kept rows into one (steps x tasks) block, joins the side values (sampled
gradient norms, a tensor learning rate) and moves it all in one copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["HostBlock", "StackedSteps"]

_LR, _GRAD_NORM = 0, 1


@dataclass
class HostBlock:
    """Fetched steps as host columns (float64; NaN where a step gave no gradient norm)."""

    steps: np.ndarray  # int64, (n,)
    walls: np.ndarray  # (n,)
    epochs: list[int]
    losses: np.ndarray  # (n, tasks)
    lr: np.ndarray  # (n,)
    grad_norm: np.ndarray  # (n,)
    has_grad_norm: np.ndarray  # bool, (n,)


class StackedSteps:
    """Steps recorded since the last fetch, for one fixed tuple of task names."""

    __slots__ = ("epochs", "lrs", "names", "rows", "side", "steps", "walls")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.steps: list[int] = []
        self.walls: list[float] = []
        self.epochs: list[int] = []
        self.lrs: list[float] = []  # NaN where ``side`` holds the step's learning rate as a tensor
        self.rows: list[torch.Tensor] = []  # one detached (tasks,) tensor per step; 0-d for a single task
        self.side: list[tuple[int, int, torch.Tensor]] = []  # (_LR or _GRAD_NORM, step index, 0-d tensor)

    def __len__(self) -> int:
        return len(self.steps)

    def add(
        self,
        step: int,
        wall: float,
        epoch: int,
        row: torch.Tensor,
        lr: float | torch.Tensor,
        grad_norm: torch.Tensor | None,
    ) -> None:
        index = len(self.steps)
        self.steps.append(step)
        self.walls.append(wall)
        self.epochs.append(epoch)
        self.rows.append(row)
        if isinstance(lr, torch.Tensor):  # e.g. a capturable optimizer's lr: fetched with the losses
            self.side.append((_LR, index, lr))
            self.lrs.append(np.nan)
        else:
            self.lrs.append(lr)
        if grad_norm is not None:
            self.side.append((_GRAD_NORM, index, grad_norm))

    def fetch(self) -> HostBlock:
        """Every kept value on the host: one device->host copy (one more per other device of a side value)."""
        n = len(self.steps)
        grad_norm = np.full(n, np.nan)
        has_grad_norm = np.zeros(n, dtype=bool)
        lr = np.array(self.lrs, dtype=np.float64)
        with torch.no_grad():
            block = torch.stack(self.rows)
            device = block.device
            parts = [block.reshape(-1)]
            here = [s for s in self.side if s[2].device == device]
            elsewhere = [s for s in self.side if s[2].device != device]
            if here:
                parts.append(torch.stack([t.reshape(()) for _, _, t in here]))
            flat = torch.cat(parts) if len(parts) > 1 else parts[0]  # cat promotes mixed float dtypes
            if flat.dtype != torch.float64:
                flat = flat.float()  # exact for bf16/fp16, and numpy has no bf16
            host = flat.cpu().numpy().astype(np.float64)  # the one copy
            side_values = host[block.numel() :].tolist()
            for other in {t.device for _, _, t in elsewhere}:
                group = [s for s in elsewhere if s[2].device == other]
                values = torch.stack([t.reshape(()).float() for _, _, t in group]).cpu().numpy()
                here += group
                side_values += values.astype(np.float64).tolist()
        for (column, index, _), value in zip(here, side_values, strict=True):
            if column == _LR:
                lr[index] = value
            else:
                grad_norm[index] = value
                has_grad_norm[index] = True
        return HostBlock(
            steps=np.array(self.steps, dtype=np.int64),
            walls=np.array(self.walls, dtype=np.float64),
            epochs=self.epochs,
            losses=host[: block.numel()].reshape(n, len(self.names)),
            lr=lr,
            grad_norm=grad_norm,
            has_grad_norm=has_grad_norm,
        )
