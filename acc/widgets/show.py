"""``acc.show(...)``: display the live widgets of a trainer (or job, recorder, stored job) again.

After a page reload of a notebook that was not saved, the widgets' views are
gone but their models still live in the kernel, bound to the running
trainer. ``acc.show(trainer)`` displays the newest Dashboard (or widget) made
for it once more: a new view of the same model, so it shows the same state
and keeps updating. When there is none yet, it makes a Dashboard.
"""

from __future__ import annotations

from typing import Any

from acc.store import RunStore
from acc.widgets._views import views_of

__all__ = ["show"]


def show(obj: object = None, *, store: RunStore | None = None) -> Any:
    """Display the widgets of ``obj`` again and return the widget displayed.

    ``obj``: a Trainer, Job, Recorder, log capture, stored job id (with
    ``store=``), RunStore, or a widget itself; None: the newest Dashboard (or
    widget) of this kernel.
    """
    import ipywidgets
    from IPython.display import display

    from acc.widgets.dashboard import Dashboard

    if isinstance(obj, ipywidgets.Widget):
        widget: Any = obj
    else:
        found = views_of(obj, Dashboard) or views_of(obj)
        if found:
            widget = found[0]
        elif obj is None:
            raise ValueError("no acc widget to show yet: pass a trainer, job, recorder or job id")
        else:
            widget = Dashboard(obj, store=store)
    display(widget)  # type: ignore[no-untyped-call]
    return widget
