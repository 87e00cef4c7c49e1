"""Shared fixtures: an isolated run directory per test and small real models/data."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import acc


def pytest_configure() -> None:
    # A session-wide ACC_HOME: kernels that nbval starts for notebooks/ inherit it, so
    # executed notebooks write their runs to a temporary folder, not notebooks/acc_runs.
    # (pytest loads this file before collecting, as tests/ is a testpath.)
    if "ACC_HOME" not in os.environ:
        os.environ["ACC_HOME"] = tempfile.mkdtemp(prefix="acc-test-home-")


@pytest.fixture(autouse=True)
def acc_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own $ACC_HOME, so the default store never touches ./acc_runs."""
    home = tmp_path_factory.mktemp("acc_home")
    monkeypatch.setenv("ACC_HOME", str(home))
    return home


@pytest.fixture
def store(tmp_path: Path) -> Iterator[acc.RunStore]:
    s = acc.RunStore(tmp_path / "runs")
    yield s
    s.close()


def make_regression_data(n: int = 256, features: int = 8, seed: int = 0) -> TensorDataset:
    """y = x @ w + noise: a problem a linear layer learns in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, 1, generator=g)
    y = x @ w + 0.01 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


@pytest.fixture
def regression_loader() -> DataLoader[tuple[torch.Tensor, ...]]:
    return DataLoader(make_regression_data(), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))


class TwoHeadNet(nn.Module):
    """A tiny two-task model: regression and 3-class classification from 8 features."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.reg = nn.Linear(16, 1)
        self.cls = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x)
        return {"pred": self.reg(h), "logits": self.cls(h)}


@pytest.fixture
def two_task_loader() -> DataLoader[tuple[torch.Tensor, ...]]:
    data = make_regression_data()
    x, y = data.tensors
    labels = (y.squeeze(1) > 0).long() + (y.squeeze(1) > 1).long()
    ds = TensorDataset(x, y, labels)
    return DataLoader(ds, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))


def two_task_trainer(
    loader: DataLoader[tuple[torch.Tensor, ...]], store: acc.RunStore, **kwargs: object
) -> acc.Trainer:
    torch.manual_seed(0)
    model = TwoHeadNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tasks = {
        "reg": acc.tasks.Regression(output="pred", target=1),
        "cls": acc.tasks.Classification(output="logits", target=2, weight=0.5),
    }
    return acc.Trainer(model, opt, loader, tasks=tasks, store=store, **kwargs)  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``condition`` until it holds (another thread is doing the work); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)
