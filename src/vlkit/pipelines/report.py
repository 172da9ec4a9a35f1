"""`vlkit report RUN_DIR`: one self-contained HTML folder for a whole study (a `vlkit demo` output folder).

index.html plus an assets/ folder of the images it shows, copied there: it opens from the file system and
asks no other host for anything (no CDN, no web font, no script from elsewhere). Every text that comes from
data (captions, class names, templates, file names) goes through `html.escape`, so a caption such as
`<img src=x onerror=alert(1)>` shows as text. A file is copied only when it resolves inside its root (the
image root for `world/images/<file_name>`, the run folder for the run's own figures), by the caption
loader's own check: an absolute or `../` file name, or a symlink leading out, is left out with a note, so a
hostile run folder cannot copy a file from elsewhere into a folder meant to be shared. A section whose JSON
has an unexpected shape says so and the others still render. Sections whose inputs the run folder lacks
still appear, saying what is missing and which command makes it. The page is plain HTML and CSS written
here: the report is a handful of tables and figures, which no templating dependency would make shorter.
"""

from __future__ import annotations

import hashlib
import html
import importlib.metadata
import json
import logging
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vlkit.data.captions import path_inside_root
from vlkit.errors import VlkitError
from vlkit.runtime.files import write_bytes_atomic, write_text_atomic

log = logging.getLogger(__name__)
SECTIONS = ("data", "zeroshot", "sweep", "metrics", "pairs", "attention", "config")
TITLES = {
    "data": "The data",
    "zeroshot": "Zero-shot prompt analysis",
    "sweep": "Tuning sweep",
    "metrics": "Caption metrics",
    "pairs": "Best and worst pairs",
    "attention": "Attention maps",
    "config": "Configuration and versions",
}
VERSIONED = ("vlkit", "torch", "transformers", "peft", "accelerate", "tokenizers", "numpy")
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


def _read(path: Path, run: Path) -> Any | None:
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


