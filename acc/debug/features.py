"""The feature parameter (a 2-D parameter whose rows are "features") and its update over the optimizer step."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["GradDelta", "resolve_feature_param"]


def _two_d_names(model: torch.nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.dim() == 2]


def resolve_feature_param(model: torch.nn.Module | None, spec: str | torch.Tensor) -> torch.Tensor:
    """The ``[D, K]`` parameter named ``spec`` in ``model`` (or ``spec`` itself when it is a tensor).

    Raises ValueError listing the model's 2-D parameters when the name is
    missing or the parameter is not 2-D.
    """
    if isinstance(spec, torch.Tensor):
        if spec.dim() != 2:
            raise ValueError(f"feature_param must be 2-D [D, K] (rows are features), got shape {list(spec.shape)}")
        return spec
    if model is None:
        raise ValueError(
            f"feature_param={spec!r} names a parameter, but there is no model to look it up in; "
            "use it with a Trainer, or pass model= to dbg.loop(...)"
        )
    params = dict(model.named_parameters())
    choices = _two_d_names(model)
    if spec not in params:
        raise ValueError(
            f"feature_param={spec!r} is not a parameter of {type(model).__name__}; "
            f"its 2-D parameters are: {', '.join(choices) or 'none'}"
        )
    p = params[spec]
    if p.dim() != 2:
        raise ValueError(
            f"feature_param={spec!r} has shape {list(p.shape)}; a feature parameter must be 2-D [D, K] "
            f"(rows are features). 2-D parameters: {', '.join(choices) or 'none'}"
        )
    return p


class GradDelta:
    """The change of the feature parameter over ``optimizer.step()`` (the gradient's update), on the device.

    Uses the optimizer's step pre/post hooks, which must be registered and
    removed in the loop's thread (torch iterates them without a lock). The
    copy before the step exists only while attached.
    """

    def __init__(self, param: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.param = param
        self.optimizer = optimizer
        self._before: torch.Tensor | None = None
        self.delta: torch.Tensor | None = None
        self.serial = 0
        """Counts completed optimizer steps seen (so a reader can tell a fresh delta from an old one)."""
        self._handles: list[Any] = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> None:
        if self._handles:
            return
        self._handles = [
            self.optimizer.register_step_pre_hook(self._pre),
            self.optimizer.register_step_post_hook(self._post),
        ]

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._before = None

    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._before = self.param.detach().clone()

    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        before = self._before
        if before is None:
            return
        self.delta = self.param.detach() - before
        self._before = None
        self.serial += 1
