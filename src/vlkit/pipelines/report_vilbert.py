"""The report's ViLBERT section: the study `vlkit vilbert study --out RUN/vilbert` wrote into RUN/vilbert/.

Its table (every variant and peer, then the baselines), the bars met or missed, the chart, the pointing game
on regions and the co-attention figures, read from RUN/vilbert/study.json; every file goes through the
report's `read_inside` and `Assets`, so the page stays self-contained and copies nothing from outside the
run folder. Without the study the section says which command makes it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vlkit.pipelines.report_html import Assets, esc, fmt, missing, pct, read_inside, table

STUDY_DIR = "vilbert"  # RUN/vilbert/: where the report looks for the study
STUDY_COMMAND = "vlkit vilbert study --out RUN_DIR/vilbert"
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a file or folder name from the JSON: no path
VARIANT_HEADER = [
    "model",
    "VQA",
    "VQA held-out",
    "retrieval R@1",
    "referring",
    "parameters",
    "train (s)",
    "s / step (the run)",
    "s / fine-tuning step (side by side)",
    "seeds",
]


def vilbert_section(run: Path, assets: Assets) -> str:
    folder = run / STUDY_DIR
    study = read_inside(folder / "study.json", run)
    if not isinstance(study, dict) or "variants" not in study:
        return missing(f"{STUDY_DIR}/study.json", STUDY_COMMAND)
    parts = [_note(study), table(VARIANT_HEADER, _variant_rows(study)), _types_table(study), _bars(study)]
    chart = folder / "study.png"
    if chart.is_file():
        parts.append(assets.figure(chart, "the variants' VQA accuracy, retrieval R@1 and referring accuracy"))
    parts.append(_pointing(study, folder, assets))
    return "".join(parts)


def _note(study: dict[str, Any]) -> str:
    budget = study.get("budget") or {}
    seeds = ", ".join(str(s) for s in study.get("seeds", []))
    return (
        f"<p>Every model: {fmt(budget.get('pretrain_steps'), 'd')} pre-training steps, then "
        f"{fmt(budget.get('finetune_steps'), 'd')} fine-tuning steps on VQA, referring expressions and "
        f"retrieval together, batch {fmt(budget.get('batch_size'), 'd')}; seeds {esc(seeds)} where the "
        f"budget allowed (each model's count in its row); figures are the mean over a model's seeds on the "
        f"validation split. Retrieval: {esc(budget.get('retrieval', 'n/a'))}. This run took "
        f"{fmt(study.get('total_s'), '.0f')} s on {esc(study.get('cpu', 'n/a'))}, "
        f"{fmt(budget.get('workers'), 'd')} runs at a time.</p>"
    )


def _variant_rows(study: dict[str, Any]) -> list[list[str]]:
    rows = [
        [
            esc(v["name"]),
            pct(v.get("vqa_accuracy")),
            pct(v.get("vqa_heldout_accuracy")),
            pct(v.get("retrieval_r1")),
            pct(v.get("refer_accuracy")),
            fmt(v.get("params"), ",d"),
            fmt(v.get("train_s"), ".0f"),
            fmt(v.get("seconds_per_step"), ".3f"),
            fmt(v.get("finetune_step_s"), ".3f"),
            fmt(len(v.get("seeds", [])), "d"),
        ]
        for v in study["variants"]
    ]
    baselines = study.get("baselines") or {}
    labels = {
        "question_only": ("vqa_accuracy", 1),
        "image_only": ("vqa_accuracy", 1),
        "type_prior": ("vqa_accuracy", 1),
        "clip": ("retrieval_r1", 3),
        "refer_centre": ("refer_accuracy", 4),
        "refer_largest": ("refer_accuracy", 4),
    }
    for name, (key, column) in labels.items():
        value = (baselines.get(name) or {}).get(key)
        if value is None:
            continue
        row = [f"<i>{esc(name.replace('_', ' '))} baseline</i>"] + [""] * (len(VARIANT_HEADER) - 1)
        row[column] = pct(value)
        rows.append(row)
    return rows


def _types_table(study: dict[str, Any]) -> str:
    types = sorted({t for v in study["variants"] for t in (v.get("vqa_by_type") or {})})
    if not types:
        return ""
    rows = [
        [esc(v["name"])] + [pct((v.get("vqa_by_type") or {}).get(t)) for t in types]
        for v in study["variants"]
    ]
    return "<h3>VQA accuracy by question type</h3>" + table(["model", *types], rows)


def _bars(study: dict[str, Any]) -> str:
    bars = study.get("bars") or {}
    if not bars:
        return ""
    rows = [
        [esc(bar.get("text", name)), pct(bar.get("value")), pct(bar.get("limit")), _met(bar.get("met"))]
        for name, bar in bars.items()
        if isinstance(bar, dict)
    ]
    return "<h3>The bars (the two-stream model)</h3>" + table(["bar", "figure", "limit", "met?"], rows)


def _met(value: Any) -> str:
    return {True: "met", False: "missed"}.get(value, "n/a")


def _pointing(study: dict[str, Any], folder: Path, assets: Assets) -> str:
    pointing = study.get("pointing") or {}
    if not pointing:
        return ""
    rows = []
    for name, entry in pointing.items():
        layers = entry.get("layers") or {}
        last, mean = layers.get("last") or {}, layers.get("mean") or {}
        rows.append(
            [
                esc(name),
                pct(last.get("pointing_game")),
                pct(mean.get("pointing_game")),
                pct(last.get("random")),
                fmt(last.get("n_words"), "d"),
            ]
        )
    parts = [
        "<h3>Pointing game on regions (question words that name an object)</h3>",
        table(["model", "last co-attention layer", "every layer", "random region", "words"], rows),
    ]
    for name, entry in pointing.items():
        if not PLAIN_NAME.fullmatch(str(name)):
            continue  # a name with a path in it would lead the copy elsewhere
        shown = [f for f in entry.get("figures") or [] if isinstance(f, str) and PLAIN_NAME.fullmatch(f)]
        if shown:
            parts.append(f"<h3>co-attention, word to region: {esc(name)}</h3>")
        for file_name in shown:
            path = folder / "figures" / name / file_name
            if path.is_file():
                parts.append(assets.figure(path, f"{name}: co-attention for {file_name}"))
    return "".join(parts)