def _fmt(value: Any, pattern: str = ".4f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, float)):
        try:
            return format(value, pattern)
        except ValueError:  # e.g. 1.5 where a count was expected
            return esc(value)
    return esc(value)


def _pct(value: Any) -> str:
    return _fmt(value, ".1%")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
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


def _missing(what: str, command: str) -> str:
    return (
        f'<p class="missing">Not in this run folder: {esc(what)} (made by <code>{esc(command)}</code>).</p>'
    )


class _Assets:
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
            return _missing(f"image {file_name}", "the run that writes it")
        name = f"{hashlib.sha256(data).hexdigest()[:16]}{source.suffix.lower()}"
        target = self.folder / name
        if not target.exists():
            write_bytes_atomic(target, data)
        klass = f' class="{esc(css_class)}"' if css_class else ""
        return f'<img src="assets/{esc(name)}" alt="{esc(alt)}"{klass}>'


def _data_section(run: Path, assets: _Assets) -> str:
    meta = _read(run / "world" / "meta.json", run)
    if meta is None:
        return _missing("world/meta.json", "vlkit data shapes --out RUN_DIR/world")
    heldout = ", ".join(f"{c} {s}" for c, s in meta.get("heldout", []))
    parts = [
        _table(
            ["field", "value"],
            [
                ["training images (captioned)", _fmt(meta.get("n_train"), "d")],
                ["validation images (captioned)", _fmt(meta.get("n_val"), "d")],
                ["CLIP corpus: single objects with alt text (train)", _fmt(meta.get("n_alt_text"), "d")],
                ["captions per image", _fmt(meta.get("captions_per_image"), "d")],
                ["image size (px)", _fmt(meta.get("image_size"), "d")],
                ["classes (colour x shape)", _fmt(len(meta.get("classes", [])), "d")],
                ["held-out combinations (unseen in training)", esc(heldout)],
            ],
        )
    ]
    root = run / "world" / "images"
    samples = sorted(root.glob("val_*.png"))[:8]
    parts.append("".join(assets.img(root, path.name, path.name, "thumb") for path in samples))
    return "".join(parts)


def _zeroshot_section(run: Path, assets: _Assets) -> str:
    files = sorted((run / "zeroshot").glob("*.json"))
    if not files:
        return _missing("zeroshot/*.json", "vlkit zeroshot --out RUN_DIR/zeroshot/NAME.json")
    parts = []
    for path in files:
        result = _read(path, run)
        if not result or "templates" not in result:
            continue
        ranked = sorted(result["templates"], key=lambda t: t["top1"], reverse=True)
        rows = [
            [
                esc(t["template"]),
                _pct(t["top1"]),
                _pct(t["top5"]),
                _pct(t.get("seen_top1")),
                _pct(t.get("unseen_top1")),
            ]
            for t in ranked[:10]
        ]
        ensemble = result["ensemble"]
        rows.append(
            [
                f"<b>ensemble of {len(ranked)}</b>",
                _pct(ensemble["top1"]),
                _pct(ensemble["top5"]),
                _pct(ensemble.get("seen_top1")),
                _pct(ensemble.get("unseen_top1")),
            ]
        )
        parts.append(f"<h3>templates: {esc(path.stem)} ({_fmt(result.get('n_images'), 'd')} images)</h3>")
        parts.append(_table(["template (best 10)", "top-1", "top-5", "seen top-1", "unseen top-1"], rows))
        for suffix, alt in (
            ("_templates.png", "per-template accuracy"),
            ("_confusion.png", "confusion matrix"),
        ):
            chart = path.with_name(path.stem + suffix)
            if chart.is_file():
                parts.append(assets.figure(chart, f"{path.stem}: {alt}"))
    return "".join(parts) or _missing("a readable zero-shot result", "vlkit zeroshot")


def _sweep_section(run: Path, assets: _Assets, sweep: Path | None) -> str:
    path = sweep or run / "sweep" / "SWEEP.json"
    report = _read(path, run)
    if report is None:
        return _missing(str(path.name), "vlkit caption sweep --out RUN_DIR/sweep/SWEEP.json")
    rows = [
        [
            esc(row["tuning"]),
            _fmt(row.get("cider"), ".3f"),
            _fmt(row.get("clip_score"), ".3f"),
            _pct(row.get("chair_i")),
            _fmt(row.get("trainable_params"), ",d"),
            _fmt(row.get("step_time_s"), ".4f"),
            _fmt(row.get("peak_rss_mib"), ".0f"),
        ]
        for row in report.get("methods", [])
    ]
    for name, row in report.get("baselines", {}).items():
        rows.append(
            [
                f"<i>{esc(name)} baseline</i>",
                _fmt(row.get("cider"), ".3f"),
                _fmt(row.get("clip_score"), ".3f"),
                _pct(row.get("chair_i")),
                "0",
                "",
                "",
            ]
        )
    header = [
        "tuning",
        "CIDEr-D",
        "CLIPScore",
        "CHAIR-i",
        "trainable params",
        "step time (s)",
        "peak RSS (MiB)",
    ]
    chart = path.with_suffix(".png")
    return _table(header, rows) + (assets.figure(chart, "sweep chart") if chart.is_file() else "")


def _metrics_section(run: Path, assets: _Assets) -> str:
    report = _read(run / "captions" / "evaluation" / "metrics.json", run)
    if report is None:
        return _missing(
            "captions/evaluation/metrics.json", "vlkit evaluate --out RUN_DIR/captions/evaluation"
        )
    retrieval = _read(run / "captions" / "retrieval_evaluation" / "metrics.json", run)
    baseline = (retrieval or {}).get("metrics", {})
    rows = [
        [esc(name), _fmt(entry.get("value")), _fmt(baseline.get(name, {}).get("value"))]
        for name, entry in report["metrics"].items()
    ]
    n_images = _fmt(report.get("n_images"), "d")
    note = f"<p>{n_images} validation images; predictions {esc(report.get('predictions'))}.</p>"
    return note + _table(["metric", "captioner", "retrieval baseline"], rows)


def _pairs_section(run: Path, assets: _Assets) -> str:
    report = _read(run / "captions" / "evaluation" / "metrics.json", run)
    pairs = (report or {}).get("pairs") or {}
    if not pairs.get("top"):
        return _missing("scored pairs in captions/evaluation/metrics.json", "vlkit evaluate --model CLIP")
    metric = pairs.get("metric", "clip_score")
    parts = []
    for label, key in (("best", "top"), ("worst", "bottom")):
        parts.append(f"<h3>{label} {len(pairs[key])} by {esc(metric)}</h3>")
        for pair in pairs[key]:
            stem = Path(pair["file_name"]).stem
            image = assets.img(run / "world" / "images", pair["file_name"], pair["file_name"], "thumb")
            figure = run / "attention" / "figures" / f"{stem}.png"
            alt = f"attention for {pair['file_name']}"
            attention = assets.figure(figure, alt) if figure.is_file() else ""
            parts.append(
                f'<div class="pair">{image}<div><div class="caption">{esc(pair["caption"])}</div>'
                f"<div>{esc(metric)} {_fmt(pair.get(metric), '.3f')} &middot; {esc(pair['file_name'])}</div>"
                f"{attention}</div></div>"
            )
    return "".join(parts)


def _attention_section(run: Path, assets: _Assets, figures: int = 6) -> str:
    folder = run / "attention"
    grounding = _read(folder / "grounding.json", run)
    parts = []
    if grounding is not None:
        base = grounding.get("baselines", {})
        rows = [
            [
                esc(a["name"]),
                _pct(a.get("pointing_game")),
                _pct(a.get("mass_in_mask")),
                _fmt(a.get("n_words"), "d"),
            ]
            for a in grounding.get("aggregations", [])
        ]
        rows += [
            ["<i>centre baseline</i>", _pct(base.get("center")), "", ""],
            ["<i>random baseline</i>", _pct(base.get("random")), "", ""],
        ]
        parts.append(_table(["aggregation", "pointing game", "mass in mask", "words"], rows))
    shown = sorted((folder / "figures").glob("*.png"))[:figures]
    parts += [assets.figure(path, f"attention for {path.stem}") for path in shown]
    return "".join(parts) or _missing("attention/", "vlkit caption attend --out RUN_DIR/attention")


def _config_section(run: Path, assets: _Assets) -> str:
    versions = []
    for package in VERSIONED:
        try:
            versions.append([esc(package), esc(importlib.metadata.version(package))])
        except importlib.metadata.PackageNotFoundError:
            versions.append([esc(package), "not installed"])
    versions.append(["python", esc(platform.python_version())])
    parts = [_table(["package", "version"], versions, numeric_from=2)]
    summary = _read(run / "summary.json", run)
    if summary is not None and "timings" in summary:
        rows = [[esc(k), _fmt(v, ".1f")] for k, v in summary["timings"].items()]
        parts.append("<h3>stage timings (s)</h3>" + _table(["stage", "seconds"], rows))
    for name in ("clip/vlkit_train_config.json", "captioner/vlkit_caption_train.json"):
        config = _read(run / name, run)
        if config is not None:
            parts.append(f"<h3>{esc(name)}</h3><pre>{esc(json.dumps(config, indent=2))}</pre>")
    return "".join(parts)


def _guarded(build: Callable[[], str]) -> str:
    """A section whose JSON has an unexpected shape (a missing key, a string for a list) says so in the page
    instead of ending the whole report."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        return (
            '<p class="missing">This section could not be read from the run folder: '
            f"{esc(type(error).__name__)}: {esc(error)}.</p>"
        )


def write_report(run: Path, out: Path | None = None, sweep: Path | None = None) -> Path:
    """Write OUT/index.html (default RUN/report) and its assets; return the index path."""
    if not run.is_dir():
        raise VlkitError(f"{run}: run folder not found")
    out = out or run / "report"
    assets = _Assets(out / "assets", run)
    builders: dict[str, Callable[[], str]] = {
        "data": lambda: _data_section(run, assets),
        "zeroshot": lambda: _zeroshot_section(run, assets),
        "sweep": lambda: _sweep_section(run, assets, sweep),
        "metrics": lambda: _metrics_section(run, assets),
        "pairs": lambda: _pairs_section(run, assets),
        "attention": lambda: _attention_section(run, assets),
        "config": lambda: _config_section(run, assets),
    }
    body = "".join(
        f'<section id="{name}"><h2>{esc(TITLES[name])}</h2>{_guarded(builders[name])}</section>'
        for name in SECTIONS
    )
    nav = "".join(f'<a href="#{name}">{esc(TITLES[name])}</a>' for name in SECTIONS)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self'; "
        "style-src 'unsafe-inline'\">"
        f"<title>vlkit report: {esc(run.name)}</title><style>{CSS}</style></head><body>"
        f"<h1>vlkit report: {esc(run.resolve().name)}</h1><nav>{nav}</nav>{body}</body></html>\n"
    )
    index = out / "index.html"
    write_text_atomic(index, page)
    return index
