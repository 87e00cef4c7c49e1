"""The ``acc`` command line: ``acc demo`` (and ``python -m acc ...``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="train a small two-task model on real digits and print its loss health",
        description="Train a small two-task model on scikit-learn's bundled digits (CPU, seconds), "
        "print per-task loss health, save a checkpoint and show the job history.",
        epilog="examples:\n  acc demo\n  acc demo --broken          # everything goes CRITICAL\n"
        "  acc demo --steps 600 --store /tmp/runs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    p.add_argument("--broken", action="store_true", help="train a deliberately broken model")
    p.add_argument("--store", default=None, help="run directory (default: $ACC_HOME or ./acc_runs)")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="coloured output")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from acc.demo import run_demo

    if args.steps < 1:
        raise SystemExit("acc demo: --steps must be at least 1")
    return run_demo(steps=args.steps, broken=args.broken, store_path=args.store, colour=args.color)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acc", description="acc: a training cockpit for PyTorch in Jupyter")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
