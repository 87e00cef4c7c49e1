"""Query and export (CSV/JSON, exact NaN/Inf) and the ``acc capture`` / ``acc parse`` command lines."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import acc
from acc.__main__ import main
from acc.capture import LogCapture
from acc.export import job_metrics, records_to_csv, records_to_json, to_csv, to_json
from acc.logparse import parse_lines


@pytest.fixture
def job(store: acc.RunStore) -> LogCapture:
    cap = LogCapture("exported", store=store)
    cap.feed(
        "{'loss': 0.5, 'grad_norm': nan, 'learning_rate': 1e-4, 'rewards/chosen': 0.1, 'epoch': 0.1}\n"
        "{'loss': inf, 'grad_norm': 2.0, 'learning_rate': 1e-4, 'rewards/chosen': -inf, 'epoch': 0.2}\n"
        "{'loss': 0.25, 'grad_norm': 1.0, 'learning_rate': 5e-5, 'rewards/chosen': 0.3, 'epoch': 0.3}\n"
    )
    return cap.close()


def test_metrics_by_name_glob_and_step_range(store: acc.RunStore, job: LogCapture) -> None:
    got = job_metrics(store, job.id, ["loss/*", "rewards/*"], start=2, end=3)
    assert list(got) == ["loss/loss", "rewards/chosen"]
    assert [p["step"] for p in got["loss/loss"]] == [2, 3]
    assert got["rewards/chosen"][0]["value"] == -math.inf
    assert job.metrics(["grad_norm"], end=1)["grad_norm"][0]["step"] == 1
    with pytest.raises(ValueError, match="empty"):
        job_metrics(store, job.id, start=3, end=2)
    with pytest.raises(KeyError, match="no job 999"):
        job_metrics(store, 999)


def test_csv_round_trips_nan_and_inf_exactly(tmp_path: Path, store: acc.RunStore, job: LogCapture) -> None:
    out = tmp_path / "m.csv"
    rows = to_csv(store, job.id, out, names=["grad_norm", "loss"])
    with out.open() as f:
        table = list(csv.DictReader(f))
    assert rows == len(table) == 6
    assert table[0].keys() == {"step", "name", "value", "timestamp"}
    values = {(int(r["step"]), r["name"]): float(r["value"]) for r in table}
    assert math.isnan(values[(1, "grad_norm")])
    assert values[(2, "loss")] == math.inf
    assert values[(3, "loss")] == 0.25


def test_wide_csv_has_one_row_per_step(store: acc.RunStore, job: LogCapture) -> None:
    buf = io.StringIO()
    assert to_csv(store, job.id, buf, names=["loss", "learning_rate"], wide=True) == 3
    lines = buf.getvalue().splitlines()
    assert lines == ["step,loss,learning_rate", "1,0.5,0.0001", "2,inf,0.0001", "3,0.25,5e-05"]


def test_json_is_valid_json_with_non_finite_values_as_strings(
    tmp_path: Path, store: acc.RunStore, job: LogCapture
) -> None:
    out = tmp_path / "m.json"
    assert job.to_json(out) == 18  # 6 series (loss, loss/loss, grad_norm, learning_rate, rewards/chosen, epoch) x 3
    text = out.read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data["job"]["id"] == job.id
    assert data["job"]["status"] == "completed"
    assert data["job"]["config"]["capture"]["raw_names"]["rewards/chosen"] == ["rewards/chosen"]
    assert [p["value"] for p in data["metrics"]["grad_norm"]] == ["NaN", 2.0, 1.0]
    assert [p["value"] for p in data["metrics"]["rewards/chosen"]] == [0.1, "-Infinity", 0.3]
    assert data["job"]["summary"]["loss"]["n_nonfinite"] == 1
    assert to_json(store, job.id, io.StringIO(), names=["loss"], start=3) == 1


def test_records_export_keeps_the_printed_names() -> None:
    records = list(parse_lines(["step 1 train_loss=0.5 lr=nan", "step 2 train_loss=0.4 lr=0.1"]))
    buf = io.StringIO()
    assert records_to_csv(records, buf) == 4
    assert buf.getvalue().splitlines()[:3] == [
        "step,name,value,raw_name",
        "1,loss,0.5,train_loss",
        "1,learning_rate,nan,lr",
    ]
    buf = io.StringIO()
    records_to_json(records, buf)
    data = json.loads(buf.getvalue())
    assert data["metrics"]["learning_rate"] == [{"step": 1, "value": "NaN"}, {"step": 2, "value": 0.1}]
    assert data["raw_names"] == {"loss": ["train_loss"], "learning_rate": ["lr"]}


# -- the command line ---------------------------------------------------------------


def test_acc_capture_runs_the_command_and_exits_with_its_code(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            for step in range(1, 4):
                print({"loss": 1 / step, "grad_norm": float("nan") if step == 2 else 1.0})
            sys.exit(3)
            """
        )
    )
    runs = tmp_path / "runs"
    out_csv = tmp_path / "out.csv"
    rc = main(
        ["capture", "--store", str(runs), "--name", "cli", "--csv", str(out_csv), "--", sys.executable, str(script)]
    )
    assert rc == 3
    out, err = capfd.readouterr()
    assert "{'loss': 1.0" in out  # tee
    assert "job 1 'cli' failed (exit code 3)" in err
    assert "CRITICAL: grad_norm was NaN 1x (first at step 2)" in err
    with acc.RunStore(runs) as store:
        assert store.job(1).status is acc.JobStatus.FAILED
        assert [p["value"] for p in store.metrics(1, ["loss"])["loss"]] == [1.0, 0.5, 1 / 3]
    assert "1,grad_norm,1.0," in out_csv.read_text()


