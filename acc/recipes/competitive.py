"""A competitive feature layer on the digits: the debugger's real workout.

``CompetitiveFeatures`` has D feature rows (``encoder.weight``, ``[D, K]``,
K = pixels) that compete for every input: a softmax over the similarities
gives the winners most of the input (winner-take-most). The input is rebuilt
from the winners' rows and classified from the assignment, so the gradient
pulls on the rows (the *gradient force*). After each optimizer step a second,
SOM-like rule moves every row toward the inputs won by it and its neighbours
on a 1-D grid (the *attraction*), as in the seed's BCL.

While a DebugController wants step data, ``CompetitiveRecipe`` pushes, each step:

* ``win_rate`` [D]: the share of the batch each feature won,
* ``grad_norm`` [D]: the norm of each row's gradient,
* ``attraction_norm`` [D]: the norm of each row's attraction update,
* ``gradient_force`` [D, K]: the negative gradient of the rows (the direction the loss pulls them),
* ``attraction`` [D, K]: the attraction update itself,

and the controller adds ``grad_delta`` [D, K] (the optimizer step's actual
change of the rows, momentum included), so
``dbg.force_summary(a="gradient_force", b="attraction")`` (or ``a="grad_delta"``)
shows where the two forces agree or fight.

::

    dbg = acc.DebugController(feature_param=acc.recipes.FEATURE_PARAM)
    trainer = acc.recipes.competitive_trainer(dbg)
    trainer.start(steps=500)

``control_trainer(dbg)`` trains a plain MLP on the same data (no feature parameter).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from acc.events import Event, RemovableHandle
from acc.state import TrainerState
from acc.tasks import Classification, Reconstruction

if TYPE_CHECKING:
    from acc.debug_controller import DebugController
    from acc.store import RunStore
    from acc.trainer import Trainer

__all__ = ["FEATURE_PARAM", "CompetitiveFeatures", "CompetitiveRecipe", "competitive_trainer", "control_trainer"]

FEATURE_PARAM = "encoder.weight"
"""The competitive layer's feature parameter, for ``DebugController(feature_param=...)``."""


class CompetitiveFeatures(nn.Module):
    """D features competing per input; returns ``{"recon", "logits", "assign", "winner"}``.

    ``recon`` [B, 1, size, size]: the input rebuilt from the soft winners'
    rows; ``logits`` [B, classes] from the assignment; ``assign`` [B, D] the
    softmax assignment (``sharpness`` sets how winner-take-most it is);
    ``winner`` [B] each input's winning feature.
    """

    def __init__(self, size: int = 8, n_features: int = 32, classes: int = 10, sharpness: float = 100.0) -> None:
        super().__init__()
        self.size = size
        pixels = size * size
        self.sharpness = sharpness
        self.encoder = nn.Linear(pixels, n_features, bias=False)
        with torch.no_grad():  # non-negative rows on the scale of the data, so every feature can win at first
            self.encoder.weight.uniform_(0.0, 0.5)
        self.readout = nn.Linear(n_features, classes)

    @torch.no_grad()
    def init_from(self, images: torch.Tensor, *, seed: int = 0) -> None:
        """Start each row at a different random input (the classic competitive-learning start)."""
        flat = images.flatten(1)
        d = self.encoder.weight.shape[0]
        if flat.shape[0] < d or flat.shape[1] != self.encoder.weight.shape[1]:
            raise ValueError(f"init_from needs at least {d} inputs of {self.encoder.weight.shape[1]} values")
        pick = torch.randperm(flat.shape[0], generator=torch.Generator().manual_seed(seed))[:d]
        self.encoder.weight.copy_(flat[pick])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        flat = x.flatten(1)
        w = self.encoder.weight
        # mean squared distance per pixel: the nearest row wins most of the input
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ w.T + w.pow(2).sum(1)) / flat.shape[1]
        assign = torch.softmax(-self.sharpness * dist, dim=1)
        recon = (assign @ w).clamp(0.0, 1.0).view(-1, 1, self.size, self.size)
        return {"recon": recon, "logits": self.readout(assign), "assign": assign, "winner": assign.argmax(1)}


