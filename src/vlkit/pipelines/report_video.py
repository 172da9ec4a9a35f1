"""The report's video section: the study `vlkit video study --out RUN/video` wrote into RUN/video/.

Its table (every temporal module beside the nearest-clip and shuffled-frame baselines), the shuffled-frame
and frame-count ablations, the bars met or missed, the chart and the frames x words attention figures, read
from RUN/video/study.json; every file goes through the report's `read_inside` and `Assets`, so the page
stays self-contained and copies nothing from outside the run folder. Without the study the section says
which command makes it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vlkit.pipelines.report_html import Assets, esc, fmt, missing, pct, read_inside, table

STUDY_DIR = "video"  # RUN/video/: where the report looks for the study
STUDY_COMMAND = "vlkit video study --out RUN_DIR/video"
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a file or folder name from the JSON: no path


def video_section(run: Path, assets: Assets) -> str:
    folder = run / STUDY_DIR
    study = read_inside(folder / "study.json", run)
    if not isinstance(study, dict) or not isinstance(study.get("variants"), list):
        return missing(f"{STUDY_DIR}/study.json", STUDY_COMMAND)
    parts = [
        _note(study),
        table(["temporal", "CIDEr-D", "order accuracy", "CHAIR-i", "train (s)"], _rows(study)),
    ]
    parts += [_ablations(study), _bars(study)]
    chart = folder / "study.png"
    if chart.is_file():
        parts.append(
            assets.figure(chart, "order accuracy and CIDEr-D per temporal module, and by frame count")
        )
    parts.append(_figures(study, folder, assets))
    return "".join(parts)


def _note(study: dict[str, Any]) -> str:
    budget, clips = study.get("budget") or {}, study.get("clips") or {}
    return (
        f"<p>{fmt(clips.get('train'), 'd')} training and {fmt(clips.get('val'), 'd')} validation clips; "
        f"every temporal module trained {fmt(budget.get('steps'), 'd')} steps of batch "
        f"{fmt(budget.get('batch_size'), 'd')} ({esc(budget.get('tuning', 'n/a'))}) on "
        f"{fmt(budget.get('frames'), 'd')} frames from {esc(budget.get('encoder', 'n/a'))} + "
        f"{esc(budget.get('decoder', 'n/a'))}. Order accuracy: the share of motion and order statements in "
        f"the captions that the clip's ground truth makes true. This run took "
        f"{fmt(study.get('total_s'), '.0f')} s on {esc(study.get('cpu', 'n/a'))}.</p>"
    )


def _rows(study: dict[str, Any]) -> list[list[str]]:
    rows = [
        [esc(v.get("temporal")), fmt(v.get("cider"), ".3f"), pct(v.get("order_accuracy")),
         pct(v.get("chair_i")), fmt(v.get("train_s"), ".0f")]
        for v in study["variants"] if isinstance(v, dict)
    ]  # fmt: skip
    baselines = study.get("baselines") or {}
    for name, label in (("nearest_clip", "nearest clip baseline"), ("shuffled_frames", "shuffled frames")):
        entry = baselines.get(name)
        if isinstance(entry, dict):
            title = label + (f" ({entry['temporal']})" if isinstance(entry.get("temporal"), str) else "")
            rows.append([f"<i>{esc(title)}</i>", fmt(entry.get("cider"), ".3f"),
                         pct(entry.get("order_accuracy")), pct(entry.get("chair_i")), ""])  # fmt: skip
    return rows


def _ablations(study: dict[str, Any]) -> str:
    ablations = study.get("ablations") or {}
    parts = []
    shuffled = [r for r in ablations.get("shuffled_frames") or [] if isinstance(r, dict)]
    if shuffled:
        rows = []
        for r in shuffled:
            ordered, mixed = r.get("ordered") or {}, r.get("shuffled") or {}
            rows.append([esc(r.get("temporal")), pct(ordered.get("order_accuracy")),
                         pct(mixed.get("order_accuracy")), fmt(ordered.get("cider"), ".3f"),
                         fmt(mixed.get("cider"), ".3f")])  # fmt: skip
        header = ["temporal", "order acc., in order", "shuffled", "CIDEr-D, in order", "shuffled"]
        parts.append("<h3>Shuffled frames</h3>" + table(header, rows))
    frames = [r for r in ablations.get("frames") or [] if isinstance(r, dict)]
    if frames:
        rows = [
            [fmt(r.get("frames"), "d"), fmt(r.get("cider"), ".3f"), pct(r.get("order_accuracy"))]
            for r in frames
        ]
        parts.append("<h3>Frame count (seq)</h3>" + table(["frames", "CIDEr-D", "order accuracy"], rows))
    return "".join(parts)


def _bars(study: dict[str, Any]) -> str:
    bars = study.get("bars") or {}
    rows = []
    for name, bar in bars.items():
        if not isinstance(bar, dict):
            continue
        shown = pct if name == "order" else (lambda value: fmt(value, ".3f"))
        met = {True: "met", False: "missed"}.get(bar.get("met"), "n/a")
        rows.append([esc(bar.get("text", name)), shown(bar.get("value")), shown(bar.get("limit")), met])
    return "<h3>The bars</h3>" + table(["bar", "figure", "limit", "met?"], rows) if rows else ""


def _figures(study: dict[str, Any], folder: Path, assets: Assets) -> str:
    parts = []
    for name, files in (study.get("figures") or {}).items():
        if not PLAIN_NAME.fullmatch(str(name)) or not isinstance(files, list):
            continue  # a name with a path in it would lead the copy elsewhere
        shown = [f for f in files if isinstance(f, str) and PLAIN_NAME.fullmatch(f)]
        paths = [folder / "figures" / name / f for f in shown if (folder / "figures" / name / f).is_file()]
        if paths:
            parts.append(f"<h3>frames x words attention: {esc(name)}</h3>")
        parts += [assets.figure(path, f"{name}: frame attention of each word, {path.stem}") for path in paths]
    return "".join(parts)
