"""The debugger in JupyterLab + Chromium: what a person sees and clicks while a job trains in the background."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .harness import ARTIFACTS, Notebook, write_notebook

OUT = ".jp-OutputArea-output"
STEPS = 3000

SETUP = """
import acc
import numpy as np
from acc.recipes import FEATURE_PARAM, competitive_trainer
dbg = acc.DebugController(feature_param=FEATURE_PARAM)
trainer = competitive_trainer(dbg, monitors=None, fetch_every=10)
dash = acc.Dashboard(trainer, panels=["debug", "heatmap", "trajectory"])
dash
"""
START = f"job = trainer.start(steps={STEPS})"

# Insert a cell at the end, run it, and return its index (the run resolves when the cell ends: not awaited).
RUN_NEW_CELL = """async (source) => {
    const app = window.jupyterapp;
    const notebook = app.shell.currentWidget.content;
    notebook.activeCellIndex = notebook.widgets.length - 1;
    await app.commands.execute("notebook:insert-cell-below");
    notebook.activeCell.model.sharedModel.setSource(source);
    app.commands.execute("notebook:run-cell");
    return notebook.activeCellIndex;
}"""


def run_cell(nb: Notebook, source: str, timeout: float = 60.0) -> tuple[int, str]:
    """Run ``source`` in a new cell at the end; returns (cell index, its printed output)."""
    index: int = nb.page.evaluate(RUN_NEW_CELL, source)
    out = nb.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(OUT).first
    out.wait_for(timeout=timeout * 1000)
    nb.wait_for_kernel_idle(timeout)
    return index, out.inner_text().strip()


def kernel_json(nb: Notebook, expression: str) -> Any:
    """The value of ``expression`` in the kernel, as JSON."""
    _, text = run_cell(nb, f"import json as _json; print(_json.dumps({expression}))")
    return json.loads(text)


def wait_field(scope: Any, name: str, predicate: str, timeout: float = 60.0) -> None:
    """Wait until the text ``t`` of ``[data-acc-field=name]`` under ``scope`` makes ``predicate`` true (JS)."""
    scope.locator(f"[data-acc-field='{name}']").first.wait_for(timeout=timeout * 1000)
    scope.page.wait_for_function(
        f"([e]) => {{ const t = e.querySelector(\"[data-acc-field='{name}']\").textContent; return {predicate}; }}",
        arg=[scope.element_handle()],
        timeout=timeout * 1000,
    )


def field(scope: Any, name: str) -> str:
    """The bare value of a live field (textContent: JupyterLab hides cells scrolled far away)."""
    text: str = scope.locator(f"[data-acc-field='{name}']").first.text_content() or ""
    return text


def button(scope: Any, name: str) -> Any:
    return scope.get_by_role("button", name=name, exact=True)


def test_pause_step_step_n_hover_reload_and_resume(lab_root: Path, open_notebook: Any) -> None:
    write_notebook(lab_root / "debugger_flow.ipynb", [SETUP, START])
    nb = open_notebook("debugger_flow.ipynb")
    page = nb.page
    nb.run_all()
    panel = page.locator(f"{OUT} .acc-dbg").first
    panel.wait_for(timeout=90_000)
    nb.wait_for_kernel_idle(90)
    wait_field(panel, "state", "t === 'running'")
    wait_field(panel, "step", "Number(t) > 0")

    # Pause: the state says so only once the loop holds; the counter then stands still.
    button(panel, "Pause").click()
    wait_field(panel, "state", "t === 'paused'", timeout=30)
    step = int(field(panel, "step"))
    assert 0 < step < STEPS
    page.wait_for_timeout(1000)
    assert int(field(panel, "step")) == step
    assert button(panel, "Resume").is_visible()
    assert "paused by you" in panel.locator(".acc-dbg-reason").inner_text()
    seen = kernel_json(
        nb, '{"paused": dbg.get_state()["paused"], "step": dbg.get_state()["step"], "t": trainer.state.step}'
    )
    assert seen == {"paused": True, "step": step, "t": step}

    # The batch of the paused step, as an image grid with its labels.
    img = panel.locator("img.acc-dbg-grid")
    page.wait_for_function("([e, s]) => e.dataset.step === String(s) && e.complete && e.naturalWidth > 0",
                           arg=[img.element_handle(), step])  # fmt: skip
    src = img.get_attribute("src")
    assert src and src.startswith("blob:")
    assert panel.locator(".acc-dbg-label").count() == 64

    # Step: exactly one step, a new batch image.
    button(panel, "Step").click()
    wait_field(panel, "step", f"t === '{step + 1}'", timeout=30)
    wait_field(panel, "state", "t === 'paused'", timeout=30)
    page.wait_for_function("([e, s]) => e.dataset.step === String(s)", arg=[img.element_handle(), step + 1])
    assert img.get_attribute("src") != src
    assert kernel_json(nb, "trainer.state.step") == step + 1

    # Click the busiest feature's row: it is watched, and the trajectory widget lists it.
    table = panel.locator(".acc-dbg-table")
    table.locator("th button", has_text="win_rate").click()
    page.wait_for_function("(e) => e.querySelector('th[aria-sort]')?.textContent.startsWith('win_rate')",
                           arg=table.element_handle())  # fmt: skip
    first_row = table.locator("tbody tr").first
    feature = int(first_row.get_attribute("data-feature") or "-1")
    first_row.click()
    table.locator(f"tbody tr.acc-watched[data-feature='{feature}']").wait_for(timeout=30_000)  # rows re-render
    traj = page.locator(f"{OUT} .acc-tr").first
    chip = traj.locator(f".acc-tr-chip[data-feature='{feature}']")
    chip.filter(has_text="no points yet").wait_for(timeout=30_000)

    # Step N: exactly N steps.
    panel.get_by_label("N", exact=True).fill("5")
    button(panel, "Step N").click()
    wait_field(panel, "step", f"t === '{step + 6}'", timeout=30)
    wait_field(panel, "state", "t === 'paused'", timeout=30)
    assert kernel_json(nb, "trainer.state.step") == step + 6
    assert kernel_json(nb, f"len(dbg.get_trajectories()[{feature}])") == 5
    chip.filter(has_text=f"feature {feature}").wait_for()
    page.wait_for_function("(e) => !e.textContent.includes('no points yet')", arg=chip.element_handle())
    traj.locator("canvas.acc-tr-canvas").wait_for()

    # The heatmap refreshed at the pause; hovering a cell shows its row, column and value.
    heat = page.locator(f"{OUT} .acc-hm").first
    heat.locator(".acc-hm-titles", has_text=f"step {step + 6:,}").wait_for(timeout=30_000)
    overlay = heat.locator("canvas.acc-hm-overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    assert box is not None
    cell = box["width"] / 32
    page.mouse.move(box["x"] + 5.5 * cell, box["y"] + 3.5 * cell)  # row 3, column 5
    hover = heat.locator("[data-acc-field='hover']")
    page.wait_for_function("(e) => e.dataset.row !== undefined", arg=hover.element_handle())
    assert re.fullmatch(r"feature 3 × feature 5 = -?\d\.\d{4}", hover.inner_text()), hover.inner_text()
    assert heat.locator(".acc-hm-tooltip").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    heat.screenshot(path=str(ARTIFACTS / "debugger-heatmap-hover.png"))
    value = float(hover.get_attribute("data-value") or "nan")
    expected = kernel_json(nb, "float(np.frombuffer(dash['heatmap'].matrix, '<f4').reshape(32, 32)[3, 5])")
    assert abs(value - expected) < 1e-6

    page.mouse.move(0, 0)
    panel.screenshot(path=str(ARTIFACTS / "debugger.png"))
    page.locator(f"{OUT} .acc-dashboard").first.screenshot(path=str(ARTIFACTS / "debugger-dashboard.png"))
    before = {name: field(panel, name) for name in ("state", "step", "loss", "health")}
    batch_step = img.get_attribute("data-step")

    # A page reload drops the views; acc.show(trainer) shows the same state again.
    nb.open()
    index, _ = run_cell(nb, "acc.show(trainer);")
    shown = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(f"{OUT} .acc-dbg")
    shown.wait_for(timeout=60_000)
    wait_field(shown, "state", "t === 'paused'")
    assert {name: field(shown, name) for name in ("state", "step", "loss", "health")} == before
    shown_img = shown.locator("img.acc-dbg-grid")
    page.wait_for_function("([e, s]) => e.dataset.step === s && e.naturalWidth > 0",
                           arg=[shown_img.element_handle(), batch_step])  # fmt: skip
    assert shown.locator(".acc-dbg-table tbody tr.acc-watched").count() == 1

    # Resume: the job runs to its end.
    button(shown, "Resume").click()
    wait_field(shown, "state", "t === 'running' || t === 'finished'", timeout=30)
    wait_field(shown, "state", "t === 'finished'", timeout=240)
    assert field(shown, "step") == str(STEPS)
    assert kernel_json(nb, "[job.status, trainer.state.step]") == ["completed", STEPS]
    assert button(shown, "Pause").is_disabled()
    assert nb.errors_in_outputs() == []
    page.screenshot(path=str(ARTIFACTS / "debugger-after-reload.png"), full_page=True)


def test_a_foreground_fit_says_that_clicks_wait(lab_root: Path, open_notebook: Any) -> None:
    cells = [
        "import acc, time\nfrom acc.recipes import competitive_trainer\n"
        "dbg = acc.DebugController()\ntrainer = competitive_trainer(dbg, monitors=None)\n"
        "trainer.on(acc.Event.STEP_COMPLETED, lambda state: time.sleep(0.03))  # ~12 s in all\n"
        "panel = acc.DebugPanel(trainer); panel",
        "trainer.fit(steps=400)",
    ]
    write_notebook(lab_root / "debugger_fit.ipynb", cells)
    nb = open_notebook("debugger_fit.ipynb")
    nb.run_all()
    panel = nb.page.locator(f"{OUT} .acc-dbg").first
    panel.wait_for(timeout=90_000)
    busy = panel.locator(".acc-dbg-busy")
    busy.wait_for(state="visible", timeout=60_000)
    assert "clicks wait until the cell finishes" in (busy.text_content() or "")
    # while the cell runs, the panel still follows the loop (updates come from the pump thread)
    first = int(field(panel, "step"))
    wait_field(panel, "step", f"Number(t) >= {first + 20}", timeout=30)
    fit_prompt = nb.page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputPrompt")
    assert busy.is_visible() and "*" in (fit_prompt.text_content() or "")  # the fit() cell still runs
    assert button(panel, "Pause").is_visible()
    nb.wait_for_kernel_idle(120)
    busy.wait_for(state="hidden", timeout=30_000)
    wait_field(panel, "state", "t === 'finished'")
    assert field(panel, "step") == "400"


def set_theme(page: Any, theme: str) -> None:
    page.evaluate("(theme) => window.jupyterapp.commands.execute('apputils:change-theme', { theme })", theme)


def test_the_debugger_notebook_runs_and_shows_every_widget(open_notebook: Any) -> None:
    nb = open_notebook("notebooks/02_debugger.ipynb")
    page = nb.page
    nb.run_all()
    nb.wait_for_text("completed at step 400", timeout=240)
    nb.wait_for_kernel_idle(120)
    assert nb.errors_in_outputs() == []
    panel = page.locator(f"{OUT} .acc-dbg").first
    wait_field(panel, "state", "t === 'finished'")
    assert field(panel, "step") == "400"
    # the paused views belong to one step: batch, step data and feature table
    batch_step = panel.locator("img.acc-dbg-grid").get_attribute("data-step")
    features_sub = panel.locator(".acc-card", has_text="Features").locator(".acc-card-sub").text_content() or ""
    assert f"step {batch_step}" in features_sub
    # four heatmaps drawn (the force images, weights, targets, weights x targets); five watched features
    heatmaps = page.locator(f"{OUT} .acc-hm canvas.acc-hm-canvas")
    assert heatmaps.count() == 4
    for i in range(4):
        assert int(heatmaps.nth(i).get_attribute("data-drawn") or "0") >= 1
    assert page.locator(f"{OUT} .acc-hm-title", has_text="cosine · attraction_target").count() == 1
    traj = page.locator(f"{OUT} .acc-tr").first
    assert traj.locator(".acc-tr-chip").count() == 5
    assert page.locator(f"{OUT} table.dataframe").count() == 1

    # Dark theme: the frame follows JupyterLab's variables.
    head = panel.locator(".acc-dbg-head")
    light = head.evaluate("e => getComputedStyle(e).backgroundColor")
    try:
        set_theme(page, "JupyterLab Dark")
        page.wait_for_function(
            "([e, light]) => getComputedStyle(e).backgroundColor !== light", arg=[head.element_handle(), light]
        )
        page.wait_for_timeout(500)  # the theme's transition
        panel.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(exist_ok=True)
        panel.screenshot(path=str(ARTIFACTS / "debugger-dark.png"))
        traj.screenshot(path=str(ARTIFACTS / "trajectory-dark.png"))
    finally:
        set_theme(page, "JupyterLab Light")
