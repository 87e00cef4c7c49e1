"""Watched features: per step, the cosine of a feature's weight row to its row when the watch began,
and every per-feature metric in step data, kept as a bounded trajectory per feature.

Points are computed on the device at each pause point and fetched in one
transfer every ``fetch_every`` steps (and whenever someone reads them).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import torch

__all__ = ["DEFAULT_TRAJECTORY_CAP", "Trajectory", "Watches"]

DEFAULT_TRAJECTORY_CAP = 10_000
"""Points kept per watched feature by default (see ``Trajectory``)."""


class Trajectory:
    """The points of one watched feature: steps and named columns, at most ``cap`` points.

    When a point would exceed the cap, the older half is thinned to every
    other point: the whole history stays visible at a coarser grain and the
    recent steps keep full resolution. Memory per feature is bounded by
    ``cap * (1 + number of columns)`` numbers.
    """

    def __init__(self, feature: int, cap: int) -> None:
        self.feature = feature
        self.cap = cap
        self.steps: list[int] = []
        self.columns: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self.steps)

    def append(self, step: int, values: dict[str, float]) -> None:
        n = len(self.steps)
        for name in values:
            if name not in self.columns:
                self.columns[name] = [math.nan] * n  # a metric that appears later: earlier points lack it
        self.steps.append(step)
        for name, col in self.columns.items():
            col.append(values.get(name, math.nan))
        if len(self.steps) > self.cap:
            self._thin()

    def _thin(self) -> None:
        n = len(self.steps)
        half = n // 2
        keep = list(range(0, half, 2)) + list(range(half, n))
        self.steps = [self.steps[i] for i in keep]
        self.columns = {name: [col[i] for i in keep] for name, col in self.columns.items()}

    def points(self) -> list[dict[str, Any]]:
        """``[{"step", "cosine", <metric>...}, ...]``; a missing or non-finite value is None (JSON has no NaN)."""
        names = list(self.columns)
        cols = [self.columns[n] for n in names]
        out = []
        for i, step in enumerate(self.steps):
            point: dict[str, Any] = {"step": step}
            for name, col in zip(names, cols, strict=True):
                v = col[i]
                point[name] = v if math.isfinite(v) else None
            out.append(point)
        return out


class _Pending:
    __slots__ = ("block", "ids", "names", "step")

    def __init__(self, step: int, ids: tuple[int, ...], names: tuple[str, ...], block: torch.Tensor) -> None:
        self.step = step
        self.ids = ids
        self.names = names
        self.block = block


class Watches:
    """The watched feature ids, their reference rows and trajectories (thread-safe).

    ``add``/``remove`` may come from any thread; reference rows are taken and
    points recorded in the loop's thread (``take_refs``, ``record``);
    ``fetch`` may run in any thread.
    """

    def __init__(self, cap: int = DEFAULT_TRAJECTORY_CAP) -> None:
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 4:
            raise ValueError(f"trajectory_cap must be an integer >= 4, got {cap!r}")
        self.cap = cap
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._ids: list[int] = []
        self._refs: dict[int, tuple[int, torch.Tensor]] = {}
        self._trajectories: dict[int, Trajectory] = {}
        self._pending: list[_Pending] = []
        self._cache_key: tuple[int, ...] | None = None
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- any thread --------------------------------------------------------

    def add(self, feature: int) -> bool:
        """Watch ``feature``; False when it was already watched."""
        with self._lock:
            if feature in self._ids:
                return False
            self._ids = sorted([*self._ids, feature])
            return True

    def remove(self, feature: int) -> bool:
        """Stop watching ``feature`` (its trajectory stays); False when it was not watched."""
        with self._lock:
            if feature not in self._ids:
                return False
            self._ids = [i for i in self._ids if i != feature]
            self._refs.pop(feature, None)
            return True

    def watched(self) -> list[int]:
        with self._lock:
            return list(self._ids)

    def __bool__(self) -> bool:
        return bool(self._ids)

    def needs_refs(self) -> bool:
        with self._lock:
            return any(i not in self._refs for i in self._ids)

    def max_id(self) -> int | None:
        with self._lock:
            return max(self._ids) if self._ids else None

    def fetch(self) -> None:
        """Bring pending device points to the host (one transfer) and append them to the trajectories."""
        with self._fetch_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending:
                return
            device = pending[0].block.device
            flat = torch.cat([p.block.reshape(-1).to(device=device, dtype=torch.float32) for p in pending])
            host = flat.cpu().tolist()  # the one device->host transfer
            pos = 0
            with self._lock:
                for p in pending:
                    width = 1 + len(p.names)
                    for r, feature in enumerate(p.ids):
                        row = host[pos + r * width : pos + (r + 1) * width]
                        values = {"cosine": row[0], **dict(zip(p.names, row[1:], strict=True))}
                        traj = self._trajectories.get(feature)
                        if traj is None:
                            traj = self._trajectories[feature] = Trajectory(feature, self.cap)
                        traj.append(p.step, values)
                    pos += width * len(p.ids)

    def trajectories(self) -> dict[int, list[dict[str, Any]]]:
        self.fetch()
        with self._lock:
            return {f: t.points() for f, t in sorted(self._trajectories.items())}

    def frame(self) -> Any:
        """A pandas DataFrame in long form: one row per (feature, step), a column per metric."""
        import pandas as pd

        self.fetch()
        with self._lock:
            parts = []
            for feature, t in sorted(self._trajectories.items()):
                data: dict[str, Any] = {"feature": [feature] * len(t), "step": list(t.steps)}
                data.update({name: list(col) for name, col in t.columns.items()})
                parts.append(pd.DataFrame(data))
        if not parts:
            return pd.DataFrame({"feature": [], "step": [], "cosine": []})
        return pd.concat(parts, ignore_index=True)

    def clear_trajectories(self) -> None:
        with self._fetch_lock, self._lock:
            self._pending = []
            self._trajectories = {}

    def start_job(self) -> None:
        """A new job: trajectories and reference rows start again."""
        with self._fetch_lock, self._lock:
            self._pending = []
            self._trajectories = {}
            self._refs = {}
            self._cache_key = None
            self._cache = None

    def n_pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- the loop's thread -------------------------------------------------

    def take_refs(self, param: torch.Tensor, step: int) -> None:
        """Remember the current row of every watched feature that has no reference yet."""
        with self._lock:
            missing = [i for i in self._ids if i not in self._refs]
        if not missing:
            return
        d = param.shape[0]
        bad = [i for i in missing if not 0 <= i < d]
        if bad:
            with self._lock:
                self._ids = [i for i in self._ids if i not in bad]
            raise IndexError(f"watched feature(s) {bad} out of range: the feature parameter has {d} rows (0..{d - 1})")
        rows = param.detach().index_select(0, torch.tensor(missing, device=param.device)).float().clone()
        with self._lock:
            for k, i in enumerate(missing):
                if i in self._ids:
                    self._refs[i] = (step, rows[k])

    def record(self, step: int, param: torch.Tensor, metrics: dict[str, torch.Tensor]) -> None:
        """One point per watched feature whose watch began before ``step`` (device work only)."""
        with self._lock:
            ids = tuple(i for i in self._ids if i in self._refs and self._refs[i][0] < step)
            if not ids:
                return
            if self._cache_key != ids or self._cache is None:
                idx = torch.tensor(ids, device=param.device)
                ref = torch.stack([self._refs[i][1] for i in ids])
                self._cache_key, self._cache = ids, (idx, ref)
            idx, ref = self._cache
        rows = param.detach().index_select(0, idx).float()
        cols = [torch.nn.functional.cosine_similarity(rows, ref, dim=1, eps=1e-12)]
        names: list[str] = []
        for name, t in metrics.items():
            cols.append(t.detach().index_select(0, idx.to(t.device)).to(device=rows.device, dtype=torch.float32))
            names.append(name)
        block = torch.stack(cols, dim=1)  # [n_watched, 1 + n_metrics], still on the device
        with self._lock:
            self._pending.append(_Pending(step, ids, tuple(names), block))
