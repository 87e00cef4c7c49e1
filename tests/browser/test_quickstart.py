"""The quickstart notebook in JupyterLab + Chromium: what a person sees while and after it trains."""

from __future__ import annotations

import json
from typing import Any

from .harness import ARTIFACTS

STEPS = 300  # notebooks/01_quickstart.ipynb: trainer.start(steps=300)
OUT = ".jp-OutputArea-output"


def field_texts(scope: Any) -> dict[str, str]:
    """The bare values of the live fields under ``scope`` (the first panel in it)."""
    fields = ("step", "state", "health", "loss")
    return {name: scope.locator(f"[data-acc-field='{name}']").first.inner_text() for name in fields}


def set_theme(page: Any, theme: str) -> None:
    page.evaluate("(theme) => window.jupyterapp.commands.execute('apputils:change-theme', { theme })", theme)


def test_quickstart_dashboard_shows_health_progress_history_and_survives_a_reload(open_notebook: Any) -> None:
    nb = open_notebook("notebooks/01_quickstart.ipynb")
    page = nb.page
    nb.run_all()

    # The panel appears and shows a health verdict with its colour class.
    banner = page.locator(f"{OUT} .acc-banner").first
    banner.wait_for(timeout=60_000)
    coloured = ", ".join(f"{OUT} .acc-banner.loss-{h}" for h in ("healthy", "warning", "critical"))
    page.locator(coloured).first.wait_for(timeout=60_000)

    # The step counter reaches the end of the job; the state says so.
    page.wait_for_function(
        """([sel, steps]) => { const e = document.querySelector(sel); return e && e.textContent === String(steps); }""",
        arg=[f"{OUT} [data-acc-field='step']", STEPS],
        timeout=120_000,
    )
    nb.wait_for_text("quickstart", timeout=120)  # the checkpoint cell ran (its print names the checkpoint)
    page.wait_for_function(
        """(sel) => document.querySelector(sel)?.textContent === 'finished'""",
        arg=f"{OUT} [data-acc-field='state']",
        timeout=60_000,
    )
    nb.wait_for_kernel_idle(120)

    panel = page.locator(f"{OUT} .acc-lhp").first
    seen = field_texts(panel)
    assert seen["step"] == str(STEPS)
    assert seen["state"] == "finished"
    assert seen["health"] in ("healthy", "warning", "critical")
    assert float(seen["loss"]) > 0

    # Per-task rows are coloured by health; the loss log is folded (a few entries, not one per step).
    rows = panel.locator(".acc-summary tbody tr")
    assert rows.count() == 2
    for i in range(2):
        classes = rows.nth(i).get_attribute("class") or ""
        assert any(f"loss-{h}" in classes for h in ("healthy", "warning", "critical")), classes
    assert 1 <= panel.locator(".acc-log-entry").count() <= 6
    # The job is in the history with its coloured final losses; the checkpoint in the tree.
    history = panel.locator(".acc-history tbody tr").first
    assert "digits-autoencoder" in history.inner_text()
    chips = ", ".join(f".acc-final-chip.loss-{h}" for h in ("healthy", "warning", "critical"))
    assert history.locator(chips).count() == 2
    page.locator(f"{OUT} .acc-tree-node", has_text="quickstart").first.wait_for(timeout=30_000)
    # No tracebacks. (The monitors' alerts are logged as warnings, which a kernel shows as stderr text.)
    problems = [t for t in nb.errors_in_outputs() if not all(line.startswith("alert [") for line in t.splitlines())]
    assert problems == []

    # The chart draws a line per task and the total (not just its axes), each with its 300 points.
    page.wait_for_function(
        """(sel) => {
            const dash = document.querySelector(sel);
            const paths = dash ? [...dash.querySelectorAll('.acc-loss-chart-figure .curve .line')] : [];
            return paths.length === 3 && paths.every(p => (p.getAttribute('d') || '').split('L').length === 300);
        }""",
        arg=f"{OUT} .acc-dashboard",
        timeout=30_000,
    )

    ARTIFACTS.mkdir(exist_ok=True)
    # The whole dashboard is taller than the window; JupyterLab does not paint what is outside its
    # scrolled notebook, so the screenshot is taken in a window tall enough to hold it.
    page.set_viewport_size({"width": 1400, "height": 2600})
    dashboard = page.locator(f"{OUT} .acc-dashboard").first
    dashboard.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    dashboard.screenshot(path=str(ARTIFACTS / "dashboard.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})
    history_text = history.inner_text()

    # Dark theme: the colours come from JupyterLab's variables, so the panel follows the theme.
    card = panel.locator(".acc-card").first
    light = card.evaluate("e => getComputedStyle(e).backgroundColor")
    try:
        set_theme(page, "JupyterLab Dark")
        page.wait_for_function(
            "([e, light]) => getComputedStyle(e).backgroundColor !== light", arg=[card.element_handle(), light]
        )
        word = panel.locator("[data-acc-field='health']")
        success = word.evaluate("e => getComputedStyle(e).getPropertyValue('--jp-success-color1').trim()")
        assert success, "the dark theme defines --jp-success-color1"
        page.wait_for_timeout(500)  # the theme's transition
        panel.screenshot(path=str(ARTIFACTS / "dashboard-dark.png"))
    finally:
        set_theme(page, "JupyterLab Light")

    # A page reload drops the views; acc.show(trainer) in a new cell shows the same state again.
    nb.open()
    index = page.evaluate(
        """async (source) => {
            const app = window.jupyterapp;
            const notebook = app.shell.currentWidget.content;
            notebook.activeCellIndex = notebook.widgets.length - 1;
            await app.commands.execute("notebook:insert-cell-below");
            notebook.activeCell.model.sharedModel.setSource(source);
            app.commands.execute("notebook:run-cell");  // resolves when the cell ends: not awaited
            return notebook.activeCellIndex;
        }""",
        "acc.show(trainer);",
    )
    shown = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(f"{OUT} .acc-lhp")
    shown.wait_for(timeout=60_000)
    shown.locator("[data-acc-field='state']").filter(has_text="finished").wait_for(timeout=30_000)
    assert field_texts(shown) == seen, json.dumps(field_texts(shown))
    assert shown.locator(".acc-history tbody tr").first.inner_text() == history_text
    page.screenshot(path=str(ARTIFACTS / "quickstart-after-reload.png"), full_page=True)
