"""Where a widget's front-end code comes from: one helper for every widget.

A widget with stem ``loss_health_panel`` has ``widgets/loss_health_panel.js``
(+ optional ``.css``). Resolution order:

1. the installed copy, ``acc/_static/<stem>.js`` (the wheel force-includes the
   top-level ``widgets/`` folder there, see pyproject.toml);
2. the repository's ``widgets/<stem>.js`` (editable installs and development).

anywidget loads a widget's ESM as ONE module from a blob URL, so relative
imports between our files cannot work in the browser. The one shared helper
module, ``widgets/_shared.js``, is therefore inlined here: a widget module
imports it as a normal ES module (so editors, ``tsc --checkJs`` and node see
real imports)::

    import { el, fmtNum } from "./_shared.js";

and :func:`esm` replaces that line with the helper's source (its ``export``
keywords removed). Any other relative import is an error that names the file.
``widgets/_shared.css`` (health colours, the error box) is prepended to every
widget's CSS the same way.

Hot reload: with ``ANYWIDGET_HMR=1`` and the files coming from a repository
checkout, a small polling thread re-bundles a widget when one of its files
changes, and anywidget pushes the new code to every live view. (Only then:
anywidget's change signal holds every widget instance for good, fine while
developing a widget, a leak otherwise.)
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from anywidget._file_contents import VirtualFileContents

__all__ = ["AssetError", "asset_dir", "asset_path", "css", "esm", "list_stems"]

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
INSTALLED_DIR = PACKAGE_DIR / "_static"
REPO_DIR = PACKAGE_DIR.parent / "widgets"
SHARED_STEM = "_shared"

# `import { a, b } from "./_shared.js";` on a line of its own (the only relative import allowed).
_SHARED_IMPORT = re.compile(
    r"""^[ \t]*import[ \t]*\{[^}]*\}[ \t]*from[ \t]*["']\./_shared\.js["'][ \t]*;?[ \t]*$""", re.M
)
# Any other static relative import/export-from, which the blob-URL module could not resolve.
_RELATIVE_IMPORT = re.compile(r"""^[ \t]*(?:import|export)\b[^;'"]*?from[ \t]*["'](\.{1,2}/[^"']+)["']""", re.M)
_EXPORT_KEYWORD = re.compile(r"^export[ \t]+(?=(?:async[ \t]+)?(?:function|const|let|class)\b)", re.M)


class AssetError(RuntimeError):
    """A widget's front-end file is missing or cannot be bundled; the message names the file."""


def asset_dir() -> Path:
    """The folder the assets are read from: the installed ``acc/_static`` first, else the repository's ``widgets/``."""
    if INSTALLED_DIR.is_dir():
        return INSTALLED_DIR
    if REPO_DIR.is_dir():
        return REPO_DIR
    raise AssetError(f"acc's front-end files are missing: neither {INSTALLED_DIR} nor {REPO_DIR} exists")


def asset_path(stem: str, suffix: str = ".js") -> Path:
    """The file ``<stem><suffix>`` in :func:`asset_dir`; raises AssetError naming it when it is not there."""
    if not re.fullmatch(r"_?[a-z][a-z0-9_]*", stem):
        raise AssetError(f"invalid widget stem {stem!r}: lower-case letters, digits and '_' only")
    path = asset_dir() / f"{stem}{suffix}"
    if not path.is_file():
        raise AssetError(f"the front-end file {path} of widget {stem!r} is missing")
    return path


def list_stems() -> list[str]:
    """Every widget stem that has a ``.js`` file (the shared helper excluded)."""
    return sorted(p.stem for p in asset_dir().glob("*.js") if not p.stem.startswith("_"))


