"""acc's notebook widgets and the plumbing they share.

* ``as_source(obj, store=None)`` (``_source``): what a widget binds to: a
  Trainer, Recorder, Job, log capture, stored job id or RunStore.
* ``UpdatePump`` / ``default_pump()`` (``_pump``): the one throttled,
  coalescing path from the training thread to the browser (<= 10 Hz).
* ``AccWidget`` (``_base``): unknown kwargs raise, an error trait shown under
  the widget, validated commands from the browser.
* Assets (``_assets``): ``widgets/<stem>.js|css``, installed copy first.
"""

from __future__ import annotations

from acc.widgets._pump import UpdatePump, default_pump
from acc.widgets._source import LiveSource, as_source

__all__ = ["LiveSource", "UpdatePump", "as_source", "default_pump"]