def test_acc_capture_reads_a_pipe(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "acc", "capture", "--quiet", "--store", str(runs), "--name", "piped"],
        input=b"step 1 loss=0.5\nstep 2 loss=0.4\n",
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"job 1 'piped' completed" in done.stderr
    with acc.RunStore(runs) as store:
        assert [p["value"] for p in store.metrics(1, ["loss"])["loss"]] == [0.5, 0.4]


def test_acc_parse_prints_a_summary_and_writes_csv_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "train.log"
    log.write_text("{'loss': 0.9, 'epoch': 0.5}\nWarning: something\n{'loss': nan, 'grad_norm': 2.0, 'epoch': 1.0}\n")
    out_csv, out_json = tmp_path / "o.csv", tmp_path / "o.json"
    assert main(["parse", str(log), "--csv", str(out_csv), "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "5 values at 2 steps from 3 lines" in printed
    assert "CRITICAL: 1 non-finite" in printed
    assert out_csv.read_text().splitlines()[1] == "1,loss,0.9,loss"
    assert json.loads(out_json.read_text())["metrics"]["loss"][1] == {"step": 2, "value": "NaN"}
    assert not (tmp_path / "acc_runs").exists()  # parse alone stores nothing


def test_acc_parse_save_records_the_log_as_a_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "old.log"
    log.write_text("step 1 val_loss=2.5\nstep 2 val_loss=0.3\n")
    runs = tmp_path / "runs"
    rc = main(
        ["parse", str(log), "--save", "--store", str(runs), "--task", "val_loss=classification", "--csv", "-", "--wide"]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["step,loss/eval_loss", "1,2.5", "2,0.3"]
    assert "job 1 'old.log' completed" in captured.err
    with acc.RunStore(runs) as store:
        assert store.loss_summary(1)["eval_loss"].task_type == "classification"


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("capture", "parse"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "examples:" in text
        assert f"acc {command} " in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["parse", "no/such.log"], "no file"),
        (["capture", "--task", "loss", "--", "true"], "NAME=TYPE"),
        (["capture", "--follow", "x.log", "--", "true"], "not both"),
    ],
)
def test_bad_command_lines_say_what_is_wrong(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        main(argv)
