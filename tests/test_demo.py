"""The headless main job, run as a user runs it: python -m acc demo [--broken]."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import acc

RED, GREEN = "\033[31m", "\033[32m"


def _demo(tmp_path: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "acc", "demo", "--store", str(tmp_path), "--color", "always", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _summary_rows(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "Per-task loss summary" in line) + 2
    rows = []
    for line in lines[start:]:
        if "overall health" in line:
            break
        rows.append(line)
    return rows


@pytest.mark.slow
def test_demo_trains_prints_health_saves_a_checkpoint_and_history(tmp_path: Path) -> None:
    out = _demo(tmp_path, "--steps", "300")
    rows = _summary_rows(out)
    assert [re.sub(r"\033\[[0-9;]*m", "", r).split()[0] for r in rows] == ["recon", "class"]
    assert all("HEALTHY" in r and GREEN in r for r in rows), out  # the model learned
    assert "overall health: " + GREEN + "HEALTHY" in out
    store = acc.RunStore(tmp_path)
    (job,) = store.jobs()
    assert job.status is acc.JobStatus.COMPLETED and job.last_step == 300
    (ckpt,) = acc.CheckpointStore(tmp_path / "checkpoints").list()
    assert ckpt.step == 300 and set(ckpt.metrics["loss_summary"]) == {"recon", "class"}
    assert f"checkpoint {ckpt.id} saved" in out
    assert re.search(rf"{job.id}\s+digits-autoencoder\s+\S*completed", out)


@pytest.mark.slow
def test_demo_broken_prints_everything_critical_in_red(tmp_path: Path) -> None:
    out = _demo(tmp_path, "--broken", "--steps", "60")
    rows = _summary_rows(out)
    assert len(rows) == 2
    for row in rows:
        assert "CRITICAL" in row and RED in row and GREEN not in row
    progress = [line for line in out.splitlines() if line.strip().startswith("step")]
    assert progress and all("critical" in line and "healthy" not in line for line in progress)
    assert "overall health: " + RED + "CRITICAL" in out


def test_cli_help_shows_examples() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "acc", "demo", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "acc demo --broken" in result.stdout
    bare = subprocess.run([sys.executable, "-m", "acc"], capture_output=True, text=True, timeout=60, check=False)
    assert bare.returncode == 2 and "demo" in bare.stdout
