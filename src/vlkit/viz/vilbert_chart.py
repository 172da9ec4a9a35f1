"""The ViLBERT study's chart: every model side by side on VQA accuracy, retrieval R@1, referring accuracy
and the cost of a training step, each baseline as a line on its panel, the seeds' spread as a whisker.

matplotlib draws (Agg backend, through `plots._to_png`, which keeps the bytes reproducible).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
from matplotlib.ticker import PercentFormatter

from vlkit.viz.plots import _to_png

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (
    ("VQA accuracy", "vqa_accuracy", True),
    ("retrieval R@1 (re-ranking)", "retrieval_r1", True),
    ("referring accuracy", "refer_accuracy", True),
    ("seconds per fine-tuning step (side by side)", "finetune_step_s", False),
)
LINE_STYLES = ("--", ":", "-.")


def study_chart(
    variants: Sequence[Mapping], baselines: Mapping[str, Mapping[str, float | None]] | None = None
) -> bytes:
    """One row per model (`variants`: dicts with the panels' keys and, optionally, `per_seed` dicts for the
    whiskers); `baselines` {name: {key: value}} draws each value as a line on the panel of its key. PNG."""
    names = [str(v["name"]) for v in variants]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(16, 0.42 * len(names) + 1.8), sharey=True)
    for ax, (title, key, share) in zip(axes, PANELS, strict=True):
        values = [v.get(key) if v.get(key) is not None else 0.0 for v in variants]
        ax.barh(range(len(names)), values, color="#4C72B0")
        for row, variant in enumerate(variants):
            seeds = [s.get(key) for s in variant.get("per_seed") or [] if s.get(key) is not None]
            if len(seeds) > 1:
                ax.plot([min(seeds), max(seeds)], [row, row], color="#222222", linewidth=1.2)
        lines = [(n, b.get(key)) for n, b in (baselines or {}).items() if b.get(key) is not None]
        for (name, value), style in zip(lines, LINE_STYLES * 3, strict=False):
            ax.axvline(value, color="#C44E52", linestyle=style, label=f"{name} {value:.1%}")
        if lines:
            ax.legend(loc="lower right", fontsize=7)
        if share:
            ax.set_xlim(0, 1)
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    return _to_png(fig)
