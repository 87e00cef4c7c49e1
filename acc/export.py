"""Export metrics as CSV or JSON: a stored job's series, or records parsed from a log.

* ``job_metrics(store, job_id, names=None, start=None, end=None)``: the seed's
  ``GET /runs/{run_id}/metrics`` -- series by name (``fnmatch`` globs such as
  ``"loss/*"`` or ``"rewards/*"`` allowed) over an inclusive step range.
* ``to_csv(store, job_id, dest, ...)``: long form ``step,name,value,timestamp``
  (one row per point) or ``wide=True``: ``step,<name>,<name>,...`` (one row per
  step, empty cells where a series has no point).
* ``to_json(store, job_id, dest, ...)``: ``{"job": {...}, "metrics": {name:
  [{"step", "value", "timestamp"}, ...]}}``.
* ``records_to_csv`` / ``records_to_json``: the same for ``MetricRecord``\\ s
  (``acc parse`` without a store), with each record's printed name.

NaN and Inf are exported exactly: CSV writes ``nan``, ``inf``, ``-inf`` (what
pandas and ``float()`` read back); JSON, which has no such numbers, writes the
strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (``float()`` reads them
back), so the file stays valid JSON for any reader.

``dest`` is a path, ``"-"`` for stdout, or an open text file.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from acc.logparse import MetricRecord
from acc.store import RunStore

__all__ = ["job_metrics", "records_to_csv", "records_to_json", "to_csv", "to_json"]

Dest = str | os.PathLike[str] | IO[str]


def _expand(store: RunStore, job_id: int, names: Iterable[str] | None) -> list[str] | None:
    """Series names matching ``names`` (exact names or fnmatch globs), in the order asked."""
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    available = store.metric_names(job_id)
    out: list[str] = []
    for pattern in names:
        matches = fnmatch.filter(available, pattern) if any(c in pattern for c in "*?[") else [pattern]
        out.extend(m for m in matches if m not in out)
    return out


def job_metrics(
    store: RunStore,
    job_id: int,
    names: Iterable[str] | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
) -> dict[str, list[dict[str, float]]]:
    """``{name: [{"step", "value", "timestamp"}, ...]}`` for a job.

    ``names`` may hold globs ("loss/*"); the series come in the order asked
    (by name when ``names`` is None).
    """
    store.job(job_id)  # a clear KeyError for a job that does not exist
    if start is not None and end is not None and start > end:
        raise ValueError(f"the step range is empty: start={start} > end={end}")
    wanted = _expand(store, job_id, names)
    found = store.metrics(job_id, wanted, start=start, end=end)
    if wanted is None:
        return found
    return {name: found[name] for name in wanted if name in found}  # in the order asked


@contextlib.contextmanager
def _open(dest: Dest) -> Iterator[IO[str]]:
    if isinstance(dest, (str, os.PathLike)):
        if os.fspath(dest) == "-":
            yield sys.stdout
            sys.stdout.flush()
            return
        with open(dest, "w", newline="", encoding="utf-8") as f:
            yield f
        return
    yield dest


def _csv_number(value: float) -> str:
    return repr(float(value))  # 0.1 -> "0.1", nan -> "nan", inf -> "inf": exact and readable by float()


def _json_number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _write_wide(writer: Any, series: Mapping[str, Mapping[int, float]]) -> int:
    names = list(series)
    writer.writerow(["step", *names])
    steps = sorted({s for points in series.values() for s in points})
    for step in steps:
        writer.writerow([step, *(_csv_number(series[n][step]) if step in series[n] else "" for n in names)])
    return len(steps)


def to_csv(
    store: RunStore,
    job_id: int,
    dest: Dest,
    *,
    names: Iterable[str] | None = None,
    start: int | None = None,
    end: int | None = None,
    wide: bool = False,
) -> int:
    """Write a job's points as CSV; returns the data rows written."""
    metrics = job_metrics(store, job_id, names, start=start, end=end)
    with _open(dest) as f:
        writer = csv.writer(f, lineterminator="\n")
        if wide:
            return _write_wide(writer, {n: {int(p["step"]): p["value"] for p in pts} for n, pts in metrics.items()})
        writer.writerow(["step", "name", "value", "timestamp"])
        rows = 0
        for name, points in metrics.items():
            for p in points:
                stamp = p["timestamp"]
                writer.writerow([p["step"], name, _csv_number(p["value"]), "" if stamp is None else repr(stamp)])
                rows += 1
        return rows


def to_json(
    store: RunStore,
    job_id: int,
    dest: Dest,
    *,
    names: Iterable[str] | None = None,
    start: int | None = None,
    end: int | None = None,
    indent: int | None = None,
) -> int:
    """Write a job (id, name, status, config, summary) and its points as JSON; returns the points written."""
    record = store.job(job_id)
    metrics = job_metrics(store, job_id, names, start=start, end=end)
    job = _plain(record.to_dict())
    payload = {
        "job": job,
        "metrics": {
            name: [{**p, "value": _json_number(p["value"])} for p in points] for name, points in metrics.items()
        },
    }
    with _open(dest) as f:
        json.dump(payload, f, indent=indent, allow_nan=False)
        f.write("\n")
    return sum(len(points) for points in metrics.values())


def _plain(obj: Any) -> Any:
    """Non-finite floats anywhere in a JSON-bound structure -> their string names."""
    if isinstance(obj, float):
        return _json_number(obj)
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def records_to_csv(records: Iterable[MetricRecord], dest: Dest, *, wide: bool = False) -> int:
    """Write parsed records as CSV (``step,name,value,raw_name``, or wide); returns the data rows written."""
    with _open(dest) as f:
        writer = csv.writer(f, lineterminator="\n")
        if wide:
            series: dict[str, dict[int, float]] = {}
            for r in records:
                series.setdefault(r.name, {})[r.step] = r.value
            return _write_wide(writer, series)
        writer.writerow(["step", "name", "value", "raw_name"])
        rows = 0
        for r in records:
            writer.writerow([r.step, r.name, _csv_number(r.value), r.raw_name])
            rows += 1
        return rows


def records_to_json(records: Iterable[MetricRecord], dest: Dest, *, indent: int | None = None) -> int:
    """Write parsed records as ``{"metrics": {name: [{"step", "value"}]}, "raw_names": {name: [printed]}}``."""
    metrics: dict[str, list[dict[str, Any]]] = {}
    raw: dict[str, list[str]] = {}
    n = 0
    for r in records:
        metrics.setdefault(r.name, []).append({"step": r.step, "value": _json_number(r.value)})
        names = raw.setdefault(r.name, [])
        if r.raw_name not in names:
            names.append(r.raw_name)
        n += 1
    with _open(dest) as f:
        json.dump({"metrics": metrics, "raw_names": raw}, f, indent=indent, allow_nan=False)
        f.write("\n")
    return n