def _bundle_js(stem: str) -> tuple[str, list[Path]]:
    path = asset_path(stem, ".js")
    source = path.read_text(encoding="utf-8")
    files = [path]
    if _SHARED_IMPORT.search(source):
        shared_path = asset_path(SHARED_STEM, ".js")
        shared = _EXPORT_KEYWORD.sub("", shared_path.read_text(encoding="utf-8"))
        if _RELATIVE_IMPORT.search(shared):
            raise AssetError(f"{shared_path} must not import other files (it is inlined into every widget)")
        banner = f"// ---- inlined from {SHARED_STEM}.js ----\n"
        # a function as the replacement: the helper's text is inserted as it is (no backslash escapes)
        source = _SHARED_IMPORT.sub(lambda _m: banner + shared, source, count=1)
        files.append(shared_path)
    other = _RELATIVE_IMPORT.search(source)
    if other is not None:
        raise AssetError(
            f"{path} imports {other.group(1)!r}: anywidget loads one module from a blob URL, so only "
            f"'./{SHARED_STEM}.js' can be imported (it is inlined)"
        )
    return source, files


def _bundle_css(stem: str) -> tuple[str, list[Path]]:
    folder = asset_dir()
    parts: list[str] = []
    files: list[Path] = []
    for path in (folder / f"{SHARED_STEM}.css", folder / f"{stem}.css"):
        if path.is_file():
            parts.append(path.read_text(encoding="utf-8"))
            files.append(path)
    return "\n".join(parts), files


Builder = Callable[[str], tuple[str, list[Path]]]


def _make(stem: str, builder: Builder) -> str | VirtualFileContents:
    text, files = builder(stem)
    if not (_hot_reload_enabled() and files and all(REPO_DIR in f.parents for f in files)):
        # A plain string: anywidget keeps a strong reference from a VirtualFileContents' signal to
        # every widget instance (to push new code), which would keep every widget alive for ever.
        return text
    contents = VirtualFileContents(text)
    _Watcher.instance().watch(contents, files, lambda: builder(stem))
    return contents


def esm(stem: str) -> str | VirtualFileContents:
    """The widget's ES module with ``_shared.js`` inlined, ready for ``AnyWidget._esm``.

    A string; with hot reload on (``ANYWIDGET_HMR=1``, files from the repository) a
    ``VirtualFileContents`` that changes when a file does.
    """
    return _make(stem, _bundle_js)


def css(stem: str) -> str | VirtualFileContents:
    """``_shared.css`` + ``<stem>.css`` (either may be absent), ready for ``AnyWidget._css``."""
    return _make(stem, _bundle_css)


def _hot_reload_enabled() -> bool:
    return os.environ.get("ANYWIDGET_HMR", "").strip().lower() in ("1", "true", "yes", "on")


class _Watcher(threading.Thread):
    """Polls the source files of bundles (watchfiles is not a dependency) and re-bundles on change."""

    _instance: _Watcher | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__(name="acc-widget-hot-reload", daemon=True)
        self._entries: list[
            tuple[VirtualFileContents, list[Path], dict[Path, float], Callable[[], tuple[str, list[Path]]]]
        ] = []

    @classmethod
    def instance(cls) -> _Watcher:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
                cls._instance.start()
            return cls._instance

    def watch(
        self, contents: VirtualFileContents, files: list[Path], rebuild: Callable[[], tuple[str, list[Path]]]
    ) -> None:
        mtimes = {f: f.stat().st_mtime for f in files}
        with self._lock:
            self._entries.append((contents, files, mtimes, rebuild))

    def run(self) -> None:
        while True:
            time.sleep(0.5)
            with self._lock:
                entries = list(self._entries)
            for contents, files, mtimes, rebuild in entries:
                try:
                    changed = [f for f in files if f.stat().st_mtime != mtimes[f]]
                    if not changed:
                        continue
                    for f in files:
                        mtimes[f] = f.stat().st_mtime
                    text, _ = rebuild()
                    contents.contents = text  # emits `changed`: anywidget updates every live view
                    log.info("hot-reloaded %s", ", ".join(f.name for f in changed))
                except (OSError, AssetError) as exc:  # a half-saved file: report it, keep watching
                    log.warning("hot reload failed: %s", exc)
