"""The report's HTML building blocks (`vlkit.pipelines.report`): its style sheet, escaping, number formats,
tables, notes for missing inputs, and the asset copier that keeps every copied file inside its root.

Plain HTML and CSS written here: the report is a handful of tables and figures, which no templating
dependency would make shorter.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlkit.data.captions import path_inside_root
from vlkit.errors import VlkitError
from vlkit.runtime.files import write_bytes_atomic

log = logging.getLogger("vlkit.pipelines.report")

CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem;line-height:1.4}
h1{border-bottom:2px solid #4C72B0}h2{margin-top:2.4rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
td,th{border:1px solid #ccc;padding:.25rem .55rem}
th{background:#f1f3f8;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #ddd;margin:.3rem 0}.missing{color:#a33;font-style:italic}
.pair{display:flex;gap:1rem;align-items:flex-start;margin:.6rem 0}
.pair img.thumb{width:96px;image-rendering:pixelated}
.caption{font-family:ui-monospace,Menlo,Consolas,monospace}nav a{margin-right:.8rem}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _root(path: Path, run: Path) -> Path:
    """The folder a run file must stay inside: the run folder, or for a file given outside it (`--sweep`),
    the file's own folder."""
    return run if path.is_relative_to(run) else path.parent


def read_inside(path: Path, run: Path) -> Any | None:
    """The JSON at `path`, or None when unreadable or when it resolves outside its root (a symlink out): its
    content would end up in the page."""
    root = _root(path, run)
    try:
        return json.loads(path_inside_root(root, path.relative_to(root).as_posix(), "report").read_text())
    except VlkitError:
        log.warning("report: left out %s, which resolves outside %s", path, root)
    except (OSError, ValueError, RuntimeError):
        pass
    return None


def fmt(value: Any, pattern: str = ".4f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, float)):
        try:
            return format(value, pattern)
        except ValueError:  # e.g. 1.5 where a count was expected
            return esc(value)
    return esc(value)


def pct(value: Any) -> str:
    return fmt(value, ".1%")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """Cells are HTML already (escape data before); columns from `numeric_from` align right."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i >= numeric_from else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def missing(what: str, command: str) -> str:
    return (
        f'<p class="missing">Not in this run folder: {esc(what)} (made by <code>{esc(command)}</code>).</p>'
    )


class Assets:
    """Copies images into the report's assets/ folder under content-addressed names; returns <img> tags.

    `img` copies `root / file_name` only when `path_inside_root` (the caption loader's check) accepts it: no
    absolute name, no `..` out, no symlink leading out. Anything else becomes a visible note, not a copy."""

    def __init__(self, folder: Path, run: Path):
        self.folder, self.run = folder, run

    def figure(self, path: Path, alt: str) -> str:
        """One of the run's own files (found by a glob or named by the report), inside `_root`."""
        root = _root(path, self.run)
        return self.img(root, path.relative_to(root).as_posix(), alt)

    def img(self, root: Path, file_name: Any, alt: Any, css_class: str = "") -> str:
        try:
            source = path_inside_root(root, file_name, "report") if isinstance(file_name, str) else None
            data = source.read_bytes() if source is not None and source.is_file() else None
        except (VlkitError, ValueError, RuntimeError, OSError):  # ValueError: a NUL; RuntimeError: a loop
            source = data = None
        if source is None:
            return (
                f'<p class="missing">Left out: {esc(file_name)} (not a file name inside {esc(root.name)}/; '
                "the report copies nothing from outside it).</p>"
            )
        if data is None:
            return missing(f"image {file_name}", "the run that writes it")
        name = f"{hashlib.sha256(data).hexdigest()[:16]}{source.suffix.lower()}"
        target = self.folder / name
        if not target.exists():
            write_bytes_atomic(target, data)
        klass = f' class="{esc(css_class)}"' if css_class else ""
        return f'<img src="assets/{esc(name)}" alt="{esc(alt)}"{klass}>'
