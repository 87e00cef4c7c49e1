"""Fixtures for the real-browser tests: one JupyterLab server and one Chromium per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import JupyterLab, Notebook, chromium, chromium_available

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder JupyterLab serves: a copy of the repository's notebooks plus per-test notebooks."""
    root = tmp_path_factory.mktemp("lab")
    if (REPO / "notebooks").exists():
        shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


@pytest.fixture(scope="session")
def lab(lab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    if not chromium_available():
        pytest.fail("Chromium is missing: ./dev test installs it (apt-get install chromium)")
    acc_home = tmp_path_factory.mktemp("lab_acc_home")
    server = JupyterLab(lab_root, env={"ACC_HOME": str(acc_home)}).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, lab: JupyterLab) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    # Errors in the browser console while the test ran, reported when it ends.
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    yield page
    context.close()
    lab.shutdown_kernels()
    # A JavaScript error in a widget is a bug the user sees as a blank or frozen view (a chart once lost its
    # lines to an uncaught bqplot error in 1 page load of 2): every browser test fails on one.
    if problems:
        pytest.fail("errors in the browser console:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def open_notebook(page: Any, lab: JupyterLab) -> Any:
    """``open_notebook("notebooks/x.ipynb")`` -> an open ``Notebook`` with an idle kernel."""

    def _open(path: str) -> Notebook:
        return Notebook(page, lab, path).open()

    return _open
