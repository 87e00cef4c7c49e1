"""The built wheel carries every front-end file, and an installed copy loads its widgets from itself.

Builds the wheel offline (``python -m build --no-isolation``: hatchling is a dev
dependency), installs it with ``pip install --no-deps --target`` into a fresh
folder, then in a subprocess that imports acc from that folder: every widget's
ESM and CSS must come from the installed ``acc/_static``, bundle, and (when
node is on the machine) import as an ES module whose default export has
``render``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FRONT_END = sorted(p.name for p in (REPO / "widgets").iterdir() if p.suffix in (".js", ".css"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # A copy of the tracked sources (and this checkout's uncommitted edits), never build/ in the repo itself.
    src = tmp_path_factory.mktemp("src") / "acc-src"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "*_cache", "acc_runs", "test-artifacts", "__pycache__", "dist", "build"
    )
    shutil.copytree(REPO, src, ignore=skip)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("acc-*.whl")
    return built


def test_the_wheel_contains_every_front_end_file(wheel: Path) -> None:
    assert "loss_health_panel.js" in FRONT_END and "_shared.js" in FRONT_END
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in FRONT_END if f"acc/_static/{f}" not in names]
    assert missing == []
    assert "acc/widgets/_assets.py" in names


LOAD = textwrap.dedent(
    """
    import json, sys
    import acc
    from acc.widgets import _assets
    from acc.widgets.loss_health_panel import LossHealthPanel

    out = {"acc": acc.__file__, "dir": str(_assets.asset_dir()), "stems": _assets.list_stems(), "esm": {}, "css": {}}
    for stem in out["stems"]:
        out["esm"][stem] = str(_assets.esm(stem))
        out["css"][stem] = str(_assets.css(stem))
    out["panel_esm_is_installed"] = LossHealthPanel._esm == out["esm"]["loss_health_panel"]
    json.dump(out, sys.stdout)
    """
)

IMPORT_MODULE = textwrap.dedent(
    """
    const [file] = process.argv.slice(2);
    const mod = await import(new URL(`file://${file}`).href);
    if (!mod.default || typeof mod.default.render !== "function") {
      console.error(`${file}: no default export with render()`);
      process.exit(1);
    }
    """
)


def test_an_installed_copy_loads_each_widget_from_itself(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target), "ACC_HOME": str(tmp_path / "runs")}
    env.pop("ANYWIDGET_HMR", None)
    run = subprocess.run(
        [sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = json.loads(run.stdout)
    assert Path(loaded["acc"]).is_relative_to(target), "acc was imported from the repository, not the install"
    assert Path(loaded["dir"]) == target / "acc" / "_static"
    assert sorted(loaded["stems"]) == sorted(Path(f).stem for f in FRONT_END if f.endswith(".js") and f[0] != "_")
    assert loaded["panel_esm_is_installed"]
    for stem, code in loaded["esm"].items():
        assert "export default" in code and re.search(r"^\s*import\b", code, re.M) is None, stem
    assert ".loss-healthy" in loaded["css"]["loss_health_panel"]

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the modules were bundled but not imported")
    script = tmp_path / "import.mjs"
    script.write_text(IMPORT_MODULE)
    for stem, code in loaded["esm"].items():
        module = tmp_path / f"{stem}.mjs"
        module.write_text(code)
        check = subprocess.run([node, str(script), str(module)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, f"{stem}: {check.stderr[-2000:]}"
