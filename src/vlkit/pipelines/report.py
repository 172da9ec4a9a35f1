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

import importlib.metadata
import json
import logging
import platform
from collections.abc import Callable
from pathlib import Path

from vlkit.errors import VlkitError
from vlkit.pipelines.report_html import CSS, Assets, esc, fmt, missing, pct, read_inside, table
from vlkit.pipelines.report_video import video_section
from vlkit.pipelines.report_vilbert import vilbert_section
from vlkit.runtime.files import write_text_atomic

log = logging.getLogger(__name__)
SECTIONS = ("data", "zeroshot", "sweep", "metrics", "attention", "pairs", "vilbert", "video", "config")
# The course report's parts: P1 prompts, P2 captioning (the methods, then the best), P3 attention.
TITLES = {
    "data": "The data",
    "zeroshot": "P1 · Zero-shot prompt analysis",
    "sweep": "P2 · The tuning methods side by side",
    "metrics": "P2 · The best captioner, every metric",
    "attention": "P3 · Attention maps and grounding",
    "pairs": "P3 · Best and worst pairs by CLIPScore",
    "vilbert": "ViLBERT · the study",
    "video": "Video · what time adds",
    "config": "Configuration and versions",
}
VERSIONED = ("vlkit", "torch", "transformers", "peft", "accelerate", "tokenizers", "numpy")


def _data_section(run: Path, assets: Assets) -> str:
    meta = read_inside(run / "world" / "meta.json", run)
    if meta is None:
        return missing("world/meta.json", "vlkit data shapes --out RUN_DIR/world")
    heldout = ", ".join(f"{c} {s}" for c, s in meta.get("heldout", []))
    parts = [
        table(
            ["field", "value"],
            [
                ["training images (captioned)", fmt(meta.get("n_train"), "d")],
                ["validation images (captioned)", fmt(meta.get("n_val"), "d")],
                ["CLIP corpus: single objects with alt text (train)", fmt(meta.get("n_alt_text"), "d")],
                ["captions per image", fmt(meta.get("captions_per_image"), "d")],
                ["image size (px)", fmt(meta.get("image_size"), "d")],
                ["classes (colour x shape)", fmt(len(meta.get("classes", [])), "d")],
                ["held-out combinations (unseen in training)", esc(heldout)],
            ],
        )
    ]
    root = run / "world" / "images"
    samples = sorted(root.glob("val_*.png"))[:8]
    parts.append("".join(assets.img(root, path.name, path.name, "thumb") for path in samples))
    return "".join(parts)


def _zeroshot_section(run: Path, assets: Assets) -> str:
    files = sorted((run / "zeroshot").glob("*.json"), key=lambda f: (f.stem != "seed", f.stem))
    files = [f for f in files if not f.name.startswith("vlkit_")]
    if not files:
        return missing("zeroshot/*.json", "vlkit zeroshot --out RUN_DIR/zeroshot/NAME.json")
    parts = []
    chart = run / "zeroshot" / "prompts.png"
    if chart.is_file():
        parts.append(assets.figure(chart, "every template's top-1, the seed templates first"))
    for path in files:
        result = read_inside(path, run)
        if not result or "templates" not in result:
            continue
        ranked = sorted(result["templates"], key=lambda t: t["top1"], reverse=True)
        rows = [  # every template: the seed set's 3 all show, a long set's beyond 10 in a fold
            [
                esc(t["template"]),
                pct(t["top1"]),
                pct(t["top5"]),
                pct(t.get("seen_top1")),
                pct(t.get("unseen_top1")),
            ]
            for t in ranked
        ]
        ensemble = result["ensemble"]
        rows.insert(
            0,
            [
                f"<b>ensemble of {len(ranked)}</b>",
                pct(ensemble["top1"]),
                pct(ensemble["top5"]),
                pct(ensemble.get("seen_top1")),
                pct(ensemble.get("unseen_top1")),
            ],
        )
        header = ["template", "top-1", "top-5", "seen top-1", "unseen top-1"]
        parts.append(f"<h3>templates: {esc(path.stem)} ({fmt(result.get('n_images'), 'd')} images)</h3>")
        parts.append(table(header, rows[:11]))
        if len(rows) > 11:
            parts.append(
                f"<details><summary>the other {len(rows) - 11} templates</summary>"
                f"{table(header, rows[11:])}</details>"
            )
        for suffix, alt in (
            ("_templates.png", "per-template accuracy"),
            ("_confusion.png", "confusion matrix"),
        ):
            chart = path.with_name(path.stem + suffix)
            if chart.is_file():
                parts.append(assets.figure(chart, f"{path.stem}: {alt}"))
    parts.append(_clip_eval_lines(run))
    return "".join(parts) or missing("a readable zero-shot result", "vlkit zeroshot")


