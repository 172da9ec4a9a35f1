"""Charts a person opens as PNG files: the per-template accuracy bars and the confusion matrix.

matplotlib draws (Agg backend, no display needed); this module only lays the figures out.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
