"""Widget traffic and step -> browser latency, measured in one run.

1. Messages per second (budget <= 30, issue 4): a real kernel (jupyter_client)
   shows ``acc.Dashboard`` for a hand-written loop recording as fast as it can
   (>= 10k steps/s wanted; the rate reached is printed), and every
   ``comm_msg`` on IOPub is counted while the loop runs. The baseline is what
   one naive widget costs: an ``IntText`` set in a METRICS_FETCHED handler
   (one message per fetch). Rounds alternate acc / naive; medians reported,
   with the ratio naive / acc.
2. Step -> browser latency (budget p95 <= 250 ms): JupyterLab + Chromium show a
   LossHealthPanel while a background loop records 40 steps/s (faster than
   the pump's 10 Hz, so the throttle sets the pace). A MutationObserver notes
   when each step number appears; a step's latency is the time from its
   ``record()`` (wall time in the store) to the first display of that step or
   a later one. Same machine, same clock.

Usage: ``.venv/bin/python benchmarks/bench_widget_messages.py [--seconds 3] [--rounds 3] [--skip-browser]``
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.browser.harness
from _common import verdict

MESSAGE_BUDGET = 30.0
LATENCY_BUDGET_MS = 250.0

KERNEL_SETUP = textwrap.dedent(
    """
    import json, tempfile, threading, time
    import ipywidgets
    from IPython.display import display
    import acc

    _store = acc.RunStore(tempfile.mkdtemp())

    def bench_round(kind, seconds):
        rec = acc.Recorder(tasks={"recon": "reconstruction", "cls": "classification"}, store=_store,
                           fetch_every=50, name=f"bench-{kind}")
        if kind == "acc":
            # the loop's monitors make the Dashboard show every panel (loss, chart, monitors)
            acc.monitors.attach(rec, [acc.monitors.StreamingMonitor(), acc.monitors.AlertsMonitor(),
                                      acc.monitors.StatusMonitor()])
            widget = acc.Dashboard(rec)
        else:
            widget = ipywidgets.IntText()
            rec.on(acc.Event.METRICS_FETCHED, lambda state: setattr(widget, "value", state.step))
        display(widget)
        time.sleep(0.5)  # let the opening messages go before the window starts
        step = 0
        with rec:
            t0 = time.time()
            while time.time() - t0 < seconds:
                for _ in range(200):
                    step += 1
                    rec.record(step, {"recon": 0.5 / step, "cls": 2.0 / step})
            t1 = time.time()
        time.sleep(0.3)
        print("ROUND " + json.dumps({"kind": kind, "t0": t0, "t1": t1, "steps": step}))
    """
)


def _msg_time(msg: dict[str, Any]) -> float:
    date = msg["header"]["date"]
    if isinstance(date, str):
        date = datetime.fromisoformat(date)
    return float(date.timestamp())


def measure_messages(seconds: float, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Per kind: [(messages per second, steps per second)] for each round."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    results: dict[str, list[tuple[float, float]]] = {"acc": [], "naive": []}
    try:
        _execute(kc, KERNEL_SETUP, timeout=120)
        for _ in range(rounds):
            for kind in ("acc", "naive"):
                stamps, rounds_out = _execute(kc, f"bench_round({kind!r}, {seconds})", timeout=seconds + 120)
                info = json.loads(rounds_out[-1])
                window = info["t1"] - info["t0"]
                n = sum(1 for t in stamps if info["t0"] <= t <= info["t1"])
                results[kind].append((n / window, info["steps"] / window))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return results


def _execute(kc: Any, code: str, timeout: float) -> tuple[list[float], list[str]]:
    """Run code; return the send times of widget update messages and the ROUND lines printed."""
    msg_id = kc.execute(code)
    stamps: list[float] = []
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        kind = msg["msg_type"]
        if kind == "comm_msg" and msg["content"]["data"].get("method") == "update":
            stamps.append(_msg_time(msg))
        elif kind == "stream":
            lines += [line[6:] for line in msg["content"]["text"].splitlines() if line.startswith("ROUND ")]
        elif kind == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))
        elif (
            kind == "status"
            and msg["content"]["execution_state"] == "idle"
            and msg["parent_header"].get("msg_id") == msg_id
        ):
            return stamps, lines
    raise TimeoutError(f"the kernel did not finish within {timeout} s")


LATENCY_CELLS = [
    """import threading, time
import acc
rec = acc.Recorder(tasks={"loss": "regression"}, fetch_every=1, name="latency")
panel = acc.LossHealthPanel(rec)
panel""",
    """def loop(steps, per_second):
    with rec:
        start = time.perf_counter()
        for step in range(1, steps + 1):
            time.sleep(max(0.0, start + step / per_second - time.perf_counter()))
            rec.record(step, {"loss": 1.0 / step})

