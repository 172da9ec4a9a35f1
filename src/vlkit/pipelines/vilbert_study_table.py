"""study.md: the ViLBERT study's figures as Markdown tables (the models, VQA by question type, the baselines,
the bars, the pointing game), the form docs/vilbert.md quotes."""

from __future__ import annotations

from typing import Any

from vlkit.pipelines.tables import MET, markdown_table, num, pct

MODEL_HEADER = [
    "model",
    "VQA",
    "VQA held-out",
    "retrieval R@1",
    "referring",
    "parameters",
    "train (s)",
    "s / step in the run (pre-train, fine-tune)",
    "s / step side by side (pre-train, fine-tune)",
    "seeds",
]
BASELINE_ROWS = (  # label, baselines key, figure key
    ("question-only (regions hidden): VQA", "question_only", "vqa_accuracy"),
    ("image-only (question hidden): VQA", "image_only", "vqa_accuracy"),
    ("each type's most frequent training answer: VQA", "type_prior", "vqa_accuracy"),
    ("CLIP cosine: retrieval R@1 (the same re-ranking)", "clip", "retrieval_r1"),
    ("CLIP cosine: retrieval R@1 (the full gallery)", "clip", "retrieval_full_r1"),
    ("centre box: referring", "refer_centre", "refer_accuracy"),
    ("largest box: referring", "refer_largest", "refer_accuracy"),
    ("random region: referring", "refer_chance", "refer_accuracy"),
)


def _model_row(v: dict[str, Any]) -> list[str]:
    steps = ", ".join(num(s, ".3f") for s in (v.get("step_seconds") or {}).values())
    return [
        v["name"],
        pct(v.get("vqa_accuracy")),
        pct(v.get("vqa_heldout_accuracy")),
        pct(v.get("retrieval_r1")),
        pct(v.get("refer_accuracy")),
        num(v.get("params"), ",d"),
        num(v.get("train_s"), ".0f"),
        steps,
        ", ".join(num(v.get(k), ".3f") for k in ("pretrain_step_s", "finetune_step_s")),
        str(len(v.get("seeds") or [])),
    ]


def _by_type(variants: list[dict[str, Any]], baselines: dict[str, Any]) -> str:
    types = sorted({t for v in variants for t in v.get("vqa_by_type") or {}})
    named = [(v["name"], v) for v in variants]
    named += [(f"*{k.replace('_', '-')}*", baselines.get(k) or {}) for k in ("question_only", "image_only")]
    rows = [[name, *(pct((entry.get("vqa_by_type") or {}).get(t)) for t in types)] for name, entry in named]
    return markdown_table(["model", *types], rows)


def _pointing(pointing: dict[str, Any]) -> str:
    rows = []
    for name, entry in pointing.items():
        layers = entry.get("layers") or {}
        last, every = layers.get("last") or {}, layers.get("mean") or {}
        rows.append(
            [
                name,
                pct(last.get("pointing_game")),
                pct(every.get("pointing_game")),
                pct(last.get("random")),
                str(last.get("n_words")),
            ]
        )
    return markdown_table(["model", "last co-attention layer", "every layer", "random region", "words"], rows)


def study_markdown(document: dict[str, Any]) -> str:
    """The whole study.md text."""
    budget, variants = document.get("budget") or {}, document["variants"]
    baselines, bars = document.get("baselines") or {}, document.get("bars") or {}
    seeds = ", ".join(str(s) for s in document.get("seeds", []))
    intro = (
        f"Every model: {budget.get('pretrain_steps')} pre-training steps, then "
        f"{budget.get('finetune_steps')} fine-tuning steps (VQA, referring, retrieval together), batch "
        f"{budget.get('batch_size')}; seeds {seeds} where the budget allowed (the seeds column); validation "
        f"figures, the mean over a model's seeds. Retrieval: {budget.get('retrieval')}. This run: "
        f"{num(document.get('total_s'), '.0f')} s on {document.get('cpu', 'n/a')}, {budget.get('workers')} "
        f"runs at a time (load average at start and end: {document.get('load')})."
    )
    base_rows = [[label, pct((baselines.get(key) or {}).get(figure))] for label, key, figure in BASELINE_ROWS]
    bar_rows = [
        [b["text"], pct(b.get("value")), pct(b.get("limit")), MET.get(b.get("met"), "n/a")]
        for b in bars.values()
    ]
    parts = [
        "# ViLBERT study",
        intro,
        markdown_table(MODEL_HEADER, [_model_row(v) for v in variants]),
        "VQA accuracy by question type:",
        _by_type(variants, baselines),
        "Baselines:",
        markdown_table(["baseline", "figure"], base_rows),
        "Bars (the two-stream model):",
        markdown_table(["bar", "figure", "limit", "met"], bar_rows),
    ]
    if document.get("pointing"):
        parts += [
            "Pointing game on regions (question words naming an object; the first seed):",
            _pointing(document["pointing"]),
        ]
    return "\n\n".join(parts) + "\n"
