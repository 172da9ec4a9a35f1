"""The video study's chart: order accuracy (clips as they are and with shuffled frames) and CIDEr-D per
temporal module, with the baselines as lines, and order accuracy against the frame count. matplotlib."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from vlkit.viz.plots import _to_png  # noqa: E402


def video_study_chart(document: Mapping[str, Any]) -> bytes:
    """Three panels from study.json's document. PNG bytes."""
    variants = document["variants"]
    names = [v["temporal"] for v in variants]
    shuffled = {row["temporal"]: row["shuffled"] for row in document["ablations"]["shuffled_frames"]}
    nearest = document["baselines"]["nearest_clip"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    x = np.arange(len(names))
    order, cider, frames = axes
    order.bar(x - 0.2, [v["order_accuracy"] or 0.0 for v in variants], 0.4, label="frames in order")
    order.bar(x + 0.2, [shuffled[n]["order_accuracy"] or 0.0 for n in names], 0.4, label="frames shuffled")
    if nearest.get("order_accuracy") is not None:
        order.axhline(nearest["order_accuracy"], color="#C44E52", linestyle="--", label="nearest clip")
    order.set_ylim(0, 1)
    order.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    order.set_title("order accuracy (validation)", fontsize=10)
    cider.bar(x, [v["cider"] for v in variants], 0.5, color="#55A868")
    cider.axhline(nearest["cider"], color="#C44E52", linestyle="--", label="nearest clip")
    cider.set_title("CIDEr-D (validation)", fontsize=10)
    for ax in (order, cider):
        ax.set_xticks(x, names)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(axis="y", alpha=0.3)
    ablation = document["ablations"]["frames"]
    frames.plot([r["frames"] for r in ablation], [r["order_accuracy"] or 0.0 for r in ablation], "o-")
    frames.set_xticks([r["frames"] for r in ablation])
    frames.set_ylim(0, 1)
    frames.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    frames.set_xlabel("frames sampled")
    frames.set_title("seq: order accuracy by frame count", fontsize=10)
    frames.grid(alpha=0.3)
    fig.tight_layout()
    return _to_png(fig)
