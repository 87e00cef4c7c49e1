"""The ``acc`` command line: ``acc demo``, ``acc capture``, ``acc parse`` (and ``python -m acc ...``)."""

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


def _add_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=None, help="the job's name (default: the command or file name)")
    p.add_argument("--store", default=None, help="run directory (default: $ACC_HOME or ./acc_runs)")
    p.add_argument(
        "--task",
        action="append",
        metavar="NAME=TYPE",
        help="a loss's task type for its health verdict, e.g. loss=classification (repeatable)",
    )
    p.add_argument(
        "--pattern",
        action="append",
        metavar="REGEX",
        help="an extra line pattern with named groups, e.g. 'it (?P<step>\\d+) L=(?P<loss>\\S+)' (repeatable)",
    )
    p.add_argument("--csv", metavar="OUT", default=None, help="also write the points as CSV ('-' for stdout)")
    p.add_argument("--json", metavar="OUT", default=None, help="also write the points as JSON ('-' for stdout)")


def _add_capture(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "capture",
        help="run a training command (or follow a log) and record the metrics it prints as a job",
        description="Run a training command and record the metrics its output prints (Hugging Face / TRL dicts, "
        "JSON lines, key=value, tqdm/Lightning/Keras bars, nanoGPT/fairseq lines) as a job in the run store, "
        "live. Its output still reaches the terminal. The job's status comes from the exit code, and acc "
        "exits with it. Without a command, reads a pipe; with --follow, tails a log file.",
        epilog="examples:\n"
        "  acc capture -- python train.py --lr 3e-4\n"
        "  acc capture --name dpo-run --task loss=classification -- accelerate launch dpo.py\n"
        "  python train.py 2>&1 | acc capture --name piped\n"
        "  acc capture --follow runs/old/train.log --idle-timeout 30\n"
        "  acc capture --csv metrics.csv --json metrics.json -- python train.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_log_options(p)
    p.add_argument("--follow", metavar="FILE", default=None, help="tail FILE instead of running a command")
    p.add_argument("--from-end", action="store_true", help="with --follow: skip what FILE holds already")
    p.add_argument(
        "--idle-timeout", type=float, default=None, metavar="S", help="with --follow: end after S s without lines"
    )
    p.add_argument("--quiet", action="store_true", help="do not echo the command's output")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command to run, after --")
    p.set_defaults(func=_run_capture)


def _run_capture(args: argparse.Namespace) -> int:
    from acc.capture import run_capture_cli

    return run_capture_cli(args)


def _add_parse(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "parse",
        help="read the metrics out of a finished log file; export them as CSV or JSON",
        description="Read the metrics a training log holds: print each metric's points and last value and the "
        "loss health, write them as CSV or JSON, and with --save record the log as a job in the run store.",
        epilog="examples:\n"
        "  acc parse train.log\n"
        "  acc parse train.log --csv out.csv\n"
        "  acc parse train.log --csv - --wide | column -s, -t\n"
        "  acc parse train.log --json out.json --save --name old-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="the log file")
    _add_log_options(p)
    p.add_argument("--wide", action="store_true", help="CSV with one row per step and one column per metric")
    p.add_argument("--save", action="store_true", help="also record the log as a job in the run store")
    p.set_defaults(func=_run_parse)


def _run_parse(args: argparse.Namespace) -> int:
    from acc.capture import run_parse_cli

    return run_parse_cli(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acc", description="acc: a training cockpit for PyTorch in Jupyter")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(sub)
    _add_capture(sub)
    _add_parse(sub)
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
