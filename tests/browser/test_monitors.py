"""The monitors in JupyterLab + Chromium: a real run with a dead layer and a loss spike, seen in the Dashboard.

The notebook trains a small real model in the background; its data waits at a gate a few steps after the
spike, so the test can see the alert while it is active, then opens the gate and joins the job in a later
cell, and sees the alert marked resolved, the layer headline, throughput and ETA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .harness import ARTIFACTS, Notebook, write_notebook

STEPS = 150
SPIKE = 41
OUT = ".jp-OutputArea-output"
MON = f"{OUT} .acc-mon"

SETUP = f"""
import threading, time
import torch
from torch import nn
import acc

class DeadLayerNet(nn.Module):
    \"\"\"A frozen input layer, and a ReLU layer whose bias keeps it off: its gradient is exactly zero.\"\"\"
    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(8, 8).requires_grad_(False)
        self.inp = nn.Linear(8, 16)
        self.dead = nn.Linear(16, 16)
        with torch.no_grad():
            self.dead.bias.fill_(-100.0)
        self.out = nn.Linear(16, 1)
    def forward(self, x):
        time.sleep(0.02)  # a model that takes a moment per step, so the run has a time left to show
        h = torch.relu(self.inp(self.frozen(x)))
        return self.out(h + torch.relu(self.dead(h)))

class Gated:
    \"\"\"Noisy linear targets; batch {SPIKE} has them shifted by 6 (a loss spike); waits before batch `at`.\"\"\"
    def __init__(self, n, spike, at):
        g = torch.Generator().manual_seed(0)
        w = torch.randn(8, 1, generator=g)
        self.batches = []
        for i in range(1, n + 1):
            x = torch.randn(32, 8, generator=g)
            y = x @ w + 0.3 * torch.randn(32, 1, generator=g)
            self.batches.append((x, y + 6.0 if i == spike else y))
        self.at, self.gate = at, threading.Event()
    def __iter__(self):
        for i, batch in enumerate(self.batches, 1):
            if i == self.at:
                self.gate.wait(120)
            yield batch

torch.manual_seed(0)
model = DeadLayerNet()
data = Gated({STEPS}, spike={SPIKE}, at={SPIKE + 3})
monitors = acc.monitors.default_monitors()
monitors[0] = acc.monitors.GradientMonitor(every=5)
trainer = acc.Trainer(model, torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2),
                      data, tasks={{"y": "regression"}}, monitors=monitors, fetch_every=1, name="monitors-demo")
dash = acc.Dashboard(trainer)
dash
"""
START = f"job = trainer.start(steps={STEPS})"
JOIN = "data.gate.set()\njob.wait()\nprint('joined', job.status)"

RUN_CELL = """async (index) => {
    const app = window.jupyterapp;
    const notebook = app.shell.currentWidget.content;
    notebook.activeCellIndex = index;
    app.commands.execute("notebook:run-cell");  // resolves when the cell ends: not awaited
}"""


def run_cell(nb: Notebook, index: int) -> None:
    nb.page.evaluate(RUN_CELL, index)


def alert(page: Any, code: str, state: str) -> Any:
    return page.locator(f"{MON} [data-acc-alert='{code}'].acc-alert-{state}").first


def test_alerts_layers_throughput_and_eta_in_the_dashboard(lab_root: Path, open_notebook: Any) -> None:
    write_notebook(lab_root / "monitors.ipynb", [SETUP, START, JOIN])
    nb = open_notebook("monitors.ipynb")
    page = nb.page
    run_cell(nb, 0)
    panel = page.locator(MON).first
    panel.wait_for(timeout=120_000)
    nb.wait_for_kernel_idle(120)
    # Before training: the layers are known; the frozen one says so, the others wait for a sample.
    layers = panel.locator("[data-acc-field='layers']")
    assert layers.inner_text() == "no gradient sample yet (3 trainable layers), 1 frozen"
    assert panel.locator("[data-acc-field='alerts']").inner_text() == "0"

    # Training, paused by its data a few steps after the spike: the alert is active, with its recommendation.
    run_cell(nb, 1)
    spike = alert(page, "loss_spike", "active")
    spike.wait_for(timeout=60_000)
    assert "loss-warning" in (spike.get_attribute("class") or "")
    text = spike.inner_text()
    assert f"step {SPIKE}" in text and "Loss spike" in text
    assert "What to do:" in text and "learning rate" in text
    assert int(panel.locator("[data-acc-field='alerts']").inner_text()) >= 1
    page.wait_for_function(  # throughput and a time left while it runs
        "(sel) => /^\\d/.test(document.querySelector(sel + \" [data-acc-field='eta']\")?.textContent ?? '')",
        arg=MON,
        timeout=30_000,
    )
    assert panel.locator("[data-acc-field='eta']").inner_text() != "0s"  # ~100 steps of 20 ms are left
    rate = panel.locator("[data-acc-field='throughput']").inner_text()
    assert float(rate.replace(",", "")) > 0, rate
    assert "samples/s" in panel.locator(".acc-tile", has_text="Throughput").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / "monitors-running.png"))

    # Open the gate and join: the spike resolves, the dead layer is in the headline and the table.
    run_cell(nb, 2)
    nb.wait_for_text("joined completed", timeout=120)
    resolved = alert(page, "loss_spike", "resolved")
    resolved.wait_for(timeout=60_000)
    assert alert(page, "loss_spike", "active").count() == 0
    assert "resolved at step" in resolved.inner_text()
    page.wait_for_function(
        "(sel) => document.querySelector(sel + \" [data-acc-field='eta']\")?.textContent === '0s'",
        arg=MON,
        timeout=30_000,
    )
    headline = layers.inner_text()
    assert headline == "2/3 layers active, 1 dead, 1 frozen", headline
    dead = panel.locator("tr[data-layer='dead']")
    assert "dead" in dead.inner_text() and "loss-critical" in (dead.get_attribute("class") or "")
    assert "frozen" in panel.locator("tr[data-layer='frozen']").inner_text()
    dead_alert = alert(page, "dead_layers", "active")
    assert "What to do:" in dead_alert.inner_text()
    assert f"step {STEPS} / {STEPS}" in panel.locator(".acc-tile", has_text="ETA").inner_text()
    assert nb.errors_in_outputs() == []
    # it sits in the Dashboard under the loss panel and the chart
    order = page.evaluate(
        """() => [...document.querySelectorAll(
            '.acc-dashboard .acc-lhp, .acc-dashboard .acc-loss-chart, .acc-dashboard .acc-mon'
        )].map(e => e.classList.contains('acc-mon') ? 'mon' : 'other')"""
    )
    assert order[-1] == "mon" and order.count("mon") == 1, order
    panel.screenshot(path=str(ARTIFACTS / "monitors.png"))

    # Dark theme: colours from JupyterLab's variables.
    card = panel.locator(".acc-card").first
    light = card.evaluate("e => getComputedStyle(e).backgroundColor")
    try:
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        page.wait_for_function(
            "([e, light]) => getComputedStyle(e).backgroundColor !== light", arg=[card.element_handle(), light]
        )
        page.wait_for_timeout(500)  # the theme's transition
        panel.screenshot(path=str(ARTIFACTS / "monitors-dark.png"))
    finally:
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