def go(steps, per_second):
    threading.Thread(target=loop, args=(steps, per_second), daemon=True).start()""",
]

OBSERVE = """() => {
    window.__accSteps = [];
    const node = document.querySelector(".jp-OutputArea-output [data-acc-field='step']");
    const seen = () => window.__accSteps.push([performance.timeOrigin + performance.now(), node.textContent]);
    new MutationObserver(seen).observe(node, { childList: true, characterData: true, subtree: true });
    return node.textContent;
}"""


def measure_latency(steps: int, per_second: float) -> dict[str, float]:
    import acc
    from tests.browser.harness import JupyterLab, Notebook, chromium, write_notebook

    root = Path(tempfile.mkdtemp(prefix="acc-bench-lab-"))
    home = root / "acc_home"
    write_notebook(root / "latency.ipynb", LATENCY_CELLS)
    lab = JupyterLab(root, env={"ACC_HOME": str(home)}).start()
    try:
        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
            nb = Notebook(page, lab, "latency.ipynb").open()
            nb.run_all()
            page.wait_for_selector(".jp-OutputArea-output [data-acc-field='step']", timeout=120_000)
            nb.wait_for_kernel_idle(120)
            page.evaluate(OBSERVE)
            page.locator(".jp-Cell").last.click()
            page.evaluate(
                """(code) => {
                    const app = window.jupyterapp;
                    const notebook = app.shell.currentWidget.content;
                    notebook.activeCellIndex = notebook.widgets.length - 1;
                    return app.commands.execute("notebook:insert-cell-below").then(() => {
                        notebook.activeCell.model.sharedModel.setSource(code);
                        app.commands.execute("notebook:run-cell");
                    });
                }""",
                f"go({steps}, {per_second})",
            )
            page.wait_for_function(
                "(n) => document.querySelector(\".jp-OutputArea-output [data-acc-field='step']\").textContent === n",
                arg=str(steps),
                timeout=(steps / per_second + 60) * 1000,
            )
            shown: list[list[Any]] = page.evaluate("() => window.__accSteps")
            lab.shutdown_kernels()
    finally:
        lab.stop()
    store = acc.RunStore(home)
    job = store.jobs(limit=1)[0]
    step_ids, _, walls = store.series(job.id, "loss/loss")
    store.close()
    display = sorted((t / 1000.0, int(text)) for t, text in shown if text.strip().isdigit())
    latencies = []
    j = 0
    for step, wall in zip(step_ids.tolist(), walls.tolist(), strict=True):
        while j < len(display) and display[j][1] < step:
            j += 1
        if j < len(display):
            latencies.append((display[j][0] - wall) * 1000.0)
    latencies.sort()
    return {
        "steps": len(latencies),
        "updates": len(display),
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)],
        "max": latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one message-counting round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-steps", type=int, default=400)
    parser.add_argument("--latency-rate", type=float, default=40.0, help="steps per second of the latency loop")
    parser.add_argument("--skip-browser", action="store_true")
    args = parser.parse_args()

    results = measure_messages(args.seconds, args.rounds)
    acc_rate = statistics.median(r[0] for r in results["acc"])
    naive_rate = statistics.median(r[0] for r in results["naive"])
    loop_rate = statistics.median(r[1] for r in results["acc"])
    print(f"widget messages, a loop recording as fast as it can ({args.rounds} rounds of {args.seconds:g} s, medians)")
    print(f"  loop speed with acc.Dashboard:  {loop_rate:,.0f} steps/s" + ("" if loop_rate >= 10_000 else "  (< 10k!)"))
    print(f"  acc.Dashboard (all panels):     {acc_rate:.1f} messages/s   budget {MESSAGE_BUDGET:g}")
    print(f"  naive IntText per fetch:        {naive_rate:.1f} messages/s")
    print(f"  ratio naive / acc:              {naive_rate / max(acc_rate, 1e-9):.1f}x")
    print(f"  acc / budget:                   {acc_rate / MESSAGE_BUDGET:.2f}  {verdict(acc_rate, MESSAGE_BUDGET)}")
    if args.skip_browser:
        return
    lat = measure_latency(args.latency_steps, args.latency_rate)
    print(f"step -> browser latency, LossHealthPanel in JupyterLab + Chromium, loop at {args.latency_rate:g} steps/s")
    print(f"  {lat['steps']} steps, {lat['updates']} step updates seen in the browser")
    p50, p95, worst = lat["p50"], lat["p95"], lat["max"]
    print(f"  p50 {p50:.0f} ms   p95 {p95:.0f} ms   max {worst:.0f} ms   budget p95 {LATENCY_BUDGET_MS:g} ms")
    print(f"  p95 / budget: {lat['p95'] / LATENCY_BUDGET_MS:.2f}  {verdict(lat['p95'], LATENCY_BUDGET_MS)}")


if __name__ == "__main__":
    main()
