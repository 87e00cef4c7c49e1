"""Parse training log lines into metric records ``(step, name, value, raw_name)``.

Training scripts that acc did not run still print their metrics. This module
reads them back out of the text, one line at a time:

* Hugging Face Trainer / TRL dict lines, as Python literals
  (``{'loss': 0.53, 'grad_norm': nan, 'learning_rate': 4.5e-05, 'epoch': 0.12}``,
  DPO keys such as ``rewards/chosen`` or ``logps/rejected``). They are never
  ``eval``-ed: flat dicts are scanned by a regular expression, nested ones go
  through ``json`` or ``ast.literal_eval`` with bare ``nan``/``inf`` replaced
  first.
* JSON lines (nested objects are flattened with ``/``).
* ``key=value``, ``key: value`` and ``key value`` fields separated by ``|``,
  ``,``, `` - `` or spaces (nanoGPT, fairseq, Keras, plain ``print``), and the
  postfix of tqdm / Lightning / Keras progress bars (``loss=0.532``).
* Step markers: ``step 100``, ``iter 100:``, ``step 12/500``, ``Step [3/600]``,
  ``Epoch 3`` and a progress bar's ``45/100``.

What a line's step is: an explicit step on the line; else a progress counter on
the line (counted on across epochs when it starts again at a new epoch); else a
step named on an earlier line without metrics (``step 100`` alone); else the
previous step of this parser plus one. One parser is one source: feed the lines
of one run to one parser.

Names are normalised (``train_loss`` -> ``loss``, ``lr`` -> ``learning_rate``,
``gnorm`` -> ``grad_norm``, ``val_loss`` -> ``eval_loss``, ``train/`` dropped);
the name as printed stays in ``MetricRecord.raw_name``. A unit printed after a
value is stripped from the value and kept in the name (``time 45.2ms`` ->
``time_ms = 45.2``, ``mfu 12%`` -> ``mfu_pct = 12``); ``k``/``M``/``G``
multiply.

A ``key value`` or ``key: value`` field counts only on a line that also has a
step or epoch marker, an ``=`` field or a key that names a metric (loss, lr,
acc, reward, ...): "Saving model to checkpoint 5" is not a metric.

Garbage never stops the parser: binary lines, lines longer than
``max_line_length`` and structured lines that do not parse are skipped and
counted in ``LogParser.stats``.

User patterns run before the built-in formats::

    parser = LogParser(patterns=[r"it (?P<step>\\d+) -- loss (?P<loss>\\S+)"])
    parser.add_pattern(lambda line: {"reward": 1.0} if "ok" in line else None)
"""

from __future__ import annotations

import ast
import json
import logging
import math
import operator
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "LineSplitter",
    "LogParser",
    "MetricRecord",
    "ParseStats",
    "PatternLike",
    "is_loss_name",
    "normalize_name",
    "parse_file",
    "parse_lines",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_LINE_LENGTH = 65_536
"""Longer lines are skipped (and counted): no real metric line is this long."""


class MetricRecord(NamedTuple):
    """One metric value at one step, as parsed from a log line."""

    step: int
    name: str
    """The normalised name (``loss``, ``learning_rate``, ``eval_loss``, ``rewards/chosen``, ``time_ms``)."""
    value: float
    raw_name: str
    """The name as the log printed it (``train_loss``, ``lr``, ``time``)."""


@dataclass
class ParseStats:
    """What a parser did with the lines it saw."""

    lines: int = 0
    metric_lines: int = 0
    """Lines that gave at least one record."""
    records: int = 0
    other: int = 0
    """Lines with no metrics (prose, warnings, progress bars without values)."""
    malformed: int = 0
    """Lines that looked structured (a dict, JSON) but did not parse."""
    binary: int = 0
    """Lines with NUL bytes or mostly undecodable bytes."""
    too_long: int = 0
    """Lines longer than the parser's ``max_line_length``."""

    @property
    def skipped(self) -> int:
        """Garbage: malformed, binary and too-long lines."""
        return self.malformed + self.binary + self.too_long

    def to_dict(self) -> dict[str, int]:
        data = asdict(self)
        data["skipped"] = self.skipped
        return data


# -- names -------------------------------------------------------------------

_ALIASES: dict[str, str] = {
    "loss": "loss",
    "train_loss": "loss",
    "training_loss": "loss",
    "train_loss_step": "loss",
    "lr": "learning_rate",
    "learning_rate": "learning_rate",
    "learningrate": "learning_rate",
    "grad_norm": "grad_norm",
    "gnorm": "grad_norm",
    "gradnorm": "grad_norm",
    "gradient_norm": "grad_norm",
    "grad_norm_total": "grad_norm",
    "epoch": "epoch",
    "val_loss": "eval_loss",
    "valid_loss": "eval_loss",
    "validation_loss": "eval_loss",
    "eval_loss": "eval_loss",
    "dev_loss": "eval_loss",
}

# Keys that name the step; a value under one of them is the line's step, not a metric.
_STEP_KEYS = frozenset(
    {"step", "global_step", "_step", "iter", "iteration", "num_updates", "trainer/global_step", "train/global_step"}
)
_EPOCH_KEYS = frozenset({"epoch", "train/epoch"})
# Progress-bar bookkeeping, not metrics.
_IGNORED = frozenset({"v_num", "total_flos"})
# Names that contain "loss" but are not losses.
_NOT_LOSSES = frozenset({"loss_scale", "loss_scaling", "loss_scaler"})

_NAME_CLEAN = re.compile(r"[\s\-]+")
_WORDS = re.compile(r"[^a-z0-9]+")


def normalize_name(raw: str) -> str:
    """The canonical metric name for a printed one.

    Lower case, spaces and dashes become ``_``, a leading ``train/`` is dropped,
    ``eval/x`` becomes ``eval_x`` (as Hugging Face prints it), and the aliases
    ``train_loss``/``training_loss`` -> ``loss``, ``lr`` -> ``learning_rate``,
    ``gnorm``/``gradient_norm`` -> ``grad_norm``, ``val_loss``/``validation_loss``
    -> ``eval_loss`` apply.

    >>> normalize_name("Train Loss"), normalize_name("lr"), normalize_name("eval/rewards/chosen")
    ('loss', 'learning_rate', 'eval_rewards/chosen')
    """
    name = _NAME_CLEAN.sub("_", raw.strip().lower()).strip("_./")
    for prefix in ("train/", "training/"):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
    for prefix in ("eval/", "val/", "valid/", "validation/"):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = "eval_" + name[len(prefix) :]
    return _ALIASES.get(name, name)


def is_loss_name(name: str) -> bool:
    """A normalised name that is a loss (and so a task with a health verdict).

    A name with the word ``loss`` in it: ``loss``, ``eval_loss``, ``nll_loss``,
    ``loss/recon``; not ``loss_scale``. Rewards, log-probabilities and accuracies
    are metrics, not losses: higher is better for them.
    """
    if name in _NOT_LOSSES:
        return False
    return "loss" in _WORDS.split(name)