def _clip_eval_lines(run: Path) -> str:
    """The same CLIP beyond zero-shot, a line each, when the run has them (`clip_eval/`, as the demo writes
    it): retrieval on the validation captions, the linear probe beside zero-shot on the same test images."""
    parts = []
    retrieval = read_inside(run / "clip_eval" / "retrieval.json", run)
    if isinstance(retrieval, dict) and "image_to_text" in retrieval:
        i2t, t2i = retrieval["image_to_text"], retrieval.get("text_to_image", {})
        parts.append(
            f"<p><b>retrieval</b> ({fmt(retrieval.get('n_images'), 'd')} images, "
            f"{fmt(retrieval.get('n_texts'), 'd')} captions): image to text R@1 {pct(i2t.get('R@1'))}, "
            f"R@5 {pct(i2t.get('R@5'))}; text to image R@1 {pct(t2i.get('R@1'))}, "
            f"R@5 {pct(t2i.get('R@5'))}</p>"
        )
    probe = read_inside(run / "clip_eval" / "probe.json", run)
    if isinstance(probe, dict) and "top1" in probe:
        untrained = probe.get("untrained_classes") or []
        note = f"; {len(untrained)} classes have no training image and count as errors" if untrained else ""
        parts.append(
            f"<p><b>linear probe</b> ({fmt(probe.get('n_train'), 'd')} training images, C = "
            f"{fmt(probe.get('c'), '.3g')}): top-1 {pct(probe['top1'])} against zero-shot "
            f"{pct((probe.get('zeroshot') or {}).get('top1'))} on the same {fmt(probe.get('n_test'), 'd')} "
            f"test images{esc(note)}</p>"
        )
    return "".join(parts)


