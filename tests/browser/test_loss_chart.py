"""LossChart in JupyterLab + Chromium: wheel zoom moves the axis, Reset restores auto-fit, exact hover, NaN marked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .harness import Notebook, write_notebook

N = 300_000
SPIKE = 123_457
SPIKE_VALUE = 3.141592653589793  # every digit must reach the read-out

SETUP = f"""
import math, numpy as np, acc
store = acc.RunStore("chart_runs")
job = store.create_job("spiky")
rng = np.random.default_rng(0)
recon = 0.4 * np.exp(-np.arange({N}) / 80_000) + 0.02 * rng.random({N})
recon[{SPIKE}] = {SPIKE_VALUE!r}
recon[200_000], recon[250_000] = math.nan, math.inf
kl = 2.0 * np.exp(-np.arange({N}) / 150_000) + 0.05 * rng.random({N})
for name, values in (("loss/recon", recon), ("loss/kl", kl)):
    store.log_points(job, [(name, i, v, 0.0) for i, v in enumerate(values.tolist())])
store.flush(timeout=120)
store.finish_job(job, "completed")
chart = acc.LossChart(job, store=store)
chart
"""
PROBE = "probes = globals().get('probes', 0) + 1\nprint('kernel view', probes, chart.zoomed, chart.view is not None)"

# The screen position of the drawn point of line `label` at `step` (a path point of bqplot's `.curve`).
POINT_AT = """([label, step]) => {
  for (const curve of document.querySelectorAll('.acc-loss-chart-figure .curve')) {
    const datum = curve.__data__;
    if (!datum || datum.name !== label) continue;
    const i = datum.values.findIndex(v => v.x === step);
    if (i < 0) return null;
    const path = curve.querySelector('.line');
    const xy = path.getAttribute('d').match(/-?(?:\\d+\\.?\\d*|\\.\\d+)(?:e[-+]?\\d+)?/gi).map(Number);
    const p = new DOMPoint(xy[2 * i], xy[2 * i + 1]).matrixTransform(path.getScreenCTM());
    return {x: p.x, y: p.y};
  }
  return null;
}"""

# The step axis' tick values in order (the axis domain, as the user reads it).
X_TICKS = """() => {
  const axis = document.querySelector('.acc-loss-chart-figure .axis');
  return [...axis.querySelectorAll('.tick')].map(t => t.__data__).sort((a, b) => a - b).join(' ');
}"""


def _status(nb: Notebook) -> Any:
    return nb.page.locator(".acc-loss-chart .acc-chart-status")


def _run_probe(nb: Notebook) -> None:
    nb.page.locator(".jp-Cell").nth(1).click()
    nb.page.keyboard.press("Shift+Enter")


def test_zoom_reset_hover_and_nan_markers(lab_root: Path, open_notebook: Any) -> None:
    write_notebook(lab_root / "loss_chart.ipynb", [SETUP, PROBE])
    nb = open_notebook("loss_chart.ipynb")
    nb.run_all()
    page = nb.page
    status = _status(nb)
    status.wait_for(timeout=120_000)
    page.wait_for_function("() => document.querySelectorAll('.acc-loss-chart-figure .curve').length === 2")
    nb.wait_for_text("kernel view 1 False False")
    assert "min/max per pixel column" in status.inner_text()
    assert status.get_attribute("data-acc-view") == "auto"
    legend = page.locator(".acc-loss-chart .acc-chart-legend").inner_text()
    assert "kl" in legend and "recon" in legend and "NaN / Inf" in legend

    # NaN/Inf are drawn as markers (a line cannot draw them), named for the read-out.
    markers = page.evaluate(
        "() => [...document.querySelectorAll('.acc-loss-chart-figure .dot')].map(d => [d.__data__.x, d.__data__.name])"
    )
    assert sorted(markers) == [[200_000, "NaN · recon"], [250_000, "+Inf · recon"]]

    # Hover: the spike among 300k points is drawn, and the read-out shows its exact step and value.
    page.locator(".acc-loss-chart-figure").scroll_into_view_if_needed()
    spike = page.evaluate(POINT_AT, ["recon", SPIKE])
    assert spike is not None, "the one-step spike must survive decimation"
    page.mouse.move(spike["x"] + 2, spike["y"] + 3)
    hover = page.locator(".acc-loss-chart .acc-chart-hover")
    hover.wait_for(state="visible", timeout=10_000)
    assert hover.locator("[data-acc-hover='series']").inner_text() == "recon"
    assert hover.locator("[data-acc-hover='step']").inner_text() == str(SPIKE)
    assert hover.locator("[data-acc-hover='value']").inner_text() == repr(SPIKE_VALUE)
    nb.screenshot("loss_chart_hover")

    # Wheel zoom over the plot: the x axis domain changes and the kernel re-decimates the new range.
    ticks_before = page.evaluate(X_TICKS)
    box = page.locator(".acc-loss-chart-figure svg.svg-figure").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
    for _ in range(4):
        page.mouse.wheel(0, -400)
    page.wait_for_function(
        "() => document.querySelector('.acc-loss-chart .acc-chart-status').dataset.accView !== 'auto'"
    )
    lo, hi = (float(v) for v in status.get_attribute("data-acc-view").split(":"))
    assert 0 < lo < hi < N and hi - lo < N / 2
    assert page.evaluate(X_TICKS) != ticks_before
    assert "zoomed" in status.inner_text()
    page.mouse.move(box["x"] + 5, box["y"] + box["height"] + 40)  # off the plot: no read-out in the picture
    nb.screenshot("loss_chart_zoomed")
    _run_probe(nb)
    nb.wait_for_text("kernel view 2 True True")

    # Reset: back to auto-fit over the whole run.
    page.get_by_role("button", name="Reset").click()
    page.wait_for_function(
        "() => document.querySelector('.acc-loss-chart .acc-chart-status').dataset.accView === 'auto'"
    )
    page.wait_for_function(f"() => ({X_TICKS})() === {json.dumps(ticks_before)}")
    assert "auto-fit" in status.inner_text()
    _run_probe(nb)
    nb.wait_for_text("kernel view 3 False False")
    assert not nb.errors_in_outputs()
    page.locator(".acc-loss-chart").scroll_into_view_if_needed()
    nb.screenshot("loss_chart")