def _unit_slug(unit: str) -> str:
    return unit.lower().replace("µ", "u").replace("%", "pct").replace("/", "_per_")


_MULTIPLIERS = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


# -- the generic key/value scanner --------------------------------------------

# One field: KEY SEP VALUE. The key starts after a separator (the line is given
# a leading space); the value is a whole token ("0.5", "45.67ms", "12/500",
# "nan") read in Python. One plain pattern without lookbehinds or nested
# optional groups: Python's regex engine pays per attempt and per backtrack, and
# this is the parser's hot loop.
_FIELD_TAIL = r"[\[(]?([-+.]?(?:\d|[nN]a[nN]|[iI]nf)[^\s,|;\]\)}\[]*+(?:,\d{3}(?![\d.]))*)"  # "25,000" is one value
if sys.version_info >= (3, 11):
    # possessive quantifiers: a key or separator that is not followed by a number is never backtracked into
    _FIELD = re.compile(r"[ \t,|;:{(\[]([A-Za-z_][\w./\-]*+)([ \t=:]++)" + _FIELD_TAIL)
else:  # pragma: no cover - the same matches, found with more backtracking
    _FIELD = re.compile(r"[ \t,|;:{(\[]([A-Za-z_][\w./\-]*)([ \t=:]+)" + _FIELD_TAIL.replace("*+", "*"))
# "train loss 1.98", "val acc 0.9", "learning rate 3e-4": a qualifier word before a metric noun is part of the key.
_NOUNS = frozenset({"loss", "acc", "accuracy", "rate", "norm", "ppl", "perplexity", "reward", "score", "f1"})
_QUALIFIERS = frozenset(
    {
        "train", "training", "val", "valid", "validation", "eval", "test", "dev", "learning", "grad", "gradient",
        "avg", "average", "mean", "total", "batch", "running", "smoothed", "ema",
    }
)  # fmt: skip
# A value token that is not a plain float: NUMBER [/TOTAL] [UNIT] [trailing punctuation].
_VALUE = re.compile(
    r"([-+]?(?:\d[\d_]*(?:,\d{3})*(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|[nN]a[nN]|[iI]nf(?:inity)?))"
    r"(?:/(\d+))?"
    r"(%|[A-Za-zµ]+(?:/[A-Za-z]+)?)?"
    r"[:.]*$"
)
_KEY = re.compile(r"[A-Za-z_][\w./\-]*(?: [A-Za-z]+)?")
# A progress bar's "n/total" followed by its bar or timer: tqdm "45/100 [00:02<..",
# Keras "100/100 [====", Keras 3 "100/100 ━━━", rich "50/50 0:00:01". The counter starts a run of digits
# (no letter, digit, "." or "/" before it); that is tested after its first digit, "(?<![\w./]\d)", not
# before it: a search for a pattern that starts with a lookbehind tries it at every character, one that
# starts with a digit skips to the digits (half the time on a progress-bar line).
_COUNTER = re.compile(r"(\d(?<![\w./]\d)\d*)/(\d+)(?:\s*[\[━]|\s+\d+:\d\d)")
# A line without "=" is scanned for fields only when it holds one of these words
# (most lines of a log are not metrics, and a substring test costs far less than
# a scan); its "key value" fields then count when a key names a metric
# (_METRIC_WORDS) or the line has a step or epoch marker.
_GATE_WORDS = ("loss", "lr", "acc", "step", "iter", "epoch", "reward", "grad", "norm", "ppl", "score", "kl", "tok")
_METRIC_WORDS = re.compile(
    r"loss|lr|learn|acc|ppl|perplex|grad|norm|reward|kl|entrop|logp|logit|mfu|tok|throughput|f1|bleu|rouge|auc|"
    r"precision|recall|mse|mae|rmse|score|wer|cer|iou|nll|bpc|bpb|margin|time|speed|mem|wps|ups|wpb|bsz|"
    r"metric|sample|chosen|rejected"
)


_first = operator.itemgetter(0)
_third = operator.itemgetter(2)
_DIGITS = frozenset("0123456789")
_UNIT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ%/µ:."
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_REDRAW = re.compile(r"[\r\x08]+")
_KEY_CACHE_LIMIT = 20_000
_QUIET_LIMIT = 1024  # lines remembered as giving nothing (LogParser._quiet), at most ...
_QUIET_LINE_LENGTH = 400  # ... this long: at most 400 kB


def _read_value(token: str) -> tuple[float, int | None, str] | None:
    """``(number, total, unit)`` from a value token ("0.5", "100:", "45.6ms", "12/500", "nan"), or None."""
    number = token.rstrip(_UNIT_CHARS)
    if number and number[-1] in _DIGITS and "/" not in number:
        # plain, "45.6ms", "12.3%", "17.4it/s", "100:", "25,000" -- without the regex
        try:
            value = float(number.replace(",", "") if "," in number else number)
        except ValueError:
            return None
        unit = token[len(number) :].rstrip(":.")
        return value, None, unit
    m = _VALUE.match(token)
    if m is None:
        return None
    text, total, unit = m.groups()
    try:
        value = float(text)
        # int() refuses more than sys.get_int_max_str_digits() digits: such a token is garbage, not fatal
        return value, int(total) if total else None, unit or ""
    except ValueError:
        return None


# -- dict lines ----------------------------------------------------------------

# 'key': value or "key": value in a flat dict; value optionally quoted or tensor(...).
_DICT_PAIR = re.compile(r"""['"]([^'"]{1,200})['"]:\s*([^,}]+)""")
_TENSOR = re.compile(r"^\s*tensor\(\[?\s*([^,\])\s]+)")
_BARE_NONFINITE = re.compile(
    r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?<![\w.])(-?)(nan|inf(?:inity)?)(?![\w.])""", re.IGNORECASE
)
_NAN_TOKEN = "__acc_nan__"
_INF_TOKEN = "__acc_inf__"
_NEG_INF_TOKEN = "__acc_-inf__"
_SENTINELS = {_NAN_TOKEN: math.nan, _INF_TOKEN: math.inf, _NEG_INF_TOKEN: -math.inf}
_MAX_DEPTH = 8


def _replace_bare_nonfinite(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1)  # a quoted string: left alone
    if match.group(3).lower() == "nan":
        return repr(_NAN_TOKEN)
    return repr(_NEG_INF_TOKEN if match.group(2) else _INF_TOKEN)


def _load_structured(text: str) -> Any:
    """A dict from JSON or a Python literal (with bare nan/inf), never evaluated as code."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(_BARE_NONFINITE.sub(_replace_bare_nonfinite, text))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _flatten(obj: Mapping[Any, Any], prefix: str, out: list[tuple[str, float]], depth: int = 0) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            try:
                out.append((name, float(value)))
            except OverflowError:
                out.append((name, math.inf if value > 0 else -math.inf))
        elif isinstance(value, str):
            number = _SENTINELS.get(value)
            if number is None:
                try:
                    number = float(value)
                except ValueError:
                    continue
            out.append((name, number))
        elif isinstance(value, Mapping) and depth < _MAX_DEPTH:
            _flatten(value, name + "/", out, depth + 1)


