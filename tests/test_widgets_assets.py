"""Front-end assets: installed copy first, repository second, _shared.js inlined, clear errors, hot reload."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from acc.widgets import _assets
from acc.widgets._assets import AssetError

WIDGET = """// @ts-check
import { h, fmtNum } from "./_shared.js";

export default { render({ model, el }) { el.append(h("span", { text: fmtNum(1) })); return () => {}; } };
"""
SHARED = """// @ts-check
export const HEALTHS = ["healthy"];
export function h(tag, opts = {}) { return document.createElement(tag); }
export function fmtNum(x) { return String(x).replace(/\\d/g, "#"); }
"""


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    installed, repo = tmp_path / "site" / "acc" / "_static", tmp_path / "repo" / "widgets"
    repo.mkdir(parents=True)
    monkeypatch.setattr(_assets, "INSTALLED_DIR", installed)
    monkeypatch.setattr(_assets, "REPO_DIR", repo)
    return installed, repo


def test_the_repository_is_the_fallback_and_the_installed_copy_wins(folders: tuple[Path, Path]) -> None:
    installed, repo = folders
    (repo / "demo.js").write_text(WIDGET)
    (repo / "_shared.js").write_text(SHARED)
    assert _assets.asset_dir() == repo
    assert _assets.list_stems() == ["demo"]
    installed.mkdir(parents=True)
    (installed / "demo.js").write_text(WIDGET.replace("fmtNum(1)", "fmtNum(2)"))
    (installed / "_shared.js").write_text(SHARED)
    assert _assets.asset_path("demo") == installed / "demo.js"
    assert "fmtNum(2)" in str(_assets.esm("demo"))


def test_the_shared_helpers_are_inlined_as_plain_declarations(folders: tuple[Path, Path]) -> None:
    _, repo = folders
    (repo / "demo.js").write_text(WIDGET)
    (repo / "_shared.js").write_text(SHARED)
    code = str(_assets.esm("demo"))
    assert re.search(r"^\s*import\b", code, re.M) is None
    assert "function h(tag" in code and "const HEALTHS" in code
    assert "export function" not in code and "export const" not in code
    assert code.count("export default") == 1
    assert 'replace(/\\d/g, "#")' in code  # backslashes arrive as written


def test_css_is_the_shared_css_then_the_widgets_own(folders: tuple[Path, Path]) -> None:
    _, repo = folders
    (repo / "_shared.css").write_text(".shared {}")
    (repo / "demo.css").write_text(".own {}")
    css = str(_assets.css("demo"))
    assert css.index(".shared") < css.index(".own")
    assert str(_assets.css("other")) == ".shared {}"  # a widget without its own CSS


def test_other_relative_imports_and_missing_files_are_clear_errors(folders: tuple[Path, Path]) -> None:
    _, repo = folders
    (repo / "_shared.js").write_text(SHARED)
    (repo / "bad.js").write_text('import { x } from "./other.js";\nexport default {};\n')
    with pytest.raises(AssetError, match=r"bad\.js imports './other\.js'"):
        _assets.esm("bad")
    with pytest.raises(AssetError, match=r"missing\.js of widget 'missing' is missing"):
        _assets.esm("missing")
    with pytest.raises(AssetError, match="invalid widget stem"):
        _assets.asset_path("../etc/passwd")


def test_no_assets_at_all_names_both_places(folders: tuple[Path, Path]) -> None:
    _, repo = folders
    repo.rmdir()
    with pytest.raises(AssetError, match="neither"):
        _assets.asset_dir()


def test_hot_reload_pushes_an_edited_file_to_the_bundle(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, repo = folders
    (repo / "_shared.js").write_text(SHARED)
    (repo / "demo.js").write_text(WIDGET)
    monkeypatch.setenv("ANYWIDGET_HMR", "1")
    bundle = _assets.esm("demo")
    seen: list[str] = []
    bundle.changed.connect(seen.append)
    time.sleep(0.05)
    (repo / "demo.js").write_text(WIDGET.replace("fmtNum(1)", "fmtNum(3)"))
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen and "fmtNum(3)" in seen[-1] and "function h(tag" in seen[-1]
    assert "fmtNum(3)" in str(bundle)


def test_every_real_widget_bundles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYWIDGET_HMR", raising=False)
    stems = _assets.list_stems()
    assert "loss_health_panel" in stems
    for stem in stems:
        code = str(_assets.esm(stem))
        assert "export default" in code, stem
        assert re.search(r"^\s*import\b", code, re.M) is None, f"{stem}: a blob-URL module cannot import"
        assert re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML", code) is None, f"{stem}: use textContent"
        assert "http://" not in code and "https://" not in code, f"{stem}: no network imports"
