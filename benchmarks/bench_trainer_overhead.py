"""Trainer (health + store + batched fetch) vs a bare hand-written loop on the same model and data.

Goal (issue 2): overhead ratio <= 1.03 on a small CPU model with batch 128.

Both loops do forward, two task losses, backward and an optimizer step on the
same in-memory batches; the Trainer adds loss health, the global gradient norm
(sampled every 25 steps by default), the batched device->host fetch, the
SQLite writer and a job record per run. Runs are interleaved so drift hits
both alike.

On this shared 2-core VM one run's step time varies by +-8 % from one run to
the next, more than the effect measured, so the script runs many rounds in a
random order per round and decides on the median of the per-round ratios,
printed with its bootstrap 95 % interval. Each Trainer round is a whole job
(created, recorded, finished in the store); the fixed cost of a job (a few ms)
is printed on its own, as it would be a large share of a very short round.
A last part times a model so small that its step is almost all Python, which
shows acc's bookkeeping cost per step in microseconds.

An information line pairs at the step level instead: one long Trainer job in
which every step is followed by one bare step of an identical copy of the model
(same batch, same optimizer settings), and each 50-step window of Trainer steps
(one fetch, two gradient-norm samples) is divided by the same window of bare
steps. Noise that lasts longer than a step hits both sides alike, so its
interval is a few times narrower; it leaves out the fixed cost of a job, and
whatever acc does between steps that slows the bare copy too.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _common import bootstrap_median_ci, interleaved, median_ratio, paired_ratios, verdict

import acc
from acc.datasets import digits
from acc.examples import DigitAutoencoder
from acc.tasks import Classification, Reconstruction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed run (one job each)")
    parser.add_argument("--repeats", type=int, default=61)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--paired-steps", type=int, default=4000, help="steps of the step-paired job")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    images, labels = digits().tensors
    batches = [(images[i : i + 128], labels[i : i + 128]) for i in range(0, 128 * 14, 128)]
    torch.manual_seed(0)
    model = DigitAutoencoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    recon, cls = Reconstruction(), Classification(weight=0.1)

    def bare() -> None:
        for step in range(args.steps):
            batch = batches[step % len(batches)]
            out = model(batch[0])
            loss = recon(out, batch) + cls.weight * cls(out, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    tmp = tempfile.TemporaryDirectory()
    store = acc.RunStore(Path(tmp.name) / "runs")
    cycle = batches * (args.steps // len(batches) + 1)
    tasks = {"recon": recon, "class": cls}
    trainer = acc.Trainer(model, opt, cycle, tasks=tasks, store=store, monitors=None, name="bench")
    every_step = acc.Trainer(model, opt, cycle, tasks=tasks, store=store, monitors=None, grad_norm_every=1)

    candidates: dict[str, Callable[[], None]] = {
        "bare": bare,
        "acc": lambda: trainer.fit(steps=args.steps),
        "acc, grad norm every step": lambda: every_step.fit(steps=args.steps),
    }
    times = interleaved(candidates, args.repeats)
    per_step = {k: statistics.median(v) / args.steps * 1e3 for k, v in times.items()}
    print(
        f"model: DigitAutoencoder (419k parameters), batch 128, {args.steps} steps x {args.repeats} interleaved "
        f"rounds, torch threads {torch.get_num_threads()}"
    )
    print("median step time: " + ", ".join(f"{k} {v:.3f} ms" for k, v in per_step.items()))
    ratios = paired_ratios(times, "acc", "bare")
    ratio = median_ratio(times, "acc", "bare")
    lo, hi = bootstrap_median_ci(ratios)
    print(f"overhead ratio Trainer/bare = {ratio:.4f} (median of paired rounds, 95 % interval [{lo:.4f}, {hi:.4f}])"
          f"  goal <= 1.03: {verdict(ratio, 1.03)}")  # fmt: skip
    every = "acc, grad norm every step"
    lo, hi = bootstrap_median_ci(paired_ratios(times, every, "bare"))
    print(f"  (information) with the gradient norm every step: {median_ratio(times, every, 'bare'):.4f}"
          f" [{lo:.4f}, {hi:.4f}]")  # fmt: skip

    # step-level pairing: each Trainer step is followed by a bare step of a copy of the model
    twin = copy.deepcopy(model)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    twin_opt.load_state_dict(opt.state_dict())
    acc_steps: list[float] = []
    bare_steps: list[float] = []
    last_start: list[float] = []

    def bare_twin_step(state: acc.TrainerState) -> None:
        now = time.perf_counter()
        if last_start:
            acc_steps.append(now - last_start[0])  # the previous Trainer step, from start to start
        batch = state.batch
        start = time.perf_counter()
        out = twin(batch[0])
        loss = recon(out, batch) + cls.weight * cls(out, batch)
        twin_opt.zero_grad(set_to_none=True)
        loss.backward()
        twin_opt.step()
        bare_steps.append(time.perf_counter() - start)
        last_start[:] = [time.perf_counter()]

    long_run = acc.Trainer(model, opt, cycle * (args.paired_steps // len(cycle) + 1), tasks=tasks, store=store,
                           monitors=None, name="bench-paired")  # fmt: skip
    handle = long_run.on(acc.Event.STEP_STARTED, bare_twin_step)
    long_run.fit(steps=args.paired_steps)
    handle.remove()
    window, skip = 50, 200  # 50 steps hold one fetch; the first 200 warm up
    windows = [
        sum(acc_steps[i : i + window]) / sum(bare_steps[i : i + window])
        for i in range(skip, len(acc_steps) - window + 1, window)
    ]
    lo, hi = bootstrap_median_ci(windows)
    print(f"  (information) paired step by step, {len(windows)} windows of {window} steps in one job: "
          f"{statistics.median(windows):.4f} [{lo:.4f}, {hi:.4f}]")  # fmt: skip

    # the fixed cost of one job: a 1-step job vs one bare step
    def bare_one() -> None:
        batch = batches[0]
        out = model(batch[0])
        loss = recon(out, batch) + cls.weight * cls(out, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one = interleaved({"bare": bare_one, "acc": lambda: trainer.fit(steps=1)}, 31)
    job_ms = (statistics.median(one["acc"]) - statistics.median(one["bare"])) * 1e3
    print(f"fixed cost per job (create, first fetch, finish with summary, in the store): {job_ms:.1f} ms")

    # acc's own bookkeeping per step, on a model whose step is almost all Python
    x, y = torch.randn(4, 8), torch.randn(4, 1)
    tiny = nn.Linear(8, 1)
    tiny_opt = torch.optim.SGD(tiny.parameters(), lr=1e-3)
    task = acc.tasks.Regression()
    n = 2000

    def tiny_bare() -> None:
        for _ in range(n):
            loss = task(tiny(x), (x, y))
            tiny_opt.zero_grad(set_to_none=True)
            loss.backward()
            tiny_opt.step()

    tiny_trainer = acc.Trainer(tiny, tiny_opt, [(x, y)] * (n * 30), tasks={"mse": task}, store=store, monitors=None)
    tiny_times = interleaved({"bare": tiny_bare, "acc": lambda: tiny_trainer.fit(steps=n)}, 15)
    cost = (min(tiny_times["acc"]) - min(tiny_times["bare"])) / n * 1e6
    print(
        f"acc's bookkeeping per step (1-layer model, {min(tiny_times['bare']) / n * 1e6:.0f} us bare step): "
        f"{cost:.0f} us"
    )
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