# -- user patterns -----------------------------------------------------------------

PatternLike = str | re.Pattern[str] | Callable[[str], Mapping[str, float] | None]


class _UserPattern:
    """A regex with named groups (``step``, ``epoch`` and metric names) or a callable."""

    def __init__(self, pattern: PatternLike, rename: Mapping[str, str] | None = None) -> None:
        self.fn: Callable[[str], Mapping[str, float] | None] | None = None
        self.regex: re.Pattern[str] | None = None
        if callable(pattern) and not isinstance(pattern, re.Pattern):
            self.fn = pattern
        elif isinstance(pattern, (str, re.Pattern)):
            try:
                self.regex = re.compile(pattern) if isinstance(pattern, str) else pattern
            except re.error as exc:
                raise ValueError(f"log pattern {pattern!r} is not a valid regular expression: {exc}") from exc
            if not self.regex.groupindex:
                raise ValueError(
                    f"log pattern {self.regex.pattern!r} has no named groups; name each value, "
                    "e.g. r'loss (?P<loss>\\S+)' (a group named 'step' gives the step)"
                )
        else:
            raise TypeError(f"a log pattern is a regex string, a compiled regex or a callable, got {pattern!r}")
        self.rename = dict(rename or {})

    def match(self, line: str) -> dict[str, str | float] | None:
        if self.fn is not None:
            found = self.fn(line)
            return dict(found) if found else None
        assert self.regex is not None
        m = self.regex.search(line)
        if m is None:
            return None
        return {self.rename.get(k, k): v for k, v in m.groupdict().items() if v is not None}


# -- the parser --------------------------------------------------------------------


def _to_float(text: str) -> float:
    """A printed number as a float: ``1,234`` and ``1_000`` read, ``nan``/``inf`` too."""
    try:
        return float(text)
    except ValueError:
        return float(text.replace(",", ""))


# A flat dict shape's plan: (names, raw names, fields holding numbers, index of the step among them or -1,
# fields holding strings).
_DictPlan = tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...], int, tuple[int, ...]]
_QUOTES = frozenset("'\"")
_GETTERS: dict[tuple[int, ...], Callable[[Sequence[Any]], tuple[Any, ...]]] = {}


