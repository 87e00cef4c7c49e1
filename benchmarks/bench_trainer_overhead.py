"""Trainer (health + store + batched fetch) vs a bare hand-written loop on the same model and data.

Goal (issue 2): overhead ratio <= 1.03 on a small CPU model with batch 128.
Both loops do forward, two task losses, backward and an optimizer step on the
same in-memory batches; the Trainer adds loss health, the global gradient
norm, the batched device->host fetch and the SQLite writer. Runs are
interleaved and the median of per-round ratios is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleaved, median_ratio, verdict

import acc
from acc.datasets import digits
from acc.examples import DigitAutoencoder
from acc.tasks import Classification, Reconstruction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

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
    trainer = acc.Trainer(
        model, opt, cycle, tasks={"recon": recon, "class": cls}, store=store, monitors=None, name="bench"
    )

    def with_acc() -> None:
        trainer.fit(steps=args.steps)

    times = interleaved({"bare": bare, "acc": with_acc}, args.repeats)
    ratio = median_ratio(times, "acc", "bare")
    per_step = {k: statistics.median(v) / args.steps * 1e3 for k, v in times.items()}
    print(
        f"model: DigitAutoencoder, batch 128, {args.steps} steps x {args.repeats} interleaved rounds, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"median step time: bare {per_step['bare']:.3f} ms, Trainer {per_step['acc']:.3f} ms")
    print(f"overhead ratio Trainer/bare = {ratio:.4f}  (goal <= 1.03: {verdict(ratio, 1.03)})")
    points = sum(len(v) for v in store.metrics(trainer.job.id).values()) if trainer.job else 0  # type: ignore[union-attr]
    print(f"points stored in the last run: {points}")
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
