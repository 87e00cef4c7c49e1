"""CheckpointStore: model/optimizer snapshots that carry their loss summary and form a tree.

Each checkpoint is one ``<id>.pt`` file (``torch.save`` of a dict) holding the
weights, the optimizer state and a ``meta`` dict: id, name, step, parent id,
creation time, job id and ``metrics`` (with ``metrics["loss_summary"]``).
Listing reads the files with ``weights_only=True`` and ``mmap=True``, so the
tensors are mapped, never read, and nothing but plain data is unpickled.

Writes are atomic: a temporary file in the same folder is written, flushed,
fsynced and renamed over the target, so a crash mid-save leaves the previous
file whole and never a half-written checkpoint under a real name.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import math
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from acc.loss_health import LossSummary

__all__ = ["Checkpoint", "CheckpointError", "CheckpointNode", "CheckpointStore", "atomic_write_bytes"]

log = logging.getLogger(__name__)

FORMAT = "acc-checkpoint/1"
_ID_RE = re.compile(r"^[A-Za-z0-9._-]+$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read; the message names the file."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint is, without its tensors."""

    id: str
    path: Path
    step: int
    parent_id: str | None
    created: float
    metrics: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    job_id: int | None = None

    @property
    def loss_summary(self) -> dict[str, LossSummary]:
        raw = self.metrics.get("loss_summary") or {}
        return {k: LossSummary.from_dict(v) for k, v in raw.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "step": self.step,
            "parent_id": self.parent_id,
            "created": self.created,
            "metrics": self.metrics,
            "name": self.name,
            "job_id": self.job_id,
        }


@dataclass
class CheckpointNode:
    """A checkpoint and its children, for ``CheckpointStore.tree()``."""

    checkpoint: Checkpoint
    children: list[CheckpointNode] = field(default_factory=list)

    def walk(self, depth: int = 0) -> Iterator[tuple[int, Checkpoint]]:
        yield depth, self.checkpoint
        for child in self.children:
            yield from child.walk(depth + 1)


def _fsync_dir(path: Path) -> None:
    # Make the rename itself durable (POSIX); not possible on every platform.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new file whole."""
    _atomic_write(path, lambda f: f.write(data))


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _plain(value: Any) -> Any:
    """Make metrics loadable with weights_only=True: only plain Python data."""
    if isinstance(value, LossSummary):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):  # str enums
        return value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


class CheckpointStore:
    """Checkpoints in one folder. ``CheckpointStore(root)``; ``save``, ``list``, ``tree``, ``load``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot create the checkpoint folder {self.root}: {exc}") from exc
        # Files that could not be read by the last list(), with why.
        self.errors: dict[Path, str] = {}

    def path_of(self, checkpoint_id: str) -> Path:
        if not _ID_RE.match(checkpoint_id):
            raise ValueError(f"invalid checkpoint id {checkpoint_id!r}")
        return self.root / f"{checkpoint_id}.pt"

    def save(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        step: int,
        name: str | None = None,
        parent: str | Checkpoint | None = None,
        loss_summary: Mapping[str, LossSummary | Mapping[str, Any]] | None = None,
        metrics: Mapping[str, Any] | None = None,
        job_id: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Checkpoint:
        """Write a checkpoint atomically and return what was written.

        ``loss_summary`` lands in ``checkpoint.metrics["loss_summary"]`` (as
        plain dicts), ``parent`` makes it a child of another checkpoint.
        """
        parent_id = parent.id if isinstance(parent, Checkpoint) else parent
        if parent_id is not None and not self.path_of(parent_id).exists():
            raise CheckpointError(f"parent checkpoint {parent_id!r} does not exist in {self.root}")
        checkpoint_id = f"{int(step):08d}-{uuid.uuid4().hex[:8]}"
        all_metrics: dict[str, Any] = _plain(dict(metrics or {}))
        if loss_summary is not None:
            all_metrics["loss_summary"] = _plain(dict(loss_summary))
        meta = {
            "format": FORMAT,
            "id": checkpoint_id,
            "name": name,
            "step": int(step),
            "parent_id": parent_id,
            "created": time.time(),
            "job_id": job_id,
            "metrics": all_metrics,
        }
        payload = {
            "meta": meta,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "extra": _plain(dict(extra or {})),
        }
        path = self.path_of(checkpoint_id)
        try:
            _atomic_write(path, lambda f: torch.save(payload, f))
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from exc
        return _from_meta(meta, path)

    def _read_meta(self, path: Path) -> Checkpoint:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # truncated zip, bad pickle, wrong file: all unreadable
            raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt?): {exc}") from exc
        meta = data.get("meta") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not an acc checkpoint")
        return _from_meta(meta, path)

    def list(self) -> builtins.list[Checkpoint]:
        """All readable checkpoints, oldest first. Unreadable files are logged and kept in ``errors``."""
        found = []
        self.errors = {}
        for path in sorted(self.root.glob("*.pt")):
            try:
                found.append(self._read_meta(path))
            except CheckpointError as exc:
                self.errors[path] = str(exc)
                log.warning("%s", exc)
        found.sort(key=lambda c: (c.created, c.step))
        return found

    def get(self, checkpoint_id: str) -> Checkpoint:
        path = self.path_of(checkpoint_id)
        if not path.exists():
            raise CheckpointError(f"no checkpoint {checkpoint_id!r} in {self.root}")
        return self._read_meta(path)

    def latest(self) -> Checkpoint | None:
        checkpoints = self.list()
        return checkpoints[-1] if checkpoints else None

    def tree(self) -> builtins.list[CheckpointNode]:
        """Checkpoints as a forest: roots (no parent, or a parent that is gone) with their children."""
        checkpoints = self.list()
        nodes = {c.id: CheckpointNode(c) for c in checkpoints}
        roots: builtins.list[CheckpointNode] = []
        for c in checkpoints:
            parent = nodes.get(c.parent_id) if c.parent_id else None
            (parent.children if parent else roots).append(nodes[c.id])
        return roots

    def load(
        self,
        checkpoint: str | Checkpoint,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        map_location: str | torch.device | None = None,
        strict: bool = True,
    ) -> Checkpoint:
        """Restore weights (and optimizer state) into ``model``/``optimizer``; returns the checkpoint."""
        path = checkpoint.path if isinstance(checkpoint, Checkpoint) else self.path_of(checkpoint)
        if not path.exists():
            raise CheckpointError(f"no checkpoint file {path}")
        if map_location is None:
            first = next(model.parameters(), None)
            map_location = first.device if first is not None else "cpu"
        try:
            data = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt?): {exc}") from exc
        model.load_state_dict(data["model"], strict=strict)
        if optimizer is not None:
            if data.get("optimizer") is None:
                raise CheckpointError(f"checkpoint {path} has no optimizer state")
            optimizer.load_state_dict(data["optimizer"])
        return _from_meta(data["meta"], path)

    def delete(self, checkpoint_id: str) -> None:
        self.path_of(checkpoint_id).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.root)!r})"


def _from_meta(meta: Mapping[str, Any], path: Path) -> Checkpoint:
    return Checkpoint(
        id=str(meta["id"]),
        path=path,
        step=int(meta["step"]),
        parent_id=meta.get("parent_id"),
        created=float(meta.get("created", math.nan)),
        metrics=dict(meta.get("metrics") or {}),
        name=meta.get("name"),
        job_id=meta.get("job_id"),
    )
