"""The harness itself: an anywidget renders offline in JupyterLab and answers a click."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .harness import write_notebook

WIDGET = '''
import anywidget, traitlets

class Counter(anywidget.AnyWidget):
    _esm = """
    export default {
      render({ model, el }) {
        const value = document.createElement("span");
        value.dataset.accField = "step";
        const button = document.createElement("button");
        button.textContent = "Step";
        const show = () => { value.textContent = String(model.get("count")); };
        button.addEventListener("click", () => { model.set("count", model.get("count") + 1); model.save_changes(); });
        model.on("change:count", show);
        show();
        el.append(value, button);
        return () => model.off("change:count", show);
      }
    };
    """
    count = traitlets.Int(0).tag(sync=True)

counter = Counter()
counter
'''


def test_an_anywidget_renders_and_a_click_reaches_the_kernel(lab_root: Path, open_notebook: Any) -> None:
    write_notebook(lab_root / "harness.ipynb", [WIDGET, "print('kernel sees', counter.count)"])
    nb = open_notebook("harness.ipynb")
    nb.run_all()
    step = nb.field("step")
    step.wait_for(timeout=60_000)
    assert step.inner_text() == "0"
    nb.wait_for_text("kernel sees 0")
    nb.page.get_by_role("button", name="Step").click()
    nb.page.wait_for_function("() => document.querySelector(\"[data-acc-field='step']\").textContent === '1'")
    nb.page.locator(".jp-Cell").nth(1).click()  # run the print cell again: the kernel saw the click
    nb.page.keyboard.press("Shift+Enter")
    nb.wait_for_text("kernel sees 1")
    nb.screenshot("harness")