class CompetitiveRecipe:
    """The attraction update and the per-feature step data of a ``CompetitiveFeatures`` model.

    ``attach(trainer)`` registers two handlers and returns a handle that
    removes them: AFTER_BACKWARD (per-row gradient norms) and STEP_COMPLETED
    (the attraction update, applied to the rows in place, then the metrics).
    Metrics are computed only while ``dbg.wants_step_data``; the attraction
    itself is part of training and always applied. No host syncs.
    """

    def __init__(
        self,
        model: CompetitiveFeatures,
        debug_controller: DebugController | None = None,
        *,
        attraction: float = 0.05,
        sigma: float = 1.0,
    ) -> None:
        if not attraction >= 0:
            raise ValueError(f"attraction must be >= 0, got {attraction}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.model = model
        self.dbg = debug_controller
        self.attraction = attraction
        self.sigma = sigma

    def attach(self, trainer: Trainer) -> RemovableHandle:
        handles = [
            trainer.on(Event.AFTER_BACKWARD, self._after_backward),
            trainer.on(Event.STEP_COMPLETED, self._step_completed),
        ]

        def remove() -> None:
            for h in handles:
                h.remove()

        return RemovableHandle(remove)

    def _wants(self) -> bool:
        return self.dbg is not None and self.dbg.wants_step_data

    def _after_backward(self, state: TrainerState) -> None:
        grad = self.model.encoder.weight.grad
        if grad is not None and self._wants():
            assert self.dbg is not None
            self.dbg.capture_step_data("grad_norm", torch.linalg.vector_norm(grad.detach(), dim=1))
            self.dbg.capture_step_data("gradient_force", -grad.detach())  # a new tensor: later steps keep off it

    def _step_completed(self, state: TrainerState) -> None:
        outputs: Any = state.outputs
        batch = state.batch
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        delta = self.attraction_update(x, outputs["winner"])
        with torch.no_grad():
            self.model.encoder.weight.add_(delta)
        if self._wants():
            assert self.dbg is not None
            d = delta.shape[0]
            win_rate = torch.bincount(outputs["winner"].detach(), minlength=d).float() / outputs["winner"].shape[0]
            self.dbg.capture_step_data("win_rate", win_rate)
            self.dbg.capture_step_data("attraction", delta)
            self.dbg.capture_step_data("attraction_norm", torch.linalg.vector_norm(delta, dim=1))

    @torch.no_grad()
    def attraction_update(self, x: torch.Tensor, winner: torch.Tensor) -> torch.Tensor:
        """The SOM-like update ``[D, K]``: each row moves toward the inputs won by it and its grid neighbours.

        ``delta_j = rate * sum_b h_bj (x_b - w_j) / B`` with ``h_bj = exp(-(j - winner_b)^2 / (2 sigma^2))``.
        """
        w = self.model.encoder.weight.detach()
        flat = x.detach().flatten(1).to(w.dtype)
        d = w.shape[0]
        grid = torch.arange(d, device=w.device, dtype=w.dtype)
        h = torch.exp(-((grid[None, :] - winner.detach()[:, None].to(w.dtype)) ** 2) / (2 * self.sigma**2))
        pull = h.T @ flat - h.sum(0)[:, None] * w
        return self.attraction * pull / flat.shape[0]


def competitive_trainer(
    debug_controller: DebugController | None = None,
    *,
    n_features: int = 32,
    size: int = 8,
    batch_size: int = 64,
    lr: float = 0.05,
    attraction: float = 0.05,
    sigma: float = 1.0,
    store: RunStore | None = None,
    seed: int = 0,
    **trainer_kwargs: Any,
) -> Trainer:
    """A Trainer for ``CompetitiveFeatures`` on the digits (reconstruction + classification tasks).

    The model's feature parameter is ``FEATURE_PARAM`` (``"encoder.weight"``).
    Other keyword arguments go to ``Trainer`` (``fetch_every``, ``name``, ...).
    """
    from acc.datasets import digits_loader
    from acc.trainer import Trainer

    torch.manual_seed(seed)
    model = CompetitiveFeatures(size=size, n_features=n_features)
    loader = digits_loader(batch_size, size=size, seed=seed)
    model.init_from(loader.dataset.tensors[0], seed=seed)  # type: ignore[attr-defined]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    tasks = {"recon": Reconstruction(), "cls": Classification()}
    trainer_kwargs.setdefault("name", "competitive-features")
    trainer = Trainer(
        model, optimizer, loader, tasks=tasks, store=store, debug_controller=debug_controller, **trainer_kwargs
    )
    CompetitiveRecipe(model, debug_controller, attraction=attraction, sigma=sigma).attach(trainer)
    return trainer


def control_trainer(
    debug_controller: DebugController | None = None,
    *,
    size: int = 8,
    hidden: int = 64,
    batch_size: int = 64,
    lr: float = 1e-2,
    store: RunStore | None = None,
    seed: int = 0,
    **trainer_kwargs: Any,
) -> Trainer:
    """The control: a plain MLP classifier on the same digits, with no feature parameter."""
    from acc.datasets import digits_loader
    from acc.trainer import Trainer

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(size * size, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = digits_loader(batch_size, size=size, seed=seed)
    trainer_kwargs.setdefault("name", "control-mlp")
    return Trainer(
        model,
        optimizer,
        loader,
        tasks={"cls": Classification()},
        store=store,
        debug_controller=debug_controller,
        **trainer_kwargs,
    )
