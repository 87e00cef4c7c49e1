"""The log parser: real-looking lines of each format -> the records a user gets (pure, table-driven)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from acc.logparse import LineSplitter, LogParser, MetricRecord, is_loss_name, normalize_name, parse_file, parse_lines

NAN = math.nan
INF = math.inf


def _same(got: list[MetricRecord], want: list[tuple[int, str, float, str]]) -> bool:
    if len(got) != len(want):
        return False
    for g, (step, name, value, raw) in zip(got, want, strict=True):
        if (g.step, g.name, g.raw_name) != (step, name, raw):
            return False
        if not (g.value == value or (math.isnan(g.value) and math.isnan(value))):
            return False
    return True


# One line, a fresh parser: a line without a step gets step 1.
LINES: list[tuple[str, str, list[tuple[int, str, float, str]]]] = [
    # -- Hugging Face Trainer / TRL (Python-literal dicts)
    (
        "hf trainer",
        "{'loss': 0.5321, 'grad_norm': 1.25, 'learning_rate': 4.5e-05, 'epoch': 0.12}",
        [
            (1, "loss", 0.5321, "loss"),
            (1, "grad_norm", 1.25, "grad_norm"),
            (1, "learning_rate", 4.5e-05, "learning_rate"),
            (1, "epoch", 0.12, "epoch"),
        ],
    ),
    (
        "hf nan grad_norm (the loss is masked)",
        "{'loss': 0.4, 'grad_norm': nan, 'learning_rate': 4e-05, 'epoch': 0.2}",
        [
            (1, "loss", 0.4, "loss"),
            (1, "grad_norm", NAN, "grad_norm"),
            (1, "learning_rate", 4e-05, "learning_rate"),
            (1, "epoch", 0.2, "epoch"),
        ],
    ),
    (
        "hf inf and -inf",
        "{'loss': inf, 'grad_norm': -inf, 'epoch': 1.0}",
        [(1, "loss", INF, "loss"), (1, "grad_norm", -INF, "grad_norm"), (1, "epoch", 1.0, "epoch")],
    ),
    (
        "hf values printed as strings",
        "{'loss': '0.6931', 'grad_norm': '1.234', 'learning_rate': '5e-07'}",
        [
            (1, "loss", 0.6931, "loss"),
            (1, "grad_norm", 1.234, "grad_norm"),
            (1, "learning_rate", 5e-07, "learning_rate"),
        ],
    ),
    (
        "trl dpo",
        "{'loss': 0.6931, 'grad_norm': 12.3, 'learning_rate': 5e-07, 'rewards/chosen': 0.0, "
        "'rewards/rejected': -0.1, 'rewards/accuracies': 0.5, 'rewards/margins': 0.1, 'logps/chosen': -123.4, "
        "'logps/rejected': -130.2, 'logits/chosen': -2.5, 'logits/rejected': -2.6, 'epoch': 0.01}",
        [
            (1, "loss", 0.6931, "loss"),
            (1, "grad_norm", 12.3, "grad_norm"),
            (1, "learning_rate", 5e-07, "learning_rate"),
            (1, "rewards/chosen", 0.0, "rewards/chosen"),
            (1, "rewards/rejected", -0.1, "rewards/rejected"),
            (1, "rewards/accuracies", 0.5, "rewards/accuracies"),
            (1, "rewards/margins", 0.1, "rewards/margins"),
            (1, "logps/chosen", -123.4, "logps/chosen"),
            (1, "logps/rejected", -130.2, "logps/rejected"),
            (1, "logits/chosen", -2.5, "logits/chosen"),
            (1, "logits/rejected", -2.6, "logits/rejected"),
            (1, "epoch", 0.01, "epoch"),
        ],
    ),
    (
        "trl dpo eval",
        "{'eval_loss': 0.69, 'eval_rewards/margins': 0.02, 'eval_runtime': 3.2, 'epoch': 0.5}",
        [
            (1, "eval_loss", 0.69, "eval_loss"),
            (1, "eval_rewards/margins", 0.02, "eval_rewards/margins"),
            (1, "eval_runtime", 3.2, "eval_runtime"),
            (1, "epoch", 0.5, "epoch"),
        ],
    ),
    (
        "hf end-of-training summary keeps its names (train_loss is the run's mean)",
        "{'train_runtime': 120.3, 'train_samples_per_second': 95.2, 'train_loss': 0.45, 'epoch': 3.0}",
        [
            (1, "train_runtime", 120.3, "train_runtime"),
            (1, "train_samples_per_second", 95.2, "train_samples_per_second"),
            (1, "train_loss", 0.45, "train_loss"),
            (1, "epoch", 3.0, "epoch"),
        ],
    ),
    (
        "a printed tensor",
        "{'loss': tensor(0.5, device='cuda:0'), 'lr': 0.001}",
        [(1, "loss", 0.5, "loss"), (1, "learning_rate", 0.001, "lr")],
    ),
    (
        "a dict after a step marker",
        "Step 40: {'loss': 0.25}",
        [(40, "loss", 0.25, "loss")],
    ),
    # -- JSON lines
    (
        "json with step, NaN, Infinity and a string",
        '{"step": 12, "loss": NaN, "lr": Infinity, "run": "abc"}',
        [(12, "loss", NAN, "loss"), (12, "learning_rate", INF, "lr")],
    ),
    (
        "nested json is flattened",
        '{"global_step": 13, "train": {"loss": 0.5, "acc": 0.9}, "eval": {"loss": 0.7}, "ids": [1, 2]}',
        [(13, "loss", 0.5, "train/loss"), (13, "acc", 0.9, "train/acc"), (13, "eval_loss", 0.7, "eval/loss")],
    ),
    (
        "python-literal nested dict with a bare nan",
        "{'step': 3, 'metrics': {'loss': nan, 'kl': 0.1}}",
        [(3, "metrics/loss", NAN, "metrics/loss"), (3, "metrics/kl", 0.1, "metrics/kl")],
    ),
    # -- key=value / key: value / key value
    (
        "pipe-separated key value",
        "step 100 | loss 2.3456 | lr 3.00e-04 | grad_norm 0.812",
        [(100, "loss", 2.3456, "loss"), (100, "learning_rate", 3e-04, "lr"), (100, "grad_norm", 0.812, "grad_norm")],
    ),
    (
        "comma-separated key: value with a percent",
        "step: 101, loss: 2.3, acc: 95.5%",
        [(101, "loss", 2.3, "loss"), (101, "acc_pct", 95.5, "acc")],
    ),
    (
        "key=value with spaces around =",
        "Iteration 200: loss = 1.5, accuracy = 0.75",
        [(200, "loss", 1.5, "loss"), (200, "accuracy", 0.75, "accuracy")],
    ),
    (
        "key=value fields, no step",
        "train_loss=0.5 val_loss=0.6 val_acc=0.91",
        [(1, "loss", 0.5, "train_loss"), (1, "eval_loss", 0.6, "val_loss"), (1, "val_acc", 0.91, "val_acc")],
    ),
    ("key=value without spaces", "loss=0.5,acc=0.9", [(1, "loss", 0.5, "loss"), (1, "acc", 0.9, "acc")]),
    (
        "nanoGPT iter line: units kept in names",
        "iter 100: loss 2.3456, time 45.67ms, mfu 12.34%",
        [(100, "loss", 2.3456, "loss"), (100, "time_ms", 45.67, "time"), (100, "mfu_pct", 12.34, "mfu")],
    ),
    (
        "nanoGPT eval line: two-word names",
        "step 250: train loss 1.9876, val loss 2.0123",
        [(250, "loss", 1.9876, "train loss"), (250, "eval_loss", 2.0123, "val loss")],
    ),
    (
        "fairseq",
        "| epoch 001 | loss 4.123 | nll_loss 3.2 | ppl 9.87 | wps 12345 | num_updates 100 | lr 0.0005 | gnorm 1.23 "
        "| loss_scale 128",
        [
            (100, "loss", 4.123, "loss"),
            (100, "nll_loss", 3.2, "nll_loss"),
            (100, "ppl", 9.87, "ppl"),
            (100, "wps", 12345.0, "wps"),
            (100, "learning_rate", 0.0005, "lr"),
            (100, "grad_norm", 1.23, "gnorm"),
            (100, "loss_scale", 128.0, "loss_scale"),
            (100, "epoch", 1.0, "epoch"),
        ],
    ),
    (
        "step n/total, a k multiplier",
        "step 12/500 loss=0.25 tok/s=12.3k",
        [(12, "loss", 0.25, "loss"), (12, "tok/s", 12300.0, "tok/s")],
    ),
    ("pytorch tutorial", "Step [3/600], Loss: 0.2345", [(3, "loss", 0.2345, "Loss")]),
    (
        "logging prefix, a NaN loss and a two-word key",
        "2024-05-01 12:00:00 | INFO | step 300 | loss nan | grad norm 12.5",
        [(300, "loss", NAN, "loss"), (300, "grad_norm", 12.5, "grad norm")],
    ),
    (
        "rank prefix, a learning rate in words",
        "[rank0]: iter 400, loss: 1.2e+00, learning rate: 2.5e-4",
        [(400, "loss", 1.2, "loss"), (400, "learning_rate", 2.5e-4, "learning rate")],
    ),
    ("a printed tensor loss", "step 10 loss tensor(0.5432, grad_fn=<AddBackward0>)", [(10, "loss", 0.5432, "loss")]),
    ("'is' as a separator", "Loss is NaN at step 17", [(17, "loss", NAN, "Loss")]),
    ("colours are stripped", "\x1b[32mstep 500\x1b[0m loss=0.1", [(500, "loss", 0.1, "loss")]),
    (
        "an epoch marker becomes the epoch metric",
        "Epoch 3 | loss 0.5",
        [(1, "loss", 0.5, "loss"), (1, "epoch", 3.0, "epoch")],
    ),
    # -- progress bars
    (
        "tqdm postfix: the counter is the step",
        "100%|██████████| 50/50 [00:05<00:00,  9.80it/s, loss=0.123, lr=1e-4]",
        [(50, "loss", 0.123, "loss"), (50, "learning_rate", 1e-4, "lr")],
    ),
    (
        "lightning bar: v_num ignored",
        "Epoch 0:  45%|████▌     | 45/100 [00:02<00:03, 17.42it/s, loss=0.532, v_num=0, train_acc=0.9]",
        [(45, "loss", 0.532, "loss"), (45, "train_acc", 0.9, "train_acc"), (45, "epoch", 0.0, "epoch")],
    ),
    (
        "keras progress line",
        "100/100 [==============================] - 2s 20ms/step - loss: 0.3456 - accuracy: 0.9012 - val_loss: 0.4",
        [(100, "loss", 0.3456, "loss"), (100, "accuracy", 0.9012, "accuracy"), (100, "eval_loss", 0.4, "val_loss")],
    ),
    # -- not metrics
    ("prose with a number", "Saving model checkpoint to out/checkpoint-500", []),
    ("prose with key and number", "Using 4 GPUs on 2 nodes", []),
    ("thousands in prose", "Total params: 1,234,567", []),
    ("thousands in a value", "Num examples = 25,000", [(1, "examples", 25000.0, "examples")]),
    ("a tqdm bar without values", "Validation: 100%|██████████| 10/10 [00:00<00:00, 50.0it/s]", []),
    ("a download bar", "Downloading: 100%|██████████| 1.2G/1.2G [00:10<00:00, 120MB/s]", []),
    ("a config value that is not a number", "torch_dtype: float16", []),
    ("a warning", "/usr/lib/python3.11/site-packages/torch/utils/data.py:558: UserWarning: 4 workers", []),
    ("empty", "", []),
    ("garbage punctuation", "}}}{{{::==|||,,,", []),
    ("a broken dict", "{'loss': ", []),
]


@pytest.mark.parametrize(("line", "want"), [pytest.param(line, want, id=case) for case, line, want in LINES])
def test_a_line_gives_the_records_a_user_expects(line: str, want: list[tuple[int, str, float, str]]) -> None:
    got = LogParser().parse_line(line)
    assert _same(got, want), f"\n got: {got}\nwant: {want}"


@pytest.mark.parametrize(
    "line",
    [pytest.param(line, id=case) for case, line, _ in LINES]
    + [
        pytest.param("{'loss': 0.5, 'train_loss': 0.4, 'total_flos': 1e15}", id="two names for loss, an ignored key"),
        pytest.param('{"step": 7, "global_step": 7, "loss": 0.1}', id="two step keys"),
    ],
)
def test_a_line_seen_again_gives_the_same_values(line: str) -> None:
    # the second time, a dict line's keys are known and take the fast path
    parser = LogParser()
    first = [(r.name, r.value, r.raw_name) for r in parser.parse_line(line)]
    again = [(r.name, r.value, r.raw_name) for r in parser.parse_line(line)]
    assert repr(again) == repr(first)  # repr: NaN == NaN


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("loss", "loss"),
        ("train_loss", "loss"),
        ("Train Loss", "loss"),
        ("training_loss", "loss"),
        ("train/loss", "loss"),
        ("lr", "learning_rate"),
        ("learning rate", "learning_rate"),
        ("learning-rate", "learning_rate"),
        ("gnorm", "grad_norm"),
        ("grad norm", "grad_norm"),
        ("val_loss", "eval_loss"),
        ("validation loss", "eval_loss"),
        ("eval/loss", "eval_loss"),
        ("eval/rewards/chosen", "eval_rewards/chosen"),
        ("train/rewards/chosen", "rewards/chosen"),
        ("rewards/margins", "rewards/margins"),
        ("nll_loss", "nll_loss"),
        ("Accuracy", "accuracy"),
    ],
)
def test_names_are_normalised(raw: str, name: str) -> None:
    assert normalize_name(raw) == name


@pytest.mark.parametrize(
    ("name", "loss"),
    [
        ("loss", True),
        ("eval_loss", True),
        ("nll_loss", True),
        ("loss/recon", True),
        ("train_loss_epoch", True),
        ("loss_scale", False),
        ("rewards/chosen", False),
        ("logps/rejected", False),
        ("lossless", False),
        ("accuracy", False),
    ],
)
def test_which_names_are_losses(name: str, loss: bool) -> None:
    assert is_loss_name(name) is loss


def test_lines_without_a_step_get_the_next_step_of_their_source() -> None:
    lines = [
        "{'loss': 0.9, 'epoch': 0.1}",
        "{'loss': 0.8, 'epoch': 0.2}",
        "step 10 loss 0.7",
        "loss=0.6",  # no step: 11
        "step 20",  # a step alone: the next metrics get it
        "loss=0.5",
        "loss=0.4",  # 21
    ]
    steps = [(r.step, r.value) for r in parse_lines(lines) if r.name == "loss"]
    assert steps == [(1, 0.9), (2, 0.8), (10, 0.7), (11, 0.6), (20, 0.5), (21, 0.4)]


def test_keras_counters_count_on_across_epochs() -> None:
    lines = []
    for epoch in (1, 2, 3):
        lines.append(f"Epoch {epoch}/3")
        lines.append(f"100/100 [==============================] - 2s 20ms/step - loss: {1 / epoch:.4f}")
    got = [(r.step, r.value) for r in parse_lines(lines) if r.name == "loss"]
    assert got == [(100, 1.0), (200, 0.5), (300, 0.3333)]


def test_lightning_bars_count_on_across_epochs_and_redraws_keep_the_last_values() -> None:
    parser = LogParser()
    frames = [
        "Epoch 0:  50%|█████     | 1/2 [00:00<00:00, loss=0.9, v_num=0]",
        "Epoch 0: 100%|██████████| 2/2 [00:00<00:00, loss=0.8, v_num=0]",
        "Epoch 1:  50%|█████     | 1/2 [00:00<00:00, loss=0.7, v_num=0]",
        "Epoch 1: 100%|██████████| 2/2 [00:00<00:00, loss=0.6, v_num=0]",
    ]
    got = [(r.step, r.value) for r in parser.parse_lines(frames) if r.name == "loss"]
    assert got == [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)]
    # several redraws in one "line" (\r): the last one with values counts
    assert [
        (r.step, r.value) for r in LogParser().parse_line("\r 1/2 [loss=0.5]\r 2/2 [loss=0.4]") if r.name == "loss"
    ] == [(2, 0.4)]


def test_step_with_a_total_and_an_epoch_is_counted_within_the_epoch() -> None:
    lines = [f"Epoch [{e}/2], Step [{s}/2], Loss: {e + s / 10:.1f}" for e in (1, 2) for s in (1, 2)]
    got = [(r.step, r.value) for r in parse_lines(lines) if r.name == "loss"]
    assert got == [(1, 1.1), (2, 1.2), (3, 2.1), (4, 2.2)]


def test_a_total_without_an_epoch_is_the_run_length() -> None:
    parser = LogParser()
    parser.parse_line("step 12/500 loss=0.25")
    assert parser.max_steps == 500


def test_user_patterns_run_first_and_name_their_values() -> None:
    parser = LogParser(patterns=[r"it (?P<step>\d+) -- L=(?P<loss>\S+) R=(?P<chosen>\S+)"])
    parser.add_pattern(r"acc (?P<acc>[\d.]+)% on holdout", rename={"acc": "holdout/acc"})
    parser.add_pattern(lambda line: {"reward": 1.0} if line == "ok" else None)
    got = parser.parse_line("it 7 -- L=nan R=0.25")
    assert _same(got, [(7, "loss", NAN, "loss"), (7, "chosen", 0.25, "chosen")])
    assert _same(parser.parse_line("acc 91.5% on holdout"), [(8, "holdout/acc", 91.5, "holdout/acc")])
    assert _same(parser.parse_line("ok"), [(9, "reward", 1.0, "reward")])
    assert parser.parse_line("loss=0.3")[0].name == "loss"  # the built-in formats still run


@pytest.mark.parametrize(
    ("pattern", "error"),
    [("(unclosed", ValueError), (r"loss (\S+)", ValueError), (42, TypeError)],
)
def test_bad_user_patterns_are_refused_with_a_message(pattern: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="pattern"):
        LogParser(patterns=[pattern])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("line", "counter"),
    [
        ("loss=0.5 \x00\x01\x02 garbage", "binary"),
        ("\ufffd" * 40 + " loss=1", "binary"),
        ("{'loss': 0.5, 'nested': {'a': [1, 2}}", "malformed"),
        ("loss=1 " * 20_000, "too_long"),
    ],
)
def test_garbage_is_skipped_and_counted(line: str, counter: str) -> None:
    parser = LogParser()
    assert parser.parse_line(line) == []
    assert getattr(parser.stats, counter) == 1
    assert parser.stats.skipped == 1
    assert parser.parse_line("loss=0.5")[0].value == 0.5  # and the parser goes on


def test_a_megabyte_line_and_pathological_lines_do_not_hang() -> None:
    parser = LogParser()
    nasty = [
        "x" * 1_000_000,
        "a" * 60_000,
        "a " * 30_000,
        "a=" * 30_000,
        "{" * 30_000,
        "{'a': " * 10_000,
        "loss " * 12_000 + "1",
        "1" * 60_000,
        "[" * 30_000 + "loss=1",
    ]
    started = time.process_time()
    for line in nasty:
        parser.parse_line(line)
    # not a timing test: a runaway regex takes minutes; this bound only catches that
    assert time.process_time() - started < 20
    assert parser.stats.lines == len(nasty)


def test_the_line_splitter_ends_lines_at_newlines_and_redraws_and_drops_overlong_ones() -> None:
    splitter = LineSplitter(max_line_bytes=16)
    assert splitter.feed(b"loss=1\nlos") == ["loss=1"]
    assert splitter.feed(b"s=2\r\n 1/2 [\r 2/2") == ["loss=2", " 1/2 ["]
    assert splitter.feed(b"\n" + b"x" * 40) == [" 2/2"]
    assert splitter.feed(b"y" * 40 + b"\nok\n") == ["ok"]  # the 80-byte line is dropped as it streams in
    assert splitter.take_dropped() == 1
    assert splitter.feed("é".encode()[:1]) == []  # half a character waits for the rest
    assert splitter.feed("é".encode()[1:] + b"\n\xff\n") == ["é", "\ufffd"]
    assert splitter.feed(b"tail") == []
    assert splitter.finish() == ["tail"]


def test_parse_file_reads_a_whole_log(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(
        b"Starting\n{'loss': 1.0, 'epoch': 0.5}\n"
        + b"z" * 1_000_000  # a megabyte without a newline: dropped, counted
        + b"\n{'loss': 0.5, 'epoch': 1.0}\r\nstep 9 loss=0.25"  # no final newline: still read
    )
    parser = LogParser()
    records = list(parse_file(log, parser=parser))
    assert [(r.step, r.name, r.value) for r in records if r.name == "loss"] == [
        (1, "loss", 1.0),
        (2, "loss", 0.5),
        (9, "loss", 0.25),
    ]
    assert parser.stats.too_long == 1
    assert parser.stats.lines == 4


def _varied_log(n: int, seed: int = 0, block: int = 0) -> list[str]:
    """Lines of many formats with numbers, units, bars and NaN/Inf varying from line to line."""
    import random

    rng = random.Random(seed)

    def num() -> str:
        r = rng.random()
        if r < 0.03:
            return rng.choice(["nan", "inf", "-inf", "NaN"])
        if r < 0.1:
            return f"{rng.uniform(-5, 5):.3e}"
        if r < 0.15:
            return str(rng.randint(0, 20_000))
        return f"{rng.uniform(0, 10):.{rng.randint(1, 6)}f}"

    formats = [
        lambda i: f"iter {i}: loss {num()}, time {num()}{rng.choice(['ms', 's'])}, mfu {num()}%",
        lambda i: f"step {i}: train loss {num()}, {rng.choice(['val', 'test'])} loss {num()}",
        lambda i: f"| epoch {i // 50:03d} | loss {num()} | ppl {num()} | num_updates {i} | lr {num()} | gnorm {num()}",
        lambda i: (
            f"Epoch {i // 40}: {i % 100:3d}%|{'█' * (i % 10)}{' ' * (10 - i % 10)}| {i % 40 + 1}/40 "
            f"[00:{i % 60:02d}<00:03, {num()}it/s, loss={num()}, v_num=0]"
        ),
        lambda i: (
            f"{i % 40 + 1}/40 [==============================] - 2s 20ms/step - loss: {num()} - accuracy: {num()}"
        ),
        lambda i: (
            f"Epoch {i // 40 + 1}/10"
            if i % 40 == 0
            else f"2024-05-01 12:00:{i % 60:02d},{i % 1000:03d} - INFO - "
            f"step={i} loss={num()} lr={num()} tok/s={num()}{rng.choice(['', 'k', 'M'])}"
        ),
        lambda i: f"Epoch [{i // 600 + 1}/10], Step [{i % 600 + 1}/600], Loss: {num()}",
        lambda i: f"step {rng.choice([str(i), 'nan'])} loss={num()} acc={num()} acc={num()}",
        lambda i: f"{rng.choice(['Rank', 'rank', 'Saving'])} {i} timed out after {i % 7} seconds, loss {num()}",
        lambda i: f"layer.{i % 3}.grad_norm {num()} step {i}",
        lambda i: f"step\t{i}\tloss{rng.choice(['', ':'])}\t{num()}\tlr \t{num()}",
        lambda i: f"{{'loss': {num()}, 'grad_norm': {num()}, 'learning_rate': {num()}, 'epoch': {num()}}}",
        lambda i: f'{{"step": {i}, "loss": {num()}, "lr": {num()}, "run": "{rng.choice(["a", "b, c"])}"}}',
        lambda i: f"{{'eval_loss': {num()}, 'eval_rewards/margins': {rng.choice([num(), repr(num())])}, 'epoch': 1.0}}",
    ]
    if block:  # runs of one format, two formats taking turns: as real logs interleave them
        return [formats[(i // block) % 2 + 2 * ((i // (2 * block)) % 7)](i) for i in range(n)]
    return [formats[rng.randrange(len(formats))](i) for i in range(n)]


@pytest.mark.parametrize("block", [0, 50])
def test_templates_give_exactly_the_records_of_the_general_path(block: int) -> None:
    lines = _varied_log(6000, block=block)
    fast, slow = LogParser(), LogParser(templates=False)
    got = [repr(fast.parse_line(line)) for line in lines]
    want = [repr(slow.parse_line(line)) for line in lines]
    mismatches = [(line, g, w) for line, g, w in zip(lines, got, want, strict=True) if g != w]
    assert not mismatches[:5]
    assert fast.stats == slow.stats
    assert slow.template_hits == 0
    if block:
        assert fast.template_hits > len(lines) // 2  # most lines took the fast path


def _fast_and_general(lines: list[str]) -> tuple[LogParser, list[str], list[str]]:
    """A parser with templates and one without over the same lines: (the first, its results, the other's)."""
    fast, general = LogParser(), LogParser(templates=False)
    got = [repr(fast.parse_values(line)) for line in lines]  # repr: NaN == NaN
    want = [repr(general.parse_values(line)) for line in lines]
    assert fast.stats == general.stats
    return fast, got, want


def test_a_template_reads_numbers_printed_with_digit_grouping() -> None:
    counts = [64, 1_234, 5, 12_345_678, 999, 1_000, -2_500, 64, 100_000]
    lines = [f"  Num examples = {n:,}" for n in counts] + [
        f"step {i} tokens={n:,} loss=0.5" for i, n in enumerate(counts)
    ]
    fast, got, want = _fast_and_general(lines)
    assert got == want
    assert [value for _, value, _ in fast.parse_values("  Num examples = 7,654,321")[1]] == [7_654_321.0]  # type: ignore[index]
    assert fast.template_hits >= len(lines) - 4  # the first line of each format, and a first grouped one


@pytest.mark.parametrize(
    "lines",
    [
        # ",5678" is not digit grouping, ",567" is: "x=64,567" is 64567, not 64 and a comma
        ["step 1 x=64,5678 y=1", "step 2 x=64,567 y=1", "step 3 x=64,5678 y=1"],
        ["step 1 n=1,234,5678 loss=0.5", "step 2 n=1,234,567,890 loss=0.5", "step 3 n=1,234,5678 loss=0.5"],
        ["step 1 n=1,234 loss=0.5", "step 2 n=1,234.5 loss=0.5", "step 3 n=12345,678 loss=0.5", "step 4 n=1,2 loss=1"],
        ["iter 1: loss 0.5, n 12", "iter 2: loss 0.5,123, n 12", "iter 3: loss 0.5, n 12,345"],
    ],
)
def test_templates_read_commas_after_numbers_as_the_general_path_does(lines: list[str]) -> None:
    _, got, want = _fast_and_general(lines)
    assert got == want


@pytest.mark.parametrize(
    "line",
    [
        "Step [3/" + "1" * 400 + "], Loss: 0.5",  # a total that float() reads as inf
        "Step [3/" + "1" * 5_000 + "], Loss: 0.5",  # more digits than int() reads
        "1" * 5_000 + "/100 [====] - loss: 0.5",
        "5/" + "1" * 5_000 + " [====] - loss: 0.5",
    ],
)
def test_numbers_too_long_for_int_are_not_fatal(line: str) -> None:
    _, got, want = _fast_and_general(["Step [2/600], Loss: 0.7", "100/100 [====] - loss: 0.6", line, line])
    assert got == want


def test_repeated_lines_without_metrics_give_nothing_each_time() -> None:
    parser = LogParser()
    lines = ["***** Running training *****", "", "  warnings.warn(", "Some weights were not used"] * 3
    assert [parser.parse_values(line) for line in lines] == [None] * len(lines)
    assert (parser.stats.lines, parser.stats.other) == (len(lines), len(lines))


def test_lines_remembered_as_giving_nothing_are_forgotten_when_a_template_is_learned() -> None:
    # No "=" and no metric word: nothing, and remembered as nothing. A template learned later can read such
    # a line (its unit "orm" followed "nan" in the line it was learned from, whose "nanorm" holds "norm"), so
    # the line is read as it would have been had it never been seen.
    quiet = "num_updates 5 x 5orm"
    parser, fresh = LogParser(), LogParser()
    assert parser.parse_values(quiet) is None
    for p in (parser, fresh):
        p.parse_values("num_updates 6 x nanorm")
    assert parser.parse_values(quiet) == fresh.parse_values(quiet)


def test_a_mixed_log_gives_the_records_of_the_general_path() -> None:
    # several formats, their templates reordered as they take turns, prose repeated and varied between them
    import random

    rng = random.Random(3)
    formats = [
        lambda i: f"iter {i}: loss {rng.random():.4f}, time {rng.random() * 100:.2f}ms, mfu {rng.random() * 50:.2f}%",
        lambda i: f"{{'loss': {rng.random():.4f}, 'grad_norm': {rng.choice(['nan', '1.5'])}, 'epoch': {i / 100:.2f}}}",
        lambda i: f"{i % 100 + 1}/100 [==============================] - 2s 20ms/step - loss: {rng.random():.4f}",
        lambda i: f"Epoch [{i // 600 + 1}/10], Step [{i % 600 + 1}/600], Loss: {rng.random():.4f}",
        lambda i: f"  Num examples = {rng.choice([64, 1_234, 12_345_678]):,}",
        lambda i: rng.choice(["", "***** Running training *****", f"Saving model checkpoint to out/checkpoint-{i}"]),
    ]
    lines = [formats[rng.randrange(len(formats)) if i % 3 else i // 3 % len(formats)](i) for i in range(3_000)]
    fast, got, want = _fast_and_general(lines)
    assert got == want
    assert fast.template_hits > len(lines) // 2


@pytest.mark.parametrize(
    ("line", "step"),
    [
        ("7/100 [====] - loss: 0.5", 7),
        ("model_v3 12/50 [== loss=0.5", 12),
        ("ep 3 12/50 0:00:01 loss=0.5", 12),
        ("٣/٩ [ loss=0.5", 3),  # any decimal digits
        # not a counter: digits that go on a word, a number or a path; no bar or timer after
        ("v2/100 [====] - loss: 0.5", 41),
        ("x 1.5/100 [====] - loss: 0.5", 41),
        ("a/7/100 [====] - loss: 0.5", 41),
        ("12/50/7 [ loss=0.5", 41),
        ("ep 3 12/50 0:0 loss=0.5", 41),
    ],
)
def test_a_progress_counter_is_a_run_of_digits_of_its_own(line: str, step: int) -> None:
    parser = LogParser()
    parser.parse_values("step 40 lr=1")
    parsed = parser.parse_values(line)
    assert parsed is not None and parsed[0] == step
    assert ("loss", 0.5, "loss") in parsed[1]