def _sweep_section(run: Path, assets: Assets, sweep: Path | None) -> str:
    path = sweep or run / "sweep" / "SWEEP.json"
    report = read_inside(path, run)
    if report is None:
        return missing(str(path.name), "vlkit caption sweep --out RUN_DIR/sweep/SWEEP.json")
    best = ((read_inside(run / "summary.json", run) or {}).get("captioning") or {}).get("best")
    rows = [
        [
            f"<b>{esc(row['tuning'])} (best)</b>" if row["tuning"] == best else esc(row["tuning"]),
            fmt(row.get("cider"), ".3f"),
            fmt(row.get("clip_score"), ".3f"),
            pct(row.get("chair_i")),
            fmt(row.get("trainable_params"), ",d"),
            fmt(row.get("step_time_s"), ".4f"),
            fmt(row.get("peak_rss_mib"), ".0f"),
        ]
        for row in report.get("methods", [])
    ]
    for name, row in report.get("baselines", {}).items():
        rows.append(
            [
                f"<i>{esc(name)} baseline</i>",
                fmt(row.get("cider"), ".3f"),
                fmt(row.get("clip_score"), ".3f"),
                pct(row.get("chair_i")),
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
    budget = report.get("budget") or {}
    note = (
        f"<p>Every method: {fmt(budget.get('steps'), 'd')} steps of {fmt(budget.get('batch_size'), 'd')} "
        f"images, learning rate {fmt(budget.get('learning_rate'), 'g')}, scored on "
        f"{fmt(report.get('n_val_images'), 'd')} validation images (greedy captions); "
        + (f"the best, by validation CIDEr-D: <b>{esc(best)}</b>.</p>" if best else "</p>")
    )
    return note + table(header, rows) + (assets.figure(chart, "sweep chart") if chart.is_file() else "")


def _metrics_section(run: Path, assets: Assets) -> str:
    report = read_inside(run / "captions" / "evaluation" / "metrics.json", run)
    if report is None:
        return missing("captions/evaluation/metrics.json", "vlkit evaluate --out RUN_DIR/captions/evaluation")
    retrieval = read_inside(run / "captions" / "retrieval_evaluation" / "metrics.json", run)
    baseline = (retrieval or {}).get("metrics", {})
    rows = [
        [esc(name), fmt(entry.get("value")), fmt(baseline.get(name, {}).get("value"))]
        for name, entry in report["metrics"].items()
    ]
    n_images = fmt(report.get("n_images"), "d")
    note = f"<p>{n_images} validation images; predictions {esc(report.get('predictions'))}.</p>"
    return note + table(["metric", "captioner", "retrieval baseline"], rows)


def _pairs_section(run: Path, assets: Assets) -> str:
    report = read_inside(run / "captions" / "evaluation" / "metrics.json", run)
    pairs = (report or {}).get("pairs") or {}
    if not pairs.get("top"):
        return missing("scored pairs in captions/evaluation/metrics.json", "vlkit evaluate --model CLIP")
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
                f"<div>{esc(metric)} {fmt(pair.get(metric), '.3f')} &middot; {esc(pair['file_name'])}</div>"
                f"{attention}</div></div>"
            )
    return "".join(parts)


def _attention_section(run: Path, assets: Assets, figures: int = 6) -> str:
    folder = run / "attention"
    grounding = read_inside(folder / "grounding.json", run)
    parts = []
    if grounding is not None:
        base = grounding.get("baselines", {})
        rows = [
            [
                esc(a["name"]),
                pct(a.get("pointing_game")),
                pct(a.get("mass_in_mask")),
                fmt(a.get("n_words"), "d"),
            ]
            for a in grounding.get("aggregations", [])
        ]
        rows += [
            ["<i>centre baseline</i>", pct(base.get("center")), "", ""],
            ["<i>random baseline</i>", pct(base.get("random")), "", ""],
        ]
        parts.append(table(["aggregation", "pointing game", "mass in mask", "words"], rows))
    chosen = ((read_inside(run / "summary.json", run) or {}).get("captioning") or {}).get("attention") or {}
    stems = chosen.get("fixed") if isinstance(chosen.get("fixed"), list) else None
    if stems:
        parts.append(f"<h3>{len(stems)} fixed validation images</h3>")
        shown = [folder / "figures" / f"{stem}.png" for stem in stems if isinstance(stem, str)]
    else:
        shown = sorted((folder / "figures").glob("*.png"))[:figures]
    parts += [assets.figure(path, f"attention for {path.stem}") for path in shown if path.is_file()]
    for label, title in (("top_1", "top-1 by CLIPScore"), ("last_1", "last-1 by CLIPScore")):
        pair = chosen.get(label)
        if isinstance(pair, dict):
            figure = folder / "figures" / f"{Path(str(pair.get('file_name'))).stem}.png"
            parts.append(
                f"<h3>{esc(title)}: {esc(pair.get('file_name'))}, CLIPScore "
                f"{fmt(pair.get('clip_score'), '.3f')}</h3>"
                f'<div class="caption">{esc(pair.get("caption"))}</div>'
                + (assets.figure(figure, f"attention for {figure.stem}") if figure.is_file() else "")
            )
    return "".join(parts) or missing("attention/", "vlkit caption attend --out RUN_DIR/attention")


def _config_section(run: Path, assets: Assets) -> str:
    versions = []
    for package in VERSIONED:
        try:
            versions.append([esc(package), esc(importlib.metadata.version(package))])
        except importlib.metadata.PackageNotFoundError:
            versions.append([esc(package), "not installed"])
    versions.append(["python", esc(platform.python_version())])
    parts = [table(["package", "version"], versions, numeric_from=2)]
    summary = read_inside(run / "summary.json", run)
    if summary is not None and "timings" in summary:
        rows = [[esc(k), fmt(v, ".1f")] for k, v in summary["timings"].items()]
        parts.append("<h3>stage timings (s)</h3>" + table(["stage", "seconds"], rows))
    best = ((summary or {}).get("captioning") or {}).get("best")
    names = ["clip/vlkit_train_config.json", "captioner/vlkit_caption_train.json"]
    if isinstance(best, str):
        names.append(f"sweep/{best}/vlkit_caption_train.json")
    for name in names:
        config = read_inside(run / name, run)
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
    assets = Assets(out / "assets", run)
    builders: dict[str, Callable[[], str]] = {
        "data": lambda: _data_section(run, assets),
        "zeroshot": lambda: _zeroshot_section(run, assets),
        "sweep": lambda: _sweep_section(run, assets, sweep),
        "metrics": lambda: _metrics_section(run, assets),
        "pairs": lambda: _pairs_section(run, assets),
        "attention": lambda: _attention_section(run, assets),
        "vilbert": lambda: vilbert_section(run, assets),
        "video": lambda: video_section(run, assets),
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