def itemgetter_for(picks: tuple[int, ...]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A cached operator.itemgetter for several indices."""
    getter = _GETTERS.get(picks)
    if getter is None:
        getter = _GETTERS[picks] = operator.itemgetter(*picks)
    return getter


@dataclass(frozen=True, slots=True, eq=False)
class _Template:
    """A learned line format (see ``LogParser._learn_template``): groups are the fields' numbers.

    Slots: every line reads a few of these attributes, and a slot is read several times faster than a
    NamedTuple field. Compared by identity: one pattern is one template (``LogParser._use_template``).
    """

    regex: re.Pattern[str]
    prefix: str
    """The line's text before its first digit, blank or number: a cheap test before the match."""
    required: str
    """A key every line of the format holds (the longest the prefix does not): tested before the prefix."""
    match: Callable[[str], re.Match[str] | None]
    """The pattern's fullmatch."""
    names: tuple[str, ...]
    raws: tuple[str, ...]
    getter: Callable[[tuple[str, ...]], tuple[str, ...]] | None
    """Picks the metrics' numbers out of ``Match.groups()``; None: they are all the groups, in order."""
    first: int
    """The group (an index into ``Match.groups()``) of the number of a template with one metric, else -1."""
    number: Callable[[str], float]
    """``float``; for a template with a digit-grouped number, float after dropping the commas."""
    factors: tuple[tuple[int, float], ...]
    """(value index, k/M/G factor)."""
    step: int
    """The group of the step, -1 for none (and so for ``step_total`` and ``epoch``)."""
    step_total: int
    epoch: int
    evidence: bool
    dict_line: bool
    """A dict line (its step rules: no epoch, no progress counter)."""


_TEMPLATES_TRIED = 12  # formats one source interleaves; two cheap tests come before each match
_PREFIX_END = re.compile(r"[\d \t]")
_NO_MATCH: Any = object()
_NAN = math.nan
_NUMBER_FULL = re.compile(
    r"[-+]?(?:\d[\d_]*(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|[nN]a[nN]|[iI]nf(?:inity)?)"
)
# A template's number: a cheap charset run (float() then rejects what is not a number, and the line goes
# to the general path); it starts as the field pattern's values start, so it never takes more than they do.
# Templates match ASCII digits ([0-9], a range test; \d is a Unicode table lookup per character): a line
# with other digits goes to the general path. Only a negative lookahead keeps \d, where stricter would
# match more.
_NUMBER_GROUP = r"([-+.]?(?:[0-9][-+.0-9eE]*|[nN]a[nN]|[iI]nf(?:inity)?))"
# A number printed with digit grouping ("1,234"), as the field pattern reads it; or a plain number.
_GROUPED_FULL = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+")
_GROUPED_NUMBER_GROUP = r"([-+]?[0-9]{1,3}(?:,[0-9]{3}(?![\d.]))+|" + _NUMBER_GROUP[1:]
# What the field pattern would read as more digit groups of the value before it.
_NO_GROUPING_AFTER = r"(?!,\d{3}(?![\d.]))"
# A progress bar's drawing between two pipes (blocks and blanks change every redraw).
_BAR = re.compile(r"\|([^|\x00-\x1f]*[^|\x00-\x7f][^|\x00-\x1f]*|[ ]+)\|")
_LITERAL_PIECES = re.compile(r"(\d+)|([ \t]+)|([^\d \t]+)")
_SEP_PATTERN = re.compile(r"(?:\\[ \t])+")  # blanks as re.escape() writes them


def _metric_groups(
    groups: tuple[int, ...], n_groups: int
) -> tuple[Callable[[tuple[str, ...]], tuple[str, ...]] | None, int]:
    """A template's ``getter`` and ``first`` for metrics read from these groups (indices) of its pattern's."""
    if len(groups) == 1:
        return None, groups[0]
    return (None if groups == tuple(range(n_groups)) else itemgetter_for(groups)), -1


def _required_text(prefix: str, keys: list[str]) -> str:
    """The longest key that the prefix does not already hold: text every line of the template contains."""
    return max((key for key in keys if key not in prefix), key=len, default="")


def _float_without_grouping(text: str) -> float:
    """A number that may be printed with digit grouping ("1,234"): only a grouped-number group holds commas."""
    return float(text.replace(",", "") if "," in text else text)


def _blanks(m: re.Match[str]) -> str:
    """A run of blanks: one space stays one space (a literal costs the match a third less than a class
    repeat, and one space is how most fields are printed); a longer run (padding) matches any blanks."""
    return " " if m.group() == "\\ " else "[ \\t]+"


def _literal_pattern(line: str, start: int, end: int, bars: list[tuple[int, int]]) -> str:
    """A pattern for the text between fields: digits not part of a word match any digits, blanks any blanks."""
    out: list[str] = []
    pos = start
    for bar_start, bar_end in bars:
        if bar_end <= pos or bar_start >= end:
            continue
        out.append(_literal_pattern(line, pos, max(pos, bar_start), []))
        out.append(r"[^|A-Za-z=:]*")
        pos = min(bar_end, end)
    for m in _LITERAL_PIECES.finditer(line, pos, end):
        digits, blanks, other = m.groups()
        if digits is not None:
            before = line[m.start() - 1] if m.start() > 0 else " "
            out.append(re.escape(digits) if before.isalpha() or before == "_" else "[0-9]+")
        elif blanks is not None:
            out.append(" " if blanks == " " else r"[ \t]+")  # as _blanks()
        else:
            out.append(re.escape(other))
    return "".join(out)


class LogParser:
    """Turns the lines of one log source into metric records; keeps that source's step.

    ``LogParser(patterns=None, *, max_line_length=65536, templates=True)``.
    ``patterns`` are tried before the built-in formats (see ``add_pattern``).
    ``templates``: learn each key/value format from its first line and read
    later lines of it with one anchored match (the same records, faster).
    """

    def __init__(
        self,
        patterns: Iterable[PatternLike] | None = None,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        templates: bool = True,
    ) -> None:
        if max_line_length < 1:
            raise ValueError(f"max_line_length must be >= 1, got {max_line_length}")
        self.max_line_length = int(max_line_length)
        self.stats = ParseStats()
        self.last_step = 0
        """The step of the latest record (0 before any)."""
        self.max_steps: int | None = None
        """A total printed with a step (``step 12/500`` -> 500), when one was."""
        self._patterns: list[_UserPattern] = [_UserPattern(p) for p in patterns or ()]
        self._epoch: float | None = None  # the latest epoch marker on a key/value line
        self._pending_step: int | None = None  # "step 100" on a line without metrics
        self._offset = 0  # added to counters that start again each epoch
        self._prev_counter: tuple[int, float | None, int | None] | None = None
        # caches, bounded: printed key -> (kind, name, names a metric); raw -> name; (name, unit) -> name
        self._keys: dict[str, tuple[str, str, bool]] = {}
        self._names: dict[str, str] = {}
        self._units: dict[tuple[str, str], str] = {}
        self._dict_names: dict[str, str] = {}
        self._dict_plans: dict[tuple[str, ...], _DictPlan | None] = {}
        self._templates: list[_Template] = []  # tried in turn; one that reads a line moves one place forward
        # Lines that took the cheapest way to nothing (no template, no "=", no dict, no metric word): logs
        # repeat such lines (warnings, banners, separators), and seen again they give nothing again, without
        # the word tests. Emptied when a template is learned (it could read one of them).
        self._quiet: set[str] = set()
        self._template_cache: dict[str, _Template] = {}
        self._learned = 0  # patterns made in the current window
        self._hits_at_window = 0
        self._learn_cooldown = 0 if templates else -1  # -1: never learn
        self.template_hits = 0
        """Lines read through a learned template (the fast path for formats seen before)."""

    def add_pattern(self, pattern: PatternLike, *, rename: Mapping[str, str] | None = None) -> None:
        """Add a user pattern, tried before the built-in formats.

        A regex's named groups are metrics, except ``step`` and ``epoch``;
        ``rename`` maps group names to metric names that are not Python
        identifiers (``{"chosen": "rewards/chosen"}``). A callable takes the
        line and returns ``{name: value}`` or None. A line a pattern matches is
        not parsed by the built-in formats.
        """
        self._patterns.append(_UserPattern(pattern, rename))

    # -- public entry points ----------------------------------------------------

    def parse_line(self, line: str) -> list[MetricRecord]:
        """The records of one line (often none)."""
        parsed = self.parse_values(line)
        if parsed is None:
            return []
        step, values = parsed
        new = tuple.__new__
        return [new(MetricRecord, (step, name, value, raw)) for name, value, raw in values]

    def parse_lines(self, lines: Iterable[str]) -> Iterator[MetricRecord]:
        for line in lines:
            yield from self.parse_line(line)

    def parse_values(self, line: str) -> tuple[int, list[tuple[str, float, str]]] | None:
        """``(step, [(name, value, raw_name), ...])`` for a line with metrics, else None.

        The form the capture uses: one step per line, no per-record objects.
        Lines that hold several progress-bar redraws (``\\r``) give the last
        redraw that has metrics.
        """
        stats = self.stats
        stats.lines += 1
        if not line:  # blank lines are common and hold nothing
            stats.other += 1
            return None
        if len(line) > self.max_line_length:
            stats.too_long += 1
            return None
        if "\x00" in line or ("\ufffd" in line and line.count("\ufffd") * 8 > len(line)):
            stats.binary += 1
            return None
        if "\x1b" in line:
            line = _ANSI.sub("", line)
        if "\r" in line or "\x08" in line or self._patterns:
            result = None
            for segment in _REDRAW.split(line):
                if segment.strip():
                    found = self._parse(segment)
                    if found is not None:
                        result = found
        else:
            # _parse() inlined: this is the hot path (a call costs as much as a regex on a short line)
            if line in self._quiet:
                stats.other += 1
                return None
            result = _NO_MATCH
            for template in self._templates:
                # two cheap tests before the match; `in` first: str.startswith parses its arguments slowly
                if template.required in line and line.startswith(template.prefix):
                    m = template.match(line)
                    if m is not None:
                        result = self._apply_template(template, m, line)
                        break
            if result is _NO_MATCH:
                brace = line.find("{")
                if brace >= 0 and ("':" in line or '":' in line):
                    result = self._parse_dict(line, brace)
                elif "=" in line:
                    result = self._parse_fields(line)
                else:
                    lower = line.lower()
                    for word in _GATE_WORDS:
                        if word in lower:
                            result = self._parse_fields(line)
                            break
                    else:
                        result = None
                        quiet = self._quiet
                        if len(quiet) >= _QUIET_LIMIT:
                            quiet.clear()
                        if len(line) <= _QUIET_LINE_LENGTH:
                            quiet.add(line)
        if result is None:
            stats.other += 1
            return None
        stats.metric_lines += 1
        stats.records += len(result[1])
        return result

    # -- internals --------------------------------------------------------------

    def _parse(self, line: str) -> tuple[int, list[tuple[str, float, str]]] | None:
        if self._patterns:
            for pattern in self._patterns:
                found = pattern.match(line)
                if found:
                    return self._from_mapping(found)
        brace = line.find("{")
        if brace >= 0 and ("':" in line or '":' in line):
            return self._parse_dict(line, brace)
        if "=" not in line:
            lower = line.lower()
            for word in _GATE_WORDS:
                if word in lower:
                    break
            else:
                return None
        return self._parse_fields(line)

    def _name(self, raw: str) -> str:
        name = self._names.get(raw)
        if name is None:
            if len(self._names) > _KEY_CACHE_LIMIT:
                self._names.clear()  # bounded: prose can bring endless distinct "keys"
            name = self._names[raw] = normalize_name(raw)
        return name

    def _assign_step(self, explicit: int | None) -> int:
        if explicit is not None:
            step = explicit
        elif self._pending_step is not None and self._pending_step > self.last_step:
            step = self._pending_step
        else:
            step = self.last_step + 1
        self._pending_step = None
        self.last_step = step
        return step

    def _counted_step(self, n: int, total: int | None, epoch: float | None) -> int:
        """A step from a counter that may start again every epoch (Keras, Lightning, 'Step [n/total]')."""
        prev = self._prev_counter
        if prev is not None and epoch is not None and prev[1] is not None and epoch > prev[1] and n <= prev[0]:
            self._offset += prev[2] or prev[0]  # a new epoch: count on from the previous one's end
        self._prev_counter = (n, epoch, total)
        return self._offset + n

    def _from_mapping(self, found: Mapping[str, str | float]) -> tuple[int, list[tuple[str, float, str]]] | None:
        explicit: int | None = None
        values: list[tuple[str, float, str]] = []
        for raw, value in found.items():
            try:
                number = value if isinstance(value, float) else float(str(value).replace(",", ""))
            except ValueError:
                self.stats.malformed += 1
                log.debug("log pattern value %r for %r is not a number", value, raw)
                continue
            if raw == "step":
                if math.isfinite(number):
                    explicit = int(number)
                continue
            values.append((self._name(raw), number, raw))
        if not values:
            if explicit is not None:
                self._pending_step = explicit
            return None
        return self._assign_step(explicit), values

    def _parse_dict(self, line: str, brace: int) -> tuple[int, list[tuple[str, float, str]]] | None:
        text = line[brace:].rstrip()
        values: list[tuple[str, float, str]] = []
        explicit: int | None = None
        # Hugging Face's end-of-training line: its train_loss is the run's mean, not a step's loss,
        # so its names are kept as printed.
        summary = "train_runtime" in text
        nested = text.find("{", 1) >= 0 or "[" in text
        pairs: list[tuple[str, str]] | list[tuple[str, float]]
        if nested:
            flat: list[tuple[str, float]] = []
            obj = _load_structured(text[: text.rfind("}") + 1])
            if not isinstance(obj, Mapping):
                self.stats.malformed += 1
                return None
            _flatten(obj, "", flat)
            pairs = flat
        else:
            if brace == 0 and not summary and text[-1] == "}":
                fast = self._dict_fast(text)
                if fast is not None:
                    return fast
            found: list[tuple[str, str]] = _DICT_PAIR.findall(text)
            if not found and text.endswith("}"):
                self.stats.malformed += 1
                return None
            pairs = found
        names = self._dict_names
        for key, value in pairs:
            try:
                number = float(value)
            except ValueError:
                read = _dict_value(value)  # type: ignore[arg-type]  # only str values fail float()
                if read is None:
                    continue  # a string value: not a metric
                number = read
            name = key if summary else names.get(key)
            if name is None:
                name = self._dict_name(key)
            if name == "step":
                if math.isfinite(number):
                    explicit = int(number)
            elif name:
                values.append((name, number, key))
        if brace > 0:
            # "Step 100: {...}": a step marker before the dict
            for key, _sep, token in _FIELD.findall(" " + line[:brace]):
                if key.lower() in _STEP_KEYS:
                    marker = _read_value(token)
                    if marker is not None and math.isfinite(marker[0]):
                        explicit = int(marker[0])
        if not values:
            if explicit is not None:
                self._pending_step = explicit
            return None
        if len(values) > 1 and len({v[0] for v in values}) < len(values):
            values = _dedupe(values)
        return self._assign_step(explicit), values

    def _dict_fast(self, text: str) -> tuple[int, list[tuple[str, float, str]]] | None:
        """A flat dict of a shape seen before: split at commas and colons, numbers converted in C.

        Lines of one format repeat their keys, so what to do with each key is
        worked out once per shape (``_dict_plan``) and a line costs a split,
        a map(float, ...) and a zip. Splitting at commas is exact only while
        every value is a number or a string the plan expects, so anything else
        (a string where a number was, nan written as a name the split cannot
        tell) returns None and the general path reads the line.
        """
        items = [part.partition(":") for part in text[1:-1].split(",")]
        shape = tuple(map(_first, items))
        plan = self._dict_plans.get(shape)
        if plan is None:
            if shape in self._dict_plans:
                return None  # a shape the fast path cannot take
            plan = self._dict_plan(shape, items)
            if plan is None:
                return None
        names, raws, picks, step_at, strings = plan
        texts = list(map(_third, items))
        for i in strings:  # fields that held a string: still a string (a quote first)?
            if texts[i].lstrip()[:1] not in _QUOTES:
                return None
        try:
            numbers = [float(texts[picks[0]])] if len(picks) == 1 else list(map(float, itemgetter_for(picks)(texts)))
        except ValueError:
            return None
        explicit: int | None = None
        if step_at >= 0:
            step_value = numbers.pop(step_at)
            if math.isfinite(step_value):
                explicit = int(step_value)
        if not numbers:
            if explicit is not None:
                self._pending_step = explicit
            return None
        values = list(zip(names, numbers, raws, strict=True))
        if explicit is None:
            pending = self._pending_step
            explicit = pending if pending is not None and pending > self.last_step else self.last_step + 1
        self._pending_step = None
        self.last_step = explicit
        if self._learn_cooldown >= 0:
            self._learn_dict_template(items, plan)
        return explicit, values

    def _dict_plan(self, shape: tuple[str, ...], items: list[tuple[str, str, str]]) -> _DictPlan | None:
        """What each field of a dict shape is, from its first line; None (remembered) when it does not fit."""
        names: list[str] = []
        raws: list[str] = []
        picks: list[int] = []
        strings: list[int] = []
        step_at = -1
        plan: _DictPlan | None = None
        for i, (token, colon, value) in enumerate(items):
            key = token.strip()
            if not colon or len(key) < 2 or key[0] not in _QUOTES or key[-1] != key[0] or key[0] in key[1:-1]:
                break  # not a plain quoted key: a nested value or a string with a comma split it
            key = key[1:-1]
            try:
                float(value)
            except ValueError:
                if value.lstrip()[:1] in _QUOTES and _dict_value(value) is None:
                    strings.append(i)  # a string field: skipped on every line
                    continue
                break  # None, a quoted number, a tensor: the general path
            name = self._dict_names.get(key) or self._dict_name(key)
            if name == "step":
                if step_at >= 0:
                    break
                step_at = len(picks)
            elif not name or name in names:
                break  # an ignored key, two names for one: the general path
            else:
                names.append(name)
                raws.append(key)
            picks.append(i)
        else:
            if picks:
                plan = (tuple(names), tuple(raws), tuple(picks), step_at, tuple(strings))
        if len(self._dict_plans) > 1024:
            self._dict_plans.clear()
        self._dict_plans[shape] = plan
        return plan

    def _dict_name(self, key: str) -> str:
        """A dict key's metric name: "step" for a step key, "" for one to ignore."""
        name = self._name(key)
        if name in _STEP_KEYS:
            name = "step"
        elif name in _IGNORED:
            name = ""
        if len(self._dict_names) > _KEY_CACHE_LIMIT:
            self._dict_names.clear()
        self._dict_names[key] = name
        return name

    def _classify_key(self, key: str) -> tuple[str, str, bool]:
        """``(kind, normalised name, names a metric)``.

        kind: "m" a metric, "n" a metric noun that a qualifier word may precede
        ("loss"), "s" the step, "e" the epoch, "x" not a key.
        """
        raw = key.rstrip("./-")
        lower = raw.lower()
        if lower in _STEP_KEYS:
            entry = ("s", "step", True)
        elif lower in _EPOCH_KEYS:
            entry = ("e", "epoch", True)
        elif not raw or _KEY.fullmatch(raw) is None:
            entry = ("x", "", False)
        else:
            name = self._name(raw)
            if name in _IGNORED:
                entry = ("x", name, False)
            else:
                entry = ("n" if lower in _NOUNS else "m", name, _METRIC_WORDS.search(lower) is not None)
        if len(self._keys) > _KEY_CACHE_LIMIT:
            self._keys.clear()
        self._keys[key] = entry
        return entry

    def _with_unit(self, name: str, unit: str) -> str:
        key = (name, unit)
        full = self._units.get(key)
        if full is None:
            slug = _unit_slug(unit)
            full = name if name.endswith(slug) else f"{name}_{slug}"
            if len(self._units) > _KEY_CACHE_LIMIT:
                self._units.clear()
            self._units[key] = full
        return full

    def _parse_fields(self, line: str) -> tuple[int, list[tuple[str, float, str]]] | None:
        """The general key/value path: every field looked at in Python. Learns a template when it can."""
        original = line
        if " is " in line:
            line = line.replace(" is ", ": ")  # "loss is nan"
        if "tensor(" in line:
            line = line.replace("tensor(", "(")  # "loss tensor(0.54, grad_fn=...)": the number
        found = _FIELD.findall(" " + line)
        if not found:
            return None
        keys = self._keys
        digits = _DIGITS
        explicit: int | None = None
        explicit_total: int | None = None
        epoch: float | None = None
        marker = False
        evidence = False
        values: list[tuple[str, float, str]] = []
        # for learning a template: the field of each value (and its unit's factor), the step's and epoch's field
        origins: list[tuple[int, float]] = []
        step_at = epoch_at = -1
        steps_seen = epochs_seen = 0
        for i, (key, sep, token) in enumerate(found):
            entry = keys.get(key) or self._classify_key(key)
            kind = entry[0]
            if kind == "m" and token[-1] in digits and "/" not in token:
                # the common case, kept short: a metric with a plain number
                try:
                    values.append((entry[1], float(token), key))
                except ValueError:  # "25,000": the general path below
                    pass
                else:
                    origins.append((i, 1.0))
                    if not evidence and (entry[2] or "=" in sep):
                        evidence = True
                    continue
            if kind == "x":
                continue
            total = None
            unit = ""
            plain: float | None = None
            if token[-1] in digits and "/" not in token:
                # contextlib.suppress would cost more than the float() in this hot loop
                try:  # noqa: SIM105
                    plain = float(token)
                except ValueError:  # "25,000"
                    pass
            if plain is None:  # a unit, a colon, a total, thousands: the slower reader
                read = _read_value(token)
                if read is None:
                    continue
                number, total, unit = read
            else:
                number = plain
            if kind == "n":
                kind = "m"
                word = _qualifier(line, key, sep, token)
                if word is not None:
                    key = f"{word} {key}"
                    entry = ("m", self._name(key), True)
            if kind == "m":
                name = entry[1]
                factor = 1.0
                if unit:
                    if unit in _MULTIPLIERS:
                        factor = _MULTIPLIERS[unit]
                        number *= factor
                    else:
                        name = self._with_unit(name, unit)
                values.append((name, number, key))
                origins.append((i, factor))
                if entry[2] or "=" in sep:
                    evidence = True
            elif kind == "s":
                steps_seen += 1
                if math.isfinite(number):
                    explicit = int(number)
                    explicit_total = total
                    marker = True
                    step_at = i
            else:
                epochs_seen += 1
                if math.isfinite(number):
                    epoch = number
                    marker = True
                    epoch_at = i
        if (
            values
            and (evidence or marker)
            and line is original
            and steps_seen == (step_at >= 0)
            and epochs_seen == (epoch_at >= 0)
            and len(set(map(_first, values))) == len(values)
        ):
            self._learn_template(line, found, values, origins, step_at, explicit_total is not None, epoch_at, evidence)
        return self._finish_fields(line, values, explicit, explicit_total, epoch, evidence or marker)

    def _finish_fields(
        self,
        line: str,
        values: list[tuple[str, float, str]],
        explicit: int | None,
        explicit_total: int | None,
        epoch: float | None,
        accepted: bool,
        distinct: bool = False,
    ) -> tuple[int, list[tuple[str, float, str]]] | None:
        """The step of a key/value line, and its values (shared by the general path and the templates).

        ``distinct``: the names are known to differ (a template's are, by construction).
        """
        if epoch is not None:
            self._epoch = epoch
        if values and not accepted:
            values = []  # "key value" prose with no sign of being metrics
        if explicit is not None and explicit_total is not None:
            # "Step [100/600]": counted within the epoch when an epoch is printed too
            if epoch is not None:
                explicit = self._counted_step(explicit, explicit_total, epoch)
            else:
                self.max_steps = explicit_total
        elif explicit is None and values and "/" in line:
            counter = _COUNTER.search(line)
            if counter is not None:
                try:
                    n, total = int(counter.group(1)), int(counter.group(2))
                except ValueError:  # more digits than int() reads: not a counter
                    pass
                else:
                    explicit = self._counted_step(n, total, self._epoch)
        if not values:
            if explicit is not None and explicit > self.last_step:
                self._pending_step = explicit
            return None
        if not distinct and len(values) > 1 and len(set(map(_first, values))) < len(values):
            values = _dedupe(values)
        if epoch is not None:
            values.append(("epoch", epoch, "epoch"))
        if explicit is None:  # _assign_step() inlined
            pending = self._pending_step
            explicit = pending if pending is not None and pending > self.last_step else self.last_step + 1
        self._pending_step = None
        self.last_step = explicit
        return explicit, values

    # -- templates: a line of a format seen before is one anchored match --------------

    def _learn_template(
        self,
        line: str,
        found: list[tuple[str, str, str]],
        values: list[tuple[str, float, str]],
        origins: list[tuple[int, float]],
        step_at: int,
        step_total: bool,
        epoch_at: int,
        evidence: bool,
    ) -> None:
        """Turn a parsed line into a pattern for the lines of its format.

        The pattern keeps every key, separator and unit of the line as it is
        and matches any number where the line has a field's number; other
        digits (times, counters, percentages) match any digits, runs of
        blanks any blanks, a progress bar's drawing anything without letters.
        So a line it matches has the same fields, and the same decisions hold
        for them: the values are one map(float, ...) away.
        """
        if self._learn_cooldown:
            if self._learn_cooldown > 0:
                self._learn_cooldown -= 1
            return
        parts: list[str] = []
        pos = 0
        first_token = len(line)
        bars = [m.span(1) for m in _BAR.finditer(line)]
        step_total_group = -1
        group = 0  # the next group's index
        field_group: list[int] = []
        grouped = False
        for i, m in enumerate(_FIELD.finditer(" " + line)):
            key_start, token_start, token_end = m.start(1) - 1, m.start(3) - 1, m.end(3) - 1
            first_token = min(first_token, token_start)
            parts.append(_literal_pattern(line, pos, key_start, bars))
            parts.append(re.escape(found[i][0]))
            parts.append(_SEP_PATTERN.sub(_blanks, re.escape(line[m.end(1) - 1 : token_start])))
            token = found[i][2]
            if "," in token:
                if _GROUPED_FULL.fullmatch(token) is None:
                    return  # a token the template's number cannot reproduce exactly
                parts.append(_GROUPED_NUMBER_GROUP)  # "1,234": later lines may print "64" or "12,345"
                field_group.append(group)
                group += 1
                grouped = True
            else:
                read = _VALUE.match(token)
                if read is None or "_" in token:
                    return  # a token the template's number cannot reproduce exactly
                number, total = read.group(1), read.group(2)
                parts.append(_NUMBER_GROUP)
                field_group.append(group)
                group += 1
                suffix = token[len(number) :]
                if i == step_at and step_total:
                    assert total is not None
                    parts.append("/([0-9]+)")
                    step_total_group = group
                    group += 1
                    suffix = suffix[len(total) + 1 :]
                parts.append(re.escape(suffix))
            if line.startswith(",", token_end):
                # the field scanner takes ",ddd" after a value as digit grouping ("64,567" is 64567): so a
                # template whose number is followed by a comma must not match where that would happen
                parts.append(_NO_GROUPING_AFTER)
            pos = token_end
        parts.append(_literal_pattern(line, pos, len(line), bars))
        pattern = "".join(parts)
        template = self._template_cache.get(pattern)
        if template is None:
            regex = re.compile(pattern)
            getter, first = _metric_groups(tuple(field_group[i] for i, _ in origins), group)
            # The line's text up to its first digit, blank, bar or number is literal in the pattern (keys
            # are kept as printed): a line that does not start with it cannot match.
            end = _PREFIX_END.search(line)
            prefix = line[: min(end.start() if end else len(line), first_token, bars[0][0] if bars else len(line))]
            template = _Template(
                regex=regex,
                prefix=prefix,
                required=_required_text(prefix, [key for key, _, _ in found]),
                match=regex.fullmatch,
                names=tuple(name for name, _, _ in values),
                raws=tuple(raw for _, _, raw in values),
                getter=getter,
                first=first,
                number=_float_without_grouping if grouped else float,
                factors=tuple((k, f) for k, (_, f) in enumerate(origins) if f != 1.0),
                step=field_group[step_at] if step_at >= 0 else -1,
                step_total=step_total_group,
                epoch=field_group[epoch_at] if epoch_at >= 0 else -1,
                evidence=evidence,
                dict_line=False,
            )
        self._use_template(pattern, template)

    def _use_template(self, pattern: str, template: _Template) -> None:
        if len(self._template_cache) > 256:
            self._template_cache.clear()
        self._template_cache[pattern] = template
        self._quiet.clear()
        templates = [t for t in self._templates if t.regex.pattern != pattern]  # the cache may have been cleared
        templates.insert(0, template)
        del templates[_TEMPLATES_TRIED:]
        self._templates = templates
        # Formats that never repeat (or more of them than are tried) would make every line pay for a
        # pattern: when a window of learning saw fewer hits than patterns made, stop learning for a while.
        self._learned += 1
        if self._learned >= 32:
            if self.template_hits - self._hits_at_window < self._learned:
                self._learn_cooldown = 4096
            self._learned = 0
            self._hits_at_window = self.template_hits

    def _learn_dict_template(self, items: list[tuple[str, str, str]], plan: _DictPlan) -> None:
        """A template for a flat dict line (see ``_learn_template``): keys kept, numbers matched."""
        if self._learn_cooldown:
            if self._learn_cooldown > 0:
                self._learn_cooldown -= 1
            return
        names, raws, picks, step_at, _strings = plan
        picked = set(picks)
        parts = [r"\{"]
        for i, (token, _colon, value) in enumerate(items):
            if i:
                parts.append(",")
            parts.append(re.escape(token) + ":")
            if i in picked:
                number = value.strip()
                if _NUMBER_FULL.fullmatch(number) is None or "_" in number:
                    return
                lead = value[: len(value) - len(value.lstrip())]
                trail = value[len(value.rstrip()) :]
                parts.append(re.escape(lead) + _NUMBER_GROUP + re.escape(trail))
            else:
                parts.append(re.escape(value))  # a string field: as it was
        parts.append(r"\}[ \t]*")
        pattern = "".join(parts)
        template = self._template_cache.get(pattern)
        if template is None:
            getter, first = _metric_groups(tuple(g for g in range(len(picks)) if g != step_at), len(picks))
            regex = re.compile(pattern)
            template = _Template(
                regex=regex,
                prefix="{" + items[0][0] + ":",
                required=_required_text("{" + items[0][0], [token.strip() for token, _, _ in items]),
                match=regex.fullmatch,
                names=names,
                raws=raws,
                getter=getter,
                first=first,
                number=float,
                factors=(),
                step=step_at,
                step_total=-1,
                epoch=-1,
                evidence=True,
                dict_line=True,
            )
        self._use_template(pattern, template)

    def _apply_template(self, template: _Template, m: re.Match[str], line: str) -> Any:
        """The values of a line its template matched; _NO_MATCH when a number will not convert.

        Every number is converted before any state changes. A group that is none of the template's
        (a field the general path ignores, such as ``v_num``) is not converted: that path ignores its text.
        """
        texts = m.groups()  # one call: Match.group() parses its arguments slowly
        to_float = template.number
        try:
            if template.first >= 0:
                values = [(template.names[0], to_float(texts[template.first]), template.raws[0])]
            else:
                getter = template.getter
                numbers = map(to_float, texts if getter is None else getter(texts))
                # no strict=: names, numbers and raws have one length by construction, and the keyword sends
                # zip() down a slow path (it was a sixth of this method's time)
                values = [*zip(template.names, numbers, template.raws)]  # noqa: B905
            step = to_float(texts[template.step]) if template.step >= 0 else _NAN
            epoch = to_float(texts[template.epoch]) if template.epoch >= 0 else _NAN
            total = int(texts[template.step_total]) if template.step_total >= 0 else None
        except ValueError:
            return _NO_MATCH  # a run of number characters that is not a number: the general path
        self.template_hits += 1
        templates = self._templates
        if templates[0] is not template:
            # one place toward the front per line read: the formats a source prints most are tried first
            at = templates.index(template)
            templates[at - 1], templates[at] = template, templates[at - 1]
        if template.factors:
            for k, factor in template.factors:
                name, number, raw = values[k]
                values[k] = (name, number * factor, raw)
        if step - step == 0 and total is None:
            # the common case, a finite step of the line's own and no total: _finish_fields() without what
            # cannot apply (names are distinct by construction, and the line has a step marker)
            explicit = int(step)
            if epoch - epoch == 0:
                self._epoch = epoch
                values.append(("epoch", epoch, "epoch"))
            self._pending_step = None
            self.last_step = explicit
            return explicit, values
        if template.dict_line:  # no step, or one that is not finite
            pending = self._pending_step
            explicit = pending if pending is not None and pending > self.last_step else self.last_step + 1
            self._pending_step = None
            self.last_step = explicit
            return explicit, values
        finite_step = int(step) if step - step == 0 else None
        finite_epoch = epoch if epoch - epoch == 0 else None
        return self._finish_fields(
            line,
            values,
            finite_step,
            total if finite_step is not None else None,
            finite_epoch,
            template.evidence or finite_step is not None or finite_epoch is not None,
            distinct=True,
        )


def _qualifier(line: str, key: str, sep: str, token: str) -> str | None:
    """The qualifier word printed just before ``key`` ("train" in "train loss 1.98"), if there is one."""
    at = line.find(f"{key}{sep}{token}")
    if at <= 1 or line[at - 1] != " ":
        return None
    word = line[: at - 1].rpartition(" ")[2]
    return word if word.lower() in _QUALIFIERS else None


def _dict_value(text: str) -> float | None:
    """A dict value that is not a bare number: a quoted number or ``tensor(0.5, ...)``; None otherwise."""
    stripped = text.strip().strip("'\"")
    try:
        return float(stripped)
    except ValueError:
        pass
    m = _TENSOR.match(text)
    if m is not None:
        try:
            return float(m.group(1))
        except ValueError:
            return None
    return None


def _dedupe(values: list[tuple[str, float, str]]) -> list[tuple[str, float, str]]:
    """Two printed names that normalise alike: the second keeps its printed name."""
    seen: set[str] = set()
    out = []
    for name, value, raw in values:
        if name in seen:
            name = raw.lower().replace(" ", "_")
            if name in seen:
                continue
        seen.add(name)
        out.append((name, value, raw))
    return out


_LINE_END = re.compile(rb"[\r\n]")


class LineSplitter:
    """Bytes in, decoded lines out. ``\\n`` and ``\\r`` both end a line (a
    progress bar's redraw is a line of its own, seen as it is drawn).

    A line longer than ``max_line_bytes`` is dropped as it arrives, so memory
    stays bounded whatever the input (a binary file without newlines, a
    megabyte-long line); ``dropped`` counts such lines.
    """

    def __init__(self, max_line_bytes: int = 4 * DEFAULT_MAX_LINE_LENGTH, encoding: str = "utf-8") -> None:
        self.max_line_bytes = int(max_line_bytes)
        self.encoding = encoding
        self.dropped = 0
        self._buf = b""
        self._discarding = False

    def feed(self, data: bytes) -> list[str]:
        """The lines that ``data`` completes."""
        if not data:
            return []
        parts = _LINE_END.split(data)
        if len(parts) == 1:
            self._keep(data)
            return []
        lines: list[str] = []
        head = parts[0]
        if self._discarding:
            self._discarding = False  # the end of a line already counted as dropped
        else:
            self._emit(self._buf + head if self._buf else head, lines)
        self._buf = b""
        for part in parts[1:-1]:
            self._emit(part, lines)
        self._keep(parts[-1])
        return lines

    def finish(self) -> list[str]:
        """The last line when the input ends without a newline."""
        lines: list[str] = []
        if not self._discarding:
            self._emit(self._buf, lines)
        self._buf = b""
        self._discarding = False
        return lines

    def reset(self) -> None:
        """Forget a partial line (the file it came from was truncated or replaced)."""
        self._buf = b""
        self._discarding = False

    def take_dropped(self) -> int:
        n, self.dropped = self.dropped, 0
        return n

    def _emit(self, raw: bytes, lines: list[str]) -> None:
        if len(raw) > self.max_line_bytes:
            self.dropped += 1
        elif raw:
            lines.append(raw.decode(self.encoding, "replace"))

    def _keep(self, part: bytes) -> None:
        if self._discarding or not part:
            return
        if len(self._buf) + len(part) > self.max_line_bytes:
            self._discarding = True
            self.dropped += 1
            self._buf = b""
        else:
            self._buf += part


def parse_lines(lines: Iterable[str], *, patterns: Iterable[PatternLike] | None = None) -> Iterator[MetricRecord]:
    """The records of some lines, read as one source."""
    return LogParser(patterns).parse_lines(lines)


def parse_file(
    path: str | os.PathLike[str],
    *,
    parser: LogParser | None = None,
    patterns: Iterable[PatternLike] | None = None,
) -> Iterator[MetricRecord]:
    """The records of a log file, read once from the start (``\\r`` and ``\\n`` end lines).

    Undecodable bytes are replaced, not fatal; lines longer than the parser's
    ``max_line_length`` are skipped without being held in memory whole.
    """
    parser = parser or LogParser(patterns)
    splitter = LineSplitter(max_line_bytes=parser.max_line_length * 4)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            for line in splitter.feed(chunk):
                yield from parser.parse_line(line)
            parser.stats.too_long += splitter.take_dropped()
        for line in splitter.finish():
            yield from parser.parse_line(line)
        parser.stats.too_long += splitter.take_dropped()


def __getattr__(name: str) -> Any:
    # DESIGN.md lists LogCapture with this module; it lives in acc.capture (which imports this one).
    if name == "LogCapture":
        from acc.capture import LogCapture

        return LogCapture
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
