"""Charts a person opens as PNG files: the per-template accuracy bars and the confusion matrix.

matplotlib draws (Agg backend, no display needed); this module only lays the figures out.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402


def _to_png(fig) -> bytes:
    buffer = io.BytesIO()
    # Fixed metadata keeps the bytes identical across runs (matplotlib writes its version and no date).
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def template_bar_chart(
    templates: Sequence[str], top1: Sequence[float], ensemble_top1: float, title: str = "zero-shot top-1"
) -> bytes:
    """Horizontal bars, one per template, best first, with the ensemble as a reference line; PNG bytes."""
    order = sorted(range(len(templates)), key=lambda i: top1[i], reverse=True)
    height = max(2.5, 0.22 * len(templates) + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    labels = [templates[i] if len(templates[i]) <= 60 else templates[i][:57] + "..." for i in order]
    ax.barh(range(len(order)), [top1[i] for i in order], color="#4C72B0")
    ax.axvline(ensemble_top1, color="#C44E52", linestyle="--", label=f"ensemble {ensemble_top1:.1%}")
    ax.set_yticks(range(len(order)), labels, fontsize=7 if len(order) > 20 else 9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("top-1 accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _to_png(fig)


def confusion_matrix_chart(matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str) -> bytes:
    """A heat map of counts, true class by row; row-normalized colours so rare classes stay visible."""
    size = len(class_names)
    side = min(14, max(4, 0.22 * size + 2))
    fig, ax = plt.subplots(figsize=(side, side))
    rows = [[value / max(1, sum(row)) for value in row] for row in matrix]
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    fontsize = 6 if size > 24 else 8
    ax.set_xticks(range(size), class_names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(size), class_names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _to_png(fig)


def sweep_chart(rows: Sequence[dict], retrieval: dict | None = None) -> bytes:
    """The tuning sweep side by side: CIDEr-D (the retrieval baseline as a line), trainable parameters (log
    scale) and step time, one bar per method; PNG bytes."""
    names = [row["tuning"] for row in rows]
    panels = (
        ("CIDEr-D", [row["cider"] or 0.0 for row in rows], False),
        ("trainable parameters", [max(row["trainable_params"], 1) for row in rows], True),
        ("step time (s)", [row["step_time_s"] for row in rows], False),
    )
    fig, axes = plt.subplots(1, 3, figsize=(12, 0.45 * len(rows) + 1.6), sharey=True)
    for ax, (title, values, log_scale) in zip(axes, panels, strict=True):
        ax.barh(range(len(names)), values, color="#4C72B0")
        ax.set_title(title)
        if log_scale:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels (3x10^5, 4x10^5...) overlap
        ax.grid(axis="x", alpha=0.3)
    if retrieval is not None and retrieval.get("cider") is not None:
        axes[0].axvline(retrieval["cider"], color="#C44E52", linestyle="--", label="retrieval baseline")
        axes[0].legend(loc="lower right", fontsize=8)
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    return _to_png(fig)


def attention_figure(
    image: np.ndarray, words: Sequence[str], maps: Sequence[np.ndarray], title: str = "", per_row: int = 8
) -> bytes:
    """The image first, then one panel per generated word with its attention map laid over the image,
    each titled with its word (the course report's layout); rows of `per_row` panels. PNG bytes."""
    n_panels = 1 + len(words)
    columns = min(per_row, n_panels)
    rows = -(-n_panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.7 * columns, 1.9 * rows + (0.3 if title else 0)))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=8)
    for ax, word, word_map in zip(axes[1:], words, maps, strict=False):
        ax.imshow(image)
        ax.imshow(word_map, cmap="jet", alpha=0.5, extent=(0, image.shape[1], image.shape[0], 0))
        ax.set_title(word if len(word) <= 14 else word[:13] + "…", fontsize=8)
    if title:
        fig.suptitle(title if len(title) <= 110 else title[:107] + "...", fontsize=9)
    fig.tight_layout()
    return _to_png(fig)
