"""JupyterLab + headless Chromium for real-browser tests and benchmarks.

``JupyterLab(root)`` starts a private JupyterLab on 127.0.0.1 (free port,
temporary config/runtime/settings/workspace folders, no token); ``Browser()``
launches the system Chromium through Playwright with the flags these offline
machines need. ``Notebook`` drives one open notebook: run all cells, wait for
the kernel, read outputs, shut the kernel down.

Facts this relies on (measured, see shared/SETUP.md): ``notebook:run-all-cells``
resolves only when every cell has finished, so it is started, never awaited;
text searches must be scoped to ``.jp-OutputArea-output`` (the editor contains
the same words); ``?reset`` opens a notebook without a saved workspace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("ACC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# User settings for the private server: start the notebook's kernel without asking,
# no news prompt, no update checks (they would cover the page or reach the network).
_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _write_settings(settings_dir: Path) -> None:
    for relative, values in _SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class JupyterLab:
    """A private JupyterLab server serving ``root``."""

    def __init__(self, root: Path, *, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.port = _free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="acc-jupyter-"))
        self._extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self._tmp / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> JupyterLab:
        dirs = {name: self._tmp / name for name in ("config", "data", "runtime", "settings", "workspaces")}
        for d in dirs.values():
            d.mkdir()
        _write_settings(dirs["settings"])
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "PYTHONUNBUFFERED": "1",
            **self._extra_env,
        }
        bin_dir = Path(sys.executable).parent
        cmd = [
            str(bin_dir / "jupyter"),
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--allow-root",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--LabApp.expose_app_in_browser=True",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited early:\n{self.log_path.read_text()[-3000:]}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.base_url}/api/status", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not start within {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def api(self, method: str, path: str) -> Any:
        req = urllib.request.Request(f"{self.base_url}{path}", method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        with contextlib.suppress(OSError, urllib.error.URLError):
            for kernel in self.api("GET", "/api/kernels"):
                with contextlib.suppress(OSError, urllib.error.URLError):
                    self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.shutdown_kernels()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def notebook_url(self, relative_path: str) -> str:
        return f"{self.base_url}/lab/tree/{relative_path}?reset"


class Notebook:
    """One notebook open in a Playwright page."""

    def __init__(self, page: Any, lab: JupyterLab, path: str) -> None:
        self.page = page
        self.lab = lab
        self.path = path

    def open(self, timeout: float = 60.0) -> Notebook:
        self.page.goto(self.lab.notebook_url(self.path))
        self.page.wait_for_selector(".jp-Notebook", timeout=timeout * 1000)
        self.wait_for_kernel_idle(timeout)
        return self

    def wait_for_kernel_idle(self, timeout: float = 60.0) -> None:
        # Ask the app: the toolbar's indicator reads "idle" before a kernel even exists.
        self.page.wait_for_function(
            """() => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                return !!k && k.status === 'idle' && w.content && w.content.widgets.length > 0;
            }""",
            timeout=timeout * 1000,
        )

    def kernel_status(self) -> str:
        status: str = self.page.evaluate(
            """() => {
                const w = window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                return k ? k.status : 'none';
            }"""
        )
        return status

    def command(self, command: str) -> None:
        """Start a JupyterLab command without waiting for it to resolve."""
        self.page.evaluate(f"() => {{ window.jupyterapp.commands.execute({json.dumps(command)}); }}")

    def run_all(self) -> None:
        self.command("notebook:run-all-cells")

    def outputs(self) -> Any:
        return self.page.locator(".jp-OutputArea-output")

    def field(self, name: str) -> Any:
        """The live value element ``[data-acc-field=name]`` in the outputs."""
        return self.page.locator(f".jp-OutputArea-output [data-acc-field='{name}']")

    def wait_for_text(self, text: str, timeout: float = 60.0) -> None:
        self.outputs().get_by_text(text).first.wait_for(timeout=timeout * 1000)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def errors_in_outputs(self) -> list[str]:
        """Text of error outputs (tracebacks) in the notebook."""
        texts: list[str] = self.page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                                             ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']"
                                             ).all_inner_texts()  # fmt: skip
        return texts


@contextlib.contextmanager
def chromium(headless: bool = True) -> Iterator[Any]:
    """A Playwright Chromium browser (the system one: Playwright's own download is unavailable offline)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=headless, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A minimal nbformat-4 notebook of code cells (no outputs)."""
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {}, "outputs": [],
             "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    path.write_text(json.dumps(nb, indent=1))
    return path
